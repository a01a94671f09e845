/**
 * `cookieSession()` under attack, over real HTTP, on the fetch handler and on Express: a cookie
 * someone tampered with, cut short, kept past its expiry, sealed under another secret or name,
 * blew up past 4 KB or sent twice is no session, and the request goes on as a new one (never a
 * 4xx/5xx because of the cookie). Forged cookies are sealed through the real
 * `createCookieSessions`, so a cookie that should open does (the positive controls below).
 */
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { after, describe, it } from 'node:test';
import { createAdaptorServer } from '@hono/node-server';
import express from 'express';
import { blockidOtp, requireOtp } from '../../src/index.js';
import { cookieSession, createOtpHandler, type CookieSessionOptions } from '../../src/fetch.js';
import { COOKIE_INFO, COOKIE_SALT, createCookieSessions } from '../../src/core/http/cookie-session.js';
import { SESSION_BINDING, SESSION_FLAG } from '../../src/core/http/handler.js';
import { baseOptions, closeServer, expressApp, fetchApp, guardedRoutes, listen, SECRET, type AppFactory, type TestApp } from '../helpers/apps.js';
import { captureSenders } from '../helpers/capture.js';
import { Client } from '../helpers/client.js';

const NAME = 'blockid-otp';
const DAY_MS = 86_400_000;

/** Seals `data` as the session cookie value the way the handler would, at `nowMs`. */
async function seal(
  data: Record<string, unknown>,
  { secret = SECRET, nowMs = Date.now(), options = { secure: false } as CookieSessionOptions } = {},
): Promise<string> {
  const settings = cookieSession(options);
  const sessions = createCookieSessions(settings, secret);
  const realNow = Date.now;
  Date.now = () => nowMs; // the seal's expiry comes from the clock: this is the only way to make an old cookie now
  try {
    const state = await sessions.load(undefined);
    for (const [name, value] of Object.entries(data)) state.port.write(name, value);
    const header = await state.setCookie();
    assert.ok(header !== undefined);
    return header.slice(settings.cookieName.length + 1, header.indexOf(';'));
  } finally {
    Date.now = realNow;
  }
}

const flag = (username = 'john.smith') => ({ [SESSION_FLAG]: { verified: true, username, verifiedAt: Date.now(), method: 'code' } });

/** Flips one bit of the sealed bytes at `index` (negative: from the end). */
function flipByte(value: string, index: number): string {
  const bytes = Buffer.from(value.slice(3), 'base64url');
  const at = index < 0 ? bytes.length + index : index;
  bytes[at] = bytes[at]! ^ 0x01;
  return `v1.${bytes.toString('base64url')}`;
}

/** One request with exactly this `Cookie` header (the test client's jar keeps one value per name). */
async function probe(url: string, cookie: string | undefined, path = '/otp/status', accept = 'application/json') {
  const response = await fetch(url + path, { headers: { accept, ...(cookie !== undefined && { cookie }) }, redirect: 'manual' });
  return { status: response.status, setCookie: response.headers.getSetCookie(), body: await response.text() };
}

/** Signs `username` in over HTTP; returns the client and the cookie it held before the verify. */
async function signIn(app: TestApp, username = 'john.smith') {
  const client = new Client(app.url);
  const before = app.capture.messages.length;
  const sent = await client.post('/otp/send', { username });
  assert.equal(sent.status, 202, sent.text);
  await app.capture.waitFor(before + 1);
  const beforeVerify = client.cookie;
  const verified = await client.post('/otp/verify', { username, code: app.capture.lastCode(username) });
  assert.equal(verified.status, 200, verified.text);
  return { client, beforeVerify, setCookie: verified.headers.getSetCookie() };
}

/** Status says unverified and the guard refuses (401 for an API, 303 for a page). */
async function assertNotVerified(app: TestApp, cookie: string, label: string) {
  const status = await probe(app.url, cookie);
  assert.equal(status.status, 200, `${label}: ${status.body}`);
  assert.deepEqual(JSON.parse(status.body), { verified: false }, label);
  const guarded = await probe(app.url, cookie, '/account');
  assert.equal(guarded.status, 401, `${label}: ${guarded.body}`);
  assert.equal(JSON.parse(guarded.body).error, 'otp_required', label);
  assert.equal((await probe(app.url, cookie, '/account', 'text/html')).status, 303, label);
}

