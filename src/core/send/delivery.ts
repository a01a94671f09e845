/** Delivery with a time budget and bounded retries; failures become events, never crashes. */
import { OtpError, withDocsLink, withoutDocsLink } from '../errors.js';
import { maskDestination } from './destinations.js';
import { scrubMessage } from './scrub.js';
import type { OtpEvents } from '../events.js';
import { inDeliverySpan, type CapturedContext, type OtpProvider } from '../tracing.js';
import type { Channel, OtpMetrics } from '../types.js';
import { withTimeout } from '../timeout.js';

/** One message ready to go: `send` hands it to its channel's sender. */
export interface Outgoing {
  channel: Channel;
  /** What events report and what failures are scrubbed of. */
  message: { to: string; code: string; username: string; linkToken?: string | undefined };
  /** Who delivers it, for traces. */
  provider: OtpProvider;
  send(): Promise<void>;
  /**
   * Counts one more provider request (a retry) in the channel's spend breakers before it is
   * made; `false` when a breaker refuses it, and then there is no retry. Absent: retries are free (email).
   */
  spend?: () => Promise<boolean>;
}

export interface DeliveryPolicy {
  timeoutMs: number;
  retries: number;
}

/** What events about a delivery carry besides the message's own username and destination, and where it reports. */
export interface DeliveryContext {
  ip?: string;
  metrics?: OtpMetrics | undefined;
  /** The send's trace context: each attempt is a child span of the send. */
  trace?: CapturedContext;
}

/** Pause before retry `n` (1-based): long enough for a provider's 429 or a blip to pass. */
const backoffMs = (retry: number): number => 250 * retry;

/**
 * Sends one message until `deadline` (retries included), retrying only errors that say they
 * are retryable (timeouts, a provider's 429 or 5xx, connection failures). Resolves true when
 * delivered, false when it failed (a `delivery_failed` event says why); never rejects. Each
 * attempt is counted in `metrics` and traced as a `blockid_otp.deliver` span.
 */
async function deliverMessage(
  outgoing: Outgoing,
  policy: DeliveryPolicy,
  events: OtpEvents,
  context: DeliveryContext = {},
  deadline = Date.now() + policy.timeoutMs,
): Promise<boolean> {
  const about = {
    username: outgoing.message.username,
    channel: outgoing.channel,
    destination: maskDestination(outgoing.message.to),
    ...(context.ip !== undefined && { ip: context.ip }),
  };
  let attempts = 0;
  let reason = 'unknown error';
  let lastError: unknown;
  for (;;) {
    attempts += 1;
    const started = performance.now();
    try {
      await inDeliverySpan(
        { channel: outgoing.channel, provider: outgoing.provider, attempt: attempts },
        () => withDeadline(sendOnce(outgoing), deadline),
        context.trace,
      );
      context.metrics?.delivery(outgoing.channel, 'delivered', (performance.now() - started) / 1000);
      events.emit('sent', about);
      return true;
    } catch (error) {
      context.metrics?.delivery(outgoing.channel, 'failed', (performance.now() - started) / 1000);
      reason = describeFailure(error, outgoing.message);
      lastError = error;
      if (!isRetryable(error) || attempts > policy.retries) break;
    }
    const pause = backoffMs(attempts);
    if (Date.now() + pause >= deadline) break; // no time left for another try
    await sleep(pause);
    // A retry may be billed like the first request: it counts in the breakers first.
    if (outgoing.spend !== undefined && !(await outgoing.spend().catch(() => false))) break;
  }
  events.emit('delivery_failed', { ...about, reason, attempts });
  if (!events.observed('delivery_failed')) warnUnobserved(events, outgoing.channel, failureCause(lastError, outgoing.message.code));
  return false;
}

/**
 * Without a logger or a `delivery_failed` listener, a failed delivery would leave no trace
 * while /send answers 202: so the console says why, once a minute per cause (the channel
 * and the error's class and codes, never the message, the destination or the username).
 */
function warnUnobserved(events: OtpEvents, channel: string, cause: string): void {
  events.warnUnobserved(
    `${channel} ${cause}`,
    withDocsLink(
      `blockid-otp: a code could not be delivered by ${channel} (${cause}). Pass a "logger" option or listen to otp.on('delivery_failed') ` +
        'to see each failure; until then this warning repeats at most once a minute per cause.',
      'delivery-failed',
    ),
  );
}

