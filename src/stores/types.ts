/**
 * The storage interface behind blockid-otp. Keys arrive already hashed by the core (no
 * usernames, numbers, addresses or IPs); values hold only keyed hashes of codes.
 *
 * Every operation is atomic and decides everything it is given at once: the memory store
 * reads and writes its maps without an `await` in between; the Redis store runs one Lua
 * script per hash slot (at most 2 sequential round trips per operation); the PostgreSQL
 * store runs one statement (a function) per operation. Every key or row has an expiry.
 *
 * A username has two state spaces under one key (one Redis Cluster hash slot): `user`, the
 * real user's, and `decoy`, where requests go for which `resolveUser` found nobody. A decoy
 * code can never verify, and nothing done in the decoy space touches the user space.
 */

/** The real user's state, or the decoy's (a send for which `resolveUser` returned nothing). */
export type Space = 'user' | 'decoy';

/** A fixed-window quota counter, checked as part of a send plan. */
export interface Counter {
  /** The limit's option name, reported back on refusal (`sendsPerIp`, `smsPerDay`, ...). */
  limit: string;
  /** Opaque key (a limiter name and a keyed hash): no personal data. Its own hash slot on Cluster. */
  key: string;
  /** Sends allowed per window. */
  points: number;
  windowMs: number;
  /** `take` counts one send if the plan is admitted; `peek` only checks (a decoy reading a shared budget). */
  mode: 'take' | 'peek';
}

export interface Refusal {
  /** The option that refused: `resendCooldownSeconds`, `sendsPerUsername`, or a counter's `limit`. */
  limit: string;
  /** When a retry can succeed, > 0. */
  retryAfterMs: number;
}

/**
 * Everything a send must pass, decided as one: the per-session cooldown, the per-username
 * quota, the request's counters, and each target's counters. Nothing changes unless the
 * request is admitted with at least one target (or has no targets at all); then the cooldown
 * starts, the per-username quota and every `take` counter of the request and of the
 * admitted targets count one, and the code replaces the earlier code of the same slot.
 * Counters of refused targets do not count.
 */
export interface SendPlan {
  /** The username's key: every per-username key of both spaces lives under it (one Cluster slot). */
  user: string;
  space: Space;
  /** The session binding's keyed hash, or `''` for an unbound code (`generateOtp()`): one code per slot. */
  slot: string;
  /** Gap between two sends of one slot; 0 for none. */
  cooldownMs: number;
  /** `sendsPerUsername`, counted per space across all slots; `null` when off. */
  perUser: { points: number; windowMs: number } | null;
  /** Counters the whole send must pass (`sendsPerIp`). */
  request: Counter[];
  /** One group per target; a target is admitted when every counter of its group admits it. */
  targets: Counter[][];
  /**
   * The code to keep when admitted: its keyed hash, its lifetime, when it was issued, and an
   * optional opaque tag (at most 64 characters of `[a-z0-9:,]`, no personal data: the core
   * keeps the channels and area codes it went to, for metrics) handed back when it verifies.
   * `linkHash`, when the sign-in link is on: the keyed hash of the link's token, a second way
   * to present this same record (same expiry, attempts and single use).
   */
  code: { hash: string; ttlMs: number; issuedAtMs: number; tag?: string; linkHash?: string };
}

/**
 * `ok: true`: admitted and the code stored; `targets[i]` is `null` for an admitted target
 * and its refusal otherwise (at least one is `null` when there are targets).
 * `ok: false`: refused, nothing changed; `refusal` is the first reason found.
 */
export type SendDecision = { ok: true; targets: Array<Refusal | null> } | { ok: false; refusal: Refusal; targets: Array<Refusal | null> };

/** The attempt budget and the lockout, the same for every verification method. */
export interface LockPolicy {
  /** Wrong guesses one code allows before it is burned. */
  maxAttempts: number;
  /** Wrong guesses in a row per username (and space) that start a timed lock (again at every multiple). */
  failedVerifications: number;
  lockMs: number;
  /** Wrong guesses in a row, across codes, sessions, methods and timed locks, that lock until `unlock()`. */
  maxConsecutiveFailures: number;
  /** The failure count is forgotten this long after the last failure (also ending a permanent lock). */
  failureMemoryMs: number;
}

