/** memoryStore() stays bounded: a cap on entries that fails closed, and recovery once entries expire. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { memoryStore, OtpError } from '../src/index.js';
import { expressApp } from './helpers/apps.js';
import { Client } from './helpers/client.js';

const unavailable = (error: unknown) => error instanceof OtpError && error.code === 'STORE_UNAVAILABLE' && /full/.test(error.message);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('memoryStore({ maxEntries })', () => {
  it('refuses new codes and counters once full, then works again after they expire', async () => {
    const store = memoryStore({ maxEntries: 10, sweepIntervalMs: 60_000 });
    const record = { hash: 'h', binding: null };
    for (let i = 0; i < 5; i++) assert.deepEqual(await store.issue(`k${i}`, record, { ttlMs: 300, cooldownMs: 300 }), { ok: true });
    await assert.rejects(store.issue('k5', record, { ttlMs: 300, cooldownMs: 300 }), unavailable);
    const limiter = store.limiter({ name: 'q', points: 5, durationSeconds: 1 });
    await assert.rejects(limiter.consume('new-key'), unavailable);
    const again = await store.issue('k0', record, { ttlMs: 300, cooldownMs: 300 });
    assert.equal(again.ok, false, 'a cooldown answer needs no new entry, even when full');
    await sleep(1100); // past the ttl, and a second since the last sweep
    assert.deepEqual(await store.issue('k5', record, { ttlMs: 300, cooldownMs: 300 }), { ok: true });
    assert.equal((await limiter.consume('new-key')).ok, true);
    await store.close?.();
  });

  it('answers 503 unavailable over HTTP when full, never 500, and delivers nothing', async () => {
    const app = await expressApp({ otp: { store: memoryStore({ maxEntries: 12 }) } });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++) statuses.push((await new Client(app.url).post('/otp/send', { username: `flood.${i}` })).status);
      assert.ok(statuses.includes(202), statuses.join(','));
      assert.ok(statuses.slice(-3).every((s) => s === 503), statuses.join(','));
      const reply = await new Client(app.url).post('/otp/send', { username: 'john.smith' });
      assert.equal(reply.status, 503);
      assert.equal(reply.body.error, 'unavailable');
      await sleep(100);
      assert.equal(app.capture.messages.length, 0);
    } finally {
      await app.close();
    }
  });
});