/** A short word-only token (an error class, an errno or provider code): anything else could carry a message or an address. */
const SAFE_TOKEN = /^[A-Za-z][A-Za-z0-9_.-]{0,39}$/;

/**
 * What kind of failure `error` is, from its class and codes alone: `OtpError DELIVERY_FAILED
 * smtp ECONNREFUSED`, `OtpError DELIVERY_FAILED twilio HTTP 503 20503`, `TypeError`, `timed out`.
 */
function failureCause(error: unknown, code: string): string {
  if (error instanceof DeliveryTimeout) return 'timed out';
  const parts: string[] = [];
  const token = (value: unknown, prefix = ''): void => {
    if (typeof value === 'number' && Number.isInteger(value) && String(value) !== code) parts.push(`${prefix}${value}`);
    else if (typeof value === 'string' && SAFE_TOKEN.test(value) && !value.includes(code)) parts.push(`${prefix}${value}`);
  };
  token(error instanceof Error ? error.name : typeof error);
  const fields = typeof error === 'object' && error !== null ? (error as Record<string, unknown>) : {};
  token(fields.code);
  const cause = typeof fields.cause === 'object' && fields.cause !== null ? (fields.cause as Record<string, unknown>) : {};
  token(cause.provider);
  token(cause.status, 'HTTP ');
  token(cause.responseCode, 'reply ');
  token(cause.errorCode);
  token(cause.systemCode);
  token(cause.code);
  return parts.join(' ') || 'unknown error';
}

/**
 * One target's delivery: its own channel first, then each fallback channel in turn with the
 * same code while time is left (one `deliveryTimeoutMs` for the whole chain). `next()` gives
 * the next fallback message, or null when there is none (or its budget is spent).
 */
export async function deliverChain(
  first: Outgoing,
  next: (() => Promise<Outgoing | null>) | undefined,
  policy: DeliveryPolicy,
  events: OtpEvents,
  context: DeliveryContext = {},
): Promise<Channel | null> {
  const deadline = Date.now() + policy.timeoutMs;
  let current: Outgoing | null = first;
  while (current !== null) {
    if (await deliverMessage(current, policy, events, context, deadline)) return current.channel;
    // A timer may fire a millisecond before Date.now() reaches its time: a channel that timed
    // out at the deadline must not leave a sliver of it to the next, whose sender would be
    // handed the message (and send it) only to be cut off at once.
    if (next === undefined || deadline - Date.now() < FALLBACK_MIN_MS) return null;
    current = await next().catch(() => null);
  }
  return null;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The least of the chain's time a fallback channel is started with; no provider answers sooner. */
const FALLBACK_MIN_MS = 10;

function sendOnce(outgoing: Outgoing): Promise<void> {
  // Called inside a promise chain so a sender that throws synchronously is caught too.
  return Promise.resolve().then(() => outgoing.send());
}

class DeliveryTimeout extends Error {}

function withDeadline<T>(work: Promise<T>, deadline: number): Promise<T> {
  return withTimeout(work, deadline - Date.now(), () => new DeliveryTimeout('delivery timed out'));
}

function isRetryable(error: unknown): boolean {
  return error instanceof DeliveryTimeout || (error instanceof OtpError && error.retryable === true);
}

/**
 * A one-line reason for logs and events. Should a sender's error echo the code, a sign-in
 * link's token or the destination (custom senders may, in any writing), they are scrubbed: the
 * code to `[code]`, the token to `[link]`, the destination to its masked form (see scrub.ts).
 * Scrubbed before it is cut, so no code is left half-visible at the cut.
 */
function describeFailure(error: unknown, message: { code: string; to: string; linkToken?: string | undefined }): string {
  let text = error instanceof DeliveryTimeout ? 'timed out' : error instanceof Error ? `${error.name}: ${withoutDocsLink(error.message)}` : String(error);
  if (message.linkToken !== undefined) text = text.split(message.linkToken).join('[link]');
  return scrubMessage(text.slice(0, 4000), message, maskDestination(message.to)).slice(0, 300);
}
