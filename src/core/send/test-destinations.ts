/**
 * Test mode: the `testDestinations` option, resolved once at creation. A test destination
 * (a phone number or an email address) gets a fixed code and no delivery, for CI, end-to-end
 * suites, staging and app-store review. Pure: the core decides what to do with the answer.
 *
 * Safe by construction: unless `NODE_ENV` says development or test (trimmed, in any case), the
 * option needs an expiry at most 30 days ahead, so a forgotten `NODE_ENV`, `prod`, `staging`
 * or `Production` cannot leave test mode on for good; once the expiry has passed every
 * destination is an ordinary one, and a fixed code issued before it dies with it (see
 * `lifetimeMs`). No error or description produced here ever contains a fixed code.
 */
import { configError } from '../errors.js';
import type { Channel } from '../types.js';
import { maskDestination, normalizeEmail, normalizePhone } from './destinations.js';

/** The longest `testDestinationsExpireAt` may lie ahead outside development and test. */
const MAX_PRODUCTION_TEST_WINDOW_MS = 30 * 24 * 60 * 60 * 1000;

/** The `NODE_ENV` values (trimmed, any case) under which test destinations may have no expiry. */
const RELAXED_ENVIRONMENTS = new Set(['development', 'test']);

/** Whether `env` (a `NODE_ENV` value) is development or test: anything else, unset included, is treated as production. */
function isRelaxedEnvironment(env: string | undefined): boolean {
  return typeof env === 'string' && RELAXED_ENVIRONMENTS.has(env.trim().toLowerCase());
}

/** The resolved `testDestinations` option. */
export interface TestDestinations {
  /** When test mode ends (ms since the epoch), or `null` when it never does (only under NODE_ENV development or test). */
  readonly expiresAtMs: number | null;
  /**
   * How long a fixed code issued now may live: `ttlMs`, cut short at the expiry, so a fixed
   * code sent just before `testDestinationsExpireAt` never verifies after it.
   */
  lifetimeMs(ttlMs: number, nowMs?: number): number;
  /** How many test destinations there are (after normalization). */
  readonly size: number;
  /**
   * The fixed code for one delivery target, or `undefined` when `to` is not a test
   * destination or test mode has expired (checked against `Date.now()` on every call).
   * `to` is what the core delivers to: E.164 for `sms`, `whatsapp` and `voice` (a phone test
   * destination covers all three), `normalizeEmail`'s form for `email`.
   */
  codeFor(target: { channel: Channel; to: string }): string | undefined;
  /**
   * The fixed code for a whole send: defined only when there is at least one target and every
   * target is a test destination (a send with any real target is an ordinary send). When the
   * targets' fixed codes differ, the first target's code is issued (to all of them).
   */
  codeForTargets(targets: ReadonlyArray<{ channel: Channel; to: string }>): string | undefined;
  /** One line for the start-up warning: count, masked destinations and expiry. Never a code. */
  describe(): string;
}

export interface ResolveTestDestinationsContext {
  /** Digits per code (the resolved `codeLength`): every fixed code must have exactly this many. */
  codeLength: number;
  /** Prefix of every error message, e.g. `blockidOtp` (the factory the options were given to). */
  factory: string;
  /** Defaults to `process.env.NODE_ENV`; anything but development or test demands an expiry at most 30 days ahead. */
  env?: string | undefined;
  /** "Now" for the 30-day window check. Defaults to `Date.now()`. */
  nowMs?: number;
  /** The names used in error messages (otp-provider passes its environment variable names). */
  names?: { destinations: string; expireAt: string };
}

const DEFAULT_NAMES = { destinations: 'option "testDestinations"', expireAt: 'option "testDestinationsExpireAt"' };
/** ISO 8601: a date (UTC midnight), or a date and time with `Z` or an offset. */
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2}))?$/;

/**
 * Validates and normalizes `testDestinations` / `testDestinationsExpireAt`. Returns
 * `undefined` when `value` is `undefined` or an empty object (no test mode; `expireAt` is then
 * ignored). Throws a `TypeError` naming the option for: a key that is neither an accepted
 * phone number (US/CA, normalized to E.164) nor a plain email address; two keys that
 * normalize to one destination with different codes; a code that is not a string of exactly
 * `codeLength` ASCII digits; an `expireAt` that is not a `Date` or an ISO 8601 string; and,
 * unless `NODE_ENV` is development or test, a missing expiry or one more than 30 days ahead.
 */
