import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { safeEqual } from '../core/codes.js';
import type { CodeRecord, IssueResult, Limiter, LimiterOptions, LimitResult, OtpStore, VerifyOutcome } from './types.js';

interface Entry extends CodeRecord {
  attempts: number;
  expiresAtMs: number;
}

export interface MemoryStoreOptions {
  /** How often expired records are swept, in milliseconds. Default 30 000. */
  sweepIntervalMs?: number;
}

/**
 * A store for one process. Each operation reads and writes its maps without an `await`
 * in between, so concurrent requests cannot interleave inside it. Expired records are
 * swept on a timer that does not keep the process alive.
 */
export function memoryStore(options: MemoryStoreOptions = {}): OtpStore {
  const records = new Map<string, Entry>();
  const cooldowns = new Map<string, number>();
  const sweepIntervalMs = options.sweepIntervalMs ?? 30_000;

  const sweep = (): void => {
    const now = Date.now();
    for (const [key, entry] of records) if (entry.expiresAtMs <= now) records.delete(key);
    for (const [key, untilMs] of cooldowns) if (untilMs <= now) cooldowns.delete(key);
  };
  const timer = setInterval(sweep, sweepIntervalMs);
  timer.unref();

  return {
    async issue(key, record, { ttlMs, cooldownMs }): Promise<IssueResult> {
      const now = Date.now();
      const cooldownUntil = cooldowns.get(key);
      if (cooldownUntil !== undefined && cooldownUntil > now) return { ok: false, retryAfterMs: cooldownUntil - now };
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

    limiter(limiterOptions: LimiterOptions): Limiter {
      return wrapLimiter(
        new RateLimiterMemory({
          keyPrefix: limiterOptions.name,
          points: limiterOptions.points,
          duration: limiterOptions.durationSeconds,
          blockDuration: limiterOptions.blockSeconds ?? 0,
        }),
      );
    },

    async close() {
      clearInterval(timer);
      records.clear();
      cooldowns.clear();
    },
  };
}

/** The `rate-limiter-flexible` calls behind `Limiter`, shared by the memory and Redis stores. */
export function wrapLimiter(limiter: {
  consume(key: string, points?: number): Promise<RateLimiterRes>;
  get(key: string): Promise<RateLimiterRes | null>;
  delete(key: string): Promise<boolean>;
  points: number;
}): Limiter {
  const toResult = (res: RateLimiterRes, limit: number): LimitResult =>
    res.consumedPoints > limit ? { ok: false, retryAfterMs: Math.max(res.msBeforeNext, 1) } : { ok: true, remaining: res.remainingPoints };
  return {
    async consume(key, points = 1) {
      try {
        return toResult(await limiter.consume(key, points), limiter.points);
      } catch (rejection) {
        // rate-limiter-flexible rejects with a RateLimiterRes when over the limit, and with an Error on a backend fault.
        if (rejection instanceof RateLimiterRes) return { ok: false, retryAfterMs: Math.max(rejection.msBeforeNext, 1) };
        throw rejection;
      }
    },
    async peek(key) {
      const res = await limiter.get(key);
      return res === null ? { ok: true, remaining: limiter.points } : toResult(res, limiter.points);
    },
    async reset(key) {
      await limiter.delete(key);
    },
  };
}
