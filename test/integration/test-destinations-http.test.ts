/**
 * Test mode over real HTTP, once per framework: `testDestinations` issue a fixed code and
 * deliver nothing, and everything else (cooldown, attempts, lock, session binding, single use,
 * regeneration, expiry, production rule) works as for real codes. The stores never hold a
 * fixed code in plain.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { createClient, type RedisClientType } from 'redis';
import { memoryStore, redisStore, type Destinations, type OtpOptions } from '../../src/index.js';
import type { OtpStore } from '../../src/stores/types.js';
import { DELIVERY_PAUSE_MS } from '../../src/core/send/after-reply.js';
import { Client, holdsCode } from '../helpers/client.js';
import { frameworks, type TestApp } from '../helpers/apps.js';
import { keysUnder, reconnectStrategy } from '../helpers/redis-server.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Past the random pause before an HTTP send's delivery starts: whatever was going to be delivered has been. */
const afterDeliveries = () => sleep(DELIVERY_PAUSE_MS.max + 50);
const DAY_MS = 24 * 60 * 60 * 1000;

const TEST_PHONE_CODE = '123456';
const TEST_EMAIL_CODE = '000000';
const testDestinations = { '+1 (415) 555-0123': TEST_PHONE_CODE, 'qa@example.com': TEST_EMAIL_CODE };

const users: Record<string, Destinations> = {
  reviewer: { smsTo: '4155550123', smsISDCode: '1' }, // a test number, in another writing
  qa: { emailTo: 'qa@EXAMPLE.com' }, // a test address, domain in another case
  mixed: { smsTo: '+1 415 555 0123', emailTo: 'mixed@example.com' }, // a test number and a real address
  'john.smith': { smsTo: '4155550100', smsISDCode: '1', emailTo: 'john.smith@example.com' },
  'grace.hopper': { smsTo: '(613) 555-0100' },
};

/** A store that keeps a printout of everything it is given and answers: all a memory store can ever hold. */
function recordingStore(inner: OtpStore): { store: OtpStore; seen: string[] } {
  const seen: string[] = [];
  const print = (value: unknown) => inspect(value, { depth: null, maxArrayLength: null, maxStringLength: null });
  const store = new Proxy(inner, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver);
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        seen.push(print(args));
        const result = await value.apply(target, args);
        seen.push(print(result));
        return result;
      };
    },
  });
  return { store, seen };
}

/** Every key and value under `prefix`, whatever its type. */
async function dumpRedis(client: RedisClientType, prefix: string): Promise<Array<{ key: string; type: string; value: unknown }>> {
  const dump = [];
  for (const key of await keysUnder(client, prefix)) {
    const type = await client.type(key);
    const value =
      type === 'string'
        ? await client.get(key)
        : type === 'hash'
          ? await client.hGetAll(key)
          : type === 'list'
            ? await client.lRange(key, 0, -1)
            : type === 'set'
              ? await client.sMembers(key)
              : type === 'zset'
                ? await client.zRangeWithScores(key, 0, -1)
                : `unexpected type ${type}`;
    dump.push({ key, type, value });
  }
  return dump;
}

/** Sets NODE_ENV while `work` runs (an app is created), then puts it back. */
async function withNodeEnv<T>(value: string, work: () => Promise<T>): Promise<T> {
  const saved = process.env.NODE_ENV;
  process.env.NODE_ENV = value;
  try {
    return await work();
  } finally {
    if (saved === undefined) delete process.env.NODE_ENV;
    else process.env.NODE_ENV = saved;
  }
}

let redis: RedisClientType;
const runPrefix = `otp-test:test-destinations:${randomBytes(6).toString('hex')}:`;

before(async () => {
  redis = createClient({ url: 'redis://127.0.0.1:6379', socket: { reconnectStrategy } });
  redis.on('error', () => {});
  await redis.connect();
});

after(async () => {
  const leftovers = await keysUnder(redis, runPrefix);
  if (leftovers.length > 0) await redis.del(leftovers);
  redis.destroy();
});

