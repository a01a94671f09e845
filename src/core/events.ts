import { configError } from './errors.js';
import type { Channel, VerifyMethod } from './types.js';
import type { OtpLogger } from './options.js';

/**
 * What each event carries. Destinations are masked; no payload ever holds a code.
 *
 * `username` is the normalized username as the request gave it (trimmed, NFKC, lower case by
 * default): any text a client sends can arrive here, newlines included, so a listener that
 * writes it into HTML, a chat message or a log line that is not JSON must escape it.
 * `decoy: true` marks `failed`, `locked` and `rate_limited` about a decoy's state (a username
 * `resolveUser` did not resolve): nothing happened to a real account, so a listener that
 * alerts a user or support can skip them.
 */
export interface OtpEventMap {
  /** Handed to the sender (`test: true`: a test destination, nothing was sent). */
  sent: { username: string; channel: Channel; destination: string; ip?: string; test?: true };
  verified: { username: string; method?: VerifyMethod; ip?: string };
  failed: {
    username: string;
    reason: 'wrong_code' | 'no_code' | 'malformed_code' | 'too_many_attempts' | 'locked';
    method?: VerifyMethod;
    ip?: string;
    decoy?: true;
  };
  /** A timed lock (`lockSeconds`), or the consecutive-failure cap (`permanent: true`, until `unlock()`). */
  locked: { username: string; lockSeconds?: number; permanent?: true; ip?: string; decoy?: true };
  rate_limited: { username?: string; limit: string; retryAfterSeconds: number; ip?: string; channel?: Channel; destination?: string; decoy?: true };
  /** The line-type gate refused a number (block mode), reported one (monitor mode), or could not look it up. */
  line_type: { username: string; destination: string; lineType: string | null; mode: 'block' | 'monitor'; outcome: 'refused' | 'reported' | 'failed' };
  delivery_failed: { username: string; channel: Channel; destination: string; reason: string; attempts: number; ip?: string };
}
export type OtpEventName = keyof OtpEventMap;
export type OtpListener<E extends OtpEventName> = (event: OtpEventMap[E]) => void;

const levels: Record<OtpEventName, keyof OtpLogger> = {
  sent: 'info',
  verified: 'info',
  failed: 'warn',
  locked: 'warn',
  rate_limited: 'warn',
  delivery_failed: 'error',
  line_type: 'warn',
};

export interface OtpEvents {
  on<E extends OtpEventName>(event: E, listener: OtpListener<E>): void;
  off<E extends OtpEventName>(event: E, listener: OtpListener<E>): void;
  emit<E extends OtpEventName>(event: E, payload: OtpEventMap[E]): void;
  /** True when a `logger` or a listener sees `event`: otherwise a failure it reports would go unseen. */
  observed(event: OtpEventName): boolean;
  /**
   * `console.warn(text)`, at most once a minute per `cause`: the last resort for a failure
   * that neither a logger nor a listener sees. `cause` and `text` never hold a code, a
   * destination or a username.
   */
  warnUnobserved(cause: string, text: string, nowMs?: number): void;
}

/** How often one cause may be warned about on the console. */
const UNOBSERVED_WARNING_INTERVAL_MS = 60_000;
/** Causes remembered for that interval; beyond this the oldest are forgotten (a handful is usual). */
const MAX_WARNED_CAUSES = 100;

/**
 * A tiny typed emitter. A listener or a logger that throws is contained, never allowed to
 * break a request or to surface as an unhandled rejection from a delivery running after it.
 */
export function createEvents(logger: OtpLogger | undefined): OtpEvents {
  const listeners = new Map<OtpEventName, Set<(payload: never) => void>>();
  const warnedAt = new Map<string, number>();
  const log = (level: keyof OtpLogger, details: object, message: string): void => {
    try {
      logger?.[level](details, message);
    } catch {
      // A broken logger must not turn into a failed send or verify.
    }
  };
  return {
    on(event, listener) {
      if (!Object.hasOwn(levels, event))
        throw configError(`blockid-otp: unknown event "${String(event)}"; events are ${Object.keys(levels).join(', ')}.`, 'invalid-argument');
      if (!listeners.has(event)) listeners.set(event, new Set());
      listeners.get(event)?.add(listener as (payload: never) => void);
    },
    off(event, listener) {
      listeners.get(event)?.delete(listener as (payload: never) => void);
    },
    observed(event) {
      return logger !== undefined || (listeners.get(event)?.size ?? 0) > 0;
    },
    warnUnobserved(cause, text, nowMs = Date.now()) {
      const last = warnedAt.get(cause);
      if (last !== undefined && nowMs - last < UNOBSERVED_WARNING_INTERVAL_MS) return;
      warnedAt.delete(cause);
      warnedAt.set(cause, nowMs);
      if (warnedAt.size > MAX_WARNED_CAUSES) warnedAt.delete(warnedAt.keys().next().value as string);
      console.warn(text);
    },
    emit(event, payload) {
      if (logger !== undefined) log(levels[event], { event: `otp.${event}`, ...payload }, `blockid-otp ${event}`);
      for (const listener of listeners.get(event) ?? []) {
        try {
          (listener as OtpListener<typeof event>)(payload);
        } catch (error) {
          log('error', { event: `otp.${event}`, error: String(error).slice(0, 300) }, 'blockid-otp: an event listener threw');
        }
      }
    },
  };
}
