/**
 * The attempt budget and the lockout, shared by every verification method: the timed
 * throttle (`failedVerifications` wrong guesses in a row, then `lockSeconds`) and the
 * consecutive-failure cap (`maxConsecutiveFailures`, NIST SP 800-63B 5.2.2), which survives
 * timed locks and new codes until `unlock()` or `failureMemorySeconds` without a failure.
 * The store checks both atomically with each compare, so in-flight guesses cannot overshoot.
 */
import type { ResolvedOptions } from '../options.js';
import type { LockPolicy } from '../../stores/types.js';

export function lockPolicy({ maxAttempts, limits }: Pick<ResolvedOptions, 'maxAttempts' | 'limits'>): LockPolicy {
  return {
    maxAttempts,
    failedVerifications: limits.failedVerifications,
    lockMs: limits.lockSeconds * 1000,
    maxConsecutiveFailures: limits.maxConsecutiveFailures,
    failureMemoryMs: limits.failureMemorySeconds * 1000,
  };
}
