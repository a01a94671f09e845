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
          assert.equal(await result(verify(store, randomKey(), sent.code.hash)), 'missing');
          for (let i = 0; i < 30; i++) assert.equal(await result(verify(store, user, randomHash(), ['sessionB'], { failedVerifications: 1 })), 'missing');
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
          const sent = plan(user, { code: { hash: randomHash(), ttlMs: 400, issuedAtMs: Date.now() } });
          await store.send(sent);
          await sleep(250);
          assert.equal(await result(verify(store, user, randomHash())), 'mismatch');
          await sleep(250);
          assert.equal(await result(verify(store, user, sent.code.hash)), 'missing');
        }),
      );
    });

    describe('admission', () => {
      it(
        'refuses a second send of one slot inside the cooldown, keeps the first code, and lets another slot send',
        withStore(async (store) => {
          const user = randomKey();
          const first = plan(user, { slot: 'a', cooldownMs: 60_000 });
          await store.send(first);
          const again = await store.send(plan(user, { slot: 'a', cooldownMs: 60_000 }));
          assert.equal(again.ok, false);
          assert.ok(
            !again.ok && again.refusal.limit === 'resendCooldownSeconds' && again.refusal.retryAfterMs > 0 && again.refusal.retryAfterMs <= 60_000,
            JSON.stringify(again),
          );
          assert.equal((await store.send(plan(user, { slot: 'b', cooldownMs: 60_000 }))).ok, true);
          assert.equal(await result(verify(store, user, first.code.hash, ['a'])), 'ok');
        }),
      );

      it(
        'sends again once the cooldown has passed',
        withStore(async (store) => {
          const user = randomKey();
          await store.send(plan(user, { cooldownMs: 300 }));
          assert.equal((await store.send(plan(user, { cooldownMs: 300 }))).ok, false);
          await sleep(400);
          assert.equal((await store.send(plan(user, { cooldownMs: 300 }))).ok, true);
        }),
      );

      it(
        'counts sendsPerUsername across slots, per space',
        withStore(async (store) => {
          const user = randomKey();
          const perUser = { points: 2, windowMs: 60_000 };
          const first = plan(user, { slot: 'a', perUser });
          assert.equal((await store.send(first)).ok, true);
          assert.equal((await store.send(plan(user, { slot: 'b', perUser }))).ok, true);
          const third = await store.send(plan(user, { slot: 'c', perUser }));
          assert.ok(!third.ok && third.refusal.limit === 'sendsPerUsername' && third.refusal.retryAfterMs > 0, JSON.stringify(third));
          assert.equal((await store.send(plan(user, { slot: 'c', perUser, space: 'decoy' }))).ok, true, 'the decoy space counts apart');
          assert.equal(await result(verify(store, user, first.code.hash, ['a'])), 'ok', 'the refused send left the earlier code working');
        }),
      );

      it(
        'changes nothing when a request counter refuses: no cooldown, no per-username count, no other counter',
        withStore(async (store) => {
          const user = randomKey();
          const ip = counter('sendsPerIp', 1);
          assert.equal(await store.consume(ip), null);
          const dest = counter('sendsPerDestination', 1);
          const earlier = plan(user, { slot: 'a' });
          await store.send(earlier);
          const refused = await store.send(
            plan(user, { slot: 'a', cooldownMs: 60_000, perUser: { points: 1, windowMs: 60_000 }, request: [ip], targets: [[dest]] }),
          );
          assert.ok(!refused.ok && refused.refusal.limit === 'sendsPerIp', JSON.stringify(refused));
          assert.equal(await result(verify(store, user, earlier.code.hash, ['a'])), 'ok', 'the earlier code still works');
          const next = await store.send(plan(user, { slot: 'a', cooldownMs: 60_000, perUser: { points: 1, windowMs: 60_000 }, targets: [[dest]] }));
          assert.deepEqual(next, { ok: true, targets: [null] }, 'no cooldown started, no per-username send counted, the target counter not counted');
        }),
      );

      it(
        'admits the targets that pass and counts only theirs; refuses the send when every target is refused',
        withStore(async (store) => {
          const user = randomKey();
          const full = counter('sendsPerDestination', 1);
          await store.consume(full);
          const shared = counter('smsPerPrefix', 5);
          const ok = counter('sendsPerDestination', 5);
          const partial = await store.send(plan(user, { slot: 'a', targets: [[ok], [shared, full]] }));
          assert.equal(partial.ok, true);
          assert.equal(partial.targets[0], null);
          assert.equal(partial.targets[1]?.limit, 'sendsPerDestination');
          const ip = counter('sendsPerIp', 1);
          const refused = await store.send(plan(user, { slot: 'b', cooldownMs: 60_000, request: [ip], targets: [[shared, full]] }));
          assert.ok(!refused.ok && refused.refusal.limit === 'sendsPerDestination', JSON.stringify(refused));
          // shared (5 points) was counted only by nothing; ip (1 point) was not counted by the refused send.
          for (let i = 0; i < 5; i++) assert.equal(await store.consume(shared), null, `shared point ${i + 1}`);
          assert.notEqual(await store.consume(shared), null);
          assert.equal(await store.consume(ip), null);
          assert.equal((await store.send(plan(user, { slot: 'b', cooldownMs: 60_000 }))).ok, true, 'no cooldown from the refused send');
        }),
      );

      it(
        'checks peek counters without counting them, and refuses when they are over',
        withStore(async (store) => {
          const user = randomKey();
          const budget = counter('smsPerDay', 1, { mode: 'peek' });
          for (const slot of ['a', 'b', 'c']) assert.equal((await store.send(plan(user, { slot, targets: [[budget]] }))).ok, true);
          assert.equal(await store.consume({ ...budget, mode: 'take' }), null, 'nothing was counted');
          const over = await store.send(plan(user, { slot: 'd', targets: [[budget]] }));
          assert.ok(!over.ok && over.refusal.limit === 'smsPerDay', JSON.stringify(over));
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
        'counts a window counter again after its window',
        withStore(async (store) => {
          const quota = counter('sendsPerIp', 1, { windowMs: 300 });
          assert.equal(await store.consume(quota), null);
          const refused = await store.consume(quota);
          assert.ok(refused !== null && refused.retryAfterMs > 0 && refused.retryAfterMs <= 300, JSON.stringify(refused));
          await sleep(400);
          assert.equal(await store.consume(quota), null);
        }),
      );
    });

    describe('decoys', () => {
      it(
        'never verifies a decoy code, even with its own hash, and keeps it apart from the user space',
        withStore(async (store) => {
          const user = randomKey();
          const real = plan(user, { slot: 'a', cooldownMs: 60_000 });
          await store.send(real);
          const decoy = plan(user, { slot: 'b', space: 'decoy', cooldownMs: 60_000 });
          await store.send(decoy);
          assert.deepEqual(await verify(store, user, decoy.code.hash, ['b']), { result: 'mismatch', space: 'decoy', lock: null });
          assert.equal(
            (await store.send(plan(user, { slot: 'a', space: 'decoy', cooldownMs: 60_000 }))).ok,
            true,
            'a decoy send does not see the user cooldown',
          );
          assert.equal(await result(verify(store, user, real.code.hash, ['a'])), 'ok', 'the user code still works, found before the decoy of the same slot');
        }),
      );

      it(
        'locks the decoy space without locking the user',
        withStore(async (store) => {
          const user = randomKey();
          const lock = { failedVerifications: 3, maxConsecutiveFailures: 3 };
          await store.send(plan(user, { slot: 'd', space: 'decoy' }));
          for (let i = 0; i < 3; i++) await verify(store, user, randomHash(), ['d'], lock);
          assert.deepEqual(await result(verify(store, user, randomHash(), ['d'], lock)), 'locked');
          const real = plan(user, { slot: 'a' });
          await store.send(real);
          assert.equal(await result(verify(store, user, real.code.hash, ['a'], lock)), 'ok');
        }),
      );
    });

    describe('attempt budget and locks', () => {
      it(
        'counts wrong hashes as mismatch and burns the code after maxAttempts, even for the right hash',
        withStore(async (store) => {
          const user = randomKey();
          const sent = plan(user);
          await store.send(sent);
          for (let i = 0; i < policy.maxAttempts; i++) assert.equal(await result(verify(store, user, randomHash())), 'mismatch', `attempt ${i + 1}`);
          assert.deepEqual(await verify(store, user, sent.code.hash), { result: 'burned', space: 'user' });
        }),
      );

      it(
        'starts a timed lock at every multiple of failedVerifications, counting on after it ends',
        withStore(async (store) => {
          const user = randomKey();
          const lock = { failedVerifications: 2, lockMs: 400, maxConsecutiveFailures: 100 };
          const sent = plan(user, { code: { hash: randomHash(), ttlMs: 60_000, issuedAtMs: 0 } });
          await store.send(sent);
          assert.deepEqual(await verify(store, user, randomHash(), [''], lock), { result: 'mismatch', space: 'user', lock: null });
          assert.deepEqual(await verify(store, user, randomHash(), [''], lock), { result: 'mismatch', space: 'user', lock: 'timed' });
          const locked = await verify(store, user, sent.code.hash, [''], lock);
          assert.ok(locked.result === 'locked' && !locked.permanent && locked.retryAfterMs > 0 && locked.retryAfterMs <= 400, JSON.stringify(locked));
          await sleep(450);
          assert.deepEqual(
            await verify(store, user, randomHash(), [''], lock),
            { result: 'mismatch', space: 'user', lock: null },
            'the third failure in a row',
          );
          assert.deepEqual(
            await verify(store, user, randomHash(), [''], lock),
            { result: 'mismatch', space: 'user', lock: 'timed' },
            'the fourth starts a lock again',
          );
        }),
      );

      it(
        'locks for good at maxConsecutiveFailures, across codes and timed locks, until unlock()',
        withStore(async (store) => {
          const user = randomKey();
          const lock = { failedVerifications: 1, lockMs: 100, maxConsecutiveFailures: 4 };
          const outcomes: Array<string | null> = [];
          for (let i = 0; i < 4; i++) {
            await store.send(plan(user));
            const outcome = await verify(store, user, randomHash(), [''], lock);
            outcomes.push(outcome.result === 'mismatch' ? outcome.lock : outcome.result);
            await sleep(150);
          }
          assert.deepEqual(outcomes, ['timed', 'timed', 'timed', 'permanent']);
          const fresh = plan(user);
          await store.send(fresh);
          await sleep(150);
          const locked = await verify(store, user, fresh.code.hash, [''], lock);
          assert.ok(locked.result === 'locked' && locked.permanent, JSON.stringify(locked));
          await store.unlock(user);
          assert.equal(await result(verify(store, user, fresh.code.hash, [''], lock)), 'ok');
        }),
      );

      it(
        'resets the count on a success before the cap',
        withStore(async (store) => {
          const user = randomKey();
          const lock = { failedVerifications: 100, maxConsecutiveFailures: 3 };
          for (let round = 0; round < 3; round++) {
            const sent = plan(user);
            await store.send(sent);
            await verify(store, user, randomHash(), [''], lock);
            await verify(store, user, randomHash(), [''], lock);
            assert.equal(await result(verify(store, user, sent.code.hash, [''], lock)), 'ok', `round ${round + 1}`);
          }
        }),
      );

      it(
        'forgets failures failureMemoryMs after the last one, ending a permanent lock',
        withStore(async (store) => {
          const user = randomKey();
          const lock = { maxConsecutiveFailures: 1, failureMemoryMs: 400 };
          await store.send(plan(user));
          assert.deepEqual(await verify(store, user, randomHash(), [''], lock), { result: 'mismatch', space: 'user', lock: 'permanent' });
          await sleep(500);
          const fresh = plan(user);
          await store.send(fresh);
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
          assert.ok(!locked.ok && !locked.permanent && locked.retryAfterMs > 0, JSON.stringify(locked));
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
          const sent = plan(user, { slot: 'sessionA', code: { hash: randomHash(), ttlMs: 300, issuedAtMs: Date.now(), linkHash: randomHash() } });
          await store.send(sent);
          assert.equal(await peek(store, user, sent.code.linkHash!), true);
          await sleep(450);
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
          await store.set(key, 'mobile', 300);
          assert.equal(await store.get(key), 'mobile');
          await sleep(400);
          assert.equal(await store.get(key), null);
        }),
      );

      it(
        'consumes a counter up to its points',
        withStore(async (store) => {
          const quota = counter('lookupsPerHour', 2);
          assert.equal(await store.consume(quota), null);
          assert.equal(await store.consume(quota), null);
          const refused = await store.consume(quota);
          assert.equal(refused?.limit, 'lookupsPerHour');
        }),
      );
    });
  });
}
