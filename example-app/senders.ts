// The example's senders, one per channel: the real one when it is configured (Twilio for
// SMS, WhatsApp and calls; SMTP for email), otherwise the dev outbox, outside production and
// only for the channels in DEV_OUTBOX_CHANNELS. A channel with a real sender never goes to
// the outbox, so /dev/outbox shows exactly what was not sent for real.
import {
  devOutbox,
  nodemailerEmail,
  twilioSms,
  twilioVoice,
  twilioWhatsApp,
  type DevOutbox,
  type EmailSender,
  type SmsSender,
  type VoiceSender,
  type WhatsAppSender,
} from '../src/index.js';
import type { Env, ExampleConfig, OutboxChannel } from './config.js';

export interface ExampleSenders {
  sms: SmsSender | undefined;
  email: EmailSender | undefined;
  whatsapp: WhatsAppSender | undefined;
  voice: VoiceSender | undefined;
  /** The dev outbox, when at least one channel uses it (never in production). */
  outbox: DevOutbox | undefined;
  /** The channels that go to the outbox. */
  outboxChannels: OutboxChannel[];
  /** The channels that have a sender, real or outbox. */
  channels: { sms: boolean; email: boolean; whatsapp: boolean; voice: boolean };
}

export function buildSenders(config: ExampleConfig, env: Env): ExampleSenders {
  const { twilio, smtp } = config;
  const credentials = twilio && { accountSid: twilio.accountSid, authToken: twilio.authToken };
  const real = {
    sms: credentials && twilio?.sms ? twilioSms({ ...credentials, ...twilio.sms }) : undefined,
    email: smtp ? nodemailerEmail(smtp) : undefined,
    whatsapp: credentials && twilio?.whatsapp ? twilioWhatsApp({ ...credentials, ...twilio.whatsapp }) : undefined,
    voice: credentials && twilio?.voice ? twilioVoice({ ...credentials, ...twilio.voice }) : undefined,
  };
  const outboxChannels = config.outboxChannels.filter((channel) => real[channel] === undefined);
  const outbox = outboxChannels.length > 0 ? devOutbox({ env }) : undefined;
  const pick = <C extends OutboxChannel>(channel: C) =>
    real[channel] ?? (outbox && outboxChannels.includes(channel) ? (outbox[channel] as NonNullable<(typeof real)[C]>) : undefined);
  const sms = pick('sms');
  const email = pick('email');
  const whatsapp = pick('whatsapp');
  const voice = pick('voice');
  return {
    sms,
    email,
    whatsapp,
    voice,
    outbox,
    outboxChannels,
    channels: { sms: sms !== undefined, email: email !== undefined, whatsapp: whatsapp !== undefined, voice: voice !== undefined },
  };
}

/** `['sms', 'whatsapp']` → `SMS and WhatsApp`, for pages and the start-up banner. */
export function channelNames(channels: readonly OutboxChannel[]): string {
  const names = channels.map((channel) => ({ sms: 'SMS', email: 'email', whatsapp: 'WhatsApp', voice: 'voice calls' })[channel]);
  return names.length <= 1 ? (names[0] ?? '') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
}
