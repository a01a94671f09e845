/**
 * The second argument of `otp.fetch`: a `FetchContext`, or what a platform passes when the
 * handler is handed over as is (Next.js's `{ params }`, Bun's server, Deno's `info`). The IP
 * counts where the argument has one; anything else is no IP (said once in the log) and no
 * `waitUntil`, never an error.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cookieSession, createOtpHandler } from '../../src/fetch.js';
import { baseOptions } from '../helpers/apps.js';
import { captureSenders } from '../helpers/capture.js';

function handler() {
  const capture = captureSenders();
  const warnings: string[] = [];
  const logger = { info() {}, error() {}, warn: (_details: object, message?: string) => void warnings.push(message ?? '') };
  const otp = createOtpHandler({
    ...baseOptions(capture),
    logger,
    limits: { sendsPerIp: { points: 1, windowSeconds: 3600 } },
    session: cookieSession({ secure: false }),
  });
  /** A send for `username` from a new session (no cookie), with `context` as the second argument. */
  const send = (username: string, context?: object) =>
    otp.fetch(
      new Request('http://app.test/otp/send', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username }) }),
      context,
    );
  return { otp, send, capture, warnings };
}

describe('otp.fetch(request, context)', () => {
  const platforms: Array<[string, (ip: string) => object]> = [
    ['a FetchContext { ip }', (ip) => ({ ip })],
    ["Bun's server (requestIP)", (ip) => ({ requestIP: () => ({ address: ip, family: 'IPv4', port: 50000 }) })],
    ["Deno's info (remoteAddr.hostname)", (ip) => ({ remoteAddr: { hostname: ip, port: 50000, transport: 'tcp' }, completed: Promise.resolve() })],
  ];
  for (const [name, context] of platforms) {
    it(`counts the per-IP quota with the address from ${name}`, async () => {
      const { send, warnings } = handler();
      assert.equal((await send('john.smith', context('203.0.113.7'))).status, 202);
      const second = await send('ada.lovelace', context('203.0.113.7'));
      assert.equal(second.status, 429, await second.clone().text());
      assert.equal(((await second.json()) as { error: string }).error, 'rate_limited');
      assert.equal((await send('grace.hopper', context('203.0.113.8'))).status, 202, 'another address has its own quota');
      assert.deepEqual(
        warnings.filter((warning) => /no client IP/.test(warning)),
        [],
      );
    });
  }

  it("treats Next.js's { params } and ill-typed fields as no IP and no waitUntil, and says so once in the log", async () => {
    const { send, warnings, capture } = handler();
    const throwing = {
      requestIP: () => {
        throw new Error('not a Bun server');
      },
    };
    const contexts = [{ params: Promise.resolve({ otp: ['send'] }) }, { ip: 42, waitUntil: 'later' }, throwing];
    for (const [index, context] of contexts.entries()) {
      const username = ['john.smith', 'ada.lovelace', 'grace.hopper'][index]!;
      assert.equal((await send(username, context)).status, 202, 'the per-IP quota of 1 does not apply without an address');
    }
    await capture.waitFor(4); // john.smith has two channels
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /no client IP .*pass \{ ip \}.*trustProxy/);
  });

  it('hands the delivery to waitUntil, which resolves once the code is sent', async () => {
    const { send, capture } = handler();
    const pending: Promise<unknown>[] = [];
    const reply = await send('ada.lovelace', { ip: '203.0.113.9', waitUntil: (promise: Promise<unknown>) => void pending.push(promise) });
    assert.equal(reply.status, 202);
    assert.equal(pending.length, 1);
    assert.equal(capture.messages.length, 0, 'nothing is sent before the response is returned');
    await pending[0];
    assert.equal(capture.messages.length, 1);
  });
});
