/**
 * Session set-ups that would make every code unverifiable are reported with the fix, never a
 * quiet 202: blockid-otp mounted before koa-session, and a `secure` session cookie on plain
 * http (Koa refuses to write it; express-session drops it).
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, describe, it, type TestContext } from 'node:test';
import express from 'express';
import session from 'express-session';
import Koa from 'koa';
import koaSession from 'koa-session';
import { blockidOtp } from '../../src/index.js';
import { blockidOtpKoa } from '../../src/koa.js';
import { baseOptions, closeServer } from '../helpers/apps.js';
import { captureSenders } from '../helpers/capture.js';
import { Client } from '../helpers/client.js';
import type { Server } from 'node:http';

const servers: Server[] = [];
after(() => Promise.all(servers.map(closeServer)));

async function serve(app: { listen(port: number, host: string): Server }): Promise<string> {
  const server = app.listen(0, '127.0.0.1');
  servers.push(server);
  await new Promise((resolve) => server.once('listening', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A Koa app whose own error handler shows the message (as the test apps do); `order` says what is mounted first. */
function koaApp(order: 'otp-first' | 'session-first', sessionOptions: Record<string, unknown> = {}, withHandler = true) {
  const capture = captureSenders();
  const app = new Koa();
  app.keys = ['session-key-for-tests'];
  app.silent = true;
  if (withHandler) {
    app.use(async (ctx, next) => {
      try {
        await next();
      } catch (error) {
        ctx.status = 500;
        ctx.body = { error: 'internal_error', message: (error as Error).message };
      }
    });
  }
  const sessions = koaSession({ key: 'sid', ...sessionOptions }, app);
  const otp = blockidOtpKoa(baseOptions(capture));
  if (order === 'otp-first') app.use(otp).use(sessions);
  else app.use(sessions).use(otp);
  return { app, capture };
}

