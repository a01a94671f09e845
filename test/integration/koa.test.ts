/**
 * What only Koa has: koa-session's two kinds of storage, `app.proxy`, body parsers that ran
 * first, and the context handed to `resolveUser`. The HTTP contract itself runs on Koa in
 * http-contract.test.ts.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import Koa from 'koa';
import koaSession from 'koa-session';
import { blockidOtpKoa, requireOtpKoa } from '../../src/koa.js';
import { Client } from '../helpers/client.js';
import { baseOptions, closeServer, koaApp, listen, mapSessionStore, users, type KoaAppOptions, type TestApp } from '../helpers/apps.js';
import { captureSenders } from '../helpers/capture.js';

const apps: TestApp[] = [];
const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const app of apps) await app.close();
  for (const close of closers) await close();
});

const start = async (options?: KoaAppOptions) => {
  const app = await koaApp(options);
  apps.push(app);
  return { app, client: new Client(app.url) };
};

/** Sends a code to john.smith and verifies it; returns the jar from before and after. */
const signIn = async (app: TestApp, client: Client) => {
  assert.equal((await client.post('/otp/send', { username: 'john.smith' })).status, 202);
  await app.capture.waitFor(2);
  const before = client.cookie;
  const verified = await client.post('/otp/verify', { username: 'john.smith', code: app.capture.lastCode('john.smith') });
  assert.equal(verified.status, 200, verified.text);
  return { before, after: client.cookie };
};

/** koa-session's cookie value: base64 JSON. */
const decode = (value: string | undefined): Record<string, unknown> => JSON.parse(Buffer.from(value ?? '', 'base64').toString('utf8'));

describe('koa-session with the cookie store', () => {
  it('sets a signed session cookie, and the cookie from before verify never holds the flag', async () => {
    const { app, client } = await start();
    const { before } = await signIn(app, client);
    assert.deepEqual([...client.jar.keys()].sort(), ['sid', 'sid.sig']);
    const oldJar = new Client(app.url);
    oldJar.cookie = before;
    const oldData = decode(oldJar.jar.get('sid'));
    assert.equal(typeof oldData.blockidOtpBinding, 'string', 'the old cookie held the session binding');
    assert.equal(oldData.blockidOtp, undefined);
    const newData = decode(client.jar.get('sid'));
    assert.equal((newData.blockidOtp as { verified?: boolean }).verified, true);
    assert.equal(newData.blockidOtpBinding, undefined, 'nothing is carried over into the renewed session');
    assert.deepEqual((await oldJar.get('/otp/status')).body, { verified: false });
    assert.equal((await oldJar.get('/account')).status, 401);
  });

  it('refuses a cookie whose data was edited to carry the flag', async () => {
    const { app, client } = await start();
    const { before } = await signIn(app, client);
    const forged = new Client(app.url);
    forged.cookie = before;
    const data = { ...decode(forged.jar.get('sid')), blockidOtp: { verified: true, username: 'john.smith', verifiedAt: Date.now() } };
    forged.jar.set('sid', Buffer.from(JSON.stringify(data)).toString('base64'));
    assert.equal((await forged.get('/account')).status, 401);
    forged.jar.delete('sid.sig');
    assert.equal((await forged.get('/account')).status, 401);
    assert.equal((await client.get('/account')).status, 200, 'the real cookie still works');
  });
});

describe('koa-session with an external store', () => {
  it('destroys the old session at verify and keeps only the flag in the new one', async () => {
    const sessionStore = mapSessionStore();
    const { app, client } = await start({ sessionStore });
    await client.post('/otp/send', { username: 'john.smith' });
    const oldKey = client.jar.get('sid');
    assert.ok(oldKey !== undefined && sessionStore.data.has(oldKey), 'send stored a session');
    await app.capture.waitFor(2);
    assert.equal((await client.post('/otp/verify', { username: 'john.smith', code: app.capture.lastCode('john.smith') })).status, 200);
    const newKey = client.jar.get('sid');
    assert.ok(newKey !== undefined && newKey !== oldKey, 'a new session id');
    assert.equal(sessionStore.data.has(oldKey), false, 'the old session is gone from the store');
    const record = sessionStore.data.get(newKey) as Record<string, unknown>;
    assert.equal((record.blockidOtp as { username?: string }).username, 'john.smith');
    assert.equal(record.blockidOtpBinding, undefined);
    assert.equal((await client.get('/account')).status, 200);
  });
});

describe('client IP behind proxies', () => {
  it('refuses app.proxy = true without app.maxIpsCount, saying what to set', async () => {
    const { client, app } = await start({ setup: (koa) => void (koa.proxy = true) });
    const reply = await client.post('/otp/send', { username: 'john.smith' });
    assert.equal(reply.status, 500);
    assert.match(reply.body.message, /app\.proxy = true.*app\.maxIpsCount = 1/);
    assert.equal(app.capture.messages.length, 0);
  });

  it('with app.maxIpsCount set, counts the per-IP quota on the address the proxy saw', async () => {
    const { client } = await start({
      setup: (koa) => Object.assign(koa, { proxy: true, maxIpsCount: 1 }),
      otp: { limits: { sendsPerIp: { points: 1, windowSeconds: 60 } } },
    });
    const from = (ip: string, username: string) => client.post('/otp/send', { username }, { headers: { 'x-forwarded-for': `198.51.100.7, ${ip}` } });
    assert.equal((await from('203.0.113.1', 'john.smith')).status, 202);
    assert.equal((await from('203.0.113.1', 'ada.lovelace')).status, 429, 'second send from the same address');
    assert.equal((await from('203.0.113.2', 'grace.hopper')).status, 202, 'another address has its own quota');
  });
});

