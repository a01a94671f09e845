/** Where a code goes: the destinations of a send, checked and normalized. */
import { normalizeEmail, normalizePhone, type NormalizePhoneOptions } from './destinations.js';
import { OtpError } from '../errors.js';
import type { Channel, ChannelChoice, Destinations } from '../types.js';

export interface Target {
  channel: Channel;
  /** E.164 for the phone channels, the normalized address for email. */
  to: string;
}

/** The programmatic API's destinations: every bad one is an error the caller must fix. */
export function strictTargets(destinations: Destinations, senders: Senders, phoneRules: NormalizePhoneOptions = {}): Target[] {
  if (destinations === null || typeof destinations !== 'object') {
    throw new OtpError('NO_DESTINATION', 'Pass the destinations, e.g. { smsTo: "4155550100", smsISDCode: "1" } or { emailTo }.');
  }
  const targets: Target[] = [];
  if (destinations.smsTo !== undefined) {
    const to = normalizePhone(destinations.smsTo, destinations.smsISDCode ?? '1', phoneRules);
    if (senders.sms === undefined)
      throw new OtpError('CHANNEL_NOT_CONFIGURED', 'smsTo was given, but no "sms" sender is configured (e.g. sms: twilioSms(...)).');
    targets.push({ channel: 'sms', to });
  }
  if (destinations.emailTo !== undefined) {
    const to = normalizeEmail(destinations.emailTo);
    if (senders.email === undefined)
      throw new OtpError('CHANNEL_NOT_CONFIGURED', 'emailTo was given, but no "email" sender is configured (e.g. email: nodemailerEmail(...)).');
    targets.push({ channel: 'email', to });
  }
  if (targets.length === 0) throw new OtpError('NO_DESTINATION', 'Give smsTo (with smsISDCode) or emailTo, or both.');
  return targets;
}

/** The senders an app configured, by channel. */
export type Senders = Partial<Record<Channel, unknown>>;

/** The channels a choice asks for, among those with a sender: `both` is SMS and email (the BlockID SDK's "Via Email and SMS"). */
export function wantedChannels(choice: ChannelChoice, senders: Senders): Channel[] {
  const asked: Channel[] = choice === 'both' ? ['sms', 'email'] : [choice];
  return asked.filter((channel) => senders[channel] !== undefined);
}

/** The HTTP send's destinations: what `resolveUser` returned, filtered by channel; bad ones are skipped. */
export function lenientTargets(
  destinations: Destinations | undefined,
  choice: ChannelChoice,
  senders: Senders,
  warn: (reason: string) => void,
  phoneRules: NormalizePhoneOptions = {},
): Target[] {
  if (destinations === undefined || destinations === null || typeof destinations !== 'object') return [];
  const targets: Target[] = [];
  for (const channel of wantedChannels(choice, senders)) {
    try {
      if (channel === 'email') {
        if (destinations.emailTo) targets.push({ channel, to: normalizeEmail(destinations.emailTo) });
      } else if (destinations.smsTo) {
        targets.push({ channel, to: normalizePhone(destinations.smsTo, destinations.smsISDCode ?? '1', phoneRules) });
      }
    } catch (error) {
      warn((error as Error).message);
    }
  }
  return targets;
}
