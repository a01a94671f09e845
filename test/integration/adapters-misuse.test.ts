/**
 * The fetch, Hono and Fastify adapters used wrongly, and the attacker who sends from one socket
 * with a new X-Forwarded-For each time: every misuse is a clear error (never a silent pass), and
 * a forwarded address counts only behind a proxy the app said it trusts.
 */
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { after, describe, it } from 'node:test';
import { createAdaptorServer } from '@hono/node-server';
import fastifyCookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import Fastify, { type FastifyInstance } from 'fastify';
import { Hono } from 'hono';
import { cookieSession, createOtpHandler } from '../../src/fetch.js';
import { blockidOtpFastify, requireOtpFastify } from '../../src/fastify.js';
import { blockidOtpHono, requireOtpHono } from '../../src/hono.js';
import { baseOptions, closeServer, listen } from '../helpers/apps.js';
import { captureSenders } from '../helpers/capture.js';
import { Client } from '../helpers/client.js';

const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of closers) await close();
});

/** One send per IP per hour: the second send from the same client must be refused. */
const onePerIp = { limits: { sendsPerIp: { points: 1, windowSeconds: 3600 } } };

async function serveFetch(fetch: (request: Request, env: any) => Response | Promise<Response>): Promise<string> {
  const server = createAdaptorServer({ fetch }) as Server;
  const url = await listen(server);
  closers.push(() => closeServer(server));
  return url;
}

async function serveFastify(app: FastifyInstance): Promise<string> {
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  closers.push(async () => {
    app.server.closeAllConnections();
    await app.close();
  });
  return url;
}

/** Two sends for two users from one socket, each with its own made-up X-Forwarded-For. */
async function twoSendsWithForgedForwardedFor(url: string) {
  const client = new Client(url);
  const first = await client.post('/otp/send', { username: 'john.smith' }, { headers: { 'x-forwarded-for': '203.0.113.1' } });
  const second = await new Client(url).post('/otp/send', { username: 'ada.lovelace' }, { headers: { 'x-forwarded-for': '203.0.113.2' } });
  return [first, second] as const;
}

const fetchUrl = (trustProxy: number) => {
  const otp = createOtpHandler({ ...baseOptions(captureSenders(), onePerIp), session: cookieSession({ secure: false }), trustProxy });
  return serveFetch(async (request, env) => (await otp.handle(request, { ip: env.incoming.socket.remoteAddress })) ?? new Response(null, { status: 404 }));
};

const honoUrl = (trustProxy: number) => {
  const app = new Hono().use(blockidOtpHono({ ...baseOptions(captureSenders(), onePerIp), session: cookieSession({ secure: false }), trustProxy }));
  return serveFetch(app.fetch);
};

const fastifyUrl = async (trustProxy?: string) => {
  const app = Fastify(trustProxy === undefined ? {} : { trustProxy });
  await app.register(blockidOtpFastify, { ...baseOptions(captureSenders(), onePerIp), session: cookieSession({ secure: false }) });
  return serveFastify(app);
};

