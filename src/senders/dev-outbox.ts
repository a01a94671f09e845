/** A sender for local development: keeps messages in memory instead of delivering them. */
import { configError } from '../core/errors.js';
import type { Channel, EmailSender, SmsSender, VoiceSender, WhatsAppSender } from '../core/types.js';

export interface OutboxEntry {
  channel: Channel;
  to: string;
  /** The email subject; for WhatsApp and calls, what kind of message it stands for. */
  subject?: string;
  /** What the user would have read (SMS, email, WhatsApp) or heard (a call). */
  text: string;
  html?: string;
  username: string;
  at: Date;
}

export interface DevOutbox {
  sms: SmsSender;
  email: EmailSender;
  /** Keeps the text of the WhatsApp authentication template, with the code filled in. */
  whatsapp: WhatsAppSender;
  /** Keeps the words a call would say: the code digit by digit, twice. */
  voice: VoiceSender;
  /** Newest last. */
  entries(): OutboxEntry[];
  clear(): void;
}

/** What Meta's authentication template says (the app cannot change its wording). */
const whatsappText = (code: string, locale: string) =>
  locale.toLowerCase().startsWith('fr')
    ? `${code} est votre code de vérification. Pour votre sécurité, ne le communiquez à personne.`
    : `${code} is your verification code. For your security, do not share this code.`;

/** The words of a call, as twilioVoice() says them: each digit on its own, then once more. */
function callText(code: string, appName: string, locale: string): string {
  const digits = `${[...code].join('. ')}.`;
  const name = appName.trim();
  return locale.toLowerCase().startsWith('fr')
    ? `${name ? `Votre code ${name} est :` : 'Votre code est :'} ${digits}\n(pause)\nJe répète, votre code est : ${digits}`
    : `${name ? `Your ${name} code is:` : 'Your code is:'} ${digits}\n(pause)\nAgain, your code is: ${digits}`;
}

/**
 * `devOutbox()`: SMS, email, WhatsApp and voice senders that keep each message (up to
 * `limit`) for a `/dev/outbox` page. Refuses to start when `NODE_ENV=production`: codes in
 * memory and on a page are for a developer's machine only.
 */
export function devOutbox(options: { limit?: number | undefined; env?: NodeJS.ProcessEnv | undefined } = {}): DevOutbox {
  const env = options.env ?? process.env;
  if (env.NODE_ENV === 'production') {
    throw configError(
      'devOutbox() keeps codes in memory for a development page and refuses to run with NODE_ENV=production: ' +
        'configure twilioSms(), twilioWhatsApp(), twilioVoice() and nodemailerEmail().',
      'invalid-sender-options',
    );
  }
  const limit = options.limit ?? 200;
  const entries: OutboxEntry[] = [];
  const keep = (entry: OutboxEntry) => {
    entries.push(entry);
    if (entries.length > limit) entries.splice(0, entries.length - limit);
  };
  return {
    sms: { send: async (m) => keep({ channel: 'sms', to: m.to, text: m.body, username: m.username, at: new Date() }) },
    email: {
      send: async (m) => keep({ channel: 'email', to: m.to, subject: m.subject, text: m.text, html: m.html, username: m.username, at: new Date() }),
    },
    whatsapp: {
      send: async (m) =>
        keep({
          channel: 'whatsapp',
          to: m.to,
          subject: 'WhatsApp authentication template',
          text: whatsappText(m.code, m.locale),
          username: m.username,
          at: new Date(),
        }),
    },
    voice: {
      send: async (m) =>
        keep({ channel: 'voice', to: m.to, subject: 'What the call says', text: callText(m.code, m.appName, m.locale), username: m.username, at: new Date() }),
    },
    entries: () => [...entries],
    clear: () => {
      entries.length = 0;
    },
  };
}
