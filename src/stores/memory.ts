import { safeEqual } from '../core/codes.js';
import { checkOptions, wholeNumber } from '../core/validate.js';
import { OtpError } from '../core/errors.js';
import { EntryBound, ExpiringMap } from './expiring-map.js';
import { checkTag } from './tag.js';
import type {
  AttemptRequest,
  AttemptStart,
  Counter,
  LockPolicy,
  LockStarted,
  OtpStore,
  Refusal,
  SendDecision,
  SendPlan,
  SettleRequest,
  Space,
  VerifyOutcome,
} from './types.js';

/** A session slot: its code (while `codeExpiresAtMs` is set) and its resend cooldown, each an entry of its own towards `maxEntries`. */
interface SlotState {
  hash: string;
  /** The sign-in link token's keyed hash, or undefined. */
  linkHash: string | undefined;
  tag: string | undefined;
  attempts: number;
  issuedAtMs: number;
  /** 0 when the slot holds no code. */
  codeExpiresAtMs: number;
  /** End of the resend cooldown; 0 for none. */
  cooldownUntilMs: number;
}

/** Failures in a row of one space, and its timed lock. */
interface FailureEntry {
  fails: number;
  lockedUntilMs: number;
  expiresAtMs: number;
}

/**
 * Everything one space (user or decoy) of one username holds, in one object for the usual
 * case of one session slot: that slot's state inline (`slot` names it), any further slots in
 * `others`; the `sendsPerUsername` count; the failure state; used TOTP steps and recovery codes.
 */
interface SpaceEntry extends SlotState {
  slot: string | undefined;
  others: Map<string, SlotState> | undefined;
  sends: number;
  /** End of the `sendsPerUsername` window; 0 when nothing is counted. */
  sendsExpiresAtMs: number;
  failure: FailureEntry | undefined;
  /** TOTP's last accepted step (`t`) and used recovery codes (`r\0<id>`), user space only. */
  uses: ExpiringMap<number> | undefined;
}

export interface MemoryStoreOptions {
  /** How often expired entries are swept, in milliseconds. Default 30 000. */
  sweepIntervalMs?: number | undefined;
  /**
   * The most entries (codes, cooldowns, counters, lock states) kept at once. Past it,
   * operations that need a new entry fail closed with `STORE_UNAVAILABLE` (HTTP 503), so a
   * flood of sends from many addresses cannot grow the heap without bound. Default 500 000.
   */
  maxEntries?: number | undefined;
}

/**
 * A store for one process. Each operation reads and writes its maps without an `await` in
 * between, so concurrent requests cannot interleave inside it: a send plan is decided whole,
 * synchronously. Each space of a username (its session slots' codes and cooldowns, its
 * per-username count, its failure count) is one object under the username's key, and each
 * counter is kept under its own key string: a send makes a few map lookups on strings the
 * core already holds, and keeps little per pending code. Expired entries are swept on a
 * timer that does not keep the process alive, and the number of entries is capped.
 */