describe('X-Forwarded-For counts only behind a trusted proxy', () => {
  for (const [name, untrusted, trusted] of [
    ['fetch', () => fetchUrl(0), () => fetchUrl(1)],
    ['hono', () => honoUrl(0), () => honoUrl(1)],
    ['fastify', () => fastifyUrl(), () => fastifyUrl('127.0.0.1')],
  ] as const) {
    it(`${name}: two sends from one socket with different X-Forwarded-For share one per-IP quota`, async () => {
      const [first, second] = await twoSendsWithForgedForwardedFor(await untrusted());
      assert.equal(first.status, 202, first.text);
      assert.equal(second.status, 429, second.text);
      assert.equal(second.body.error, 'rate_limited');
      assert.ok(second.headers.get('retry-after'));
    });

    it(`${name}: behind one trusted proxy, each forwarded client has its own quota`, async () => {
      const [first, second] = await twoSendsWithForgedForwardedFor(await trusted());
      assert.equal(first.status, 202, first.text);
      assert.equal(second.status, 202, second.text);
    });
  }

  it('fetch and hono refuse trustProxy beyond 9 (or not a whole number), naming the option', () => {
    const capture = captureSenders();
    for (const trustProxy of [10, 100, -1, 1.5, '1' as unknown as number, true as unknown as number]) {
      assert.throws(
        () => createOtpHandler({ ...baseOptions(capture), trustProxy }),
        (error: Error) => error instanceof TypeError && /trustProxy.*0 to 9/.test(error.message),
      );
      assert.throws(
        () => blockidOtpHono({ ...baseOptions(capture), trustProxy }),
        (error: Error) => error instanceof TypeError && /blockidOtpHono.*trustProxy.*0 to 9/.test(error.message),
      );
    }
  });

  for (const [name, trustProxy] of [
    ['true', true],
    ['0.0.0.0/1,128.0.0.0/1', '0.0.0.0/1,128.0.0.0/1'],
    ['() => true', () => true],
  ] as const) {
    it(`fastify refuses Fastify's trustProxy: ${name} (any client would choose its request.ip) with a message that says what to set`, async () => {
      const app = Fastify({ trustProxy });
      await app.register(blockidOtpFastify, baseOptions(captureSenders(), onePerIp));
      app.get('/', async () => ({ home: true }));
      const url = await serveFastify(app);
      for (const path of ['/', '/otp/send']) {
        const reply = await new Client(url).post(path, { username: 'john.smith' });
        assert.equal(reply.status, 500, reply.text);
        assert.match(reply.body.message, /trustProxy.*X-Forwarded-For.*proxy's address/s);
      }
    });
  }

  it("fastify refuses a trustProxy option on the plugin: the IP is Fastify's request.ip", async () => {
    const app = Fastify();
    await assert.rejects(async () => {
      await app.register(blockidOtpFastify, { ...baseOptions(captureSenders()), trustProxy: 1 } as never);
    }, /set trustProxy on Fastify itself/);
  });
});

describe('Hono misuse', () => {
  it('app.use(blockidOtpHono) without calling it: a clear error on the first request', async () => {
    const errors: Error[] = [];
    const app = new Hono();
    app.use(blockidOtpHono as never);
    app.get('/', (c) => c.text('home'));
    app.onError((error, c) => {
      errors.push(error);
      return c.json({ error: 'internal_error', message: error.message }, 500);
    });
    const reply = await app.request('/');
    assert.equal(reply.status, 500);
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof TypeError);
    assert.match(errors[0].message, /blockidOtpHono was passed to app\.use\(\) without being called: write app\.use\(blockidOtpHono\(\{/);
  });

  it('requireOtpHono() without blockidOtpHono in front: 500 that says so, never the page', async () => {
    const app = new Hono();
    app.get('/account', requireOtpHono(), (c) => c.json({ account: true }));
    const url = await serveFetch(app.fetch);
    const reply = await new Client(url).get('/account');
    assert.equal(reply.status, 500);
    assert.equal(reply.body.error, 'server_error');
    assert.match(reply.body.message, /requireOtpHono\(\) ran without blockidOtpHono\(\) in front of it: add app\.use\(blockidOtpHono/);
    assert.equal(reply.body.account, undefined);
  });

  it("a guard behind another app's blockidOtpHono does not let that app's session in", async () => {
    // The cookie of an app with another secret (an attacker's own deployment, same cookie name) is no session here.
    const theirCapture = captureSenders();
    const theirs = blockidOtpHono({
      ...baseOptions(theirCapture),
      secret: 'an-attacker-secret-0123456789-abcdefghij',
      session: cookieSession({ secure: false }),
    });
    const ours = blockidOtpHono({ ...baseOptions(captureSenders()), session: cookieSession({ secure: false }) });
    const theirApp = new Hono().use(theirs);
    const ourApp = new Hono().use(ours);
    ourApp.get('/account', requireOtpHono(), (c) => c.json({ account: true, flag: c.get('blockidOtp') }));
    const attacker = new Client(await serveFetch(theirApp.fetch));
    // Signed in on their own app, with a code their own app sent them.
    assert.equal((await attacker.post('/otp/send', { username: 'john.smith' })).status, 202);
    await theirCapture.waitFor(1);
    const code = theirCapture.lastCode('john.smith');
    assert.equal((await attacker.post('/otp/verify', { username: 'john.smith', code })).status, 200);
    const victim = new Client(await serveFetch(ourApp.fetch));
    victim.cookie = attacker.cookie;
    const reply = await victim.get('/account');
    assert.equal(reply.status, 401);
    assert.equal(reply.body.error, 'otp_required');
  });

  it('blockidOtpHono() without an options object: a TypeError that shows the call', () => {
    for (const options of [undefined, null, 'secret']) {
      assert.throws(
        () => blockidOtpHono(options as never),
        /blockidOtpHono: expected an options object, e\.g\. blockidOtpHono\(\{ secret, resolveUser, email \}\)/,
      );
    }
  });

  it('the middleware object carries the programmatic API and nothing of the service', () => {
    const otp = blockidOtpHono({ ...baseOptions(captureSenders()), session: cookieSession({ secure: false }) });
    for (const name of ['generateOtp', 'verifyOtp', 'unlock', 'on', 'off', 'clearSession'])
      assert.equal(typeof (otp as unknown as Record<string, unknown>)[name], 'function', name);
    assert.equal('service' in otp, false);
    assert.equal('options' in otp, false);
    assert.equal(
      otp.on('locked', () => {}),
      otp,
      'on() returns the middleware',
    );
    assert.doesNotMatch(JSON.stringify(Object.entries(otp)), /test-secret/);
  });
});

describe('Fastify misuse', () => {
  it('requireOtpFastify() without the plugin registered: 500 that says so, never the page', async () => {
    const app = Fastify();
    app.get('/account', { preHandler: requireOtpFastify() }, async () => ({ account: true }));
    const reply = await new Client(await serveFastify(app)).get('/account');
    assert.equal(reply.status, 500);
    assert.equal(reply.body.error, 'server_error');
    assert.match(reply.body.message, /requireOtpFastify\(\) ran without blockidOtpFastify in front of it: await app\.register\(blockidOtpFastify/);
    assert.equal(reply.body.account, undefined);
  });

  it('the plugin registered in a sibling scope does not count for the guard', async () => {
    const app = Fastify();
    await app.register(
      async (scope) => {
        await scope.register(blockidOtpFastify, { ...baseOptions(captureSenders()), session: cookieSession({ secure: false }) });
      },
      { prefix: '/other' },
    );
    app.get('/account', { preHandler: requireOtpFastify() }, async () => ({ account: true }));
    const reply = await new Client(await serveFastify(app)).get('/account');
    assert.equal(reply.status, 500);
    assert.match(reply.body.message, /without blockidOtpFastify/);
  });

  it('{ preHandler: requireOtpFastify } without calling it: a clear error, never the page', async () => {
    const app = Fastify();
    await app.register(blockidOtpFastify, { ...baseOptions(captureSenders()), session: cookieSession({ secure: false }) });
    app.get('/account', { preHandler: requireOtpFastify as never }, async () => ({ account: true }));
    const reply = await new Client(await serveFastify(app)).get('/account');
    assert.equal(reply.status, 500);
    assert.match(reply.body.message, /requireOtpFastify was used without being called: write \{ preHandler: requireOtpFastify\(\) \}/);
  });

  it('@fastify/session registered after the plugin: app.ready() fails and says to swap them', async () => {
    const app = Fastify();
    await app.register(blockidOtpFastify, baseOptions(captureSenders()));
    app.register(fastifyCookie);
    app.register(fastifySession, { secret: 'fastify-session-secret-for-tests-0123456789' });
    await assert.rejects(async () => {
      await app.ready();
    }, /@fastify\/session is registered after blockid-otp: register it before, or pass session: cookieSession\(\)/);
    await app.close();
  });

  describe("bodies under basePath get the contract's error bodies, not Fastify's", () => {
    const start = async () => {
      const app = Fastify();
      await app.register(blockidOtpFastify, { ...baseOptions(captureSenders()), session: cookieSession({ secure: false }) });
      // The app's own JSON routes keep Fastify's parser.
      app.post('/echo', async (request) => ({ echo: request.body }));
      return new Client(await serveFastify(app));
    };

    it('a non-JSON body: 415 unsupported_media_type', async () => {
      const client = await start();
      for (const [raw, contentType] of [
        ['username=john.smith', 'application/x-www-form-urlencoded'],
        ['john.smith', 'text/plain'],
        ['{"username":"john.smith"}', undefined],
      ] as const) {
        const reply = await client.request('POST', '/otp/send', { raw, ...(contentType !== undefined && { contentType }) });
        assert.equal(reply.status, 415, `${contentType}: ${reply.text}`);
        assert.equal(reply.body.error, 'unsupported_media_type');
        assert.match(reply.body.message, /Content-Type: application\/json/);
        assert.equal(reply.body.statusCode, undefined, "not Fastify's error shape");
      }
    });

    it('a body over the limit: 413 payload_too_large; bad JSON: 400 invalid_request', async () => {
      const client = await start();
      const large = await client.request('POST', '/otp/send', { raw: JSON.stringify({ username: 'x'.repeat(200_000) }), contentType: 'application/json' });
      assert.equal(large.status, 413, large.text);
      assert.equal(large.body.error, 'payload_too_large');
      const bad = await client.request('POST', '/otp/verify', { raw: '{"username":', contentType: 'application/json' });
      assert.equal(bad.status, 400, bad.text);
      assert.equal(bad.body.error, 'invalid_request');
      assert.equal(bad.body.statusCode, undefined);
    });

    it("a wrong method: 405 with Allow; an unknown path under basePath: Fastify's 404; the app's own routes still parse JSON", async () => {
      const client = await start();
      const wrong = await client.get('/otp/send');
      assert.equal(wrong.status, 405);
      assert.equal(wrong.headers.get('allow'), 'POST');
      assert.equal((await client.get('/otp/nothing')).status, 404);
      const head = await client.request('HEAD', '/otp/status');
      assert.equal(head.status, 200);
      const echo = await client.post('/echo', { a: 1 });
      assert.deepEqual(echo.body, { echo: { a: 1 } });
    });
  });

  it('app.otp carries the programmatic API and nothing of the service; request.blockidOtp is null before verify', async () => {
    const app = Fastify();
    await app.register(blockidOtpFastify, { ...baseOptions(captureSenders()), session: cookieSession({ secure: false }) });
    app.get('/who', async (request) => ({ flag: request.blockidOtp }));
    const url = await serveFastify(app);
    for (const name of ['generateOtp', 'verifyOtp', 'unlock', 'on', 'off', 'clearSession'])
      assert.equal(typeof (app.otp as unknown as Record<string, unknown>)[name], 'function', name);
    assert.equal('service' in app.otp, false);
    assert.equal(
      app.otp.on('locked', () => {}),
      app.otp,
    );
    assert.deepEqual((await new Client(url).get('/who')).body, { flag: null });
  });
});
