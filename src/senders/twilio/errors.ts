/**
 * Twilio failures as `OtpError('DELIVERY_FAILED')`, shared by every Twilio sender and the
 * Lookup gate. The SDK's own errors can carry the request (and with it the message body,
 * the TwiML or the code), so only the provider, the HTTP status and Twilio's error code are
 * kept.
 */
import { OtpError } from '../../core/errors.js';

/** What failed, as the messages say it: `Twilio refused the message`, `Twilio refused the call`, … */
export interface TwilioProduct {
  /** `Twilio refused the ${refused}` */
  refused: string;
  /** `${failed} failed (TypeError)` */
  failed: string;
  /** `${reached} could not be reached` */
  reached: string;
}

export const messageFailure: TwilioProduct = { refused: 'Twilio refused the message', failed: 'Twilio send', reached: 'Twilio' };
export const callFailure: TwilioProduct = { refused: 'Twilio refused the call', failed: 'Twilio call', reached: 'Twilio' };
export const lookupFailure: TwilioProduct = { refused: 'Twilio Lookup refused the request', failed: 'Twilio Lookup', reached: 'Twilio Lookup' };

const networkCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ERR_NETWORK',
  'ERR_SOCKET_CONNECTION_TIMEOUT',
]);

/**
 * `error` (anything the SDK threw) as DELIVERY_FAILED: `retryable` for HTTP 429 and 5xx and
 * for network failures; `cause` is `{ provider: 'twilio', status, code }` and nothing else.
 */
export function twilioFailure(error: unknown, product: TwilioProduct): OtpError {
  const status = readNumber(error, 'status');
  const code = readNumber(error, 'code') ?? readString(error, 'code');
  const cause = { provider: 'twilio', status, code };
  if (status !== undefined) {
    const retryable = status === 429 || status >= 500;
    const twilioCode = typeof code === 'number' ? `error ${code}, ` : '';
    return new OtpError('DELIVERY_FAILED', `${product.refused} (${twilioCode}HTTP ${status})`, { retryable, cause });
  }
  if (typeof code === 'string' && networkCodes.has(code)) {
    return new OtpError('DELIVERY_FAILED', `${product.reached} could not be reached (${code})`, { retryable: true, cause });
  }
  const name = error instanceof Error ? ` (${error.name})` : '';
  return new OtpError('DELIVERY_FAILED', `${product.failed} failed${name}`, { retryable: false, cause });
}

function readNumber(value: unknown, key: string): number | undefined {
  const field = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
  return typeof field === 'number' && Number.isFinite(field) ? field : undefined;
}

function readString(value: unknown, key: string): string | undefined {
  const field = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
  return typeof field === 'string' ? field : undefined;
}
