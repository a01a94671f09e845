import { safeEqual } from '../core/codes.js';
import { OtpError } from '../core/errors.js';
import type { CodeRecord, IssueResult, Limiter, LimiterOptions, LimitResult, OtpStore, VerifyOutcome } from './types.js';

interface Entry extends CodeRecord {
  attempts: number;
  expiresAtMs: number;
}

/** A fixed-window counter; once over its limit with a block set, it expires when the block ends. */
interface Counter {
  points: number;
  expiresAtMs: number;
}

export interface MemoryStoreOptions {
  /** How often expired records are swept, in milliseconds. Default 30 000. */
  sweepIntervalMs?: number;
  /**
   * The most entries (codes, cooldowns and quota counters together) kept at once. Past it,
   * operations that need a new entry fail closed with `STORE_UNAVAILABLE` (HTTP 503), so a
   * flood of sends from many addresses cannot grow the heap without bound. Default 500 000
   * (a few hundred MB at the most).
   */
  maxEntries?: number;
}

/**
 * A store for one process. Each operation reads and writes its maps without an `await`
 * in between, so concurrent requests cannot interleave inside it. Expired records and
 * counters are swept on a timer that does not keep the process alive, and the number of
 * entries is capped.
 */
export function memoryStore(options: MemoryStoreOptions = {}): OtpStore {
  const records = new Map<string, Entry>();
  const cooldowns = new Map<string, number>();
  const counters = new Map<string, Counter>();
  const sweepIntervalMs = options.sweepIntervalMs ?? 30_000;
  const maxEntries = options.maxEntries ?? 500_000;
  if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new TypeError('memoryStore: option "maxEntries" must be a whole number >= 1.');

  let lastSweepMs = 0;
  const sweep = (): void => {
    const now = Date.now();
    lastSweepMs = now;
    for (const [key, entry] of records) if (entry.expiresAtMs <= now) records.delete(key);
    for (const [key, untilMs] of cooldowns) if (untilMs <= now) cooldowns.delete(key);
    for (const [key, counter] of counters) if (counter.expiresAtMs <= now) counters.delete(key);
  };
  const timer = setInterval(sweep, sweepIntervalMs);
  timer.unref();

  /** Makes room for `count` new entries or fails closed; sweeps early at most once a second. */
  const reserve = (count: number): void => {
    const size = () => records.size + cooldowns.size + counters.size;
    if (size() + count <= maxEntries) return;
    if (Date.now() - lastSweepMs >= 1000) sweep();
    if (size() + count > maxEntries) {
      throw new OtpError('STORE_UNAVAILABLE', `memoryStore is full (${maxEntries} entries): refusing new codes until some expire. Use redisStore() for more.`);
    }
  };

  return {
    async issue(key, record, { ttlMs, cooldownMs }): Promise<IssueResult> {
      const now = Date.now();
      const cooldownUntil = cooldowns.get(key);
      if (cooldownUntil !== undefined && cooldownUntil > now) return { ok: false, retryAfterMs: cooldownUntil - now };
      reserve((records.has(key) ? 0 : 1) + (cooldownMs > 0 && !cooldowns.has(key) ? 1 : 0));
      if (cooldownMs > 0) cooldowns.set(key, now + cooldownMs);
      records.set(key, { hash: record.hash, binding: record.binding, attempts: 0, expiresAtMs: now + ttlMs });
      return { ok: true };
    },

    async verify(key, candidate, { maxAttempts }): Promise<VerifyOutcome> {
      const entry = records.get(key);
      if (entry === undefined || entry.expiresAtMs <= Date.now()) {
        records.delete(key);
        return 'missing';
      }
      if (entry.attempts >= maxAttempts) return 'burned';
      const hashMatches = safeEqual(entry.hash, candidate.hash);
      const bindingMatches = entry.binding === null || (candidate.binding !== null && safeEqual(entry.binding, candidate.binding));
      if (hashMatches && bindingMatches) {
        records.delete(key);
        return 'ok';
      }
      entry.attempts += 1;
      return 'mismatch';
    },

    limiter({ name, points: limit, durationSeconds, blockSeconds = 0 }: LimiterOptions): Limiter {
      const windowMs = durationSeconds * 1000;
      const blockMs = blockSeconds * 1000;
      const live = (key: string, now: number): Counter | undefined => {
        const counter = counters.get(key);
        if (counter !== undefined && counter.expiresAtMs <= now) {
          counters.delete(key);
          return undefined;
        }
        return counter;
      };
      const result = (counter: Counter, now: number): LimitResult =>
        counter.points > limit ? { ok: false, retryAfterMs: Math.max(counter.expiresAtMs - now, 1) } : { ok: true, remaining: limit - counter.points };
      return {
        async consume(key, points = 1) {
          const now = Date.now();
          const id = `${name}\0${key}`;
          let counter = live(id, now);
          if (counter === undefined) {
            reserve(1);
            counter = { points: 0, expiresAtMs: now + windowMs };
            counters.set(id, counter);
          }
          const wasOver = counter.points > limit;
          counter.points += points;
          if (!wasOver && counter.points > limit && blockMs > 0) counter.expiresAtMs = now + blockMs;
          return result(counter, now);
        },
        async peek(key) {
          const now = Date.now();
          const counter = live(`${name}\0${key}`, now);
          return counter === undefined ? { ok: true, remaining: limit } : result(counter, now);
        },
        async reset(key) {
          counters.delete(`${name}\0${key}`);
        },
      };
    },

    async close() {
      clearInterval(timer);
      records.clear();
      cooldowns.clear();
      counters.clear();
    },
  };
}
