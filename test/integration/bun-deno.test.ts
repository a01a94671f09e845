/**
 * `blockid-otp/fetch` and `blockid-otp/hono` for real on Bun and on Deno: the BUILT package on
 * each runtime's own server (`Bun.serve`, `Deno.serve`, test/fixtures/runtime-app.ts), checked
 * over real sockets from this Node process with the same black-box requests as the HTTP contract.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { builtPackage, repoRoot } from '../helpers/built.js';
import { assertNoCodeLeaked, Client } from '../helpers/client.js';
import { runtimeBinary, startRuntimeApp, type RuntimeApp, type RuntimeName } from '../helpers/runtimes.js';
import pg from 'pg';
import { createClient } from 'redis';
import { cookieSession } from '../../src/fetch.js';
import { createCookieSessions } from '../../src/core/http/cookie-session.js';
import { SESSION_FLAG } from '../../src/core/http/handler.js';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp.js';

/** The `secret` of test/fixtures/runtime-app.ts. */
const RUNTIME_SECRET = 'runtime-test-secret-0123456789-abcdefghij';

const script = join(repoRoot, 'test', 'fixtures', 'runtime-app.ts');
const json = { 'content-type': 'application/json' };

interface Sent {
  username: string;
  channel: string;
  code: string;
}

const runs: Array<[RuntimeName, 'fetch' | 'hono']> = [
  ['bun', 'fetch'],
  ['deno', 'fetch'],
  ['bun', 'hono'],
  ['deno', 'hono'],
];