/** A cookie that must count as no session: not verified, and a send from it starts a new session that then signs in. */
async function assertNoSession(app: TestApp, cookie: string, label: string) {
  await assertNotVerified(app, cookie, label);
  const before = app.capture.messages.length;
  const sent = await fetch(`${app.url}/otp/send`, {
    method: 'POST',
    headers: { cookie, 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'ada.lovelace' }),
  });
  assert.equal(sent.status, 202, `${label}: ${await sent.text()}`);
  const fresh = sent.headers.getSetCookie();
  assert.equal(fresh.length, 1, `${label}: a new session's cookie`);
  const client = new Client(app.url);
  client.cookie = fresh[0]!.split(';')[0];
  assert.ok(!cookie.includes(client.jar.get(NAME)!), `${label}: a new cookie`);
  await app.capture.waitFor(before + 1);
  const verified = await client.post('/otp/verify', { username: 'ada.lovelace', code: app.capture.lastCode('ada.lovelace') });
  assert.equal(verified.status, 200, `${label}: ${verified.text}`);
  assert.equal((await client.get('/account')).status, 200, label);
}

const targets: Array<[string, AppFactory]> = [
  ['fetch', fetchApp],
  ['express with cookieSession', (options) => expressApp({ ...options, cookieSession: true })],
];