describe('Koa: blockidOtpKoa mounted before koa-session', () => {
  it('the first request fails with a message that says to mount koa-session first; nothing is sent', async () => {
    const { app, capture } = koaApp('otp-first');
    const client = new Client(await serve(app));
    const reply = await client.post('/otp/send', { username: 'john.smith' });
    assert.equal(reply.status, 500);
    assert.match(reply.body.message, /^blockidOtpKoa runs before koa-session/);
    assert.match(reply.body.message, /app\.use\(session\(app\)\) then app\.use\(blockidOtpKoa/);
    assert.match(reply.body.message, /\(see docs\/errors\.md#session-order\)$/);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(capture.outbox.length, 0, 'no code went out that could never verify');
    const verify = await client.post('/otp/verify', { username: 'john.smith', code: '123456' });
    assert.equal(verify.status, 500, 'every request, not only the first');
  });

  it("without an error handler of the app, still a 500 (Koa's own), never a 202", async () => {
    const { app } = koaApp('otp-first', {}, false);
    const reply = await new Client(await serve(app)).post('/otp/send', { username: 'john.smith' });
    assert.equal(reply.status, 500);
  });

  it('in the right order the same app sends and verifies', async () => {
    const { app, capture } = koaApp('session-first');
    const client = new Client(await serve(app));
    assert.equal((await client.post('/otp/send', { username: 'ada.lovelace' })).status, 202);
    const code = await capture.waitForCode('ada.lovelace');
    assert.equal((await client.post('/otp/verify', { username: 'ada.lovelace', code })).status, 200);
  });

  it('an attacker\'s request cannot pass as "koa-session ran": a forged X-Forwarded-Proto or cookie changes nothing', async () => {
    const { app } = koaApp('otp-first');
    const client = new Client(await serve(app));
    const reply = await client.request('POST', '/otp/send', {
      json: { username: 'john.smith' },
      headers: { 'x-forwarded-proto': 'https', cookie: 'sid=eyJibG9ja2lkT3RwIjp7InZlcmlmaWVkIjp0cnVlfX0=' },
    });
    assert.equal(reply.status, 500);
    assert.equal((await client.get('/otp/status')).status, 500);
  });
});

describe('a secure session cookie on plain http', () => {
  it('Koa (secure: true): a 500 whose message says how to fix it, before any code is sent', async () => {
    const { app, capture } = koaApp('session-first', { secure: true });
    const client = new Client(await serve(app));
    const reply = await client.post('/otp/send', { username: 'john.smith' });
    assert.equal(reply.status, 500);
    assert.match(reply.body.message, /koa-session is set with secure: true, but this request came over plain http/);
    assert.match(reply.body.message, /secure: process\.env\.NODE_ENV === 'production'/);
    assert.match(reply.body.message, /\(see docs\/errors\.md#cookie-not-set\)$/);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(capture.outbox.length, 0);
  });

  it('Koa (secure: true) behind a trusted proxy that says https: works', async () => {
    const { app, capture } = koaApp('session-first', { secure: true });
    app.proxy = true;
    app.maxIpsCount = 1;
    const client = new Client(await serve(app));
    const headers = { 'x-forwarded-proto': 'https' };
    assert.equal((await client.post('/otp/send', { username: 'ada.lovelace' }, { headers })).status, 202);
    const code = await capture.waitForCode('ada.lovelace');
    assert.equal((await client.post('/otp/verify', { username: 'ada.lovelace', code }, { headers })).status, 200);
  });

  const expressWith = async (t: TestContext, cookie: session.CookieOptions, logger?: object) => {
    const capture = captureSenders();
    const app = express();
    app.use(session({ secret: 'session-secret-for-tests', resave: false, saveUninitialized: false, cookie }));
    app.use(blockidOtp(baseOptions(capture, logger ? { logger: logger as never } : {})));
    const warnings: string[] = [];
    t.mock.method(console, 'warn', (...args: unknown[]) => void warnings.push(args.map(String).join(' ')));
    return { client: new Client(await serve(app)), capture, warnings };
  };

  it('express-session (cookie: { secure: true }): the send answers 202 with no cookie, and one console warning says the fix', async (t) => {
    const { client, warnings } = await expressWith(t, { secure: true });
    const first = await client.post('/otp/send', { username: 'john.smith' });
    assert.equal(first.status, 202);
    assert.equal(first.headers.get('set-cookie'), null, 'express-session set no cookie');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /express-session is set with cookie: \{ secure: true \}, but this request came over plain http/);
    assert.match(warnings[0] ?? '', /\(see docs\/errors\.md#cookie-not-set\)$/);
    // An attacker's many sessions cannot turn it into a flood of lines: once per app.
    for (const name of ['ada.lovelace', 'grace.hopper', 'nobody']) {
      assert.equal((await new Client(client.baseUrl).post('/otp/send', { username: name })).status, 202);
    }
    assert.equal(warnings.length, 1);
  });

  it('express-session with a logger: the warning goes to the logger', async (t) => {
    const logged: string[] = [];
    const logger = { info: () => undefined, error: () => undefined, warn: (_details: object, message?: string) => void logged.push(message ?? '') };
    const { client, warnings } = await expressWith(t, { secure: true }, logger);
    assert.equal((await client.post('/otp/send', { username: 'john.smith' })).status, 202);
    assert.equal(warnings.length, 0);
    assert.equal(logged.filter((m) => m.includes('cookie-not-set')).length, 1);
  });

  it('express-session (secure: "auto") on plain http: no warning, and the code verifies', async (t) => {
    const { client, capture, warnings } = await expressWith(t, { secure: 'auto' });
    assert.equal((await client.post('/otp/send', { username: 'ada.lovelace' })).status, 202);
    const code = await capture.waitForCode('ada.lovelace');
    assert.equal((await client.post('/otp/verify', { username: 'ada.lovelace', code })).status, 200);
    assert.deepEqual(warnings, []);
  });
});
