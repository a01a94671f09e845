/** Options are validated once, at creation, with a TypeError that names the option and the fix. */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { describe, it } from 'node:test';
import express from 'express';
import session from 'express-session';
import { blockidOtp, createOtpService, memoryStore, requireOtp, type OtpOptions } from '../../src/index.js';
import { captureSenders } from '../helpers/capture.js';
import { Client } from '../helpers/client.js';
import { SECRET, closeServer, listen } from '../helpers/apps.js';

const capture = captureSenders();
const valid: OtpOptions = { secret: SECRET, resolveUser: () => null, email: capture.email };

describe('blockidOtp(options) validation', () => {
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['no options object', null as unknown as Record<string, unknown>, /options object/],
    ['a missing secret', { secret: undefined }, /"secret".*at least 32 characters/],
    ['a short secret', { secret: 'too-short' }, /"secret".*at least 32 characters/],
    ['no sender at all', { email: undefined }, /at least one of "sms".*or "email"/],
    ['a sender without send()', { sms: { deliver() {} } }, /"sms" must be a sender with a send\(message\) method/],
    ['codeLength 5', { codeLength: 5 }, /"codeLength" must be a whole number from 6 to 10 \(got the number 5\)/],
    ['ttlSeconds as a string', { ttlSeconds: '300' }, /option "ttlSeconds" must be a whole number from 1 to 600 \(got the string "300"\)/],
    ['awaitDelivery as a string', { awaitDelivery: 'yes' }, /option "awaitDelivery" must be true or false \(got the string "yes"\)/],
    ['a misspelt limit', { limits: { lockSecond: 60 } }, /unknown limit "lockSecond": did you mean "lockSeconds"\?/],
    ['codeLength 11', { codeLength: 11 }, /"codeLength".*from 6 to 10/],
    ['ttlSeconds 0', { ttlSeconds: 0 }, /"ttlSeconds".*from 1 to 600/],
    ['ttlSeconds 601', { ttlSeconds: 601 }, /"ttlSeconds".*from 1 to 600/],
    ['maxAttempts 11', { maxAttempts: 11 }, /"maxAttempts".*from 1 to 10/],
    ['maxAttempts 2.5', { maxAttempts: 2.5 }, /"maxAttempts"/],
    ['resendCooldownSeconds -1', { resendCooldownSeconds: -1 }, /"resendCooldownSeconds"/],
    ['a basePath without a slash', { basePath: 'otp' }, /"basePath" must be a path starting with "\/"/],
    ['a resolveUser that is not a function', { resolveUser: 'users' }, /"resolveUser" must be a function/],
    ['a store that is not an OtpStore', { store: new Map() }, /"store" must be an OtpStore/],
    ['a misspelt option', { ttl: 60 }, /unknown option "ttl": did you mean "ttlSeconds"\?/],
    ['a near miss', { maxAttemps: 3 }, /unknown option "maxAttemps": did you mean "maxAttempts"\?/],
    ['an unknown limit', { limits: { perIp: 3 } }, /unknown limit "perIp"/],
    ['more than 100 failures before a lock (NIST)', { limits: { failedVerifications: 101 } }, /failedVerifications/],
    ['a logger without methods', { logger: {} }, /"logger" must have info, warn and error/],
    ['a webOtpDomain with a scheme', { webOtpDomain: 'https://example.com' }, /"webOtpDomain"/],
  ];
  for (const [name, change, message] of cases) {
    it(`throws a TypeError for ${name}`, () => {
      const options = change === null ? null : { ...valid, ...change };
      assert.throws(
        () => blockidOtp(options as OtpOptions),
        (error: unknown) => {
          assert.ok(error instanceof TypeError, `got ${String(error)}`);
          assert.match(error.message, /^blockidOtp: /);
          assert.match(error.message, message);
          return true;
        },
      );
    });
  }

  it('names createOtpService in its own errors', () => {
    assert.throws(() => createOtpService({ ...valid, secret: 'x' }), /^TypeError: createOtpService: option "secret"/);
  });

  it('accepts the boundaries of every range', () => {
    for (const change of [
      { codeLength: 6 },
      { codeLength: 10 },
      { ttlSeconds: 1 },
      { ttlSeconds: 600 },
      { maxAttempts: 1 },
      { maxAttempts: 10 },
      { store: memoryStore() },
    ]) {
      assert.equal(typeof blockidOtp({ ...valid, ...change }), 'function');
    }
  });

  it('catches app.use(blockidOtp) and app.use(requireOtp) written without the call', async () => {
    const app = express();
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const errors: unknown[] = [];
    app.use((req, res, next) => {
      try {
        (blockidOtp as unknown as (r: unknown, s: unknown, n: unknown) => void)(req, res, next);
      } catch (error) {
        errors.push(error);
        res.status(500).end();
      }
    });
    const address = server.address();
    await fetch(`http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/otp/status`);
    await closeServer(server);
    assert.match(String(errors[0]), /blockidOtp was passed to app\.use\(\) without being called: write app\.use\(blockidOtp\(/);
    assert.throws(
      () => (requireOtp as unknown as (r: unknown) => unknown)({ method: 'GET', headers: {}, url: '/' }),
      /requireOtp was passed to app\.use\(\) without being called/,
    );
    assert.throws(() => requireOtp({ redirectTo: 'https://evil.example' }), /"redirectTo" must be a path on this site/);
    assert.throws(() => requireOtp({ maxAgeSeconds: -5 }), /"maxAgeSeconds" must be a positive number/);
  });
});

describe("Express 'trust proxy'", () => {
  const statusWith = async (setting: unknown) => {
    const app = express();
    app.set('trust proxy', setting);
    app.use(session({ secret: 'session-secret-for-tests', resave: false, saveUninitialized: false }));
    app.use(blockidOtp(valid));
    let message = '';
    app.use((error: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      message = error.message;
      res.status(500).json({ error: 'internal_error' });
    });
    const server = createServer(app);
    const client = new Client(await listen(server));
    const reply = await client.post('/otp/send', { username: 'john.smith' });
    await closeServer(server);
    return { status: reply.status, message };
  };

  for (const [name, setting] of [
    ['true', true],
    ['5000 hops', 5000],
    ['a function that trusts every hop', () => true],
  ] as const) {
    it(`refuses ${name}, which lets any client choose its IP`, async () => {
      const { status, message } = await statusWith(setting);
      assert.equal(status, 500);
      assert.match(message, /X-Forwarded-For.*defeats the per-IP send quota.*app\.set\('trust proxy', 1\)/);
    });
  }
  for (const setting of [false, 1, 'loopback', '10.0.0.0/8']) {
    it(`accepts ${JSON.stringify(setting)}`, async () => {
      const { status } = await statusWith(setting);
      assert.equal(status, 202);
    });
  }
});
