/**
 * The behaviour every `OtpStore` must show, run once per backend:
 * `describeStoreContract('memory', async () => ({ store: memoryStore(), cleanup: async () => {} }))`.
 * Each test gets a fresh store from `makeStore` and calls `cleanup` afterwards.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import type { CodeRecord, OtpStore } from '../../src/stores/types.js';

export type MakeStore = () => Promise<{ store: OtpStore; cleanup(): Promise<void> }>;

/** An opaque key like the core's (base64url, no personal data). */
export const randomKey = (): string => randomBytes(20).toString('base64url');
const randomHash = (): string => randomBytes(32).toString('base64url');
const record = (binding: string | null = null): CodeRecord => ({ hash: randomHash(), binding });

const maxAttempts = 5;
const long = { ttlMs: 60_000, cooldownMs: 0 };

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

  describe(`OtpStore contract: ${name}`, () => {
    describe('issue and verify', () => {
      it('verifies an issued code once: ok, then missing', withStore(async (store) => {
        const key = randomKey();
        const code = record();
        assert.deepEqual(await store.issue(key, code, long), { ok: true });
        assert.equal(await store.verify(key, code, { maxAttempts }), 'ok');
        assert.equal(await store.verify(key, code, { maxAttempts }), 'missing');
      }));

      it('answers missing for a key that was never issued', withStore(async (store) => {
        assert.equal(await store.verify(randomKey(), record(), { maxAttempts }), 'missing');
      }));

      it('keeps keys apart', withStore(async (store) => {
        const [a, b] = [randomKey(), randomKey()];
        const code = record();
        await store.issue(a, code, long);
        assert.equal(await store.verify(b, code, { maxAttempts }), 'missing');
        assert.equal(await store.verify(a, code, { maxAttempts }), 'ok');
      }));

      it('counts wrong hashes as mismatch and burns the code after maxAttempts, even for the right hash', withStore(async (store) => {
        const key = randomKey();
        const code = record();
        await store.issue(key, code, long);
        for (let i = 0; i < maxAttempts; i += 1) assert.equal(await store.verify(key, record(), { maxAttempts }), 'mismatch', `attempt ${i + 1}`);
        assert.equal(await store.verify(key, record(), { maxAttempts }), 'burned');
        assert.equal(await store.verify(key, code, { maxAttempts }), 'burned');
      }));

      it('accepts the right hash after fewer than maxAttempts mismatches', withStore(async (store) => {
        const key = randomKey();
        const code = record();
        await store.issue(key, code, long);
        for (let i = 0; i < maxAttempts - 1; i += 1) assert.equal(await store.verify(key, record(), { maxAttempts }), 'mismatch');
        assert.equal(await store.verify(key, code, { maxAttempts }), 'ok');
      }));
    });

    describe('binding', () => {
      it('refuses another binding and no binding when the record has one', withStore(async (store) => {
        const key = randomKey();
        const code = record('binding-a');
        await store.issue(key, code, long);
        assert.equal(await store.verify(key, { hash: code.hash, binding: 'binding-b' }, { maxAttempts }), 'mismatch');
        assert.equal(await store.verify(key, { hash: code.hash, binding: null }, { maxAttempts }), 'mismatch');
        assert.equal(await store.verify(key, { hash: code.hash, binding: 'binding-a' }, { maxAttempts }), 'ok');
      }));

      it('lets any binding verify a record without one', withStore(async (store) => {
        const [a, b] = [randomKey(), randomKey()];
        const code = record(null);
        await store.issue(a, code, long);
        await store.issue(b, code, long);
        assert.equal(await store.verify(a, { hash: code.hash, binding: 'some-session' }, { maxAttempts }), 'ok');
        assert.equal(await store.verify(b, { hash: code.hash, binding: null }, { maxAttempts }), 'ok');
      }));
    });

    describe('replacement and cooldown', () => {
      it('replaces the earlier code and resets the attempt budget on a new issue', withStore(async (store) => {
        const key = randomKey();
        const [first, second] = [record(), record()];
        await store.issue(key, first, long);
        for (let i = 0; i < maxAttempts - 1; i += 1) await store.verify(key, record(), { maxAttempts });
        assert.deepEqual(await store.issue(key, second, long), { ok: true });
        assert.notEqual(await store.verify(key, first, { maxAttempts }), 'ok');
        // The old code spent one attempt of the new budget; the rest are still there.
        for (let i = 0; i < maxAttempts - 2; i += 1) assert.equal(await store.verify(key, record(), { maxAttempts }), 'mismatch');
        assert.equal(await store.verify(key, second, { maxAttempts }), 'ok');
      }));

      it('refuses a second issue inside the cooldown with 0 < retryAfterMs <= cooldownMs, and keeps the first code', withStore(async (store) => {
        const key = randomKey();
        const [first, second] = [record(), record()];
        const cooldownMs = 5_000;
        assert.deepEqual(await store.issue(key, first, { ttlMs: 60_000, cooldownMs }), { ok: true });
        const refused = await store.issue(key, second, { ttlMs: 60_000, cooldownMs });
        assert.equal(refused.ok, false);
        assert.ok(!refused.ok && refused.retryAfterMs > 0 && refused.retryAfterMs <= cooldownMs, JSON.stringify(refused));
        assert.equal(await store.verify(key, second, { maxAttempts }), 'mismatch');
        assert.equal(await store.verify(key, first, { maxAttempts }), 'ok');
      }));

      it('issues again once the cooldown has passed', withStore(async (store) => {
        const key = randomKey();
        const second = record();
        await store.issue(key, record(), { ttlMs: 60_000, cooldownMs: 200 });
        await sleep(300);
        assert.deepEqual(await store.issue(key, second, { ttlMs: 60_000, cooldownMs: 200 }), { ok: true });
        assert.equal(await store.verify(key, second, { maxAttempts }), 'ok');
      }));
    });

    describe('expiry', () => {
      it('forgets a code after its TTL', withStore(async (store) => {
        const key = randomKey();
        const code = record();
        await store.issue(key, code, { ttlMs: 300, cooldownMs: 0 });
        await sleep(400);
        assert.equal(await store.verify(key, code, { maxAttempts }), 'missing');
      }));

      it('does not extend the TTL on a mismatch', withStore(async (store) => {
        const key = randomKey();
        const code = record();
        await store.issue(key, code, { ttlMs: 600, cooldownMs: 0 });
        await sleep(300);
        assert.equal(await store.verify(key, record(), { maxAttempts }), 'mismatch');
        await sleep(400); // 700 ms after the issue; an extended TTL would still be alive
        assert.equal(await store.verify(key, code, { maxAttempts }), 'missing');
      }));
    });

    describe('concurrency', () => {
      it('lets exactly one of 50 parallel verifies of the right code succeed', withStore(async (store) => {
        const key = randomKey();
        const code = record();
        await store.issue(key, code, long);
        const outcomes = await Promise.all(Array.from({ length: 50 }, () => store.verify(key, code, { maxAttempts })));
        assert.equal(outcomes.filter((o) => o === 'ok').length, 1);
        assert.equal(outcomes.filter((o) => o === 'missing').length, 49);
      }));

      it('spends exactly maxAttempts of 60 parallel wrong guesses, burns the rest, then refuses the right code', withStore(async (store) => {
        const key = randomKey();
        const code = record();
        await store.issue(key, code, long);
        const outcomes = await Promise.all(Array.from({ length: 60 }, () => store.verify(key, record(), { maxAttempts })));
        assert.equal(outcomes.filter((o) => o === 'mismatch').length, maxAttempts);
        assert.equal(outcomes.filter((o) => o === 'burned').length, 60 - maxAttempts);
        assert.equal(await store.verify(key, code, { maxAttempts }), 'burned');
      }));

      it('lets exactly one of 30 parallel issues inside a cooldown through', withStore(async (store) => {
        const key = randomKey();
        const records = Array.from({ length: 30 }, () => record());
        const results = await Promise.all(records.map((r) => store.issue(key, r, { ttlMs: 60_000, cooldownMs: 10_000 })));
        const winners = records.filter((_, i) => results[i]?.ok);
        assert.equal(winners.length, 1);
        assert.ok(results.every((r) => r.ok || (r.retryAfterMs > 0 && r.retryAfterMs <= 10_000)));
        assert.equal(await store.verify(key, winners[0]!, { maxAttempts }), 'ok');
      }));
    });

    describe('limiter', () => {
      const limiterName = () => `contract-${randomBytes(4).toString('hex')}`;

      it('allows `points` events, then refuses with retryAfterMs > 0', withStore(async (store) => {
        const limiter = store.limiter({ name: limiterName(), points: 3, durationSeconds: 60 });
        const key = randomKey();
        assert.deepEqual(await limiter.consume(key), { ok: true, remaining: 2 });
        assert.deepEqual(await limiter.consume(key), { ok: true, remaining: 1 });
        assert.deepEqual(await limiter.consume(key), { ok: true, remaining: 0 });
        const refused = await limiter.consume(key);
        assert.ok(!refused.ok && refused.retryAfterMs > 0 && refused.retryAfterMs <= 60_000, JSON.stringify(refused));
      }));

      it('peeks without counting', withStore(async (store) => {
        const limiter = store.limiter({ name: limiterName(), points: 2, durationSeconds: 60 });
        const key = randomKey();
        assert.deepEqual(await limiter.peek(key), { ok: true, remaining: 2 });
        await limiter.consume(key);
        for (let i = 0; i < 3; i += 1) assert.deepEqual(await limiter.peek(key), { ok: true, remaining: 1 });
        assert.deepEqual(await limiter.consume(key), { ok: true, remaining: 0 });
        assert.equal((await limiter.consume(key)).ok, false);
        assert.equal((await limiter.peek(key)).ok, false);
      }));

      it('starts over after reset', withStore(async (store) => {
        const limiter = store.limiter({ name: limiterName(), points: 1, durationSeconds: 60 });
        const key = randomKey();
        await limiter.consume(key);
        assert.equal((await limiter.consume(key)).ok, false);
        await limiter.reset(key);
        assert.deepEqual(await limiter.consume(key), { ok: true, remaining: 0 });
      }));

      it('counts a consume of several points', withStore(async (store) => {
        const limiter = store.limiter({ name: limiterName(), points: 5, durationSeconds: 60 });
        const key = randomKey();
        assert.deepEqual(await limiter.consume(key, 4), { ok: true, remaining: 1 });
        assert.equal((await limiter.consume(key, 2)).ok, false);
      }));

      it('stays blocked for blockSeconds, past the end of the window', withStore(async (store) => {
        const limiter = store.limiter({ name: limiterName(), points: 1, durationSeconds: 1, blockSeconds: 3 });
        const key = randomKey();
        await limiter.consume(key);
        const refused = await limiter.consume(key);
        assert.ok(!refused.ok && refused.retryAfterMs > 2_000 && refused.retryAfterMs <= 3_000, JSON.stringify(refused));
        await sleep(1_200); // the 1 s window is over; the block is not
        const still = await limiter.consume(key);
        assert.ok(!still.ok && still.retryAfterMs > 0 && still.retryAfterMs < 2_000, JSON.stringify(still));
      }));

      it('keeps the counts of differently named limiters apart', withStore(async (store) => {
        const name = limiterName();
        const a = store.limiter({ name: `${name}-a`, points: 1, durationSeconds: 60 });
        const b = store.limiter({ name: `${name}-b`, points: 1, durationSeconds: 60 });
        const key = randomKey();
        await a.consume(key);
        assert.equal((await a.consume(key)).ok, false);
        assert.deepEqual(await b.consume(key), { ok: true, remaining: 0 });
      }));

      it('counts concurrent consumes exactly', withStore(async (store) => {
        const limiter = store.limiter({ name: limiterName(), points: 10, durationSeconds: 60 });
        const key = randomKey();
        const results = await Promise.all(Array.from({ length: 25 }, () => limiter.consume(key)));
        assert.equal(results.filter((r) => r.ok).length, 10);
      }));
    });
  });
}
