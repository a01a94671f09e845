/**
 * The send decision and the lock transitions, written down once as a table of cases that
 * `describeStoreContract` runs against every store (memory, Redis, Redis Cluster, PostgreSQL).
 * The memory store's maps, the Redis Lua scripts and the PostgreSQL functions each implement
 * these rules on their own; this table is what keeps them the same.
 *
 * A case is `before` (steps that set up state), one `request`, the decision it must get
 * (`expect`), and `after` (steps whose answers show the state it left). Every step is one call
 * of the store API; a step with `expect` is checked. Each run gets a fresh username; code
 * names stand for fresh hashes (`WRONG` is a new random hash every time), counter names for
 * fresh keys. Refusals and locks are compared by their limit or kind; every `retryAfterMs`
 * must be above `retryAboveMs` (0 unless the case says) and at most `retryWithinMs` (60 s
 * unless the case says), a permanent lock's at most `failureMemoryMs` and within 2 s of it.
 */
import type { LockPolicy, Space } from '../../src/stores/types.js';

/** A hash no code has. */
export const WRONG = '(wrong)';

/** A send decision, its refusals reduced to their limit. */
type SendExpect = { ok: true; targets: Array<string | null> } | { ok: false; refusal: string };
/** A verify outcome without its times (`issuedAtMs`, `retryAfterMs`). */
type VerifyExpect =
  | { result: 'ok'; space: 'user' }
  | { result: 'missing' }
  | { result: 'mismatch'; space: Space; lock: null | 'timed' | 'permanent' }
  | { result: 'burned'; space: Space }
  | { result: 'locked'; space: Space; permanent: boolean };
type AttemptExpect = { ok: true; lock: null | 'timed' | 'permanent' } | { ok: false; permanent: boolean };

/** A send plan in names: `perUser` is sendsPerUsername's points (60 s window), counters are named in the case. */
interface PlanSpec {
  slot?: string;
  space?: Space;
  cooldownMs?: number;
  perUser?: number;
  request?: string[];
  targets?: string[][];
  /** The name the sent code is known by in later steps. */
  code?: string;
}

export type Step = { times?: number } & (
  | { send: PlanSpec; expect?: SendExpect }
  | { verify: string; slots?: string[]; expect?: VerifyExpect }
  | { attempt: Space; expect?: AttemptExpect }
  /** `consume()` with the named counter in `take` mode. */
  | { consume: string; expect?: string | null }
  | { unlock: true }
  | { sleepMs: number }
);

export interface StoreCase {
  name: string;
  counters?: Record<string, { limit: string; points: number; mode?: 'peek' }>;
  /** The lock policy of every verify and attempt of the case, over the contract's default. */
  policy?: Partial<LockPolicy>;
  retryWithinMs?: number;
  retryAboveMs?: number;
  before: Step[];
  request: Step & ({ send: PlanSpec } | { verify: string } | { attempt: Space } | { unlock: true });
  expect: SendExpect | VerifyExpect | AttemptExpect | undefined;
  after: Step[];
}

const admitted = (...targets: Array<string | null>): SendExpect => ({ ok: true, targets });
const refused = (refusal: string): SendExpect => ({ ok: false, refusal });
const ok: VerifyExpect = { result: 'ok', space: 'user' };
const mismatch = (lock: null | 'timed' | 'permanent' = null, space: Space = 'user'): VerifyExpect => ({ result: 'mismatch', space, lock });
const burned: VerifyExpect = { result: 'burned', space: 'user' };
const locked = (permanent: boolean, space: Space = 'user'): VerifyExpect => ({ result: 'locked', space, permanent });

