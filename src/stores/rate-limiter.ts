import { RateLimiterRes } from 'rate-limiter-flexible';
import type { Limiter, LimitResult } from './types.js';

/** The `rate-limiter-flexible` calls behind `Limiter`, used by the Redis store. */
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
