/** memoryStore() stays bounded: a cap on entries that fails closed, and recovery once entries expire. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { memoryStore, OtpError } from '../../src/index.js';
import { expressApp } from '../helpers/apps.js';
import { Client } from '../helpers/client.js';
import { counter, plan } from '../helpers/store-contract.js';

const unavailable = (error: unknown) => error instanceof OtpError && error.code === 'STORE_UNAVAILABLE' && /full/.test(error.message);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('memoryStore({ maxEntries })', () => {
  it('refuses new codes and counters once full, then works again after they expire', async () => {
    const store = memoryStore({ maxEntries: 10, sweepIntervalMs: 60_000 });
    const send = (user: string) => store.send(plan(user, { cooldownMs: 300, code: { hash: 'h', ttlMs: 300, issuedAtMs: Date.now() } }));
    for (let i = 0; i < 5; i++) assert.equal((await send(`k${i}`)).ok, true); // a code and a cooldown each
    await assert.rejects(send('k5'), unavailable);
    await assert.rejects(store.consume(counter('sendsPerIp', 5, { windowMs: 1000 })), unavailable);
    const again = await send('k0');
    assert.equal(again.ok, false, 'a cooldown answer needs no new entry, even when full');
    await sleep(1100); // past the ttl, and a second since the last sweep
    assert.equal((await send('k5')).ok, true);
    assert.equal(await store.consume(counter('sendsPerIp', 5, { windowMs: 1000 })), null);
    await store.close?.();
  });

  it('answers 503 unavailable over HTTP when full, never 500, and delivers nothing', async () => {
    const app = await expressApp({ otp: { store: memoryStore({ maxEntries: 12 }) } });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++) statuses.push((await new Client(app.url).post('/otp/send', { username: `flood.${i}` })).status);
      assert.ok(statuses.includes(202), statuses.join(','));
      assert.ok(
        statuses.slice(-3).every((s) => s === 503),
        statuses.join(','),
      );
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