export const sendCases: StoreCase[] = [
  {
    name: 'admits a send with nothing in its way and keeps its code',
    before: [],
    request: { send: { code: 'c' } },
    expect: admitted(null),
    after: [{ verify: 'c', expect: ok }],
  },
  {
    name: 'refuses a second send of one slot inside the cooldown and keeps the first code; the cooldown outlasts its use',
    before: [{ send: { slot: 'a', cooldownMs: 60_000, code: 'first' } }],
    request: { send: { slot: 'a', cooldownMs: 60_000 } },
    expect: refused('resendCooldownSeconds'),
    after: [
      { verify: 'first', slots: ['a'], expect: ok },
      { send: { slot: 'a', cooldownMs: 60_000 }, expect: refused('resendCooldownSeconds') },
    ],
  },
  {
    name: 'does not hold another slot back by a cooldown',
    before: [{ send: { slot: 'a', cooldownMs: 60_000, code: 'first' } }],
    request: { send: { slot: 'b', cooldownMs: 60_000, code: 'other' } },
    expect: admitted(null),
    after: [
      { verify: 'other', slots: ['b'], expect: ok },
      { verify: 'first', slots: ['a'], expect: ok },
    ],
  },
  {
    name: 'counts sendsPerUsername across slots and refuses past it for the rest of its window; the decoy space counts apart',
    retryAboveMs: 59_000,
    before: [
      { send: { slot: 'a', perUser: 2, code: 'first' }, expect: admitted(null) },
      { send: { slot: 'b', perUser: 2 }, expect: admitted(null) },
    ],
    request: { send: { slot: 'c', perUser: 2 } },
    expect: refused('sendsPerUsername'),
    after: [
      { send: { slot: 'c', perUser: 2, space: 'decoy' }, expect: admitted(null) },
      { verify: 'first', slots: ['a'], expect: ok },
    ],
  },
  {
    name: 'changes nothing when a request counter refuses: no cooldown, no per-username count, no target counter',
    counters: { ip: { limit: 'sendsPerIp', points: 1 }, dest: { limit: 'sendsPerDestination', points: 1 } },
    before: [{ consume: 'ip', expect: null }, { send: { slot: 'a', code: 'earlier' } }],
    request: { send: { slot: 'a', cooldownMs: 60_000, perUser: 1, request: ['ip'], targets: [['dest']] } },
    expect: refused('sendsPerIp'),
    after: [
      { verify: 'earlier', slots: ['a'], expect: ok },
      { send: { slot: 'a', cooldownMs: 60_000, perUser: 1, targets: [['dest']] }, expect: admitted(null) },
    ],
  },
  {
    name: 'admits the target that passes while another is refused, and counts only the admitted one',
    counters: {
      open: { limit: 'sendsPerDestination', points: 5 },
      shared: { limit: 'smsPerPrefix', points: 5 },
      full: { limit: 'sendsPerDestination', points: 1 },
    },
    before: [{ consume: 'full', expect: null }],
    request: { send: { slot: 'a', targets: [['open'], ['shared', 'full']], code: 'c' } },
    expect: admitted(null, 'sendsPerDestination'),
    after: [
      { verify: 'c', slots: ['a'], expect: ok },
      { consume: 'shared', times: 5, expect: null },
      { consume: 'shared', expect: 'smsPerPrefix' },
      { consume: 'open', times: 4, expect: null },
      { consume: 'open', expect: 'sendsPerDestination' },
    ],
  },
  {
    name: 'refuses the whole send when every target is refused, counting nothing and starting no cooldown',
    counters: {
      ip: { limit: 'sendsPerIp', points: 1 },
      shared: { limit: 'smsPerPrefix', points: 5 },
      full: { limit: 'sendsPerDestination', points: 1 },
    },
    before: [{ consume: 'full', expect: null }],
    request: { send: { slot: 'b', cooldownMs: 60_000, request: ['ip'], targets: [['shared', 'full']] } },
    expect: refused('sendsPerDestination'),
    after: [
      { consume: 'shared', times: 5, expect: null },
      { consume: 'shared', expect: 'smsPerPrefix' },
      { consume: 'ip', expect: null },
      { send: { slot: 'b', cooldownMs: 60_000 }, expect: admitted(null) },
    ],
  },
  {
    name: 'checks peek counters without counting them, and refuses when they are over',
    counters: { budget: { limit: 'smsPerDay', points: 1, mode: 'peek' } },
    before: [
      { send: { slot: 'a', targets: [['budget']] }, expect: admitted(null) },
      { send: { slot: 'b', targets: [['budget']] }, expect: admitted(null) },
    ],
    request: { send: { slot: 'c', targets: [['budget']] } },
    expect: admitted(null),
    after: [
      { consume: 'budget', expect: null },
      { send: { slot: 'd', targets: [['budget']] }, expect: refused('smsPerDay') },
    ],
  },
  {
    name: 'never verifies a decoy code, and nothing in the decoy space touches the user space',
    policy: { failedVerifications: 2 },
    before: [{ send: { slot: 'a', cooldownMs: 60_000, code: 'real' } }, { send: { slot: 'b', space: 'decoy', cooldownMs: 60_000, code: 'decoy' } }],
    request: { verify: 'decoy', slots: ['b'] },
    expect: mismatch(null, 'decoy'),
    after: [
      // A timed lock of the decoy space holds only the decoy space.
      { verify: WRONG, slots: ['b'], expect: mismatch('timed', 'decoy') },
      { verify: WRONG, slots: ['b'], expect: locked(false, 'decoy') },
      // A decoy send does not see the user cooldown; the user code is found before the decoy of its slot.
      { send: { slot: 'a', space: 'decoy', cooldownMs: 60_000 }, expect: admitted(null) },
      { verify: 'real', slots: ['a'], expect: ok },
    ],
  },
  {
    name: 'locks the decoy space without locking the user',
    policy: { failedVerifications: 3, maxConsecutiveFailures: 3 },
    before: [{ send: { slot: 'd', space: 'decoy' } }, { verify: WRONG, slots: ['d'], times: 3 }],
    request: { verify: WRONG, slots: ['d'] },
    expect: locked(true, 'decoy'),
    after: [{ send: { slot: 'a', code: 'real' } }, { verify: 'real', slots: ['a'], expect: ok }],
  },
];

