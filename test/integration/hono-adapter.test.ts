/**
 * What the Hono middleware does beyond the HTTP contract: the flag on every other request,
 * `getIp`, and deliveries handed to the platform's `waitUntil` (as Cloudflare Workers and
 * Vercel give one through `app.fetch(request, env, executionCtx)`).
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { createAdaptorServer } from '@hono/node-server';
import { Hono } from 'hono';
import { blockidOtpHono, cookieSession, requireOtpHono } from '../../src/hono.js';
import { baseOptions } from '../helpers/apps.js';
import { captureSenders } from '../helpers/capture.js';

const json = (body: object, cookie?: string) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', ...(cookie !== undefined && { cookie }) },
  body: JSON.stringify(body),
});
const cookieOf = (response: Response) => response.headers.get('set-cookie')?.split(';')[0] ?? '';

describe('blockidOtpHono', () => {
  it('hands the deliveries to executionCtx.waitUntil where the platform has one, after the Response', async () => {
    const capture = captureSenders();
    const app = new Hono().use(blockidOtpHono({ ...baseOptions(capture), session: cookieSession({ secure: false }), getIp: () => '192.0.2.10' }));
    const kept: Array<Promise<unknown>> = [];
    const executionCtx = { waitUntil: (promise: Promise<unknown>) => void kept.push(promise), passThroughOnException: () => {}, props: {} };
    const response = await app.fetch(new Request('http://app.test/otp/send', json({ username: 'john.smith' })), {}, executionCtx);
    assert.equal(response.status, 202);
    assert.equal(kept.length, 1, 'one delivery job handed to waitUntil');
    assert.equal(capture.messages.length, 0, 'nothing delivered before the Response was returned');
    await kept[0];
    assert.equal(capture.messages.length, 2, 'the platform kept the work alive until both channels delivered');
  });

  it('without an executionCtx (Node), delivers after the Response, and getIp feeds the per-IP quota', async () => {
    const stackTraceLimit = Error.stackTraceLimit;
    const capture = captureSenders();
    const ips: string[] = [];
    const app = new Hono().use(
      blockidOtpHono({
        ...baseOptions(capture, { limits: { sendsPerIp: { points: 1, windowSeconds: 3600 } } }),
        session: cookieSession({ secure: false }),
        getIp: (c) => {
          const ip = c.req.header('x-test-client') ?? '';
          ips.push(ip);
          return ip;
        },
      }),
    );
    const send = (username: string, ip: string) =>
      app.request('/otp/send', { ...json({ username }), headers: { 'content-type': 'application/json', 'x-test-client': ip } });
    assert.equal((await send('john.smith', '192.0.2.1')).status, 202);
    assert.equal((await send('ada.lovelace', '192.0.2.1')).status, 429, 'the same address: over the per-IP quota');
    assert.equal((await send('grace.hopper', '192.0.2.2')).status, 202, 'another address has its own');
    assert.deepEqual(ips, ['192.0.2.1', '192.0.2.1', '192.0.2.2']);
    await capture.waitFor(3);
    // Probing for a waitUntil turns stack capture off only for that moment.
    assert.equal(Error.stackTraceLimit, stackTraceLimit);
  });

  it('on Node (@hono/node-server) does not ask Hono for an execution context, whose getter throws where there is none', async () => {
    const capture = captureSenders();
    let probes = 0;
    const app = new Hono();
    // Hono's own getter, counted: it throws when the platform passed no execution context.
    app.use(async (c, next) => {
      Object.defineProperty(c, 'executionCtx', {
        get() {
          probes += 1;
          throw new Error('This context has no ExecutionContext');
        },
      });
      await next();
    });
    app.use(blockidOtpHono({ ...baseOptions(capture), session: cookieSession({ secure: false }) }));
    const server = createAdaptorServer({ fetch: app.fetch });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const response = await fetch(`http://127.0.0.1:${port}/otp/send`, json({ username: 'john.smith' }));
      assert.equal(response.status, 202);
      await capture.waitFor(2);
      assert.equal(probes, 0, 'the env of @hono/node-server says there is none');
      // Without a runtime's env (app.request), the adapter asks, and finds none.
      assert.equal((await app.request('/otp/send', json({ username: 'ada.lovelace' }))).status, 202);
      await capture.waitFor(3);
      assert.equal(probes, 1);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('sets c.get("blockidOtp") on every other request: null, then the flag after verify; a guard lets only that through', async () => {
    const capture = captureSenders();
    const app = new Hono().use(blockidOtpHono({ ...baseOptions(capture), session: cookieSession({ secure: false }), getIp: () => '192.0.2.20' }));
    app.get('/who', (c) => c.json({ flag: c.get('blockidOtp') }));
    app.get('/totp-only', requireOtpHono({ methods: ['totp'] }), (c) => c.json({ ok: true }));
    assert.deepEqual(await (await app.request('/who')).json(), { flag: null });
    const sent = await app.request('/otp/send', json({ username: 'ada.lovelace' }));
    await capture.waitFor(1);
    const verified = await app.request('/otp/verify', json({ username: 'ada.lovelace', code: capture.lastCode('ada.lovelace') }, cookieOf(sent)));
    assert.equal(verified.status, 200);
    const who = (await (await app.request('/who', { headers: { cookie: cookieOf(verified) } })).json()) as { flag: Record<string, unknown> };
    assert.equal(who.flag.verified, true);
    assert.equal(who.flag.username, 'ada.lovelace');
    assert.equal(who.flag.method, 'code');
    assert.equal(typeof who.flag.verifiedAt, 'number');
    assert.equal((await app.request('/totp-only', { headers: { cookie: cookieOf(verified) } })).status, 401, 'a code is not a TOTP verification');
    // The cookie from before verify carries no flag: the session was regenerated.
    assert.deepEqual(await (await app.request('/who', { headers: { cookie: cookieOf(sent) } })).json(), { flag: null });
  });
});
