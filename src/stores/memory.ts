import { safeEqual } from '../core/codes.js';
import { OtpError } from '../core/errors.js';
import { checkTag } from './tag.js';
import type {
  AttemptRequest, AttemptStart, Counter, LockPolicy, LockStarted, OtpStore, Refusal, SendDecision, SendPlan, SettleRequest, Space, VerifyOutcome,
} from './types.js';

interface CodeEntry {
  hash: string;
  tag: string | undefined;
  attempts: number;
  issuedAtMs: number;
  expiresAtMs: number;
}

/** Failures in a row of one space, and its timed lock. */
interface FailureEntry {
  fails: number;
  lockedUntilMs: number;
  expiresAtMs: number;
}

interface ValueEntry {
  value: number | string;
  expiresAtMs: number;
}

export interface MemoryStoreOptions {
  /** How often expired entries are swept, in milliseconds. Default 30 000. */
  sweepIntervalMs?: number;
  /**
   * The most entries (codes, cooldowns, counters, lock states) kept at once. Past it,
   * operations that need a new entry fail closed with `STORE_UNAVAILABLE` (HTTP 503), so a
   * flood of sends from many addresses cannot grow the heap without bound. Default 500 000.
   */
  maxEntries?: number;
}

/**
 * A store for one process. Each operation reads and writes its maps without an `await` in
 * between, so concurrent requests cannot interleave inside it: a send plan is decided whole,
 * synchronously. Expired entries are swept on a timer that does not keep the process alive,
 * and the number of entries is capped.
 */