export function memoryStore(options: MemoryStoreOptions = {}): OtpStore {
  checkOptions('memoryStore', options, ['sweepIntervalMs', 'maxEntries'], 'memoryStore({ maxEntries: 500000 })');
  const sweepIntervalMs = wholeNumber('memoryStore', 'sweepIntervalMs', options.sweepIntervalMs ?? 30_000, 10, 2_147_483_647);
  const maxEntries = wholeNumber('memoryStore', 'maxEntries', options.maxEntries ?? 500_000, 1, Number.MAX_SAFE_INTEGER);
  /** Entries held (codes, cooldowns, counts, failure states, uses, counters, values), for `maxEntries`. */
  const bound = new EntryBound({ maxEntries, sweepIntervalMs, sweep: (now) => sweep(now) });
  const spaces: Record<Space, Map<string, SpaceEntry>> = { user: new Map(), decoy: new Map() };
  /** Quota counters and spend breakers, by their key. */
  const counters = new ExpiringMap<number>(bound);
  /** The small cache of `get` / `set`. */
  const values = new ExpiringMap<string>(bound);

  /** Drops a slot's expired parts; true when nothing is left of it. */
  const expireSlot = (slot: SlotState, now: number): boolean => {
    if (slot.codeExpiresAtMs !== 0 && slot.codeExpiresAtMs <= now) {
      slot.codeExpiresAtMs = 0;
      bound.remove();
    }
    if (slot.cooldownUntilMs !== 0 && slot.cooldownUntilMs <= now) {
      slot.cooldownUntilMs = 0;
      bound.remove();
    }
    return slot.codeExpiresAtMs === 0 && slot.cooldownUntilMs === 0;
  };
  const removeSlot = (space: SpaceEntry, key: string): void => {
    if (space.slot === key) space.slot = undefined;
    else space.others?.delete(key);
  };
  /** The slot `key` of `space` with its expired parts dropped; undefined when nothing is left of it. */
  const slotOf = (space: SpaceEntry | undefined, key: string, now: number): SlotState | undefined => {
    if (space === undefined) return undefined;
    const slot = space.slot === key ? space : space.others?.get(key);
    if (slot === undefined || !expireSlot(slot, now)) return slot;
    removeSlot(space, key);
    return undefined;
  };
  const addSlot = (space: SpaceEntry, key: string): SlotState => {
    if (space.slot === undefined) {
      space.slot = key;
      return space;
    }
    const slot: SlotState = { hash: '', linkHash: undefined, tag: undefined, attempts: 0, issuedAtMs: 0, codeExpiresAtMs: 0, cooldownUntilMs: 0 };
    (space.others ??= new Map()).set(key, slot);
    return slot;
  };
  const spaceOf = (user: string, space: Space): SpaceEntry => {
    let entry = spaces[space].get(user);
    if (entry === undefined) {
      entry = {
        slot: undefined,
        hash: '',
        linkHash: undefined,
        tag: undefined,
        attempts: 0,
        issuedAtMs: 0,
        codeExpiresAtMs: 0,
        cooldownUntilMs: 0,
        others: undefined,
        sends: 0,
        sendsExpiresAtMs: 0,
        failure: undefined,
        uses: undefined,
      };
      spaces[space].set(user, entry);
    }
    return entry;
  };
  /** The space's `sendsPerUsername` count, once its window has not ended. */
  const sendsOf = (space: SpaceEntry | undefined, now: number): number => {
    if (space === undefined || space.sendsExpiresAtMs === 0) return 0;
    if (space.sendsExpiresAtMs <= now) {
      space.sends = 0;
      space.sendsExpiresAtMs = 0;
      bound.remove();
    }
    return space.sends;
  };
  const dropFailure = (space: SpaceEntry | undefined): void => {
    if (space?.failure === undefined) return;
    space.failure = undefined;
    bound.remove();
  };
  const liveFailure = (space: SpaceEntry | undefined, now: number): FailureEntry | undefined => {
    if (space?.failure !== undefined && space.failure.expiresAtMs <= now) dropFailure(space);
    return space?.failure;
  };

  /** Drops what has expired in a space; true when nothing is left of it. */
  const sweepSpace = (space: SpaceEntry, now: number): boolean => {
    if (space.slot !== undefined && expireSlot(space, now)) space.slot = undefined;
    if (space.others !== undefined) for (const [key, slot] of space.others) if (expireSlot(slot, now)) space.others.delete(key);
    sendsOf(space, now);
    liveFailure(space, now);
    space.uses?.sweep(now);
    return (
      space.slot === undefined &&
      (space.others === undefined || space.others.size === 0) &&
      space.sendsExpiresAtMs === 0 &&
      space.failure === undefined &&
      (space.uses === undefined || space.uses.size === 0)
    );
  };
  function sweep(now: number): void {
    for (const map of [spaces.user, spaces.decoy]) for (const [user, space] of map) if (sweepSpace(space, now)) map.delete(user);
    counters.sweep(now);
    values.sweep(now);
  }

  /** Makes room for `count` new entries or fails closed; sweeps early at most once a second. */
  const reserve = (count: number): void => {
    if (!bound.reserve(count)) {
      throw new OtpError('STORE_UNAVAILABLE', `memoryStore is full (${maxEntries} entries): refusing new state until some expires. Use redisStore() for more.`);
    }
  };

  /** The refusal a counter gives now, without counting. */
  const checkCounter = (counter: Counter, now: number): Refusal | null => {
    const entry = counters.live(counter.key, now);
    const used = entry === undefined ? 0 : entry.value;
    return used + 1 > counter.points ? { limit: counter.limit, retryAfterMs: Math.max((entry?.expiresAtMs ?? now) - now, 1) } : null;
  };
  /** Counts one on a `take` counter already checked (so an expired entry is gone) at `now`. */
  const takeCounter = (counter: Counter, now: number): void => {
    if (counter.mode !== 'take') return;
    const entry = counters.get(counter.key);
    if (entry === undefined) counters.set(counter.key, 1, now + counter.windowMs);
    else entry.value += 1;
  };

  const lockOf = (entry: FailureEntry | undefined, policy: LockPolicy, now: number): { permanent: boolean; retryAfterMs: number } | null => {
    if (entry === undefined) return null;
    if (entry.fails >= policy.maxConsecutiveFailures) return { permanent: true, retryAfterMs: Math.max(entry.expiresAtMs - now, 1) };
    if (entry.lockedUntilMs > now) return { permanent: false, retryAfterMs: entry.lockedUntilMs - now };
    return null;
  };

  /** Counts one failure in a row for `space`; returns the lock it starts. */
  const countFailure = (user: string, space: Space, policy: LockPolicy, now: number): LockStarted => {
    let entry = liveFailure(spaces[space].get(user), now);
    if (entry === undefined) {
      reserve(1);
      entry = { fails: 0, lockedUntilMs: 0, expiresAtMs: 0 };
      spaceOf(user, space).failure = entry;
      bound.add();
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
      const state = spaces[plan.space].get(plan.user);
      const slot = slotOf(state, plan.slot, now);
      const sends = sendsOf(state, now);
      let refusal: Refusal | null = null;
      if (slot !== undefined && slot.cooldownUntilMs !== 0) refusal = { limit: 'resendCooldownSeconds', retryAfterMs: Math.max(slot.cooldownUntilMs - now, 1) };
      if (refusal === null && plan.perUser !== null && sends + 1 > plan.perUser.points) {
        refusal = { limit: 'sendsPerUsername', retryAfterMs: Math.max(state!.sendsExpiresAtMs - now, 1) };
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

      // Admitted: make room for every entry this adds (or change nothing), then write.
      const admitted = plan.targets.filter((_, index) => targets[index] === null);
      let fresh = slot === undefined || slot.codeExpiresAtMs === 0 ? 1 : 0;
      if (plan.cooldownMs > 0) fresh += 1; // no cooldown runs (it would have refused)
      if (plan.perUser !== null && sends === 0) fresh += 1;
      const newCounters = new Set<string>();
      for (const counter of plan.request) if (counter.mode === 'take' && !counters.has(counter.key)) newCounters.add(counter.key);
      for (const group of admitted) for (const counter of group) if (counter.mode === 'take' && !counters.has(counter.key)) newCounters.add(counter.key);
      reserve(fresh + newCounters.size);

      const space = state ?? spaceOf(plan.user, plan.space);
      const entry = slot ?? addSlot(space, plan.slot);
      if (plan.cooldownMs > 0) {
        entry.cooldownUntilMs = now + plan.cooldownMs;
        bound.add();
      }
      if (plan.perUser !== null) {
        if (sends === 0) {
          space.sendsExpiresAtMs = now + plan.perUser.windowMs;
          bound.add();
        }
        space.sends = sends + 1;
      }
      for (const counter of plan.request) takeCounter(counter, now);
      for (const group of admitted) for (const counter of group) takeCounter(counter, now);
      if (entry.codeExpiresAtMs === 0) bound.add();
      entry.hash = plan.code.hash;
      entry.linkHash = plan.code.linkHash;
      entry.tag = plan.code.tag === undefined ? undefined : checkTag(plan.code.tag);
      entry.attempts = 0;
      entry.issuedAtMs = plan.code.issuedAtMs;
      entry.codeExpiresAtMs = now + plan.code.ttlMs;
      return { ok: true, targets };
    },

    async verify({ user, slots, hash, link, policy }): Promise<VerifyOutcome> {
      const now = Date.now();
      let found: { key: string; slot: SlotState; space: Space; state: SpaceEntry } | undefined;
      for (const key of slots) {
        for (const space of ['user', 'decoy'] as const) {
          if (found !== undefined) continue;
          const state = spaces[space].get(user);
          const slot = slotOf(state, key, now);
          if (slot !== undefined && slot.codeExpiresAtMs !== 0) found = { key, slot, space, state: state! };
        }
      }
      if (found === undefined) return { result: 'missing' };
      const { key, slot, space, state } = found;
      const lock = lockOf(liveFailure(state, now), policy, now);
      if (lock !== null) return { result: 'locked', space, ...lock };
      if (slot.attempts >= policy.maxAttempts) return { result: 'burned', space };
      const stored = link === true ? slot.linkHash : slot.hash;
      if (space === 'user' && stored !== undefined && safeEqual(stored, hash)) {
        const { issuedAtMs, tag } = slot;
        slot.codeExpiresAtMs = 0;
        slot.hash = '';
        slot.linkHash = undefined;
        bound.remove();
        if (slot.cooldownUntilMs === 0) removeSlot(state, key);
        dropFailure(state);
        return { result: 'ok', space, issuedAtMs, ...(tag !== undefined && { tag }) };
      }
      slot.attempts += 1;
      return { result: 'mismatch', space, lock: countFailure(user, space, policy, now) };
    },

    async peekLink({ user, slot: key, hash, maxAttempts }) {
      const state = spaces.user.get(user);
      const slot = state === undefined ? undefined : state.slot === key ? state : state.others?.get(key);
      const now = Date.now();
      if (slot === undefined || slot.codeExpiresAtMs <= now || slot.linkHash === undefined || slot.attempts >= maxAttempts) return false;
      return safeEqual(slot.linkHash, hash);
    },

    async attempt({ user, space, policy }: AttemptRequest): Promise<AttemptStart> {
      const now = Date.now();
      const lock = lockOf(liveFailure(spaces[space].get(user), now), policy, now);
      if (lock !== null) return { ok: false, ...lock };
      return { ok: true, lock: countFailure(user, space, policy, now) };
    },

    async settle({ user, use }: SettleRequest): Promise<boolean> {
      const now = Date.now();
      const key = use.kind === 'totp' ? 't' : `r\0${use.id}`;
      const existing = spaces.user.get(user)?.uses;
      const last = existing?.live(key, now);
      if (use.kind === 'totp') {
        if (last !== undefined && last.value >= use.step) return false;
      } else if (last !== undefined) return false;
      if (last === undefined) reserve(1);
      const state = spaceOf(user, 'user');
      (state.uses ??= new ExpiringMap(bound)).set(key, use.kind === 'totp' ? use.step : 1, now + use.ttlMs);
      dropFailure(state);
      return true;
    },

    async unlock(user) {
      dropFailure(spaces.user.get(user));
      dropFailure(spaces.decoy.get(user));
    },

    async consume(counter) {
      const now = Date.now();
      const refused = checkCounter(counter, now);
      if (refused !== null) return refused;
      if (counter.mode === 'take' && !counters.has(counter.key)) reserve(1);
      takeCounter(counter, now);
      return null;
    },

    async get(key) {
      const entry = values.live(key, Date.now());
      return entry === undefined ? null : String(entry.value);
    },

    async set(key, value, ttlMs) {
      const now = Date.now();
      if (values.live(key, now) === undefined) reserve(1);
      values.set(key, value, now + ttlMs);
    },

    async close() {
      bound.close();
      spaces.user.clear();
      spaces.decoy.clear();
      counters.clear();
      values.clear();
    },
  };
}