for (const [runtime, adapter] of runs) {
  describe(`blockid-otp/${adapter} on ${runtime}`, { skip: runtimeBinary(runtime) === undefined && `${runtime} is not installed` }, () => {
    const apps: RuntimeApp[] = [];
    const codes = new Set<string>();
    let app: RuntimeApp;

    const start = async (limits: object = {}, asIs = false) => {
      const dist = await builtPackage();
      const started = await startRuntimeApp(runtime, script, {
        BLOCKID_OTP_DIST: dist,
        BLOCKID_OTP_LIMITS: JSON.stringify(limits),
        BLOCKID_OTP_AS_IS: asIs ? '1' : '',
        BLOCKID_OTP_ADAPTER: adapter,
      });
      apps.push(started);
      return started;
    };
    /** Every code the app has sent so far (through its test-only route). */
    const outbox = async (target = app): Promise<Sent[]> => {
      const sent = (await (await fetch(`${target.url}/__test/outbox`)).json()) as Sent[];
      for (const message of sent) codes.add(message.code);
      return sent;
    };
    /** The newest code sent to `username`, waiting for the delivery that runs after the 202. */
    const codeFor = async (username: string, count: number, target = app): Promise<string> => {
      for (let tries = 0; tries < 500; tries++) {
        const mine = (await outbox(target)).filter((message) => message.username === username);
        if (mine.length >= count) return mine[mine.length - 1]!.code;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      throw new Error(`no code number ${count} for ${username}`);
    };

    before(async () => {
      app = await start({ maxConsecutiveFailures: 3 });
    });
    after(async () => {
      for (const started of apps) await started.close();
    });

    it('sends, refuses a wrong code with 401, verifies the right one, and then lets the guard through', async () => {
      const client = new Client(app.url);
      const guard = await client.get('/account');
      assert.equal(guard.status, 401);
      assert.equal(guard.body.error, 'otp_required');
      const page = await client.get('/account', 'text/html');
      assert.equal(page.status, 303);
      assert.equal(page.headers.get('location'), '/login');

      const sent = await client.post('/otp/send', { username: 'john.smith' });
      assert.equal(sent.status, 202, sent.text);
      assert.deepEqual(sent.body, { status: 'sent', expiresIn: 300, resendIn: 30 });
      assert.equal(sent.headers.get('cache-control'), 'no-store');
      assert.match(sent.headers.getSetCookie()[0] ?? '', /^blockid-otp=v1\.[\w-]+; Max-Age=86400; Path=\/; HttpOnly; SameSite=Lax$/);
      const code = await codeFor('john.smith', 1);
      const messages = (await outbox()).filter((message) => message.username === 'john.smith');
      assert.deepEqual(messages.map((message) => message.channel).sort(), ['email', 'sms'], 'one code to both channels');

      const wrong = await client.post('/otp/verify', { username: 'john.smith', code: code === '000000' ? '111111' : '000000' });
      assert.equal(wrong.status, 401);
      assert.equal(wrong.body.error, 'invalid_code');
      const before = client.cookie;
      const verified = await client.post('/otp/verify', { username: 'john.smith', code });
      assert.equal(verified.status, 200, verified.text);
      assert.deepEqual(verified.body, { status: 'verified', username: 'john.smith' });
      assert.notEqual(client.cookie, before, 'a new session cookie');
      const status = await client.get('/otp/status');
      assert.equal(status.body.verified, true);
      assert.equal(status.body.method, 'code');
      assert.equal((await client.get('/account')).status, 200);
      assert.equal((await client.post('/otp/verify', { username: 'john.smith', code })).status, 401, 'a code works once');
    });

    it('answers 415 to a body that is not JSON and 413 to one over the limit', async () => {
      const form = await fetch(`${app.url}/otp/send`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'username=john.smith',
      });
      assert.equal(form.status, 415);
      assert.equal(((await form.json()) as { error: string }).error, 'unsupported_media_type');
      const big = await fetch(`${app.url}/otp/send`, { method: 'POST', headers: json, body: JSON.stringify({ username: 'x'.repeat(20_000) }) });
      assert.equal(big.status, 413);
      assert.equal(((await big.json()) as { error: string }).error, 'payload_too_large');
      const unknownPath = await fetch(`${app.url}/otp/nothing-here`, { method: 'POST', headers: json, body: '{}' });
      assert.equal(unknownPath.status, 404);
    });

    it('answers an unknown username exactly as a known one, and delivers nothing for it', async () => {
      const send = async (username: string) => {
        const response = await fetch(`${app.url}/otp/send`, { method: 'POST', headers: json, body: JSON.stringify({ username }) });
        const headers = [...response.headers].filter(([name]) => name !== 'date' && name !== 'set-cookie').sort();
        return {
          status: response.status,
          body: await response.text(),
          headers,
          cookie: response.headers.getSetCookie().map((c) => c.replace(/=v1\.[\w-]+/, '=…')),
        };
      };
      const known = await send('ada.lovelace');
      const unknown = await send('nobody.at.all');
      assert.deepEqual(unknown, known);
      await codeFor('ada.lovelace', 1);
      assert.equal((await outbox()).filter((message) => message.username === 'nobody.at.all').length, 0);
    });

    it('stops at maxConsecutiveFailures: after 3 wrong guesses even the right code gets 429', async () => {
      const client = new Client(app.url);
      assert.equal((await client.post('/otp/send', { username: 'grace.hopper' })).status, 202);
      const code = await codeFor('grace.hopper', 1);
      const wrong = code === '000000' ? '111111' : '000000';
      for (let guess = 0; guess < 3; guess++) assert.equal((await client.post('/otp/verify', { username: 'grace.hopper', code: wrong })).status, 401);
      const locked = await client.post('/otp/verify', { username: 'grace.hopper', code });
      assert.equal(locked.status, 429, locked.text);
      assert.equal(locked.body.error, 'too_many_attempts');
      assert.equal((await client.get('/account')).status, 401);
    });

    // Hono always gets the runtime's own argument (`Bun.serve({ fetch: app.fetch })`): one run.
    for (const asIs of adapter === 'hono' ? [true] : [false, true]) {
      const handedOver = adapter === 'hono' ? 'app.fetch' : 'otp.fetch';
      const how = asIs
        ? `with ${handedOver} handed to ${runtime === 'bun' ? 'Bun.serve' : 'Deno.serve'} as is`
        : `from ${runtime === 'bun' ? 'server.requestIP' : 'info.remoteAddr'}`;
      it(`counts the per-IP send quota with the address the runtime gives (${how})`, async () => {
        const limited = await start({ sendsPerIp: { points: 2, windowSeconds: 3600 } }, asIs);
        // An attacker's rotation of sessions and of X-Forwarded-For (not trusted: trustProxy 0) changes nothing.
        let hop = 0;
        const sendFromNewSession = (username: string) =>
          new Client(limited.url).post('/otp/send', { username }, { headers: { 'x-forwarded-for': `198.51.100.${++hop}` } });
        assert.equal((await sendFromNewSession('john.smith')).status, 202);
        assert.equal((await sendFromNewSession('ada.lovelace')).status, 202);
        const third = await sendFromNewSession('grace.hopper');
        assert.equal(third.status, 429, third.text);
        assert.equal(third.body.error, 'rate_limited');
        assert.doesNotMatch(limited.stderr(), /no client IP/);
      });
    }

    it("opens a session cookie sealed by Node's WebCrypto, and refuses it with one bit flipped or under another secret", async () => {
      const seal = async (secret: string) => {
        const state = await createCookieSessions(cookieSession({ secure: false }), secret).load(undefined);
        state.port.write(SESSION_FLAG, { verified: true, username: 'ada.lovelace', verifiedAt: Date.now(), method: 'code' });
        return (await state.setCookie())!.split(';')[0]!;
      };
      const get = (cookie: string) => fetch(`${app.url}/account`, { headers: { cookie } });
      const sealed = await seal(RUNTIME_SECRET);
      assert.equal((await get(sealed)).status, 200, 'the same AES-GCM and HKDF on both sides');
      const bytes = Buffer.from(sealed.slice(sealed.indexOf('v1.') + 3), 'base64url');
      bytes[20] = bytes[20]! ^ 1;
      assert.equal((await get(`blockid-otp=v1.${bytes.toString('base64url')}`)).status, 401);
      assert.equal((await get(await seal('another-secret-0123456789-abcdefghijklmn'))).status, 401);
    });

    it('never puts a code in a response', async () => {
      await outbox();
      assert.ok(codes.size > 0);
      assert.ok(assertNoCodeLeaked(codes) > 0);
    });
  });
}

