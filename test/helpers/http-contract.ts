/**
 * The HTTP contract of CONTRACT.md over real sockets, run once per framework and store:
 * `describeHttpContract('express', expressApp)`. Every test starts its own app from `makeApp`,
 * whose state must be its own (a fresh store, or keys of its own in a shared one).
 * `describeNoCodeInResponses()` then checks every reply seen against every code sent.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { DELIVERY_PAUSE_MS } from '../../src/core/send/after-reply.js';
import { assertNoCodeLeaked, Client } from './client.js';
import type { AppFactory, AppOptions, TestApp } from './apps.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const allCodes = new Set<string>();

export interface ContractOptions {
  /** The app keeps its session in blockid-otp's own sealed cookie (no session middleware to forget). */
  cookieSession?: boolean;
  /** The plugin falls back to its own cookie session when the session middleware is left out (Fastify without @fastify/session). */
  sessionFallback?: boolean;
}

export function describeHttpContract(framework: string, makeApp: AppFactory, { cookieSession = false, sessionFallback = false }: ContractOptions = {}): void {
  describe(`HTTP contract on ${framework}`, () => {
    const apps: TestApp[] = [];
    const start = async (options?: AppOptions) => {
      const app = await makeApp(options);
      apps.push(app);
      return { app, client: new Client(app.url) };
    };
    after(async () => {
      for (const app of apps) {
        for (const m of app.capture.messages) allCodes.add(m.code);
        await app.close();
      }
    });

    /** Sends a code for `username` and returns it, read from the capture sender. */
    const sendAndRead = async (app: TestApp, client: Client, username = 'john.smith', channel?: string) => {
      const before = app.capture.messages.length;
      const reply = await client.post('/otp/send', channel ? { username, channel } : { username });
      assert.equal(reply.status, 202, reply.text);
      await app.capture.waitFor(before + 1);
      return app.capture.lastCode(username);
    };

    describe('POST /otp/send', () => {
      it('answers 202 with expiresIn and resendIn, and sends one code to every channel the user has', async () => {
        const { app, client } = await start();
        const reply = await client.post('/otp/send', { username: 'john.smith' });
        assert.equal(reply.status, 202);
        assert.deepEqual(reply.body, { status: 'sent', expiresIn: 300, resendIn: 30 });
        assert.equal(reply.headers.get('cache-control'), 'no-store');
        const sent = await app.capture.waitFor(2);
        assert.deepEqual(sent.map((m) => m.channel).sort(), ['email', 'sms']);
        assert.equal(sent[0]?.code, sent[1]?.code, 'one code for both channels');
        assert.match(sent[0]?.code ?? '', /^\d{6}$/);
        const sms = sent.find((m) => m.channel === 'sms');
        assert.equal(sms?.to, '+14155550100');
        assert.ok(sms?.channel === 'sms' && sms.body.includes(sms.code));
        const email = sent.find((m) => m.channel === 'email');
        assert.ok(email?.channel === 'email' && email.text.includes(email.code) && email.html.includes(email.code));
      });

      it("declares each JSON reply's length instead of sending it chunked (send, bad request, verify)", async () => {
        const { client } = await start();
        const replies = [
          await client.post('/otp/send', { username: 'john.smith' }),
          await client.post('/otp/send', {}),
          await client.post('/otp/verify', { username: 'john.smith', code: '000000' }),
        ];
        for (const reply of replies) {
          assert.equal(reply.headers.get('transfer-encoding'), null, `${reply.status} ${reply.text}`);
          assert.equal(reply.headers.get('content-length'), String(Buffer.byteLength(reply.text)), `${reply.status} ${reply.text}`);
        }
      });

      it('sends only the chosen channel', async () => {
        const { app, client } = await start();
        assert.equal((await client.post('/otp/send', { username: 'john.smith', channel: 'email' })).status, 202);
        await app.capture.waitFor(1);
        await sleep(50); // both channels' deliveries start at the same moment
        assert.deepEqual(
          app.capture.messages.map((m) => m.channel),
          ['email'],
        );
      });

      it('answers an unknown username exactly like a known one, and delivers nothing', async () => {
        const { app, client } = await start();
        const known = await client.post('/otp/send', { username: 'john.smith' });
        const unknownClient = new Client(app.url);
        const unknown = await unknownClient.post('/otp/send', { username: 'nobody.here' });
        assert.equal(unknown.status, known.status);
        assert.deepEqual(unknown.body, known.body);
        const names = (reply: typeof known) => [...reply.headers.keys()].sort();
        assert.deepEqual(names(unknown), names(known));
        await sleep(DELIVERY_PAUSE_MS.max + 50); // a delivery to the unknown user, if one were (wrongly) started, would show by now
        assert.equal(app.capture.messages.filter((m) => m.username === 'nobody.here').length, 0);
      });

      const badBodies: Array<[string, unknown]> = [
        ['no username', {}],
        ['a number', { username: 42 }],
        ['null', { username: null }],
        ['an array', { username: ['john.smith'] }],
        ['blank after trimming', { username: '   ' }],
        ['257 characters', { username: 'a'.repeat(257) }],
        ['an unknown channel', { username: 'john.smith', channel: 'fax' }],
        ['a body that is an array', ['john.smith']],
        ['a body that is a string', 'john.smith'],
        ['a body that is null', null],
      ];
      for (const [name, body] of badBodies) {
        it(`answers 400 invalid_request for ${name}`, async () => {
          const { client, app } = await start();
          const reply = await client.post('/otp/send', body);
          assert.equal(reply.status, 400);
          assert.equal(reply.body.error, 'invalid_request');
          assert.equal(typeof reply.body.message, 'string');
          assert.equal(app.capture.messages.length, 0);
        });
      }

      it('accepts a username of exactly 256 characters', async () => {
        const { client } = await start();
        assert.equal((await client.post('/otp/send', { username: 'b'.repeat(256) })).status, 202);
      });

      it('answers 400 for malformed JSON and 413 for an oversized body', async () => {
        const { client } = await start();
        const malformed = await client.request('POST', '/otp/send', { raw: '{"username":', contentType: 'application/json' });
        assert.equal(malformed.status, 400);
        assert.equal(malformed.body.error, 'invalid_request');
        const huge = await client.request('POST', '/otp/send', { raw: JSON.stringify({ username: 'x'.repeat(40_000) }), contentType: 'application/json' });
        assert.equal(huge.status, 413);
        assert.equal(huge.body.error, 'payload_too_large');
      });

      for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', undefined]) {
        it(`answers 415 unsupported_media_type for ${contentType ?? 'no Content-Type'}`, async () => {
          const { client, app } = await start();
          const reply = await client.request('POST', '/otp/send', { raw: 'username=john.smith', ...(contentType && { contentType }) });
          assert.equal(reply.status, 415);
          assert.equal(reply.body.error, 'unsupported_media_type');
          const verify = await client.request('POST', '/otp/verify', { raw: 'username=john.smith&code=123456', ...(contentType && { contentType }) });
          assert.equal(verify.status, 415);
          assert.equal(app.capture.messages.length, 0);
        });
      }

      it('answers 429 rate_limited with Retry-After inside the resend cooldown', async () => {
        const { client, app } = await start();
        assert.equal((await client.post('/otp/send', { username: 'john.smith' })).status, 202);
        const again = await client.post('/otp/send', { username: 'john.smith' });
        assert.equal(again.status, 429);
        assert.equal(again.body.error, 'rate_limited');
        assert.ok(again.body.retryAfter >= 1 && again.body.retryAfter <= 30, `retryAfter ${again.body.retryAfter}`);
        assert.equal(again.headers.get('retry-after'), String(again.body.retryAfter));
        await app.capture.waitFor(2);
        await sleep(DELIVERY_PAUSE_MS.max + 50); // a second delivery, if one were (wrongly) started, would show by now
        assert.equal(app.capture.messages.length, 2, 'only the first send was delivered');
      });

      it('answers 405 for the wrong method and leaves other paths to the app', async () => {
        const { client } = await start();
        const wrong = await client.get('/otp/send');
        assert.equal(wrong.status, 405);
        assert.equal(wrong.headers.get('allow'), 'POST');
        assert.equal((await client.get('/otp/nothing-here')).status, 404);
      });
    });

    describe('POST /otp/verify', () => {
      it('verifies the right code, regenerates the session and sets the flag', async () => {
        const { app, client } = await start();
        const code = await sendAndRead(app, client);
        const oldCookie = client.cookie;
        assert.ok(oldCookie, 'send started a session');
        const reply = await client.post('/otp/verify', { username: '  John.Smith ', code });
        assert.equal(reply.status, 200, reply.text);
        assert.deepEqual(reply.body, { status: 'verified', username: 'john.smith' });
        assert.notEqual(client.cookie, oldCookie, 'the session id changed');
        const status = await client.get('/otp/status');
        assert.equal(status.body.verified, true);
        assert.equal(status.body.username, 'john.smith');
        assert.ok(Math.abs(Date.parse(status.body.verifiedAt) - Date.now()) < 5000);
        assert.equal(status.body.verifiedAt, new Date(Date.parse(status.body.verifiedAt)).toISOString());
        const oldSession = new Client(app.url);
        oldSession.cookie = oldCookie;
        assert.deepEqual((await oldSession.get('/otp/status')).body, { verified: false });
        assert.equal((await oldSession.get('/account')).status, 401);
        assert.equal((await client.get('/account')).status, 200);
      });

      it('refuses a replay of a used code', async () => {
        const { app, client } = await start();
        const code = await sendAndRead(app, client);
        assert.equal((await client.post('/otp/verify', { username: 'john.smith', code })).status, 200);
        const replay = await client.post('/otp/verify', { username: 'john.smith', code });
        assert.equal(replay.status, 401);
        assert.equal(replay.body.error, 'invalid_code');
      });

      it('answers 401 invalid_code for a wrong code, a never-sent code and an unknown user, with one body', async () => {
        const { app, client } = await start();
        const code = await sendAndRead(app, client);
        const wrong = await client.post('/otp/verify', { username: 'john.smith', code: code === '000000' ? '111111' : '000000' });
        const neverSent = await client.post('/otp/verify', { username: 'ada.lovelace', code: '123456' });
        const unknown = await client.post('/otp/verify', { username: 'nobody.here', code: '123456' });
        const malformed = await client.post('/otp/verify', { username: 'john.smith', code: 'abc' });
        for (const reply of [wrong, neverSent, unknown, malformed]) {
          assert.equal(reply.status, 401);
          assert.deepEqual(reply.body, wrong.body);
          assert.equal(reply.body.error, 'invalid_code');
        }
      });

      it('refuses a code once it expired', async () => {
        const { app, client } = await start({ otp: { ttlSeconds: 1 } });
        const code = await sendAndRead(app, client);
        await sleep(1100);
        assert.equal((await client.post('/otp/verify', { username: 'john.smith', code })).status, 401);
      });

      it('makes a resend replace the earlier code', async () => {
        const { app, client } = await start({ otp: { resendCooldownSeconds: 0 } });
        const first = await sendAndRead(app, client, 'ada.lovelace');
        let second = await sendAndRead(app, client, 'ada.lovelace');
        while (second === first) second = await sendAndRead(app, client, 'ada.lovelace');
        assert.equal((await client.post('/otp/verify', { username: 'ada.lovelace', code: first })).status, 401);
        assert.equal((await client.post('/otp/verify', { username: 'ada.lovelace', code: second })).status, 200);
      });

      it('refuses in session B a code that session A asked for', async () => {
        const { app, client: sessionA } = await start();
        const code = await sendAndRead(app, sessionA);
        const sessionB = new Client(app.url);
        await sessionB.get('/otp/status');
        const stolen = await sessionB.post('/otp/verify', { username: 'john.smith', code });
        assert.equal(stolen.status, 401);
        assert.equal(stolen.body.error, 'invalid_code');
        assert.equal((await sessionA.post('/otp/verify', { username: 'john.smith', code })).status, 200);
      });

      it('burns a code after maxAttempts wrong guesses: even the right code gets 429', async () => {
        const { app, client } = await start({ otp: { maxAttempts: 3 } });
        const code = await sendAndRead(app, client);
        const wrong = code === '999999' ? '000000' : '999999';
        for (let i = 0; i < 3; i++) assert.equal((await client.post('/otp/verify', { username: 'john.smith', code: wrong })).status, 401);
        const right = await client.post('/otp/verify', { username: 'john.smith', code });
        assert.equal(right.status, 429);
        assert.equal(right.body.error, 'too_many_attempts');
        assert.equal(typeof right.body.message, 'string');
      });

      it('lets exactly 1 of 50 parallel verifies of the right code succeed', async () => {
        const { app, client } = await start();
        const code = await sendAndRead(app, client);
        const replies = await Promise.all(Array.from({ length: 50 }, () => client.post('/otp/verify', { username: 'john.smith', code })));
        const statuses = replies.map((r) => r.status);
        assert.equal(statuses.filter((s) => s === 200).length, 1, `statuses: ${statuses.join(',')}`);
        assert.equal(statuses.filter((s) => s === 401).length, 49);
      });

      it('evaluates at most maxAttempts of 60 parallel wrong guesses, then refuses the right code', async () => {
        const { app, client } = await start();
        let evaluated = 0;
        app.service.on('failed', (event) => {
          if (event.reason === 'wrong_code') evaluated += 1;
        });
        const code = await sendAndRead(app, client);
        const wrong = code === '999999' ? '000000' : '999999';
        const replies = await Promise.all(Array.from({ length: 60 }, () => client.post('/otp/verify', { username: 'john.smith', code: wrong })));
        const statuses = replies.map((r) => r.status);
        assert.ok(
          statuses.every((s) => s === 401 || s === 429),
          statuses.join(','),
        );
        assert.equal(statuses.filter((s) => s === 401).length, 5);
        assert.equal(evaluated, 5);
        assert.equal((await client.post('/otp/verify', { username: 'john.smith', code })).status, 429);
      });

      it('answers 400 invalid_request when username or code is missing or not a string', async () => {
        const { client } = await start();
        for (const body of [{ username: 'john.smith' }, { code: '123456' }, { username: 'john.smith', code: 123456 }, { username: 7, code: '123456' }, []]) {
          const reply = await client.post('/otp/verify', body);
          assert.equal(reply.status, 400, JSON.stringify(body));
          assert.equal(reply.body.error, 'invalid_request');
        }
      });
    });

    describe('GET /otp/status and requireOtp()', () => {
      it('reports not verified before verify', async () => {
        const { client } = await start();
        const reply = await client.get('/otp/status');
        assert.equal(reply.status, 200);
        assert.deepEqual(reply.body, { verified: false });
      });

      it('answers 401 otp_required to API requests and 303 to pages when redirectTo is set', async () => {
        const { client } = await start();
        const api = await client.get('/account', 'application/json');
        assert.equal(api.status, 401);
        assert.equal(api.body.error, 'otp_required');
        const page = await client.get('/account', 'text/html,application/xhtml+xml');
        assert.equal(page.status, 303);
        assert.equal(page.headers.get('location'), '/login');
        const noRedirect = await client.get('/fresh', 'text/html');
        assert.equal(noRedirect.status, 401);
      });

      it('treats a verification older than maxAgeSeconds as none', async () => {
        const { app, client } = await start();
        const code = await sendAndRead(app, client);
        assert.equal((await client.post('/otp/verify', { username: 'john.smith', code })).status, 200);
        assert.equal((await client.get('/fresh')).status, 200);
        await sleep(1100);
        assert.equal((await client.get('/fresh')).status, 401);
        assert.equal((await client.get('/account')).status, 200);
      });

      it('keeps its session in one HttpOnly cookie, with no session middleware', { skip: !cookieSession && 'a session middleware app' }, async () => {
        const { client } = await start();
        assert.equal((await client.get('/account')).status, 401);
        const send = await client.post('/otp/send', { username: 'john.smith' });
        assert.equal(send.status, 202);
        const cookies = send.headers.getSetCookie();
        assert.equal(cookies.length, 1, cookies.join('\n'));
        assert.match(cookies[0] ?? '', /^blockid-otp=v1\.[A-Za-z0-9_-]+; Max-Age=86400; Path=\/; HttpOnly; SameSite=Lax$/);
        assert.doesNotMatch(cookies[0] ?? '', /john|smith|4155550100|example\.com/);
        // A status read changes nothing: no Set-Cookie.
        assert.deepEqual((await client.get('/otp/status')).headers.getSetCookie(), []);
      });

      it('fails loudly without a session middleware, never passing the guard', {
        skip: (cookieSession || sessionFallback) && 'the app has its own cookie session',
      }, async () => {
        const { client } = await start({ withoutSession: true });
        const guarded = await client.get('/account');
        assert.equal(guarded.status, 500);
        assert.match(guarded.body.message, /session/);
        const send = await client.post('/otp/send', { username: 'john.smith' });
        assert.equal(send.status, 500);
        assert.match(send.body.message, /session/);
      });
    });
  });
}

/** Run after the suites: no reply of any of them carried a code. */
export function describeNoCodeInResponses(): void {
  describe('no code in any response', () => {
    it('never put a code in a body or a header', () => {
      assert.ok(allCodes.size > 10, `codes seen: ${allCodes.size}`);
      const checked = assertNoCodeLeaked(allCodes);
      assert.ok(checked > 50, `replies checked: ${checked}`);
    });
  });
}
