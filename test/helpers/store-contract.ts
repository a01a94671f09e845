/**
 * The behaviour every `OtpStore` must show, run once per backend:
 * `describeStoreContract('memory', async () => ({ store: memoryStore(), cleanup: async () => {} }))`.
 * Each test gets a fresh store from `makeStore` and calls `cleanup` afterwards.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import type { Counter, LockPolicy, OtpStore, SendPlan } from '../../src/stores/types.js';
import { lockCases, type StoreCase, type Step, sendCases, WRONG } from './store-cases.js';

export type MakeStore = () => Promise<{ store: OtpStore; cleanup(): Promise<void> }>;

/** An opaque key like the core's (base64url, no personal data). */
export const randomKey = (): string => randomBytes(20).toString('base64url').replace(/[-_]/g, 'x');
const randomHash = (): string => randomBytes(32).toString('base64url');

export const policy: LockPolicy = { maxAttempts: 5, failedVerifications: 20, lockMs: 60_000, maxConsecutiveFailures: 100, failureMemoryMs: 600_000 };

/** A plan with no quotas: one code for `slot`. */
export function plan(user: string, overrides: Partial<SendPlan> = {}): SendPlan {
  return {
    user,
    space: 'user',
    slot: '',
    cooldownMs: 0,
    perUser: null,
    request: [],
    targets: [[]],
    code: { hash: randomHash(), ttlMs: 60_000, issuedAtMs: Date.now() },
    ...overrides,
  };
}

export const counter = (limit: string, points: number, overrides: Partial<Counter> = {}): Counter => ({
  limit,
  key: `${limit}-${randomKey()}`,
  points,
  windowMs: 60_000,
  mode: 'take',
  ...overrides,
});

/**
 * Runs one table case against `store` with a fresh username, codes and counters: the `before`
 * steps, the request (its decision must equal `expect`), then the `after` checks.
 */
async function runCase(store: OtpStore, storeCase: StoreCase): Promise<void> {
  const user = randomKey();
  const lock = { ...policy, ...storeCase.policy };
  const retryWithinMs = storeCase.retryWithinMs ?? 60_000;
  const codes = new Map<string, string>();
  const counters = new Map(
    Object.entries(storeCase.counters ?? {}).map(([name, { limit, points, mode }]) => [name, counter(limit, points, { mode: mode ?? 'take' })]),
  );
  const named = (name: string): Counter => {
    const found = counters.get(name);
    assert.ok(found, `the case names counter ${name}`);
    return found;
  };
  const hashOf = (name: string): string => {
    if (name === WRONG) return randomHash();
    const hash = codes.get(name);
    assert.ok(hash !== undefined, `the case sent code ${name} before using it`);
    return hash;
  };
  /** Checks every `retryAfterMs` in the answer and leaves them out, with `issuedAtMs`, for the comparison. */
  const timeless = (answer: unknown): unknown => {
    if (answer === null || typeof answer !== 'object') return answer;
    if (Array.isArray(answer)) return answer.map(timeless);
    const out: Record<string, unknown> = {};
    // A permanent lock ends when the failures are forgotten: failureMemoryMs after the last one, which was moments ago.
    const permanent = 'permanent' in answer && answer.permanent === true;
    const withinMs = permanent ? lock.failureMemoryMs : retryWithinMs;
    const aboveMs = permanent ? Math.max(lock.failureMemoryMs - 2_000, 0) : (storeCase.retryAboveMs ?? 0);
    for (const [key, value] of Object.entries(answer)) {
      if (key === 'retryAfterMs') {
        assert.ok(typeof value === 'number' && value > aboveMs && value <= withinMs, `retryAfterMs ${String(value)} in (${aboveMs}, ${withinMs}]`);
      } else if (key !== 'issuedAtMs') out[key] = timeless(value);
    }
    return out;
  };
  const limitOf = (refusal: { limit: string } | null): string | null => refusal?.limit ?? null;
  const perform = async (step: Step): Promise<unknown> => {
    if ('send' in step) {
      const spec = step.send;
      const sent = plan(user, {
        slot: spec.slot ?? '',
        space: spec.space ?? 'user',
        cooldownMs: spec.cooldownMs ?? 0,
        perUser: spec.perUser === undefined ? null : { points: spec.perUser, windowMs: 60_000 },
        request: (spec.request ?? []).map(named),
        targets: (spec.targets ?? [[]]).map((group) => group.map(named)),
      });
      if (spec.code !== undefined) codes.set(spec.code, sent.code.hash);
      const decision = timeless(await store.send(sent)) as { ok: boolean; refusal?: { limit: string }; targets: Array<{ limit: string } | null> };
      return decision.ok ? { ok: true, targets: decision.targets.map(limitOf) } : { ok: false, refusal: decision.refusal?.limit };
    }
    if ('verify' in step) return timeless(await store.verify({ user, slots: step.slots ?? [''], hash: hashOf(step.verify), policy: lock }));
    if ('attempt' in step) return timeless(await store.attempt({ user, space: step.attempt, policy: lock }));
    if ('consume' in step) return limitOf(timeless(await store.consume({ ...named(step.consume), mode: 'take' })) as { limit: string } | null);
    if ('unlock' in step) return store.unlock(user);
    await sleep(step.sleepMs);
    return undefined;
  };
  const run = async (step: Step, where: string): Promise<void> => {
    for (let i = 0; i < (step.times ?? 1); i++) {
      const answer = await perform(step);
      if ('expect' in step) assert.deepEqual(answer, step.expect, `${where}: ${JSON.stringify(step)}${step.times ? ` (${i + 1} of ${step.times})` : ''}`);
    }
  };
  for (const step of storeCase.before) await run(step, 'before');
  assert.deepEqual(await perform(storeCase.request), storeCase.expect, `request: ${JSON.stringify(storeCase.request)}`);
  for (const step of storeCase.after) await run(step, 'after');
}