for (const [framework, makeApp] of frameworks) {
  describe(`test destinations over HTTP on ${framework}`, () => {
    const apps: TestApp[] = [];
    const warnings: string[] = [];
    const logged: string[] = [];
    const options = (overrides: Partial<OtpOptions> = {}): Partial<OtpOptions> => ({
      resolveUser: (username) => users[username] ?? null,
      testDestinations,
      logger: {
        info: (details, message) => void logged.push(inspect(details) + (message ?? '')),
        warn: (details, message) => {
          logged.push(inspect(details) + (message ?? ''));
          if (/test destinations are on|test mode/.test(message ?? '')) warnings.push(message ?? '');
        },
        error: (details, message) => void logged.push(inspect(details) + (message ?? '')),
      },
      ...overrides,
    });
    const start = async (overrides: Partial<OtpOptions> = {}) => {
      const app = await makeApp({ otp: options(overrides) });
      apps.push(app);
      return app;
    };
    after(async () => {
      for (const app of apps) await app.close();
      const leaked = logged.filter((line) => line.includes(TEST_PHONE_CODE) || line.includes(TEST_EMAIL_CODE));
      assert.deepEqual(leaked, [], 'no log line holds a fixed code');
    });

    const send = async (client: Client, username: string, channel?: string) => {
      const reply = await client.post('/otp/send', channel === undefined ? { username } : { username, channel });
      return reply;
    };
    const verify = (client: Client, username: string, code: string) => client.post('/otp/verify', { username, code });

    it('a send to a test number delivers nothing; its fixed code verifies exactly once and regenerates the session', async () => {
      const app = await start();
      assert.equal(warnings.length, 1, 'one start-up warning per app');
      assert.match(warnings[0] ?? '', /1 test destination|2 test destinations/);
      const sent: unknown[] = [];
      app.service.on('sent', (event) => void sent.push(event));
      const client = new Client(app.url);
      const reply = await send(client, 'reviewer');
      assert.equal(reply.status, 202);
      assert.deepEqual(reply.body, { status: 'sent', expiresIn: 300, resendIn: 30 });
      await afterDeliveries();
      assert.equal(app.capture.outbox.length, 0, 'no sender was called');
      assert.deepEqual(sent, [{ username: 'reviewer', channel: 'sms', destination: '+1******0123', ip: '127.0.0.1', test: true }]);

      const sessionBefore = client.sessionId;
      const ok = await verify(client, 'reviewer', TEST_PHONE_CODE);
      assert.equal(ok.status, 200, ok.text);
      assert.deepEqual(ok.body, { status: 'verified', username: 'reviewer' });
      assert.notEqual(client.sessionId, sessionBefore, 'the session was regenerated');
      assert.equal((await client.get('/account')).status, 200);
      assert.equal((await verify(client, 'reviewer', TEST_PHONE_CODE)).status, 401, 'the fixed code works once per send');
    });

    it('a test address gets its own fixed code (email channel) and nothing is mailed', async () => {
      const app = await start();
      const client = new Client(app.url);
      assert.equal((await send(client, 'qa')).status, 202);
      assert.equal((await verify(client, 'qa', TEST_PHONE_CODE)).status, 401, "another destination's code is refused");
      assert.equal((await verify(client, 'qa', TEST_EMAIL_CODE)).status, 200);
      await afterDeliveries();
      assert.equal(app.capture.outbox.length, 0);
    });

    it('works exactly once under concurrent verifies', async () => {
      const app = await start();
      const client = new Client(app.url);
      await send(client, 'reviewer');
      const cookie = client.cookie;
      const replies = await Promise.all(
        Array.from({ length: 8 }, () => {
          const copy = new Client(app.url);
          copy.cookie = cookie;
          return verify(copy, 'reviewer', TEST_PHONE_CODE);
        }),
      );
      assert.deepEqual(replies.map((r) => r.status).sort(), [200, 401, 401, 401, 401, 401, 401, 401]);
    });

    it('the fixed code is bound to the session that asked for it', async () => {
      const app = await start();
      const asker = new Client(app.url);
      const other = new Client(app.url);
      assert.equal((await send(asker, 'reviewer')).status, 202);
      assert.equal((await verify(other, 'reviewer', TEST_PHONE_CODE)).status, 401, 'another session cannot use it');
      assert.equal((await verify(asker, 'reviewer', TEST_PHONE_CODE)).status, 200, 'the asking session still can');
      assert.deepEqual((await other.get('/otp/status')).body, { verified: false });
    });

    it('the resend cooldown holds, per session', async () => {
      const app = await start({ resendCooldownSeconds: 30 });
      const client = new Client(app.url);
      assert.equal((await send(client, 'reviewer')).status, 202);
      const again = await send(client, 'reviewer');
      assert.equal(again.status, 429);
      assert.equal(again.body.error, 'rate_limited');
      assert.ok(again.body.retryAfter >= 1 && again.body.retryAfter <= 30);
      assert.equal(again.headers.get('retry-after'), String(again.body.retryAfter));
      assert.equal((await send(new Client(app.url), 'reviewer')).status, 202, 'another session may send');
      assert.equal((await verify(client, 'reviewer', TEST_PHONE_CODE)).status, 200, 'the refused send left the code working');
    });

    it('maxAttempts wrong guesses burn the fixed code until a new send', async () => {
      const app = await start({ maxAttempts: 3, resendCooldownSeconds: 0 });
      const client = new Client(app.url);
      await send(client, 'reviewer');
      for (let i = 0; i < 3; i++) assert.equal((await verify(client, 'reviewer', '999999')).status, 401);
      const burned = await verify(client, 'reviewer', TEST_PHONE_CODE);
      assert.equal(burned.status, 429);
      assert.equal(burned.body.error, 'too_many_attempts');
      assert.equal((await send(client, 'reviewer')).status, 202);
      assert.equal((await verify(client, 'reviewer', TEST_PHONE_CODE)).status, 200, 'a new send issues the fixed code afresh');
    });

    it('the lock after failedVerifications wrong guesses refuses the fixed code too, until unlock()', async () => {
      const app = await start({ resendCooldownSeconds: 0, limits: { failedVerifications: 2, lockSeconds: 60 } });
      const client = new Client(app.url);
      await send(client, 'reviewer');
      assert.equal((await verify(client, 'reviewer', '999999')).status, 401);
      assert.equal((await verify(client, 'reviewer', '999998')).status, 401);
      const locked = await verify(client, 'reviewer', TEST_PHONE_CODE);
      assert.equal(locked.status, 429);
      assert.equal(locked.body.error, 'too_many_attempts');
      await send(client, 'reviewer');
      assert.equal((await verify(client, 'reviewer', TEST_PHONE_CODE)).status, 429, 'a new send does not lift the lock');
      await app.service.unlock('reviewer');
      assert.equal((await verify(client, 'reviewer', TEST_PHONE_CODE)).status, 200);
    });

    it('a test number plus a real address (channel both) is a real send on every channel', async () => {
      const app = await start();
      const sent: Array<{ test?: true }> = [];
      app.service.on('sent', (event) => void sent.push(event));
      const client = new Client(app.url);
      assert.equal((await send(client, 'mixed', 'both')).status, 202);
      const messages = await app.capture.waitFor(2);
      assert.deepEqual(messages.map((m) => `${m.channel} ${m.to}`).sort(), ['email mixed@example.com', 'sms +14155550123']);
      const [first, second] = messages;
      assert.equal(first?.code, second?.code, 'one random code on both channels');
      assert.match(first?.code ?? '', /^\d{6}$/);
      assert.notEqual(first?.code, TEST_PHONE_CODE);
      assert.ok(
        sent.every((event) => event.test === undefined),
        'real sends are not marked test',
      );
      assert.equal((await verify(client, 'mixed', TEST_PHONE_CODE)).status, 401, 'the fixed code is refused');
      assert.equal((await verify(client, 'mixed', first?.code ?? '')).status, 200);
    });

    it('the same user asking for the test number only (channel sms) gets the fixed code', async () => {
      const app = await start();
      const client = new Client(app.url);
      assert.equal((await send(client, 'mixed', 'sms')).status, 202);
      assert.equal((await verify(client, 'mixed', TEST_PHONE_CODE)).status, 200);
      await afterDeliveries();
      assert.equal(app.capture.outbox.length, 0);
    });

    it('under NODE_ENV=production, refuses testDestinations without an expiry or with one over 30 days ahead (TypeError)', async () => {
      const factories: Record<string, string> = {
        express: 'blockidOtp',
        koa: 'blockidOtpKoa',
        fetch: 'createOtpHandler',
        hono: 'blockidOtpHono',
        fastify: 'blockidOtpFastify',
      };
      const factory = factories[framework.split(' ')[0] ?? ''];
      const refused = (name: RegExp) => (error: unknown) => {
        assert.ok(error instanceof TypeError, String(error));
        assert.ok(error.message.startsWith(`${factory}: `), error.message);
        assert.match(error.message, name);
        assert.ok(!error.message.includes(TEST_PHONE_CODE) && !error.message.includes(TEST_EMAIL_CODE), 'no code in the message');
        return true;
      };
      await withNodeEnv('production', async () => {
        await assert.rejects(
          start(),
          refused(/option "testDestinations" is refused without option "testDestinationsExpireAt" unless NODE_ENV is "development" or "test"/),
        );
        await assert.rejects(
          start({ testDestinationsExpireAt: new Date(Date.now() + 31 * DAY_MS) }),
          refused(/option "testDestinationsExpireAt" more than 30 days ahead/),
        );
        await assert.rejects(
          start({ testDestinationsExpireAt: new Date(Date.now() + 400 * DAY_MS).toISOString().slice(0, 10) }),
          refused(/more than 30 days ahead/),
        );
      });
      const app = await withNodeEnv('production', () => start({ testDestinationsExpireAt: new Date(Date.now() + 29 * DAY_MS).toISOString() }));
      const client = new Client(app.url);
      assert.equal((await send(client, 'reviewer')).status, 202);
      assert.equal((await verify(client, 'reviewer', TEST_PHONE_CODE)).status, 200, 'within 30 days (the app-store review case) it works');
    });

    it('after testDestinationsExpireAt the fixed code is refused and a real code is delivered', async () => {
      const expiresAt = new Date(Date.now() + 2000); // room for the app, a send and a verify on a loaded machine
      const app = await start({ resendCooldownSeconds: 0, testDestinationsExpireAt: expiresAt });
      const before = new Client(app.url);
      await send(before, 'reviewer');
      assert.equal((await verify(before, 'reviewer', TEST_PHONE_CODE)).status, 200, 'before the expiry: test mode');
      await sleep(Math.max(0, expiresAt.getTime() - Date.now()) + 50);

      const client = new Client(app.url);
      assert.equal((await send(client, 'reviewer')).status, 202);
      const [message] = await app.capture.waitFor(1);
      assert.equal(message?.to, '+14155550123');
      assert.notEqual(message?.code, TEST_PHONE_CODE);
      assert.equal((await verify(client, 'reviewer', TEST_PHONE_CODE)).status, 401, 'the fixed code is refused');
      assert.equal((await verify(client, 'reviewer', message?.code ?? '')).status, 200);

      const expired = await start({ testDestinationsExpireAt: '2020-01-31' });
      assert.match(warnings.at(-1) ?? '', /test mode expired at 2020-01-31T00:00:00.000Z/);
      const late = new Client(expired.url);
      await send(late, 'qa');
      const [mail] = await expired.capture.waitFor(1);
      assert.equal(mail?.channel, 'email');
      assert.equal((await verify(late, 'qa', TEST_EMAIL_CODE)).status, 401);
      assert.equal((await verify(late, 'qa', mail?.code ?? '')).status, 200);
    });

    it('spends no SMS budget: with smsPerDay 1, test sends keep succeeding and a real SMS still goes out', async () => {
      const app = await start({ resendCooldownSeconds: 0, limits: { smsPerDay: 1 } });
      for (let i = 0; i < 4; i++) {
        const client = new Client(app.url);
        assert.equal((await send(client, 'reviewer')).status, 202);
        assert.equal((await verify(client, 'reviewer', TEST_PHONE_CODE)).status, 200, `test send ${i + 1}`);
      }
      const real = new Client(app.url);
      assert.equal((await send(real, 'john.smith', 'sms')).status, 202);
      const [sms] = await app.capture.waitFor(1);
      assert.equal(sms?.to, '+14155550100', 'the one SMS of the day is still there for a real number');
      assert.equal((await verify(real, 'john.smith', sms?.code ?? '')).status, 200);

      const over = await send(new Client(app.url), 'grace.hopper', 'sms');
      assert.equal(over.status, 429, 'and then the budget is spent');
      assert.equal((await send(new Client(app.url), 'reviewer')).status, 202, 'test sends still succeed');
      await afterDeliveries();
      assert.equal(app.capture.outbox.length, 1);
    });

    it('generateOtp() to test destinations resolves with their channels and calls no sender', async () => {
      const app = await start();
      const sent: Array<{ test?: true; channel: string }> = [];
      app.service.on('sent', (event) => void sent.push(event));
      const result = await app.service.generateOtp('reviewer', { smsTo: '(415) 555-0123', smsISDCode: '+1' });
      assert.deepEqual(result.channels, ['sms']);
      assert.ok(result.expiresAt instanceof Date && result.expiresAt.getTime() > Date.now());
      assert.deepEqual(await app.service.verifyOtp('reviewer', TEST_PHONE_CODE), { ok: true });
      assert.deepEqual(await app.service.verifyOtp('reviewer', TEST_PHONE_CODE), { ok: false, reason: 'invalid_code' });

      const both = await app.service.generateOtp('both', { smsTo: '4155550123', emailTo: 'qa@example.com' });
      assert.deepEqual([...both.channels].sort(), ['email', 'sms']);
      assert.deepEqual(sent.map((event) => `${event.channel} ${String(event.test)}`).sort(), ['email true', 'sms true', 'sms true']);
      assert.deepEqual(await app.service.verifyOtp('both', TEST_PHONE_CODE), { ok: true }, "the first target's fixed code goes to both");
      assert.equal(app.capture.outbox.length, 0);

      const mixed = await app.service.generateOtp('mixed', { smsTo: '4155550123', emailTo: 'mixed@example.com' });
      assert.deepEqual([...mixed.channels].sort(), ['email', 'sms']);
      assert.equal(app.capture.outbox.length, 2, 'a real destination makes it a real send on both');
      assert.deepEqual(await app.service.verifyOtp('mixed', TEST_PHONE_CODE), { ok: false, reason: 'invalid_code' });
    });

    const storeCases: Array<[string, () => { store: OtpStore; inspect(): Promise<string[]> }]> = [
      [
        'memory',
        () => {
          const { store, seen } = recordingStore(memoryStore());
          return { store, inspect: async () => seen };
        },
      ],
      [
        'Redis',
        () => {
          const prefix = `${runPrefix}${framework.replace(/\W+/g, '-')}:`;
          return {
            store: redisStore({ client: redis, prefix }),
            inspect: async () => (await dumpRedis(redis, prefix)).map((entry) => inspect(entry, { depth: null })),
          };
        },
      ],
    ];
    for (const [name, makeStore] of storeCases) {
      it(`the ${name} store holds no plain fixed code`, async () => {
        // Ten digits, so that no timestamp, counter or hash in the store can hold them by chance.
        const codes = { '+14155550123': '8642097531', 'qa@example.com': '1357924680' };
        const { store, inspect: contents } = makeStore();
        const app = await start({ store, codeLength: 10, testDestinations: codes, resendCooldownSeconds: 0 });
        const phone = new Client(app.url);
        const email = new Client(app.url);
        assert.equal((await send(phone, 'reviewer')).status, 202);
        assert.equal((await send(email, 'qa')).status, 202);
        await app.service.generateOtp('programmatic', { emailTo: 'qa@example.com' });
        const stored = await contents();
        assert.ok(stored.length >= 3, `the store holds state (${stored.length} entries)`);
        for (const entry of stored) {
          for (const code of Object.values(codes)) assert.ok(!holdsCode(entry, code), `the ${name} store holds a fixed code: ${entry}`);
        }
        assert.equal((await verify(phone, 'reviewer', codes['+14155550123'])).status, 200, 'what it holds still verifies');
        assert.equal((await verify(email, 'qa', codes['qa@example.com'])).status, 200);
        assert.deepEqual(await app.service.verifyOtp('programmatic', codes['qa@example.com']), { ok: true });
        for (const entry of await contents()) {
          for (const code of Object.values(codes)) assert.ok(!holdsCode(entry, code), `after verifying, the ${name} store holds a fixed code: ${entry}`);
        }
      });
    }
  });
}