for (const [framework, makeApp] of targets) {
  describe(`cookieSession on ${framework}: hostile cookies`, () => {
    const apps: TestApp[] = [];
    const start = async () => {
      const app = await makeApp();
      apps.push(app);
      return app;
    };
    after(async () => {
      for (const app of apps) await app.close();
    });

    it('opens a cookie sealed with the right secret (the control that makes the forgeries below meaningful)', async () => {
      const app = await start();
      const cookie = `${NAME}=${await seal(flag())}`;
      assert.equal((await probe(app.url, cookie, '/account')).status, 200);
      assert.equal(JSON.parse((await probe(app.url, cookie)).body).username, 'john.smith');
    });

    it('treats a signed-in cookie with one bit flipped (IV, ciphertext or tag) as no session', async () => {
      const app = await start();
      const { client } = await signIn(app);
      const value = client.jar.get(NAME)!;
      assert.equal((await probe(app.url, `${NAME}=${value}`, '/account')).status, 200, 'the untouched cookie works');
      const middle = Math.floor(Buffer.from(value.slice(3), 'base64url').length / 2);
      for (const index of [0, 11, 12, middle, -1]) await assertNoSession(app, `${NAME}=${flipByte(value, index)}`, `byte ${index} flipped`);
    });

    it('treats a truncated cookie as no session', async () => {
      const app = await start();
      const value = (await signIn(app)).client.jar.get(NAME)!;
      for (const cut of [value.slice(0, -1), value.slice(0, -4), value.slice(0, 40), 'v1.', 'v1', '']) {
        await assertNoSession(app, `${NAME}=${cut}`, `cut to ${cut.length} characters`);
      }
    });

    it('treats a cookie replayed after its sealed expiry as no session, whatever Max-Age the browser was told', async () => {
      const app = await start();
      const expired = await seal(flag(), { nowMs: Date.now() - DAY_MS - 1000 });
      const fresh = await seal(flag(), { nowMs: Date.now() - DAY_MS + 60_000 });
      assert.equal((await probe(app.url, `${NAME}=${fresh}`, '/account')).status, 200, 'a cookie one minute from its expiry still opens');
      await assertNoSession(app, `${NAME}=${expired}`, 'expired');
    });

    it('treats a cookie sealed under another secret, or for another cookie name, as no session', async () => {
      const app = await start();
      await assertNoSession(app, `${NAME}=${await seal(flag(), { secret: 'another-secret-0123456789-abcdefghijklmn' })}`, 'foreign secret');
      await assertNoSession(app, `${NAME}=${await seal(flag(), { options: { secure: false, cookieName: 'other-app' } })}`, 'other cookie name');
    });

    it('treats a cookie over 4 KB as no session, even one sealed with the right secret', async () => {
      const app = await start();
      const big = await seal({ ...flag(), padding: 'x'.repeat(3000) });
      assert.ok(big.length > 4096, `${big.length} characters`);
      await assertNoSession(app, `${NAME}=${big}`, 'oversized');
      await assertNoSession(app, `${NAME}=v1.${'A'.repeat(6000)}`, 'oversized garbage');
    });

    it('treats two cookies of its name that both open as no session, so nobody can slip in their own signed-in session', async () => {
      const app = await start();
      const victim = await seal(flag('john.smith'));
      const attacker = await seal(flag('grace.hopper'));
      await assertNoSession(app, `${NAME}=${attacker}; ${NAME}=${victim}`, 'two signed-in cookies');
      await assertNoSession(app, `${NAME}=${victim}; ${NAME}=${victim}`, 'the same cookie twice');
      await assertNoSession(app, `${NAME}=garbage; ${NAME}=v1.${'A'.repeat(60)}`, 'two broken cookies');
      // One copy that opens beside broken ones is still that session (a stale cookie does not sign anyone out).
      const beside = await probe(app.url, `${NAME}=${flipByte(attacker, 20)}; ${NAME}=${victim}`);
      assert.equal(JSON.parse(beside.body).username, 'john.smith');
    });

    it('never carries the verified flag in a cookie from before the verify (replayed after signing in)', async () => {
      const app = await start();
      const { client, beforeVerify } = await signIn(app);
      assert.equal((await client.get('/otp/status')).body.verified, true);
      assert.ok(beforeVerify !== undefined);
      await assertNotVerified(app, beforeVerify, 'the cookie from before the verify');
      // The old session cannot verify again either: the code was used.
      const replay = new Client(app.url);
      replay.cookie = beforeVerify;
      const again = await replay.post('/otp/verify', { username: 'john.smith', code: app.capture.lastCode('john.smith') });
      assert.equal(again.status, 401);
    });

    it('keeps everything unreadable without the secret, and under 1 KB after a verify', async () => {
      const app = await start();
      const { setCookie } = await signIn(app);
      assert.equal(setCookie.length, 1);
      const header = setCookie[0]!;
      assert.ok(header.length < 1024, `${header.length} characters`);
      const value = header.slice(NAME.length + 1, header.indexOf(';'));
      const bytes = Buffer.from(value.slice(3), 'base64url');
      const texts = ['john.smith', 'john', 'verified', 'code', SESSION_FLAG, SESSION_BINDING, 'cs:', '"i"', '"e"', '"d"'];
      for (const text of texts) {
        assert.ok(!bytes.includes(Buffer.from(text)), `${text} in the sealed bytes`);
        assert.ok(!header.includes(text) || text === 'code', `${text} in the header`);
        // Base64 of the text at each of the three alignments, in both alphabets.
        for (const offset of [0, 1, 2]) {
          const encoded = Buffer.concat([Buffer.alloc(offset), Buffer.from(text)])
            .toString('base64')
            .slice(Math.ceil((offset * 4) / 3) + 1, -2);
          if (encoded.length >= 4) assert.ok(!value.includes(encoded) && !value.includes(encoded.replace(/\+/g, '-').replace(/\//g, '_')), `${text} in base64`);
        }
      }
      // A random IV: the same session sealed twice looks different.
      const data = flag();
      assert.notEqual(await seal(data), await seal(data));
    });

    it('sends Set-Cookie only when the session changed', async () => {
      const app = await start();
      const client = new Client(app.url);
      const silent = async (reply: Promise<{ headers: Headers; status: number }>, label: string) => {
        const { headers, status } = await reply;
        assert.deepEqual(headers.getSetCookie(), [], `${label} (${status})`);
      };
      await silent(client.get('/otp/status'), 'status of a new session');
      await silent(client.get('/account'), 'guard of a new session');
      await silent(client.post('/otp/send', {}), 'a bad request');
      await silent(client.request('POST', '/otp/send', { raw: 'username=john.smith', contentType: 'application/x-www-form-urlencoded' }), 'a 415');
      const sent = await client.post('/otp/send', { username: 'john.smith' });
      assert.equal(sent.headers.getSetCookie().length, 1, 'the first send binds the session');
      await silent(client.post('/otp/send', { username: 'ada.lovelace' }), 'a second send of the same session');
      await silent(client.get('/otp/status'), 'status');
      await silent(client.post('/otp/verify', { username: 'john.smith', code: '000000' }), 'a wrong code');
      await app.capture.waitFor(3);
      const verified = await client.post('/otp/verify', { username: 'john.smith', code: app.capture.lastCode('john.smith') });
      assert.equal(verified.headers.getSetCookie().length, 1, 'a verify regenerates the session');
      await silent(client.get('/otp/status'), 'status after the verify');
      await silent(client.get('/account'), 'the guard after the verify');
    });
  });
}

describe('cookieSession defaults', () => {
  const servers: Server[] = [];
  after(async () => {
    for (const server of servers) await closeServer(server);
  });

  const expectedCookie = /^__Host-blockid-otp=v1\.[A-Za-z0-9_-]+; Max-Age=86400; Path=\/; HttpOnly; SameSite=Lax; Secure$/;

  it('names the cookie __Host-blockid-otp with Path=/, no Domain and Secure on the fetch handler', async () => {
    const capture = captureSenders();
    const otp = createOtpHandler(baseOptions(capture)); // session: cookieSession() by default
    const guarded = guardedRoutes(otp);
    const server = createAdaptorServer({
      fetch: async (request) => (await otp.handle(request, { ip: '127.0.0.1' })) ?? (await guarded(request)) ?? new Response(null, { status: 404 }),
    }) as Server;
    servers.push(server);
    const client = new Client(await listen(server));
    const sent = await client.post('/otp/send', { username: 'john.smith' });
    assert.match(sent.headers.getSetCookie()[0] ?? '', expectedCookie);
    await capture.waitFor(1);
    const verified = await client.post('/otp/verify', { username: 'john.smith', code: capture.lastCode('john.smith') });
    assert.match(verified.headers.getSetCookie()[0] ?? '', expectedCookie);
    assert.equal((await client.get('/account')).status, 200);
    assert.equal(otp.clearSession(), '__Host-blockid-otp=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; HttpOnly; SameSite=Lax; Secure');
  });

  it('uses the same defaults on Express given session: cookieSession()', async () => {
    const capture = captureSenders();
    const app = express();
    app.use(blockidOtp({ ...baseOptions(capture), session: cookieSession() }));
    app.get('/account', requireOtp(), (_req, res) => void res.json({ ok: true }));
    const server = app.listen(0, '127.0.0.1');
    servers.push(server);
    await new Promise((resolve) => server.once('listening', resolve));
    const client = new Client(`http://127.0.0.1:${(server.address() as { port: number }).port}`);
    assert.match((await client.post('/otp/send', { username: 'john.smith' })).headers.getSetCookie()[0] ?? '', expectedCookie);
    await capture.waitFor(1);
    await client.post('/otp/verify', { username: 'john.smith', code: capture.lastCode('john.smith') });
    assert.equal((await client.get('/account')).status, 200);
  });

  it('takes domain, path, sameSite and maxAgeSeconds into the cookie', async () => {
    const value = await seal({ a: 1 }, { options: { secure: false, domain: 'example.com', path: '/app', sameSite: 'strict', maxAgeSeconds: 3600 } });
    const settings = cookieSession({ secure: false, domain: 'example.com', path: '/app', sameSite: 'strict', maxAgeSeconds: 3600 });
    const state = await createCookieSessions(settings, SECRET).load(`blockid-otp=${value}`);
    assert.equal(state.port.read('a'), 1);
    state.port.write('a', 2);
    assert.match((await state.setCookie()) ?? '', /^blockid-otp=v1\.[\w-]+; Max-Age=3\d{3}; Path=\/app; Domain=example\.com; HttpOnly; SameSite=Strict$/);
  });
});

describe('cookieSession option errors', () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['a misspelt option', { maxAge: 60 }, /unknown option "maxAge"; the options are .*"maxAgeSeconds"/],
    ['not an object', 'secure', /expected an options object such as \{ secure: false \}/],
    ['secure not a boolean', { secure: 'false' }, /"secure" must be true or false \(got the string "false"\)/],
    ['an unknown sameSite', { sameSite: 'Lax ' }, /"sameSite" must be "lax", "strict" or "none"/],
    ['sameSite none over http', { sameSite: 'none', secure: false }, /"none" needs secure: true/],
    ['maxAgeSeconds under a minute', { maxAgeSeconds: 59 }, /"maxAgeSeconds" must be a whole number from 60 to 31536000 \(got number 59\)/],
    ['maxAgeSeconds as a string', { maxAgeSeconds: '3600' }, /"maxAgeSeconds" must be a whole number/],
    ['a cookie name with a space', { cookieName: 'my session' }, /"cookieName" must be a cookie name token/],
    ['a path without its slash', { path: 'app', secure: false }, /"path" must be a path starting with "\/"/],
    ['a domain with a scheme', { domain: 'https://example.com', secure: false }, /"domain" must be a host name such as "example.com"/],
    ['__Host- over http', { cookieName: '__Host-x', secure: false }, /"__Host-" cookie name prefix needs secure: true/],
    ['__Host- with a domain', { domain: 'example.com' }, /a "__Host-" cookie has Path=\/ and no Domain: drop "domain" and "path"/],
    ['__Host- with a path', { path: '/app' }, /a "__Host-" cookie has Path=\/ and no Domain/],
    ['__Secure- over http', { cookieName: '__Secure-x', secure: false }, /"__Secure-" cookie name prefix needs secure: true/],
  ];
  for (const [label, options, message] of cases) {
    it(`refuses ${label} with a TypeError that says the fix`, () => {
      assert.throws(
        () => cookieSession(options as CookieSessionOptions),
        (error: Error) => error instanceof TypeError && message.test(error.message) && error.message.startsWith('cookieSession: '),
      );
    });
  }

  it('refuses a session option that is not cookieSession(...) on the fetch handler and on Express', () => {
    const capture = captureSenders();
    assert.throws(() => createOtpHandler({ ...baseOptions(capture), session: { secure: false } as never }), /option "session" must be cookieSession\(\.\.\.\)/);
    assert.throws(() => blockidOtp({ ...baseOptions(capture), session: 'cookie' as never }), /option "session" must be cookieSession\(\.\.\.\)/);
  });
});

describe('cookieSession sealing is WebCrypto’s AES-256-GCM under an HKDF-SHA-256 key', () => {
  /** The key WebCrypto derives from the secret with the salt and info the seal uses. */
  const webKey = async (secret: string) => {
    const material = await crypto.subtle.importKey('raw', new TextEncoder().encode(secret), 'HKDF', false, ['deriveKey']);
    return crypto.subtle.deriveKey(
      { name: 'HKDF', hash: 'SHA-256', salt: new TextEncoder().encode(COOKIE_SALT), info: new TextEncoder().encode(COOKIE_INFO) },
      material,
      { name: 'AES-GCM', length: 256 },
      false,
      ['encrypt', 'decrypt'],
    );
  };
  const additionalData = new TextEncoder().encode(NAME);

  it('a sealed cookie opens with WebCrypto, and holds the session as JSON', async () => {
    const value = await seal(flag());
    const bytes = Buffer.from(value.slice(3), 'base64url');
    const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: bytes.subarray(0, 12), additionalData }, await webKey(SECRET), bytes.subarray(12));
    const payload = JSON.parse(new TextDecoder().decode(plain));
    assert.equal(payload.d[SESSION_FLAG].verified, true);
    assert.equal(typeof payload.i, 'string');
    await assert.rejects(
      crypto.subtle.decrypt({ name: 'AES-GCM', iv: bytes.subarray(0, 12), additionalData }, await webKey(`${SECRET}-other`), bytes.subarray(12)),
    );
  });

  it('a cookie WebCrypto sealed opens, and one sealed under another name does not', async () => {
    const payload = { i: 'webcrypto-session', e: Math.floor(Date.now() / 1000) + 60, d: { marker: 'from WebCrypto' } };
    const sealWith = async (cookieName: string) => {
      const iv = crypto.getRandomValues(new Uint8Array(12));
      const sealed = await crypto.subtle.encrypt(
        { name: 'AES-GCM', iv, additionalData: new TextEncoder().encode(cookieName) },
        await webKey(SECRET),
        new TextEncoder().encode(JSON.stringify(payload)),
      );
      return `v1.${Buffer.concat([iv, new Uint8Array(sealed)]).toString('base64url')}`;
    };
    const sessions = createCookieSessions(cookieSession({ secure: false }), SECRET);
    const opened = await sessions.load(`${NAME}=${await sealWith(NAME)}`);
    assert.equal(opened.port.read('marker'), 'from WebCrypto');
    assert.equal(opened.port.id?.(), 'cs:webcrypto-session');
    const foreign = await sessions.load(`${NAME}=${await sealWith('other-name')}`);
    assert.equal(foreign.port.read('marker'), undefined);
    assert.notEqual(foreign.port.id?.(), 'cs:webcrypto-session');
  });
});