export function describeStoreContract(name: string, makeStore: MakeStore): void {
  /** Runs `body` against a fresh store and always cleans up. */
  const withStore = (body: (store: OtpStore) => Promise<void>) => async () => {
    const { store, cleanup } = await makeStore();
    try {
      await body(store);
    } finally {
      await store.close?.();
      await cleanup();
    }
  };
  const verify = (store: OtpStore, user: string, hash: string, slots = [''], lock: Partial<LockPolicy> = {}) =>
    store.verify({ user, slots, hash, policy: { ...policy, ...lock } });
  const result = async (promise: Promise<{ result: string }>) => (await promise).result;

  describe(`OtpStore contract: ${name}`, () => {
    describe('send and verify', () => {
      it(
        'verifies an admitted code once (ok with its issue time, then missing)',
        withStore(async (store) => {
          const user = randomKey();
          const sent = plan(user, { code: { hash: randomHash(), ttlMs: 60_000, issuedAtMs: 1_700_000_000_000 } });
          assert.deepEqual(await store.send(sent), { ok: true, targets: [null] });
          assert.deepEqual(await verify(store, user, sent.code.hash), { result: 'ok', space: 'user', issuedAtMs: 1_700_000_000_000 });
          assert.deepEqual(await verify(store, user, sent.code.hash), { result: 'missing' });
        }),
      );

      it(
        'answers missing for a user or slot that holds no code, and spends nothing',
        withStore(async (store) => {
          const user = randomKey();
          const sent = plan(user, { slot: 'sessionA' });
          await store.send(sent);
          assert.deepEqual(await verify(store, randomKey(), sent.code.hash), { result: 'missing' });
          for (let i = 0; i < 30; i++)
            assert.deepEqual(await verify(store, user, randomHash(), ['sessionB'], { failedVerifications: 1 }), { result: 'missing' });
          assert.equal(
            await result(verify(store, user, sent.code.hash, ['sessionA'], { failedVerifications: 1 })),
            'ok',
            'no lock from 30 guesses without a code',
          );
        }),
      );

      it(
        'answers missing for an empty slot list (a session that never sent), whatever codes exist',
        withStore(async (store) => {
          const user = randomKey();
          const unbound = plan(user);
          await store.send(unbound);
          for (let i = 0; i < 10; i++) assert.deepEqual(await verify(store, user, unbound.code.hash, []), { result: 'missing' });
          assert.equal(await result(verify(store, user, unbound.code.hash)), 'ok', 'nothing was spent');
        }),
      );

      it(
        'keeps slots apart: a session code is found only from its slot; an unbound code from any list that names it',
        withStore(async (store) => {
          const user = randomKey();
          const bound = plan(user, { slot: 'sessionA' });
          await store.send(bound);
          assert.equal(await result(verify(store, user, bound.code.hash, ['sessionB', ''])), 'missing');
          assert.equal(await result(verify(store, user, bound.code.hash, [''])), 'missing');
          assert.equal(await result(verify(store, user, bound.code.hash, ['sessionA', ''])), 'ok');
          const unbound = plan(user);
          await store.send(unbound);
          assert.equal(await result(verify(store, user, unbound.code.hash, ['sessionB', ''])), 'ok');
        }),
      );

      it(
        'replaces only the earlier code of the same slot',
        withStore(async (store) => {
          const user = randomKey();
          const first = plan(user, { slot: 'a' });
          const second = plan(user, { slot: 'a' });
          const other = plan(user, { slot: 'b' });
          await store.send(first);
          await store.send(second);
          await store.send(other);
          assert.deepEqual(await verify(store, user, first.code.hash, ['a']), { result: 'mismatch', space: 'user', lock: null });
          assert.equal(await result(verify(store, user, second.code.hash, ['a'])), 'ok');
          assert.equal(await result(verify(store, user, other.code.hash, ['b'])), 'ok');
        }),
      );

      it(
        'resets the attempt budget when a slot gets a new code',
        withStore(async (store) => {
          const user = randomKey();
          await store.send(plan(user));
          for (let i = 0; i < policy.maxAttempts; i++) await verify(store, user, randomHash());
          assert.equal(await result(verify(store, user, randomHash())), 'burned');
          const fresh = plan(user);
          await store.send(fresh);
          assert.equal(await result(verify(store, user, fresh.code.hash)), 'ok');
        }),
      );

      it(
        'forgets a code after its TTL, and a mismatch does not extend it',
        withStore(async (store) => {
          const user = randomKey();
          const sent = plan(user, { code: { hash: randomHash(), ttlMs: 1500, issuedAtMs: Date.now() } });
          await store.send(sent);
          await sleep(700);
          assert.equal(await result(verify(store, user, randomHash())), 'mismatch');
          await sleep(900);
          assert.equal(await result(verify(store, user, sent.code.hash)), 'missing');
        }),
      );
    });

    describe('the send decision (store-cases.ts)', () => {
      for (const storeCase of sendCases)
        it(
          storeCase.name,
          withStore((store) => runCase(store, storeCase)),
        );
    });

    describe('the lock transitions (store-cases.ts)', () => {
      for (const storeCase of lockCases)
        it(
          storeCase.name,
          withStore((store) => runCase(store, storeCase)),
        );
    });

    describe('admission', () => {
      it(
        'sends again once the cooldown has passed',
        withStore(async (store) => {
          const user = randomKey();
          await store.send(plan(user, { cooldownMs: 1000 }));
          assert.equal((await store.send(plan(user, { cooldownMs: 1000 }))).ok, false);
          await sleep(1100);
          assert.equal((await store.send(plan(user, { cooldownMs: 1000 }))).ok, true);
        }),
      );

      it(
        'admits a plan without targets on its request checks alone',
        withStore(async (store) => {
          const sent = plan(randomKey(), { targets: [] });
          assert.deepEqual(await store.send(sent), { ok: true, targets: [] });
          assert.equal(await result(verify(store, sent.user, sent.code.hash)), 'ok');
        }),
      );

      it(
        'counts a window counter again after its window (by consume and in a send plan)',
        withStore(async (store) => {
          const quota = counter('sendsPerIp', 1, { windowMs: 1000 });
          assert.equal(await store.consume(quota), null);
          const refused = await store.consume(quota);
          assert.ok(refused !== null && refused.retryAfterMs > 0 && refused.retryAfterMs <= 1000, JSON.stringify(refused));
          const inPlan = counter('sendsPerIp', 1, { windowMs: 1000 });
          assert.equal((await store.send(plan(randomKey(), { request: [inPlan] }))).ok, true);
          assert.equal((await store.send(plan(randomKey(), { request: [inPlan] }))).ok, false);
          await sleep(1100);
          assert.equal(await store.consume(quota), null);
          assert.equal((await store.send(plan(randomKey(), { request: [inPlan] }))).ok, true);
        }),
      );
    });

    describe('attempt budget and locks', () => {
      it(
        'forgets failures failureMemoryMs after the last one, ending a permanent lock',
        withStore(async (store) => {
          const user = randomKey();
          const lock = { maxConsecutiveFailures: 2, failureMemoryMs: 1000 };
          await store.send(plan(user));
          assert.deepEqual(await verify(store, user, randomHash(), [''], lock), { result: 'mismatch', space: 'user', lock: null });
          assert.deepEqual(await verify(store, user, randomHash(), [''], lock), { result: 'mismatch', space: 'user', lock: 'permanent' });
          assert.equal(await result(verify(store, user, randomHash(), [''], lock)), 'locked');
          await sleep(1100);
          const fresh = plan(user);
          await store.send(fresh);
          assert.deepEqual(
            await verify(store, user, randomHash(), [''], lock),
            { result: 'mismatch', space: 'user', lock: null },
            'the failure count started over',
          );
          assert.equal(await result(verify(store, user, fresh.code.hash, [''], lock)), 'ok');
        }),
      );
    });

    describe('attempt and settle (TOTP, recovery codes)', () => {
      it(
        'counts a failure in advance, refuses while locked, and settle takes it back once per step',
        withStore(async (store) => {
          const user = randomKey();
          const lock = { failedVerifications: 3, lockMs: 60_000, maxConsecutiveFailures: 100 };
          assert.deepEqual(await store.attempt({ user, space: 'user', policy: { ...policy, ...lock } }), { ok: true, lock: null });
          assert.deepEqual(await store.attempt({ user, space: 'user', policy: { ...policy, ...lock } }), { ok: true, lock: null });
          assert.equal(await store.settle({ user, use: { kind: 'totp', step: 10, ttlMs: 60_000 } }), true);
          assert.equal(await store.settle({ user, use: { kind: 'totp', step: 10, ttlMs: 60_000 } }), false, 'the same step twice');
          assert.equal(await store.settle({ user, use: { kind: 'totp', step: 9, ttlMs: 60_000 } }), false, 'an older step');
          assert.equal(await store.settle({ user, use: { kind: 'totp', step: 11, ttlMs: 60_000 } }), true);
          // The count was reset by the settles: three more attempts start the lock on the third.
          assert.deepEqual(await store.attempt({ user, space: 'user', policy: { ...policy, ...lock } }), { ok: true, lock: null });
          assert.deepEqual(await store.attempt({ user, space: 'user', policy: { ...policy, ...lock } }), { ok: true, lock: null });
          assert.deepEqual(await store.attempt({ user, space: 'user', policy: { ...policy, ...lock } }), { ok: true, lock: 'timed' });
          const locked = await store.attempt({ user, space: 'user', policy: { ...policy, ...lock } });
          assert.ok(!locked.ok && !locked.permanent && locked.retryAfterMs > lock.lockMs - 1_000 && locked.retryAfterMs <= lock.lockMs, JSON.stringify(locked));
          // unlock() ends the timed lock; a refused settle takes nothing back: the third attempt starts the lock again.
          await store.unlock(user);
          assert.deepEqual(await store.attempt({ user, space: 'user', policy: { ...policy, ...lock } }), { ok: true, lock: null });
          assert.equal(await store.settle({ user, use: { kind: 'totp', step: 11, ttlMs: 60_000 } }), false, 'a step already accepted');
          assert.deepEqual(await store.attempt({ user, space: 'user', policy: { ...policy, ...lock } }), { ok: true, lock: null });
          assert.deepEqual(await store.attempt({ user, space: 'user', policy: { ...policy, ...lock } }), { ok: true, lock: 'timed' });
        }),
      );

      it(
        'accepts a recovery code id once',
        withStore(async (store) => {
          const user = randomKey();
          const id = randomKey();
          assert.equal(await store.settle({ user, use: { kind: 'recovery', id, ttlMs: 60_000 } }), true);
          assert.equal(await store.settle({ user, use: { kind: 'recovery', id, ttlMs: 60_000 } }), false);
          assert.equal(await store.settle({ user, use: { kind: 'recovery', id: randomKey(), ttlMs: 60_000 } }), true);
        }),
      );

      it(
        'shares one failure count between codes and attempts, per space',
        withStore(async (store) => {
          const user = randomKey();
          const lock = { failedVerifications: 100, maxConsecutiveFailures: 3 };
          await store.attempt({ user, space: 'decoy', policy: { ...policy, ...lock } });
          await store.attempt({ user, space: 'decoy', policy: { ...policy, ...lock } });
          await store.attempt({ user, space: 'user', policy: { ...policy, ...lock } });
          await store.attempt({ user, space: 'user', policy: { ...policy, ...lock } });
          await store.send(plan(user));
          assert.deepEqual(await verify(store, user, randomHash(), [''], lock), { result: 'mismatch', space: 'user', lock: 'permanent' });
          const locked = await store.attempt({ user, space: 'user', policy: { ...policy, ...lock } });
          assert.ok(!locked.ok && locked.permanent);
          assert.deepEqual(
            await store.attempt({ user, space: 'decoy', policy: { ...policy, ...lock } }),
            { ok: true, lock: 'permanent' },
            'the decoy space counted on its own',
          );
          await store.unlock(user);
          assert.deepEqual(await store.attempt({ user, space: 'user', policy: { ...policy, ...lock } }), { ok: true, lock: null });
          assert.deepEqual(await store.attempt({ user, space: 'decoy', policy: { ...policy, ...lock } }), { ok: true, lock: null });
        }),
      );
    });

    describe('concurrency', () => {
      it(
        'lets exactly one of 50 parallel verifies of the right code succeed',
        withStore(async (store) => {
          const user = randomKey();
          const sent = plan(user);
          await store.send(sent);
          const outcomes = await Promise.all(Array.from({ length: 50 }, () => result(verify(store, user, sent.code.hash))));
          assert.equal(outcomes.filter((o) => o === 'ok').length, 1);
          assert.equal(outcomes.filter((o) => o === 'missing').length, 49);
        }),
      );

      it(
        'compares exactly maxAttempts of 60 parallel wrong guesses, then refuses the right code',
        withStore(async (store) => {
          const user = randomKey();
          const sent = plan(user);
          await store.send(sent);
          const outcomes = await Promise.all(Array.from({ length: 60 }, () => result(verify(store, user, randomHash()))));
          assert.equal(outcomes.filter((o) => o === 'mismatch').length, policy.maxAttempts);
          assert.equal(outcomes.filter((o) => o === 'burned').length, 60 - policy.maxAttempts);
          assert.equal(await result(verify(store, user, sent.code.hash)), 'burned');
        }),
      );

      it(
        'never compares more than maxConsecutiveFailures parallel guesses across many slots',
        withStore(async (store) => {
          const user = randomKey();
          const slots = Array.from({ length: 6 }, (_, i) => `s${i}`);
          for (const slot of slots) await store.send(plan(user, { slot }));
          const lock = { failedVerifications: 100, maxConsecutiveFailures: 7 };
          const outcomes = await Promise.all(slots.flatMap((slot) => Array.from({ length: 5 }, () => result(verify(store, user, randomHash(), [slot], lock)))));
          assert.equal(outcomes.filter((o) => o === 'mismatch').length, 7, outcomes.join(','));
          assert.equal(outcomes.filter((o) => o === 'locked').length, 23);
        }),
      );

      it(
        'admits exactly one of 30 parallel sends of one slot inside a cooldown',
        withStore(async (store) => {
          const user = randomKey();
          const decisions = await Promise.all(Array.from({ length: 30 }, () => store.send(plan(user, { slot: 'a', cooldownMs: 60_000 }))));
          assert.equal(decisions.filter((d) => d.ok).length, 1);
        }),
      );

      it(
        'admits exactly `points` of 25 parallel sends that share a counter, and counts exactly that',
        withStore(async (store) => {
          const shared = counter('sendsPerDestination', 10);
          const decisions = await Promise.all(Array.from({ length: 25 }, (_, i) => store.send(plan(randomKey(), { slot: `s${i}`, targets: [[shared]] }))));
          assert.equal(decisions.filter((d) => d.ok).length, 10);
          assert.notEqual(await store.consume(shared), null);
        }),
      );
    });

    describe('sign-in link (linkHash): one more way to present the same code record', () => {
      const withLink = (user: string, slot = 'sessionA') =>
        plan(user, { slot, code: { hash: randomHash(), ttlMs: 60_000, issuedAtMs: 1_700_000_000_000, linkHash: randomHash() } });
      const byLink = (store: OtpStore, user: string, hash: string, slots = ['sessionA']) => store.verify({ user, slots, hash, link: true, policy });
      const peek = (store: OtpStore, user: string, hash: string, slot = 'sessionA') => store.peekLink!({ user, slot, hash, maxAttempts: policy.maxAttempts });

      it(
        'verifies by link once; that ends the code too',
        withStore(async (store) => {
          const user = randomKey();
          const sent = withLink(user);
          await store.send(sent);
          assert.deepEqual(await byLink(store, user, sent.code.linkHash!), { result: 'ok', space: 'user', issuedAtMs: 1_700_000_000_000 });
          assert.equal(await result(byLink(store, user, sent.code.linkHash!)), 'missing');
          assert.equal(await result(verify(store, user, sent.code.hash, ['sessionA'])), 'missing');
        }),
      );

      it(
        'a verify by code ends the link; the code hash never passes as a link nor the link hash as a code',
        withStore(async (store) => {
          const user = randomKey();
          const sent = withLink(user);
          await store.send(sent);
          assert.equal(await result(byLink(store, user, sent.code.hash)), 'mismatch');
          assert.equal(await result(verify(store, user, sent.code.linkHash!, ['sessionA'])), 'mismatch');
          assert.equal(await result(verify(store, user, sent.code.hash, ['sessionA'])), 'ok');
          assert.equal(await peek(store, user, sent.code.linkHash!), false);
          assert.equal(await result(byLink(store, user, sent.code.linkHash!)), 'missing');
        }),
      );

      it(
        "wrong links spend the code's attempt budget: then even the right link and code are refused",
        withStore(async (store) => {
          const user = randomKey();
          const sent = withLink(user);
          await store.send(sent);
          for (let i = 0; i < policy.maxAttempts; i++) assert.equal(await result(byLink(store, user, randomHash())), 'mismatch');
          assert.equal(await result(byLink(store, user, sent.code.linkHash!)), 'burned');
          assert.equal(await result(verify(store, user, sent.code.hash, ['sessionA'])), 'burned');
          assert.equal(await peek(store, user, sent.code.linkHash!), false, 'a burned code has no live link');
        }),
      );

      it(
        'a code sent without a link never verifies by link',
        withStore(async (store) => {
          const user = randomKey();
          const sent = plan(user, { slot: 'sessionA' });
          await store.send(sent);
          assert.equal(await result(byLink(store, user, sent.code.hash)), 'mismatch');
        }),
      );

      it(
        'peekLink tells a live link from a wrong, other-slot or replaced one, and changes nothing',
        withStore(async (store) => {
          const user = randomKey();
          const sent = withLink(user);
          await store.send(sent);
          for (let i = 0; i < 50; i++) assert.equal(await peek(store, user, sent.code.linkHash!), true);
          assert.equal(await peek(store, user, randomHash()), false);
          assert.equal(await peek(store, user, sent.code.linkHash!, 'sessionB'), false);
          assert.equal(await peek(store, randomKey(), sent.code.linkHash!), false);
          // 50 peeks spent nothing: the whole budget is left for the code.
          for (let i = 0; i < policy.maxAttempts - 1; i++) await verify(store, user, randomHash(), ['sessionA']);
          assert.equal(await result(byLink(store, user, sent.code.linkHash!)), 'ok');
          const resent = withLink(user);
          await store.send(resent);
          assert.equal(await peek(store, user, sent.code.linkHash!), false, 'a new send replaces the link');
          assert.equal(await peek(store, user, resent.code.linkHash!), true);
        }),
      );

      it(
        'a link expires with its code',
        withStore(async (store) => {
          const user = randomKey();
          const sent = plan(user, { slot: 'sessionA', code: { hash: randomHash(), ttlMs: 1000, issuedAtMs: Date.now(), linkHash: randomHash() } });
          await store.send(sent);
          assert.equal(await peek(store, user, sent.code.linkHash!), true);
          await sleep(1100);
          assert.equal(await peek(store, user, sent.code.linkHash!), false);
          assert.equal(await result(byLink(store, user, sent.code.linkHash!)), 'missing');
        }),
      );
    });

    describe('cache and counters', () => {
      it(
        'keeps a value until its TTL',
        withStore(async (store) => {
          const key = randomKey();
          assert.equal(await store.get(key), null);
          await store.set(key, 'mobile', 1000);
          assert.equal(await store.get(key), 'mobile');
          await store.set(key, "it's \\ 'quoted'", 1000);
          assert.equal(await store.get(key), "it's \\ 'quoted'", 'set replaces the value, kept as given');
          await sleep(1100);
          assert.equal(await store.get(key), null);
        }),
      );

      it(
        'consumes a counter up to its points',
        withStore(async (store) => {
          const quota = counter('lookupsPerHour', 2);
          assert.equal(await store.consume(quota), null);
          assert.equal(await store.consume({ ...quota, mode: 'peek' }), null, 'a peek takes nothing');
          assert.equal(await store.consume(quota), null);
          const refused = await store.consume(quota);
          assert.equal(refused?.limit, 'lookupsPerHour');
          assert.ok(refused !== null && refused.retryAfterMs > quota.windowMs - 1_000 && refused.retryAfterMs <= quota.windowMs, JSON.stringify(refused));
        }),
      );
    });
  });
}
