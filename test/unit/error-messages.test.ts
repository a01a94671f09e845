/**
 * Messages that tell the fix: every error answer ends with a link to its section of
 * docs/errors.md; a locked user is told how long to wait (a new code cannot help during the
 * lock) while a burned code says to request a new one; a plain HTML form post gets a 415 a
 * person can act on; every OtpError and configuration error links to its section too.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { blockidOtp, createOtpService, nodemailerEmail, OtpError, redisStore, requireOtp, twilioSms } from '../../src/index.js';
import { frameworks, SECRET, type TestApp } from '../helpers/apps.js';
import { captureSenders } from '../helpers/capture.js';
import { Client } from '../helpers/client.js';

const LINK = /\(see docs\/errors\.md#[a-z0-9-]+\)$/;
const wrong = (code: string) => (code === '000000' ? '111111' : '000000');

for (const [framework, makeApp] of frameworks) {
  describe(`${framework}: error answers tell the fix`, () => {
    const apps: TestApp[] = [];
    after(() => Promise.all(apps.map((app) => app.close())));
    const start = async (otp: Parameters<typeof makeApp>[0] = {}) => {
      const app = await makeApp(otp);
      apps.push(app);
      return app;
    };

    it("every error body's message ends with the link to its own section", async () => {
      const app = await start();
      const client = new Client(app.url);
      const answers = [
        await client.post('/otp/send', { username: '' }),
        await client.request('GET', '/otp/send'),
        await client.request('POST', '/otp/send', { raw: 'username=x', contentType: 'text/plain' }),
        await client.post('/otp/verify', { username: 'john.smith', code: '123456' }),
        await client.get('/account'),
      ];
      assert.deepEqual(
        answers.map((a) => a.status),
        [400, 405, 415, 401, 401],
      );
      for (const answer of answers) {
        assert.match(answer.body.message, LINK);
        assert.ok(answer.body.message.endsWith(`(see docs/errors.md#${answer.body.error.replace(/_/g, '-')})`), answer.text);
      }
      await client.post('/otp/send', { username: 'ada.lovelace' });
      const cooldown = await client.post('/otp/send', { username: 'ada.lovelace' });
      assert.equal(cooldown.status, 429);
      assert.match(cooldown.body.message, /\(see docs\/errors\.md#rate-limited\)$/);
    });

    it('an HTML form post (urlencoded or multipart) gets the JSON 415 with words a person can act on', async () => {
      const app = await start();
      const client = new Client(app.url);
      const boundary = '----form';
      for (const [contentType, raw] of [
        ['application/x-www-form-urlencoded', 'username=john.smith'],
        [
          `multipart/form-data; boundary=${boundary}`,
          `--${boundary}\r\nContent-Disposition: form-data; name="username"\r\n\r\njohn.smith\r\n--${boundary}--\r\n`,
        ],
      ] as const) {
        const reply = await client.request('POST', '/otp/send', { raw, contentType, accept: 'text/html' });
        assert.equal(reply.status, 415, contentType);
        assert.equal(reply.body.error, 'unsupported_media_type');
        assert.match(reply.body.message, /not a form post/);
        assert.match(reply.body.message, /fetch\(\) and "Content-Type: application\/json"/);
        assert.match(reply.body.message, /\(see docs\/errors\.md#unsupported-media-type\)$/);
      }
      await new Promise((r) => setTimeout(r, 30));
      assert.equal(app.capture.outbox.length, 0, 'a form post sends nothing');
    });

    it('a burned code: 429 too_many_attempts says to request a new code, with no Retry-After', async () => {
      const app = await start({ otp: { maxAttempts: 2 } });
      const client = new Client(app.url);
      await client.post('/otp/send', { username: 'ada.lovelace' });
      const code = await app.capture.waitForCode('ada.lovelace');
      for (let i = 0; i < 2; i++) assert.equal((await client.post('/otp/verify', { username: 'ada.lovelace', code: wrong(code) })).status, 401);
      const burned = await client.post('/otp/verify', { username: 'ada.lovelace', code });
      assert.equal(burned.status, 429);
      assert.equal(burned.headers.get('retry-after'), null);
      assert.match(burned.body.message, /request a new code/);
      assert.match(burned.body.message, /\(see docs\/errors\.md#too-many-attempts\)$/);
    });

    it('a locked username: the 429 says how long to wait and that a new code will not help, the same for an unknown username', async () => {
      const app = await start({ otp: { limits: { failedVerifications: 2, lockSeconds: 900 } } });
      const messages: string[] = [];
      for (const username of ['ada.lovelace', 'nobody.here']) {
        // An attacker who knows only the username, from fresh sessions.
        const attacker = new Client(app.url);
        await attacker.post('/otp/send', { username });
        const code = username === 'ada.lovelace' ? await app.capture.waitForCode('ada.lovelace') : '123456';
        for (let i = 0; i < 2; i++) await attacker.post('/otp/verify', { username, code: wrong(code) });
        const locked = await attacker.post('/otp/verify', { username, code });
        assert.equal(locked.status, 429);
        assert.equal(locked.body.error, 'too_many_attempts');
        assert.ok(Number(locked.headers.get('retry-after')) > 0);
        assert.match(locked.body.message, /try again in 15 minutes\. A new code will not work before then\./);
        assert.doesNotMatch(locked.body.message, /request a new code/);
        messages.push(locked.body.message);
      }
      assert.equal(messages[0], messages[1], 'a known and an unknown username read the same');
    });
  });
}

describe('errors thrown to the programmer link to their section', () => {
  it('each OtpError code: the message ends with (see docs/errors.md#<code>)', async () => {
    const capture = captureSenders();
    const service = createOtpService({ secret: SECRET, email: capture.email });
    const codes = new Map<string, unknown>();
    const attempts: Array<() => Promise<unknown>> = [
      () => service.generateOtp('', { emailTo: 'a@example.com' }),
      () => service.generateOtp('x', { smsTo: '1234567890' }),
      () => service.generateOtp('x', { emailTo: '"quoted"@example.com' }),
      () => service.generateOtp('x', {}),
      () => service.generateOtp('x', { smsTo: '4155550100' }),
    ];
    for (const attempt of attempts) {
      const error = await attempt().then(
        () => assert.fail('should be refused'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof OtpError);
      codes.set(error.code, error.message);
      assert.ok(error.message.endsWith(`(see docs/errors.md#${error.code.toLowerCase().replace(/_/g, '-')})`), error.message);
    }
    assert.deepEqual([...codes.keys()].sort(), ['CHANNEL_NOT_CONFIGURED', 'INVALID_EMAIL', 'INVALID_PHONE', 'INVALID_REQUEST', 'NO_DESTINATION']);
  });

  it('configuration TypeErrors: options, senders, stores, the guard and app.use() misuse each link to their section', () => {
    const cases: Array<[() => unknown, string]> = [
      [() => blockidOtp({ secret: 'short', email: captureSenders().email }), 'invalid-options'],
      [() => blockidOtp({ secret: SECRET, email: captureSenders().email, ttl: 5 } as never), 'invalid-options'],
      [() => twilioSms({ accountSid: 'nope', authToken: 't', from: '+14155550111' }), 'invalid-sender-options'],
      [() => nodemailerEmail({ smtpUrl: 'http://x', from: 'a@example.com' }), 'invalid-sender-options'],
      [() => redisStore({ client: {} as never }), 'invalid-store-options'],
      [() => requireOtp({ redirectTo: '//evil.example' }), 'invalid-guard-options'],
      [() => requireOtp({ method: ['totp'] } as never), 'invalid-guard-options'],
      [() => blockidOtp({ method: 'GET', headers: {}, url: '/' } as never), 'not-called'],
    ];
    for (const [create, anchor] of cases) {
      assert.throws(create, (error: unknown) => {
        assert.ok(error instanceof TypeError, String(error));
        assert.ok(error.message.endsWith(`(see docs/errors.md#${anchor})`), error.message);
        return true;
      });
    }
  });
});

describe('docs/errors.md', () => {
  it('has a section for every anchor a message links to (each error code, each HTTP error, each configuration anchor)', async () => {
    const { readFile } = await import('node:fs/promises');
    const page = await readFile(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    const ids = new Set([...page.matchAll(/<a id="([^"]+)"><\/a>/g)].map((m) => m[1]));
    for (const m of page.matchAll(/^#{2,3} (.+)$/gm))
      ids.add(
        m[1]!
          .trim()
          .toLowerCase()
          .replace(/[^a-z0-9_ -]/g, '')
          .replace(/ /g, '-'),
      );
    const source = await readFile(new URL('../../src/core/errors.ts', import.meta.url), 'utf8');
    const codes = [...source.matchAll(/^\s+\| '([A-Z_]+)';?$/gm)].map((m) => m[1]!);
    const anchors = [...(source.match(/export type DocsAnchor =([^;]+);/)?.[1] ?? '').matchAll(/'([a-z-]+)'/g)].map((m) => m[1]!);
    const httpErrors = [
      'invalid_request',
      'invalid_code',
      'too_many_attempts',
      'otp_required',
      'not_found',
      'method_not_allowed',
      'payload_too_large',
      'unsupported_media_type',
      'rate_limited',
      'delivery_failed',
      'unavailable',
    ];
    assert.ok(codes.length >= 8 && anchors.length >= 10, `read ${codes.length} codes and ${anchors.length} anchors from errors.ts`);
    const missing = [...codes.map(anchorOfCode), ...httpErrors.map(anchorOfCode), ...anchors].filter((anchor) => !ids.has(anchor));
    assert.deepEqual(missing, []);
  });
});

function anchorOfCode(code: string): string {
  return code.toLowerCase().replace(/_/g, '-');
}
