/**
 * The storage interface behind blockid-otp. Keys arrive already hashed by the core
 * (no usernames, numbers or addresses); values hold only keyed hashes of codes.
 * Every operation is atomic: a memory store does its check and update without an
 * `await` in between; a Redis store runs one Lua script.
 */

/** A code as stored: never the code itself. */
export interface CodeRecord {
  /** Keyed hash (HMAC-SHA256, base64url) of the code. */
  hash: string;
  /** Keyed hash of the session binding nonce, or `null` for a code that any caller may verify. */
  binding: string | null;
}

export type IssueResult = { ok: true } | { ok: false; retryAfterMs: number };

/**
 * - `ok`: the code matched; the record is gone (single use).
 * - `missing`: no live record (never sent, expired, already used, replaced).
 * - `mismatch`: wrong code or wrong binding; one attempt was spent.
 * - `burned`: the attempt budget was already spent; nothing was compared.
 */
export type VerifyOutcome = 'ok' | 'missing' | 'mismatch' | 'burned';

export interface LimiterOptions {
  /** Distinguishes one limiter's keys from another's. */
  name: string;
  /** How many events are allowed per window. */
  points: number;
  durationSeconds: number;
  /** Once over the limit, stay blocked this long (defaults to the rest of the window). */
  blockSeconds?: number;
}

export type LimitResult = { ok: true; remaining: number } | { ok: false; retryAfterMs: number };

/** A fixed-window counter that lives where the store's data lives (memory or Redis). */
export interface Limiter {
  /** Atomically adds `points` (default 1) and reports whether the limit still holds. */
  consume(key: string, points?: number): Promise<LimitResult>;
  /** Reports without counting. */
  peek(key: string): Promise<LimitResult>;
  /** Forgets `key`. */
  reset(key: string): Promise<void>;
}

export interface OtpStore {
  /**
   * Issues a code for `key` unless a send for `key` happened less than `cooldownMs` ago.
   * Atomic: the cooldown check, the replacement of any earlier record (the old code stops
   * working), the attempt counter reset and the start of the cooldown happen together.
   * TTLs: the record lives `ttlMs`, the cooldown marker `cooldownMs`.
   */
  issue(key: string, record: CodeRecord, options: { ttlMs: number; cooldownMs: number }): Promise<IssueResult>;

  /**
   * Checks a candidate against the record for `key`. Atomic: the attempt budget is checked
   * first (`burned` when `maxAttempts` mismatches were already spent), then hash and binding
   * are compared; a match deletes the record, a mismatch spends one attempt and keeps the
   * record's remaining TTL. Two concurrent calls with the right code: exactly one gets `ok`.
   */
  verify(key: string, candidate: CodeRecord, options: { maxAttempts: number }): Promise<VerifyOutcome>;

  /** A counter for quotas and lockouts on the same backend. Call at setup time. */
  limiter(options: LimiterOptions): Limiter;

  /** Releases timers or connections the store owns (not a caller's client). */
  close?(): Promise<void>;
}