export function resolveTestDestinations(
  value: unknown,
  expireAt: unknown,
  { codeLength, factory, env = process.env.NODE_ENV, nowMs = Date.now(), names = DEFAULT_NAMES }: ResolveTestDestinationsContext,
): TestDestinations | undefined {
  const fail = (message: string): never => {
    throw configError(`${factory}: ${message}`, 'test-destinations');
  };
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Map) {
    return fail(
      `${names.destinations} must be an object mapping a phone number or email address to a fixed code, e.g. { "+14155550123": "<${codeLength} digits>" }.`,
    );
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) return undefined;

  const phones = new Map<string, string>();
  const emails = new Map<string, string>();
  for (const [key, code] of entries) {
    if (typeof code !== 'string' || code.length !== codeLength || !/^[0-9]+$/.test(code)) {
      fail(`${names.destinations}: the code for ${JSON.stringify(key)} must be a string of exactly ${codeLength} ASCII digits (codeLength is ${codeLength}).`);
    }
    const [map, destination] = key.includes('@') ? [emails, normalizeKey(key, normalizeEmail)] : [phones, normalizeKey(key, normalizePhone)];
    if (typeof destination !== 'string') {
      return fail(
        `${names.destinations}: key ${JSON.stringify(key)} is not an accepted destination (${destination.reason}). Use a United States or Canada number or one plain email address.`,
      );
    }
    const earlier = map.get(destination);
    if (earlier !== undefined && earlier !== code) {
      fail(`${names.destinations}: two keys name the destination ${maskDestination(destination)} with different codes; keep one.`);
    }
    map.set(destination, code as string);
  }

  const expiresAtMs = resolveExpiry(expireAt, names.expireAt, fail);
  if (!isRelaxedEnvironment(env)) {
    const current = env === undefined ? 'NODE_ENV is unset' : `NODE_ENV is ${JSON.stringify(env)}`;
    if (expiresAtMs === null) {
      fail(
        `${names.destinations} is refused without ${names.expireAt} unless NODE_ENV is "development" or "test" (${current}): ` +
          'set it to a date at most 30 days ahead (e.g. for an app-store review), or remove the test destinations.',
      );
    } else if (expiresAtMs - nowMs > MAX_PRODUCTION_TEST_WINDOW_MS) {
      fail(
        `${names.destinations} is refused with ${names.expireAt} more than 30 days ahead (${new Date(expiresAtMs).toISOString()}) ` +
          `unless NODE_ENV is "development" or "test" (${current}): choose a date within 30 days.`,
      );
    }
  }

  const active = (): boolean => expiresAtMs === null || Date.now() < expiresAtMs;
  const codeFor = ({ channel, to }: { channel: Channel; to: string }): string | undefined => {
    if (!active()) return undefined;
    return channel === 'email' ? emails.get(lowerDomain(to)) : phones.get(to);
  };
  const masked = [...phones.keys(), ...emails.keys()].map(maskDestination);
  return {
    expiresAtMs,
    lifetimeMs: (ttlMs, nowMs = Date.now()) => (expiresAtMs === null ? ttlMs : Math.max(1, Math.min(ttlMs, expiresAtMs - nowMs))),
    size: phones.size + emails.size,
    codeFor,
    codeForTargets(targets) {
      let first: string | undefined;
      for (const target of targets) {
        const code = codeFor(target);
        if (code === undefined) return undefined;
        first ??= code;
      }
      return first;
    },
    describe() {
      const one = masked.length === 1;
      const count = `${masked.length} test destination${one ? '' : 's'} (${masked.join(', ')})`;
      const get = one ? 'gets' : 'get';
      if (expiresAtMs === null) return `test mode: ${count} ${get} a fixed code and no delivery; no expiry.`;
      const until = new Date(expiresAtMs).toISOString();
      if (!active()) return `test mode expired at ${until}: ${count} ${one ? 'is an ordinary destination' : 'are ordinary destinations'} again.`;
      return `test mode: ${count} ${get} a fixed code and no delivery until ${until}.`;
    },
  };
}

/**
 * Parses otp-provider's `OTP_TEST_DESTINATIONS` (`+14155550123=123456,qa@example.com=000000`)
 * into the `testDestinations` record. Entries are separated by commas, whitespace around them
 * is ignored, empty entries are skipped, and each splits at its last `=` (an email local part
 * may hold one). Throws a `TypeError` naming the variable for an entry without a destination
 * or a code, and for a destination given twice; the messages never repeat a code.
 */
export function parseTestDestinationsEnv(text: string | undefined, variable = 'OTP_TEST_DESTINATIONS'): Record<string, string> {
  const result: Record<string, string> = {};
  if (text === undefined) return result;
  const entries = text.split(',');
  entries.forEach((raw, index) => {
    const entry = raw.trim();
    if (entry === '') return;
    const at = entry.lastIndexOf('=');
    const where = `${variable}: entry ${index + 1}`;
    if (at < 0) throw configError(`${where} has no "=": write destination=code, e.g. +14155550123=<digits>.`, 'test-destinations');
    const destination = entry.slice(0, at).trim();
    const code = entry.slice(at + 1).trim();
    if (destination === '') throw configError(`${where} has no destination before "=": write destination=code.`, 'test-destinations');
    if (code === '') throw configError(`${where} (${JSON.stringify(destination)}) has no code after "=": write destination=code.`, 'test-destinations');
    if (Object.hasOwn(result, destination)) throw configError(`${where}: ${JSON.stringify(destination)} is given twice.`, 'test-destinations');
    result[destination] = code;
  });
  return result;
}

function normalizeKey(key: string, normalize: (value: string) => string): string | { reason: string } {
  try {
    return normalize(key);
  } catch (error) {
    // The destination rules speak of smsTo/emailTo; here the value is a testDestinations key.
    const reason = error instanceof Error ? error.message.replace(/^(smsTo|emailTo) /, 'it ').replace(/\.$/, '') : 'refused';
    return { reason };
  }
}

function resolveExpiry(expireAt: unknown, name: string, fail: (message: string) => never): number | null {
  if (expireAt === undefined || expireAt === null) return null;
  const ms = expireAt instanceof Date ? expireAt.getTime() : typeof expireAt === 'string' ? parseIsoDate(expireAt.trim()) : NaN;
  if (!Number.isFinite(ms)) {
    fail(`${name} must be a Date or an ISO 8601 string such as "2030-01-31" or "2030-01-31T12:00:00Z" (a time needs "Z" or an offset).`);
  }
  return ms;
}

/** Milliseconds for an ISO 8601 date or date-time, `NaN` for anything else (including 2030-02-31). */
function parseIsoDate(text: string): number {
  if (!ISO_DATE.test(text)) return NaN;
  const [year, month, day] = text.slice(0, 10).split('-').map(Number) as [number, number, number];
  if (new Date(Date.UTC(year, month - 1, day)).getUTCDate() !== day) return NaN;
  return Date.parse(text);
}

function lowerDomain(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? address : address.slice(0, at) + address.slice(at).toLowerCase();
}
