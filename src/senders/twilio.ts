/**
 * SMS through the official `twilio` SDK. The SDK is an optional peer dependency: it is
 * imported lazily, and only when this sender has to build its own client.
 */
import { OtpError } from '../core/errors.js';
import type { SmsMessage, SmsSender } from '../core/types.js';

/** The part of a `twilio` client this sender uses; a client from `twilio(...)` fits it. */
export interface TwilioClientLike {
  messages: {
    create(params: { to: string; body: string; from?: string; messagingServiceSid?: string }): Promise<unknown>;
  };
}

/** Options for the client built from credentials, passed to `twilio(sid, token, opts)`. */
export interface TwilioClientOptions {
  /** Request timeout in milliseconds (the SDK's default is 30 000). */
  timeout?: number;
  region?: string;
  edge?: string;
  [option: string]: unknown;
}

type Sender = { from: string; messagingServiceSid?: never } | { messagingServiceSid: string; from?: never };
type Credentials =
  | { client: TwilioClientLike; accountSid?: never; authToken?: never; clientOptions?: never }
  | { accountSid: string; authToken: string; clientOptions?: TwilioClientOptions; client?: never };

export type TwilioSmsOptions = Credentials & Sender;

const knownOptions = ['client', 'accountSid', 'authToken', 'clientOptions', 'from', 'messagingServiceSid'];
const networkCodes = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND',
  'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ERR_NETWORK', 'ERR_SOCKET_CONNECTION_TIMEOUT',
]);

/** An `SmsSender` that sends with `client.messages.create({ to, body, from | messagingServiceSid })`. */
export function twilioSms(options: TwilioSmsOptions): SmsSender {
  const opts = validate(options);
  const sender = opts.from !== undefined ? { from: opts.from } : { messagingServiceSid: opts.messagingServiceSid };
  let client: Promise<TwilioClientLike> | undefined = opts.client && Promise.resolve(opts.client);

  return {
    async send(message: SmsMessage): Promise<void> {
      client ??= buildClient(opts.accountSid!, opts.authToken!, opts.clientOptions).catch((error: unknown) => {
        client = undefined;
        throw error;
      });
      const ready = await client;
      try {
        await ready.messages.create({ to: message.to, body: message.body, ...sender });
      } catch (error) {
        throw deliveryFailed(error);
      }
    },
  };
}

interface Resolved {
  client?: TwilioClientLike;
  accountSid?: string;
  authToken?: string;
  clientOptions?: TwilioClientOptions;
  from?: string;
  messagingServiceSid?: string;
}

function validate(options: TwilioSmsOptions): Resolved {
  if (typeof options !== 'object' || options === null) throw new TypeError('twilioSms: pass an options object');
  const unknown = Object.keys(options).find((key) => !knownOptions.includes(key));
  if (unknown) throw new TypeError(`twilioSms: unknown option "${unknown}"; expected ${knownOptions.join(', ')}`);
  const { client, accountSid, authToken, clientOptions, from, messagingServiceSid } = options;

  if (client !== undefined) {
    if (accountSid !== undefined || authToken !== undefined) {
      throw new TypeError('twilioSms: pass either "client" or "accountSid" and "authToken", not both');
    }
    if (typeof client?.messages?.create !== 'function') {
      throw new TypeError('twilioSms: "client" must be a twilio client (twilio(accountSid, authToken))');
    }
  } else {
    if (typeof accountSid !== 'string' || !accountSid.startsWith('AC')) {
      throw new TypeError('twilioSms: "accountSid" must be your Account SID (starts with "AC"), or pass "client"');
    }
    if (typeof authToken !== 'string' || authToken === '') throw new TypeError('twilioSms: "authToken" must be a non-empty string');
  }
  if (clientOptions !== undefined && (client !== undefined || typeof clientOptions !== 'object' || clientOptions === null)) {
    throw new TypeError('twilioSms: "clientOptions" must be an object, and goes with "accountSid" and "authToken"');
  }
  if ((from === undefined) === (messagingServiceSid === undefined)) {
    throw new TypeError('twilioSms: pass either "from" or "messagingServiceSid"');
  }
  if (from !== undefined && (typeof from !== 'string' || from.trim() === '')) {
    throw new TypeError('twilioSms: "from" must be a phone number in E.164 form or a sender ID');
  }
  if (messagingServiceSid !== undefined && (typeof messagingServiceSid !== 'string' || !messagingServiceSid.startsWith('MG'))) {
    throw new TypeError('twilioSms: "messagingServiceSid" must be a Messaging Service SID (starts with "MG")');
  }
  return options as Resolved;
}

async function buildClient(accountSid: string, authToken: string, clientOptions?: TwilioClientOptions): Promise<TwilioClientLike> {
  let sdk: { default?: unknown };
  try {
    sdk = await import('twilio');
  } catch (cause) {
    throw new OtpError('DELIVERY_FAILED', 'twilioSms: "accountSid"/"authToken" need the optional "twilio" package (npm install twilio)', {
      retryable: false,
      cause,
    });
  }
  // ESM import of the CommonJS SDK gives { default: twilio }; some bundlers give twilio itself.
  const factory = (sdk.default ?? sdk) as typeof import('twilio');
  return factory(accountSid, authToken, clientOptions);
}

/**
 * A Twilio failure as an OtpError. The SDK's own errors can carry the request (and with it
 * the message body and code), so only status and codes are kept.
 */
function deliveryFailed(error: unknown): OtpError {
  const status = readNumber(error, 'status');
  const code = readNumber(error, 'code') ?? readString(error, 'code');
  const cause = { provider: 'twilio', status, code };
  if (status !== undefined) {
    const retryable = status === 429 || status >= 500;
    const twilioCode = typeof code === 'number' ? `error ${code}, ` : '';
    return new OtpError('DELIVERY_FAILED', `Twilio refused the message (${twilioCode}HTTP ${status})`, { retryable, cause });
  }
  if (typeof code === 'string' && networkCodes.has(code)) {
    return new OtpError('DELIVERY_FAILED', `Twilio could not be reached (${code})`, { retryable: true, cause });
  }
  const name = error instanceof Error ? ` (${error.name})` : '';
  return new OtpError('DELIVERY_FAILED', `Twilio send failed${name}`, { retryable: false, cause });
}

function readNumber(value: unknown, key: string): number | undefined {
  const field = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
  return typeof field === 'number' && Number.isFinite(field) ? field : undefined;
}

function readString(value: unknown, key: string): string | undefined {
  const field = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
  return typeof field === 'string' ? field : undefined;
}