/** A lock that a failure has just started. */
export type LockStarted = null | 'timed' | 'permanent';

export interface VerifyRequest {
  user: string;
  /** Slots to look in, in order (the session's, then `''`); the first holding a code, in either space, is checked. */
  slots: string[];
  /** The candidate's keyed hash. */
  hash: string;
  /** True: `hash` is a sign-in link token's, compared with the record's `linkHash` (a record without one never matches). */
  link?: boolean;
  policy: LockPolicy;
}

/** A non-consuming look at a sign-in link: the user space's code of `slot` is live and its link hash is `hash`. */
export interface PeekLinkRequest {
  user: string;
  slot: string;
  hash: string;
  /** A code with this many wrong guesses is burned: not live. */
  maxAttempts: number;
}

/**
 * One atomic step: find the code; refuse while its space is locked (`locked`) or its budget
 * is spent (`burned`), before comparing; then compare. A match (user space only) deletes the
 * code and resets the space's failure count; a mismatch spends one attempt of that code and
 * counts one failure in a row for its space, which may start a lock. `missing` spends nothing.
 */
export type VerifyOutcome =
  | { result: 'ok'; space: 'user'; issuedAtMs: number; tag?: string }
  | { result: 'missing' }
  | { result: 'mismatch'; space: Space; lock: LockStarted }
  | { result: 'burned'; space: Space }
  | { result: 'locked'; space: Space; permanent: boolean; retryAfterMs: number };

/** For a method whose candidate is compared outside the store (TOTP, recovery codes). */
export interface AttemptRequest {
  user: string;
  space: Space;
  policy: LockPolicy;
}

/**
 * `ok: true`: not locked, and one failure is already counted (with `lock`, the lock it would
 * start), so concurrent guesses cannot overshoot the cap; `settle()` takes it back on a match.
 * `ok: false`: locked; nothing counted.
 */
export type AttemptStart = { ok: true; lock: LockStarted } | { ok: false; permanent: boolean; retryAfterMs: number };

export interface SettleRequest {
  user: string;
  /**
   * What makes the success single use: a TOTP time step (accepted only if greater than the
   * last accepted one, kept `ttlMs`), or a recovery code's id (accepted once, kept `ttlMs`).
   */
  use: { kind: 'totp'; step: number; ttlMs: number } | { kind: 'recovery'; id: string; ttlMs: number };
}

export interface OtpStore {
  /** Decides a whole send plan atomically and, when admitted, stores its code (see `SendPlan`). */
  send(plan: SendPlan): Promise<SendDecision>;

  /** Checks a candidate code (see `VerifyOutcome`). Of concurrent right guesses exactly one gets `ok`. */
  verify(request: VerifyRequest): Promise<VerifyOutcome>;

  /**
   * Read only, writes nothing: true when the user space's code in `slot` has not expired, has
   * attempts left (`maxAttempts`) and carries link hash `hash`. Lets a POST from another
   * device tell a live link from a used one without spending it. Optional for stores written
   * before the sign-in link: without it, another device always gets the "used" page.
   */
  peekLink?(request: PeekLinkRequest): Promise<boolean>;

  /** Checks the lock and counts one failure in advance, for TOTP and recovery codes (see `AttemptStart`). */
  attempt(request: AttemptRequest): Promise<AttemptStart>;

  /**
   * A matching TOTP or recovery code after `attempt()`: atomically refuses a reused step or
   * code (`false`, the failure stays counted), else records the use and resets the user
   * space's failure count and locks (`true`).
   */
  settle(request: SettleRequest): Promise<boolean>;

  /** Lifts every lock of `user` (both spaces) and forgets its failure counts. */
  unlock(user: string): Promise<void>;

  /** Takes one from a counter outside a send plan (lookups, fallback deliveries); `null` when admitted. */
  consume(counter: Counter): Promise<Refusal | null>;

  /** A small cache (line-type lookups): `null` when absent or expired. */
  get(key: string): Promise<string | null>;
  set(key: string, value: string, ttlMs: number): Promise<void>;

  /** Releases timers or connections the store owns (not a caller's client). */
  close?(): Promise<void>;
}
