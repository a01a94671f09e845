/** SMS through the official `twilio` SDK: `client.messages.create({ to, body, from | messagingServiceSid })`. */
import { optionError } from '../../core/validate.js';
import { configError } from '../../core/errors.js';
import type { SmsMessage, SmsSender } from '../../core/types.js';
import { checkOptionNames, credentialOptions, twilioClient, type TwilioCredentials } from './client.js';
import { messageFailure, twilioFailure } from './errors.js';
import { withProvider } from '../../core/provider.js';

/** The part of a `twilio` client this sender uses; a client from `twilio(...)` fits it. */
export interface TwilioClientLike {
  messages: {
    create(params: { to: string; body: string; from?: string; messagingServiceSid?: string }): Promise<unknown>;
  };
}

/** Who the messages come from: a number (`from`) or a Messaging Service (`messagingServiceSid`). */
export type TwilioSmsFrom = { from: string; messagingServiceSid?: never } | { messagingServiceSid: string; from?: never };

export type TwilioSmsOptions = TwilioCredentials<TwilioClientLike> & TwilioSmsFrom;

const knownOptions = [...credentialOptions, 'from', 'messagingServiceSid'];

/** An `SmsSender` that sends with `client.messages.create({ to, body, from | messagingServiceSid })`. */
export function twilioSms(options: TwilioSmsOptions): SmsSender {
  const opts = checkOptionNames('twilioSms', options, knownOptions);
  const client = twilioClient<TwilioClientLike>('twilioSms', opts, (c) => typeof c.messages?.create === 'function');
  const sender = resolveSender(opts);

  return withProvider(
    {
      async send(message: SmsMessage): Promise<void> {
        const ready = await client();
        try {
          await ready.messages.create({ to: message.to, body: message.body, ...sender });
        } catch (error) {
          throw twilioFailure(error, messageFailure);
        }
      },
    },
    'twilio',
  );
}

function resolveSender({ from, messagingServiceSid }: Record<string, unknown>): TwilioSmsFrom {
  if ((from === undefined) === (messagingServiceSid === undefined)) {
    throw configError('twilioSms: pass either "from" or "messagingServiceSid"', 'invalid-sender-options');
  }
  if (from !== undefined) {
    if (typeof from !== 'string' || from.trim() === '') {
      throw optionError('twilioSms', 'from', 'a phone number in E.164 form or a sender ID', from);
    }
    return { from };
  }
  if (typeof messagingServiceSid !== 'string' || !messagingServiceSid.startsWith('MG')) {
    throw optionError('twilioSms', 'messagingServiceSid', 'a Messaging Service SID (starts with "MG")', messagingServiceSid);
  }
  return { messagingServiceSid };
}
