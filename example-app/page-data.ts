// What the pages show, whatever the framework: the channel buttons of the code step (with
// masked destinations), an authenticator key grouped for reading, the dev outbox in order.
// Shared by the Express pages (routes.ts) and the Koa ones (koa-pages.ts).
import type { HelmetOptions } from 'helmet';
import type { OtpSettings } from './routes.js';
import type { DemoUser } from './users.js';
import type { ChannelChoice, OutboxEntryView } from './views.js';

/** The OTP settings both examples pass to blockid-otp and show on the code step. */
export const otpSettings: OtpSettings = {
  basePath: '/otp',
  codeLength: 6,
  ttlSeconds: 300,
  maxAttempts: 5,
  resendCooldownSeconds: 30,
};

/** Security headers (helmet): scripts, styles and images from the app itself only, never inline. */
export function securityHeaders(production: boolean): HelmetOptions {
  return {
    contentSecurityPolicy: {
      directives: {
        'default-src': ["'self'"],
        'script-src': ["'self'"],
        'style-src': ["'self'"],
        'img-src': ["'self'", 'data:'],
        'connect-src': ["'self'"],
        'form-action': ["'self'"],
        'frame-ancestors': ["'none'"],
        // Over plain http (local development) an upgrade would break the page.
        'upgrade-insecure-requests': production ? [] : null,
      },
    },
    strictTransportSecurity: production,
  };
}

/** Which senders the app has. */
export interface PageChannels {
  sms: boolean;
  email: boolean;
  whatsapp: boolean;
  voice: boolean;
}

function maskPhone(phone: string): { detail: string; spoken: string } {
  const last4 = phone.replace(/\D/g, '').slice(-4);
  return { detail: `(•••) •••-${last4}`, spoken: `the phone number ending in ${last4}` };
}

function maskEmail(email: string): { detail: string; spoken: string } {
  const at = email.lastIndexOf('@');
  const first = email.slice(0, 1);
  const domain = email.slice(at + 1);
  return { detail: `${first}•••@${domain}`, spoken: `the ${domain} address starting with ${first}` };
}

export function channelChoices(user: DemoUser, channels: PageChannels): ChannelChoice[] {
  const phone = user.phone ? maskPhone(user.phone) : undefined;
  const email = channels.email && user.email ? maskEmail(user.email) : undefined;
  const choices: ChannelChoice[] = [];
  const sms = channels.sms && phone;
  if (sms)
    choices.push({
      channel: 'sms',
      label: 'Send by SMS',
      detail: `Text message to ${phone.detail}`,
      spoken: phone.spoken,
      name: `Send by SMS to ${phone.spoken}`,
    });
  if (channels.whatsapp && phone) {
    choices.push({
      channel: 'whatsapp',
      label: 'Send by WhatsApp',
      detail: `WhatsApp message to ${phone.detail}`,
      spoken: phone.spoken,
      name: `Send by WhatsApp to ${phone.spoken}`,
    });
  }
  if (channels.voice && phone) {
    choices.push({
      channel: 'voice',
      label: 'Call me',
      detail: `A voice call to ${phone.detail} reads the code`,
      spoken: phone.spoken,
      name: `Call me at ${phone.spoken}`,
    });
  }
  if (email)
    choices.push({
      channel: 'email',
      label: 'Send by email',
      detail: `Email to ${email.detail}`,
      spoken: email.spoken,
      name: `Send by email to ${email.spoken}`,
    });
  if (sms && email) {
    const spoken = `${phone.spoken} and ${email.spoken}`;
    choices.push({
      channel: 'both',
      label: 'Send by SMS and email',
      detail: 'The same code to your phone and your inbox',
      spoken,
      name: `Send by SMS and email to ${spoken}`,
    });
  }
  return choices;
}

/** `ABCDEFGH…` → `ABCD EFGH …`: easier to copy by hand; authenticator apps ignore the spaces. */
export function groupKey(secret: string): string {
  return secret.replace(/(.{4})(?=.)/g, '$1 ');
}

/** Newest first; entries of the same millisecond keep the order they were sent in, reversed. */
export function newestFirst(entries: OutboxEntryView[]): OutboxEntryView[] {
  return entries
    .map((entry, index) => ({ entry, index }))
    .sort((a, b) => b.entry.at.getTime() - a.entry.at.getTime() || b.index - a.index)
    .map(({ entry }) => entry);
}
