/** A sender for local development: keeps messages in memory instead of delivering them. */
import type { Channel, EmailSender, SmsSender } from '../core/types.js';

export interface OutboxEntry {
  channel: Channel;
  to: string;
  subject?: string;
  text: string;
  html?: string;
  username: string;
  at: Date;
}

export interface DevOutbox {
  sms: SmsSender;
  email: EmailSender;
  /** Newest last. */
  entries(): OutboxEntry[];
  clear(): void;
}

/**
 * `devOutbox()`: SMS and email senders that keep each message (up to `limit`) for a
 * `/dev/outbox` page. Refuses to start when `NODE_ENV=production`: codes in memory and
 * on a page are for a developer's machine only.
 */
export function devOutbox(options: { limit?: number; env?: NodeJS.ProcessEnv } = {}): DevOutbox {
  const env = options.env ?? process.env;
  if (env.NODE_ENV === 'production') {
    throw new TypeError('devOutbox() keeps codes in memory for a development page and refuses to run with NODE_ENV=production: configure twilioSms() and nodemailerEmail().');
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
    entries: () => [...entries],
    clear: () => {
      entries.length = 0;
    },
  };
}