export function memoryStore(options: MemoryStoreOptions = {}): OtpStore {
  const codes = new Map<string, CodeEntry>();
  const failures = new Map<string, FailureEntry>();
  /** Cooldowns, counters, TOTP steps, used recovery codes and cached values. */
  const values = new Map<string, ValueEntry>();
  const sweepIntervalMs = options.sweepIntervalMs ?? 30_000;
  const maxEntries = options.maxEntries ?? 500_000;
  if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new TypeError('memoryStore: option "maxEntries" must be a whole number >= 1.');
  if (!Number.isInteger(sweepIntervalMs) || sweepIntervalMs < 10) throw new TypeError('memoryStore: option "sweepIntervalMs" must be a whole number >= 10.');

  let lastSweepMs = 0;
  const sweep = (): void => {
    const now = Date.now();
    lastSweepMs = now;
    for (const map of [codes, failures, values] as Array<Map<string, { expiresAtMs: number }>>) {
      for (const [key, entry] of map) if (entry.expiresAtMs <= now) map.delete(key);
    }
  };
  const timer = setInterval(sweep, sweepIntervalMs);
  timer.unref();

  /** Makes room for `count` new entries or fails closed; sweeps early at most once a second. */
  const reserve = (count: number): void => {
    const size = () => codes.size + failures.size + values.size;
    if (size() + count <= maxEntries) return;
    if (Date.now() - lastSweepMs >= 1000) sweep();
    if (size() + count > maxEntries) {
      throw new OtpError('STORE_UNAVAILABLE', `memoryStore is full (${maxEntries} entries): refusing new state until some expires. Use redisStore() for more.`);
    }
  };

  const live = <T extends { expiresAtMs: number }>(map: Map<string, T>, key: string, now: number): T | undefined => {
    const entry = map.get(key);
    if (entry !== undefined && entry.expiresAtMs <= now) {
      map.delete(key);
      return undefined;
    }
    return entry;
  };

  const k = (user: string, space: Space, part: string) => `${user}\0${space}\0${part}`;
  const counterKey = (counter: Counter) => `q\0${counter.key}`;

  /** The refusal a counter gives now, without counting. */
  const checkCounter = (counter: Counter, now: number): Refusal | null => {
    const entry = live(values, counterKey(counter), now);
    const used = typeof entry?.value === 'number' ? entry.value : 0;
    return used + 1 > counter.points ? { limit: counter.limit, retryAfterMs: Math.max((entry?.expiresAtMs ?? now) - now, 1) } : null;
  };
  const takeCounter = (counter: Counter, now: number): void => {
    if (counter.mode !== 'take') return;
    const key = counterKey(counter);
    const entry = live(values, key, now);
    if (entry === undefined) values.set(key, { value: 1, expiresAtMs: now + counter.windowMs });
    else entry.value = (entry.value as number) + 1;
  };

  const lockOf = (entry: FailureEntry | undefined, policy: LockPolicy, now: number): { permanent: boolean; retryAfterMs: number } | null => {
    if (entry === undefined) return null;
    if (entry.fails >= policy.maxConsecutiveFailures) return { permanent: true, retryAfterMs: Math.max(entry.expiresAtMs - now, 1) };
    if (entry.lockedUntilMs > now) return { permanent: false, retryAfterMs: entry.lockedUntilMs - now };
    return null;
  };

  /** Counts one failure in a row for `space`; returns the lock it starts. */
  const countFailure = (user: string, space: Space, policy: LockPolicy, now: number): LockStarted => {
    const key = k(user, space, 'f');
    let entry = live(failures, key, now);
    if (entry === undefined) {
      reserve(1);
      entry = { fails: 0, lockedUntilMs: 0, expiresAtMs: 0 };
      failures.set(key, entry);
    }
    entry.fails += 1;
    entry.expiresAtMs = now + policy.failureMemoryMs;
    if (entry.fails >= policy.maxConsecutiveFailures) return 'permanent';
    if (entry.fails % policy.failedVerifications === 0) {
      entry.lockedUntilMs = now + policy.lockMs;
      return 'timed';
    }
    return null;
  };

  return {
    async send(plan: SendPlan): Promise<SendDecision> {
      const now = Date.now();
      const cooldownKey = k(plan.user, plan.space, `cd\0${plan.slot}`);
      const perUserKey = k(plan.user, plan.space, 'n');
      let refusal: Refusal | null = null;
      const cooldown = live(values, cooldownKey, now);
      if (cooldown !== undefined) refusal = { limit: 'resendCooldownSeconds', retryAfterMs: Math.max(cooldown.expiresAtMs - now, 1) };
      const perUser = plan.perUser === null ? undefined : live(values, perUserKey, now);
      if (refusal === null && plan.perUser !== null && ((perUser?.value as number | undefined) ?? 0) + 1 > plan.perUser.points) {
        refusal = { limit: 'sendsPerUsername', retryAfterMs: Math.max((perUser?.expiresAtMs ?? now) - now, 1) };
      }
      for (const counter of plan.request) refusal ??= checkCounter(counter, now);
      const targets = plan.targets.map((group) => {
        for (const counter of group) {
          const refused = checkCounter(counter, now);
          if (refused !== null) return refused;
        }
        return null;
      });
      if (refusal === null && targets.length > 0 && targets.every((t) => t !== null)) refusal = targets[0] ?? null;
      if (refusal !== null) return { ok: false, refusal, targets };

      const codeKey = k(plan.user, plan.space, `c\0${plan.slot}`);
      const taken = [...plan.request, ...plan.targets.filter((_, index) => targets[index] === null).flat()].filter((c) => c.mode === 'take');
      const fresh = (map: Map<string, unknown>, key: string) => (map.has(key) ? 0 : 1);
      reserve(
        fresh(codes, codeKey) +
          (plan.cooldownMs > 0 ? fresh(values, cooldownKey) : 0) +
          (plan.perUser !== null && perUser === undefined ? 1 : 0) +
          taken.reduce((sum, c) => sum + fresh(values, counterKey(c)), 0),
      );
      if (plan.cooldownMs > 0) values.set(cooldownKey, { value: 1, expiresAtMs: now + plan.cooldownMs });
      if (plan.perUser !== null) {
        if (perUser === undefined) values.set(perUserKey, { value: 1, expiresAtMs: now + plan.perUser.windowMs });
        else perUser.value = (perUser.value as number) + 1;
      }
      for (const counter of plan.request) takeCounter(counter, now);
      plan.targets.forEach((group, index) => {
        if (targets[index] === null) for (const counter of group) takeCounter(counter, now);
      });
      codes.set(codeKey, { hash: plan.code.hash, tag: plan.code.tag === undefined ? undefined : checkTag(plan.code.tag), attempts: 0, issuedAtMs: plan.code.issuedAtMs, expiresAtMs: now + plan.code.ttlMs });
      return { ok: true, targets };
    },

    async verify({ user, slots, hash, policy }): Promise<VerifyOutcome> {
      const now = Date.now();
      let found: { key: string; entry: CodeEntry; space: Space } | undefined;
      for (const slot of slots) {
        for (const space of ['user', 'decoy'] as const) {
          const key = k(user, space, `c\0${slot}`);
          const entry = found === undefined ? live(codes, key, now) : undefined;
          if (entry !== undefined) found = { key, entry, space };
        }
      }
      if (found === undefined) return { result: 'missing' };
      const { key, entry, space } = found;
      const lock = lockOf(live(failures, k(user, space, 'f'), now), policy, now);
      if (lock !== null) return { result: 'locked', space, ...lock };
      if (entry.attempts >= policy.maxAttempts) return { result: 'burned', space };
      if (space === 'user' && safeEqual(entry.hash, hash)) {
        codes.delete(key);
        failures.delete(k(user, 'user', 'f'));
        return { result: 'ok', space, issuedAtMs: entry.issuedAtMs, ...(entry.tag !== undefined && { tag: entry.tag }) };
      }
      entry.attempts += 1;
      return { result: 'mismatch', space, lock: countFailure(user, space, policy, now) };
    },

    async attempt({ user, space, policy }: AttemptRequest): Promise<AttemptStart> {
      const now = Date.now();
      const lock = lockOf(live(failures, k(user, space, 'f'), now), policy, now);
      if (lock !== null) return { ok: false, ...lock };
      return { ok: true, lock: countFailure(user, space, policy, now) };
    },

    async settle({ user, use }: SettleRequest): Promise<boolean> {
      const now = Date.now();
      if (use.kind === 'totp') {
        const key = k(user, 'user', 't');
        const last = live(values, key, now);
        if (last !== undefined && (last.value as number) >= use.step) return false;
        reserve(1);
        values.set(key, { value: use.step, expiresAtMs: now + use.ttlMs });
      } else {
        const key = k(user, 'user', `r\0${use.id}`);
        if (live(values, key, now) !== undefined) return false;
        reserve(1);
        values.set(key, { value: 1, expiresAtMs: now + use.ttlMs });
      }
      failures.delete(k(user, 'user', 'f'));
      return true;
    },

    async unlock(user) {
      failures.delete(k(user, 'user', 'f'));
      failures.delete(k(user, 'decoy', 'f'));
    },

    async consume(counter) {
      const now = Date.now();
      const refused = checkCounter(counter, now);
      if (refused !== null) return refused;
      reserve(1);
      takeCounter(counter, now);
      return null;
    },

    async get(key) {
      const entry = live(values, `kv\0${key}`, Date.now());
      return entry === undefined ? null : String(entry.value);
    },

    async set(key, value, ttlMs) {
      reserve(1);
      values.set(`kv\0${key}`, { value, expiresAtMs: Date.now() + ttlMs });
    },

    async close() {
      clearInterval(timer);
      codes.clear();
      failures.clear();
      values.clear();
    },
  };
}