/** The shared stores: where the code lives between an app on Bun and one on Deno. */
const sharedStores: Array<{ name: string; env: Record<string, string>; connect(): Promise<void>; holdsRecords(): Promise<boolean>; cleanUp(): Promise<void> }> =
  [
    (() => {
      const prefix = `otp-runtimes-${process.pid}-${Date.now().toString(36)}:`;
      const redis = createClient({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', socket: { reconnectStrategy: false, connectTimeout: 2000 } });
      return {
        name: 'redisStore',
        env: { BLOCKID_OTP_REDIS_PREFIX: prefix },
        connect: async () => void (await redis.connect()),
        holdsRecords: async () => (await redis.keys(`${prefix}*`)).length > 0,
        cleanUp: async () => {
          if (!redis.isOpen) return;
          for await (const keys of redis.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) if (keys.length > 0) await redis.del(keys);
          await redis.quit();
        },
      };
    })(),
    (() => {
      const schema = `otp_runtimes_${process.pid}_${Date.now().toString(36)}`;
      const pool = new pg.Pool({
        connectionString: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
        max: 2,
        connectionTimeoutMillis: 2000,
      });
      pool.on('error', () => {});
      return {
        name: 'postgresStore',
        env: { BLOCKID_OTP_PG_SCHEMA: schema },
        connect: async () => void (await pool.query('SELECT 1')),
        holdsRecords: async () => ((await pool.query(`SELECT count(*)::int AS n FROM "${schema}".blockid_otp_slots`)).rows[0] as { n: number }).n > 0,
        cleanUp: async () => {
          await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
          await pool.end();
        },
      };
    })(),
  ];

for (const shared of sharedStores) {
  describe(`${shared.name} shared by an app on Bun and one on Deno`, {
    skip: (runtimeBinary('bun') === undefined || runtimeBinary('deno') === undefined) && 'bun or deno is not installed',
  }, () => {
    const apps: RuntimeApp[] = [];
    after(async () => {
      for (const app of apps) await app.close();
      await shared.cleanUp();
    });

    it('verifies a code sent through Bun once, through Deno with the same cookie, and the session opens on both', async (t) => {
      try {
        await shared.connect();
      } catch {
        return t.skip(`the database of ${shared.name} is not running`);
      }
      const env = { BLOCKID_OTP_DIST: await builtPackage(), ...shared.env };
      const onBun = await startRuntimeApp('bun', script, env);
      apps.push(onBun);

      const bunClient = new Client(onBun.url);
      assert.equal((await bunClient.post('/otp/send', { username: 'ada.lovelace' })).status, 202);
      let code: string | undefined;
      for (let tries = 0; code === undefined && tries < 500; tries++) {
        const sent = (await (await fetch(`${onBun.url}/__test/outbox`)).json()) as Sent[];
        code = sent.find((message) => message.username === 'ada.lovelace')?.code;
        if (code === undefined) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.ok(code);
      assert.ok(await shared.holdsRecords(), 'the code record is in the shared store');

      // Started after the first send, so the two do not race to create the schema.
      const onDeno = await startRuntimeApp('deno', script, env);
      apps.push(onDeno);
      const denoClient = new Client(onDeno.url);
      denoClient.cookie = bunClient.cookie;
      const verified = await denoClient.post('/otp/verify', { username: 'ada.lovelace', code });
      assert.equal(verified.status, 200, verified.text);
      assert.equal((await bunClient.post('/otp/verify', { username: 'ada.lovelace', code })).status, 401, 'used once, across runtimes');
      assert.equal((await denoClient.get('/account')).status, 200);
      bunClient.cookie = denoClient.cookie;
      assert.equal((await bunClient.get('/account')).status, 200, "Deno's cookie opens on Bun");
      assertNoCodeLeaked([code]);
    });
  });
}

for (const runtime of ['bun', 'deno'] as RuntimeName[]) {
  describe(`nodemailerEmail on ${runtime}`, { skip: runtimeBinary(runtime) === undefined && `${runtime} is not installed` }, () => {
    let smtp: SmtpSink | undefined;
    let app: RuntimeApp | undefined;
    after(async () => {
      await app?.close();
      await smtp?.stop();
    });

    it('mails the code over SMTP from the runtime, and the mailed code verifies', async () => {
      smtp = await startSmtpSink();
      app = await startRuntimeApp(runtime, script, { BLOCKID_OTP_DIST: await builtPackage(), BLOCKID_OTP_SMTP_URL: smtp.url });
      const client = new Client(app.url);
      assert.equal((await client.post('/otp/send', { username: 'ada.lovelace', channel: 'email' })).status, 202);
      const [mail] = await smtp.waitFor(1, 15_000);
      assert.ok(mail?.subject, 'a subject');
      assert.match(mail?.to && 'text' in mail.to ? mail.to.text : '', /ada@example\.com/);
      const code = /\b(\d{6})\b/.exec(mail?.text ?? '')?.[1];
      assert.ok(code, 'a code in the email');
      const verified = await client.post('/otp/verify', { username: 'ada.lovelace', code });
      assert.equal(verified.status, 200, verified.text);
      assertNoCodeLeaked([code]);
    });
  });
}
