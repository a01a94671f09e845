/**
 * WhatsApp through Twilio's Messages API. Outside a conversation Meta only delivers approved
 * templates, so the code goes out as the one variable of an *authentication* template:
 * `client.messages.create({ to: 'whatsapp:+1…', from: 'whatsapp:+1…', contentSid, contentVariables })`.
 */
import { optionError } from '../../core/validate.js';
import type { WhatsAppMessage, WhatsAppSender } from '../../core/types.js';
import { checkOptionNames, credentialOptions, twilioClient, type TwilioCredentials } from './client.js';
import { messageFailure, twilioFailure } from './errors.js';
import { withProvider } from '../../core/provider.js';

/** The part of a `twilio` client this sender uses; a client from `twilio(...)` fits it. */
export interface TwilioWhatsAppClient {
  messages: {
    create(params: { to: string; from: string; contentSid: string; contentVariables: string }): Promise<unknown>;
  };
}

export type TwilioWhatsAppOptions = TwilioCredentials<TwilioWhatsAppClient> & {
  /** Your WhatsApp sender, `+14155550111` or `whatsapp:+14155550111`. */
  from: string;
  /** The Content SID (`HX` + 32 hex digits) of an approved WhatsApp authentication template. */
  contentSid: string;
};

const knownOptions = [...credentialOptions, 'from', 'contentSid'];
const WHATSAPP_PREFIX = 'whatsapp:';
const E164 = /^\+[1-9]\d{6,14}$/;
const CONTENT_SID = /^HX[0-9a-fA-F]{32}$/;

/** A `WhatsAppSender` that sends the code as variable `1` of the authentication template `contentSid`. */
export function twilioWhatsApp(options: TwilioWhatsAppOptions): WhatsAppSender {
  const opts = checkOptionNames('twilioWhatsApp', options, knownOptions);
  const client = twilioClient<TwilioWhatsAppClient>('twilioWhatsApp', opts, (c) => typeof c.messages?.create === 'function');
  const from = resolveFrom(opts.from);
  const contentSid = opts.contentSid;
  if (typeof contentSid !== 'string' || !CONTENT_SID.test(contentSid)) {
    throw optionError('twilioWhatsApp', 'contentSid', 'the Content SID of an approved authentication template ("HX" and 32 hex digits)', contentSid);
  }

  return withProvider(
    {
      async send(message: WhatsAppMessage): Promise<void> {
        const ready = await client();
        try {
          await ready.messages.create({
            to: `${WHATSAPP_PREFIX}${message.to}`,
            from,
            contentSid,
            contentVariables: JSON.stringify({ 1: message.code }),
          });
        } catch (error) {
          throw twilioFailure(error, messageFailure);
        }
      },
    },
    'twilio',
  );
}

function resolveFrom(from: unknown): string {
  const number = typeof from === 'string' && from.startsWith(WHATSAPP_PREFIX) ? from.slice(WHATSAPP_PREFIX.length) : from;
  if (typeof number !== 'string' || !E164.test(number)) {
    throw optionError('twilioWhatsApp', 'from', 'your WhatsApp sender number in E.164 form, e.g. "+14155550111" or "whatsapp:+14155550111"', from);
  }
  return `${WHATSAPP_PREFIX}${number}`;
}