describe('the Koa request', () => {
  it('uses ctx.request.body when a body parser already read the stream', async () => {
    const { client } = await start({
      setup: (koa) =>
        koa.use(async (ctx, next) => {
          let raw = '';
          for await (const chunk of ctx.req) raw += chunk;
          (ctx.request as { body?: unknown }).body = raw ? JSON.parse(raw) : undefined;
          await next();
        }),
    });
    const reply = await client.post('/otp/send', { username: 'john.smith' });
    assert.equal(reply.status, 202, reply.text);
  });

  it('hands the Koa context to resolveUser', async () => {
    let seen: any;
    const { app, client } = await start({
      otp: {
        resolveUser: (username, ctx) => {
          seen = ctx;
          return users[username] ?? null;
        },
      },
    });
    assert.equal((await client.post('/otp/send', { username: 'ada.lovelace' })).status, 202);
    await app.capture.waitFor(1);
    assert.equal(seen?.path, '/otp/send');
    assert.equal(typeof seen?.session?.blockidOtpBinding, 'string', 'ctx.session is reachable');
  });

  it('treats a session dropped earlier in the request (ctx.session = null) as not verified', async () => {
    const app = new Koa();
    app.keys = ['k'];
    app.use(koaSession({}, app));
    app.use(async (ctx, next) => {
      ctx.session = null;
      await next();
    });
    app.use(requireOtpKoa());
    app.use((ctx) => void (ctx.body = { passed: true }));
    const server = app.listen(0, '127.0.0.1');
    closers.push(() => closeServer(server));
    const reply = await new Client(await listen(server)).get('/');
    assert.equal(reply.status, 401);
    assert.equal(reply.body.error, 'otp_required');
  });
});

describe('mistakes reported clearly', () => {
  it('fails loudly on a session without regenerate() (koa-session before 6.4, or a plain object)', async () => {
    const { client } = await start({
      withoutSession: true,
      setup: (koa) =>
        koa.use(async (ctx, next) => {
          (ctx as { session?: object }).session = { blockidOtp: { verified: true, username: 'x', verifiedAt: Date.now() } };
          await next();
        }),
    });
    const guarded = await client.get('/account');
    assert.equal(guarded.status, 500, 'a flag on a session that cannot be renewed does not pass');
    assert.match(guarded.body.message, /^requireOtpKoa\(\): .*regenerate\(\)/);
    assert.equal((await client.post('/otp/send', { username: 'john.smith' })).status, 500);
  });

  it('notices app.use(blockidOtpKoa) written without the call', async () => {
    const app = new Koa();
    app.use(async (ctx, next) => {
      try {
        await next();
      } catch (error) {
        ctx.status = 500;
        ctx.body = { message: (error as Error).message };
      }
    });
    app.use(blockidOtpKoa as any);
    const server = app.listen(0, '127.0.0.1');
    closers.push(() => closeServer(server));
    const reply = await new Client(await listen(server)).get('/');
    assert.equal(reply.status, 500);
    assert.match(reply.body.message, /blockidOtpKoa was passed to app\.use\(\) without being called/);
    const ctxLike = { method: 'GET', headers: {}, url: '/' };
    assert.throws(() => requireOtpKoa(ctxLike as any), /requireOtpKoa was passed to app\.use\(\) without being called: write app\.use\(requireOtpKoa\(\)\)/);
  });

  it('validates options once, naming the factory and the option', () => {
    const capture = captureSenders();
    assert.throws(() => blockidOtpKoa({ ...baseOptions(capture), secret: 'short' }), { name: 'TypeError', message: /^blockidOtpKoa: option "secret"/ });
    assert.throws(() => requireOtpKoa({ redirect: '/login' } as any), { name: 'TypeError', message: /^requireOtpKoa: unknown option "redirect"/ });
    assert.throws(() => requireOtpKoa({ redirectTo: 'https://evil.example' }), /option "redirectTo"/);
  });

  it('carries the programmatic API of the service it serves', async () => {
    const capture = captureSenders();
    const otp = blockidOtpKoa(baseOptions(capture));
    let sent = 0;
    assert.equal(
      otp.on('sent', () => void (sent += 1)),
      otp,
      'on() chains on the middleware',
    );
    const result = await otp.generateOtp('ada.lovelace', { emailTo: 'ada@example.com' });
    assert.deepEqual(result.channels, ['email']);
    assert.equal(sent, 1);
    assert.deepEqual(await otp.verifyOtp('ada.lovelace', capture.lastCode('ada.lovelace')), { ok: true });
    assert.equal('service' in otp || 'options' in otp, false, 'the service itself stays out of reach');
  });
});