export const lockCases: StoreCase[] = [
  {
    name: 'counts wrong guesses as mismatches up to maxAttempts, then burns the code, even for the right hash',
    before: [{ send: { code: 'c' } }, { verify: WRONG, times: 4, expect: mismatch() }],
    request: { verify: WRONG },
    expect: mismatch(),
    after: [
      { verify: 'c', expect: burned },
      { verify: WRONG, expect: burned },
    ],
  },
  {
    name: 'locks for lockMs when the failure count reaches failedVerifications, and again at its next multiple',
    policy: { failedVerifications: 2, lockMs: 1000, maxConsecutiveFailures: 100 },
    retryWithinMs: 1000,
    before: [{ send: { code: 'c' } }, { verify: WRONG, expect: mismatch() }],
    request: { verify: WRONG },
    expect: mismatch('timed'),
    after: [
      { verify: 'c', expect: locked(false) },
      { attempt: 'user', expect: { ok: false, permanent: false } },
      { sleepMs: 1100 },
      { verify: WRONG, expect: mismatch() },
      { verify: WRONG, expect: mismatch('timed') },
    ],
  },
  {
    name: 'locks for good at maxConsecutiveFailures, across codes and timed locks, until unlock()',
    policy: { failedVerifications: 1, lockMs: 100, maxConsecutiveFailures: 4 },
    before: [
      { send: {} },
      { verify: WRONG, expect: mismatch('timed') },
      { sleepMs: 150 },
      { send: {} },
      { verify: WRONG, expect: mismatch('timed') },
      { sleepMs: 150 },
      { send: {} },
      { verify: WRONG, expect: mismatch('timed') },
      { sleepMs: 150 },
      { send: {} },
    ],
    request: { verify: WRONG },
    expect: mismatch('permanent'),
    after: [{ send: { code: 'fresh' } }, { sleepMs: 150 }, { verify: 'fresh', expect: locked(true) }, { unlock: true }, { verify: 'fresh', expect: ok }],
  },
  {
    name: 'unlock() lifts a permanent lock and forgets the failure count',
    policy: { failedVerifications: 100, maxConsecutiveFailures: 2 },
    before: [
      { send: { code: 'c' } },
      { verify: WRONG, expect: mismatch() },
      { verify: WRONG, expect: mismatch('permanent') },
      { attempt: 'user', expect: { ok: false, permanent: true } },
    ],
    request: { unlock: true },
    expect: undefined,
    after: [
      { attempt: 'user', expect: { ok: true, lock: null } },
      { verify: 'c', expect: ok },
    ],
  },
  {
    name: 'resets the failure count on a success before the cap',
    policy: { failedVerifications: 100, maxConsecutiveFailures: 3 },
    before: [{ send: { code: 'c1' } }, { verify: WRONG, times: 2, expect: mismatch() }],
    request: { verify: 'c1' },
    expect: ok,
    after: [
      { send: { code: 'c2' } },
      { verify: WRONG, times: 2, expect: mismatch() },
      { verify: 'c2', expect: ok },
      { send: { code: 'c3' } },
      { verify: WRONG, times: 2, expect: mismatch() },
      { verify: 'c3', expect: ok },
    ],
  },
];
