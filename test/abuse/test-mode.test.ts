/**
 * Test mode cannot be left on: `testDestinations` without `testDestinationsExpireAt` starts only
 * when NODE_ENV (trimmed, any case) is development or test, and a fixed code never verifies
 * after the expiry, also one sent just before it. Over real HTTP, on Express and Koa, and on
 * memory, Redis, Redis Cluster and PostgreSQL: an attacker who holds a test number's fixed code (it is in a
 * CI script, an app-store review note) must not get in once the window has closed.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { OtpOptions } from '../../src/index.js';
import { Client } from '../helpers/client.js';
import { frameworks, type TestApp } from '../helpers/apps.js';
import { describeOnStores } from '../helpers/store-matrix.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const DAY_MS = 24 * 60 * 60 * 1000;
const FIXED = '123456';
const otp = (overrides: Partial<OtpOptions> = {}): Partial<OtpOptions> => ({
  resolveUser: (username) => (username === 'reviewer' ? { smsTo: '4155550123' } : null),
  testDestinations: { '+14155550123': FIXED },
  logger: { info: () => {}, warn: () => {}, error: () => {} },
  ...overrides,
});

/** Sets NODE_ENV (or unsets it) while `work` runs, then puts it back. */
async function withNodeEnv<T>(value: string | undefined, work: () => Promise<T>): Promise<T> {
  const saved = process.env.NODE_ENV;
  if (value === undefined) delete process.env.NODE_ENV;
  else process.env.NODE_ENV = value;
  try {
    return await work();
  } finally {
    if (saved === undefined) delete process.env.NODE_ENV;
    else process.env.NODE_ENV = saved;
  }
}

for (const [framework, makeApp] of frameworks.slice(0, 2)) {
  describe(`test mode cannot be left on (${framework})`, () => {
    const apps: TestApp[] = [];
    after(async () => {
      for (const app of apps) await app.close();
    });

    for (const env of [undefined, 'production', 'Production', 'production ', 'prod', 'staging', 'PRODUCTION', 'testing', 'dev']) {
      it(`NODE_ENV ${env === undefined ? 'unset' : JSON.stringify(env)}: refused without an expiry, with a TypeError that names the fix`, async () => {
        await withNodeEnv(env, async () => {
          await assert.rejects(makeApp({ otp: otp() }), (error: unknown) => {
            assert.ok(error instanceof TypeError, String(error));
            assert.match(
              error.message,
              /option "testDestinations" is refused without option "testDestinationsExpireAt" unless NODE_ENV is "development" or "test"/,
            );
            assert.match(error.message, env === undefined ? /NODE_ENV is unset/ : /NODE_ENV is "/);
            assert.ok(!error.message.includes(FIXED), 'no code in the message');
            return true;
          });
          await assert.rejects(makeApp({ otp: otp({ testDestinationsExpireAt: new Date(Date.now() + 31 * DAY_MS) }) }), /more than 30 days ahead/);
        });
      });
    }

    for (const env of ['test', 'development', ' Test ', 'DEVELOPMENT', 'Development\n']) {
      it(`NODE_ENV ${JSON.stringify(env)}: accepted without an expiry`, async () => {
        const app = await withNodeEnv(env, () => makeApp({ otp: otp() }));
        apps.push(app);
        const client = new Client(app.url);
        assert.equal((await client.post('/otp/send', { username: 'reviewer' })).status, 202);
        assert.equal((await client.post('/otp/verify', { username: 'reviewer', code: FIXED })).status, 200);
      });
    }
  });
}

describeOnStores('a fixed code never verifies after testDestinationsExpireAt, also one sent just before it', ({ framework, makeApp, storeName, store }) => {
  it(`on ${framework} with ${storeName}`, async () => {
    const expiresAt = new Date(Date.now() + 3000); // room for the app, two sends and a verify on a loaded machine
    const app = await withNodeEnv('production', () => makeApp({ otp: otp({ store: store(), testDestinationsExpireAt: expiresAt }) }));
    try {
      const early = new Client(app.url);
      const late = new Client(app.url);
      assert.equal((await early.post('/otp/send', { username: 'reviewer' })).status, 202);
      assert.equal((await late.post('/otp/send', { username: 'reviewer' })).status, 202);
      assert.equal((await early.post('/otp/verify', { username: 'reviewer', code: FIXED })).status, 200, 'before the expiry the fixed code works');
      await sleep(Math.max(0, expiresAt.getTime() - Date.now()) + 150);
      assert.equal(app.capture.outbox.length, 0, 'a test destination is sent nothing (checked past the delivery pause)');
      const after = await late.post('/otp/verify', { username: 'reviewer', code: FIXED });
      assert.equal(after.status, 401, 'the fixed code issued before the expiry is refused after it');
      assert.equal(after.body.error, 'invalid_code');
    } finally {
      await app.close();
    }
  });
});
