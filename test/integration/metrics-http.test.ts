/**
 * prometheusMetrics() end to end: a scripted run over real HTTP on Express and on Koa (and one
 * through createOtpService + generateOtp), then a scrape of a real prom-client Registry with
 * every counter's exact value, every histogram's count, and no personal data anywhere in it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { createOtpService, OtpError, type Destinations, type OtpOptions, type SmsSender } from '../../src/index.js';
import { prometheusMetrics } from '../../src/metrics.js';
import { captureSenders } from '../../src/testing.js';
import { expressApp, koaApp, SECRET, type AppFactory, type TestApp } from '../helpers/apps.js';
import { Client } from '../helpers/client.js';
import { parseScrape, sampleValue, series, withoutValues } from '../helpers/prom-scrape.js';
import { DELIVERY_PAUSE_MS } from '../../src/core/send/after-reply.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The scripted run's people. */
const people: Record<string, Destinations> = {
  'alice.walker': { smsTo: '(415) 555-0101', smsISDCode: '1', emailTo: 'alice.walker@example.com' },
  'bob.marley': { smsTo: '212-555-0199' },
  'dave.grohl': { smsTo: '+1 604 555 0123' },
  'erin.brockovich': { smsTo: '6045550188', emailTo: 'erin.b@example.net' },
  'frank.zappa': { emailTo: 'frank.zappa@example.org' },
  'tess.tester': { emailTo: 'tess.tester@example.com' },
};
const UNKNOWN = 'mallory.nobody';
/** bob's number, whose every delivery fails with a retryable provider error. */
const FAILING = '+12125550199';
const TEST_CODE = '135790';

/** Every writing of a number that must not show: as given, E.164, national, with and without the 1, line with area code or exchange. */
function writings(phone: string): string[] {
  const digits = phone.replace(/\D/g, '').replace(/^1(?=\d{10}$)/, '');
  const [npa, nxx, line] = [digits.slice(0, 3), digits.slice(3, 6), digits.slice(6)];
  return [phone, `+1${digits}`, `1${digits}`, digits, `${npa}${line}`, `${npa}-${line}`, `${nxx}${line}`, `${nxx}-${line}`, `(${npa}) ${nxx}`];
}

/** A wrong code of the same shape: every digit moved by one (never equal to `code`). */
const wrong = (code: string) => code.replace(/\d/g, (d) => String((Number(d) + 1) % 10));

/** The JSON key `series()` gives a label set. */
const key = (labels: Record<string, string>) => JSON.stringify(Object.fromEntries(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b))));

/** An SMS sender that fails (retryably, as Twilio's 503 does) for one number and captures the rest. */
function failingFor(number: string, capture: ReturnType<typeof captureSenders>): SmsSender {
  return {
    async send(message) {
      if (message.to === number) {
        throw new OtpError('DELIVERY_FAILED', `Twilio refused the message to ${message.to} (error 20503, HTTP 503)`, {
          retryable: true,
          cause: { provider: 'twilio', status: 503, code: 20503 },
        });
      }
      await capture.sms.send(message);
    },
  };
}

/** Asserts that `text` holds none of `secrets`; digit-only secrets are looked for outside sample values (a histogram sum may hold any digits). */
function assertNoPersonalData(text: string, secrets: Iterable<string>): number {
  const labelsOnly = withoutValues(text);
  let checked = 0;
  for (const secret of new Set(secrets)) {
    const haystack = /^\d+$/.test(secret) ? labelsOnly : text;
    assert.ok(!haystack.toLowerCase().includes(secret.toLowerCase()), `the scrape contains ${JSON.stringify(secret)}`);
    checked += 1;
  }
  return checked;
}

const frameworks: Array<[string, AppFactory]> = [
  ['express', expressApp],
  ['koa', (options) => koaApp(options)],
];

for (const [framework, makeApp] of frameworks) {
  describe(`metrics over HTTP on ${framework}: a scripted run, scraped`, () => {
    const registry = new Registry();
    const capture = captureSenders();
    const codes = new Set<string>([TEST_CODE]);
    const locked: unknown[] = [];
    let app: TestApp;
    let text = '';
    const replies: Record<string, number[]> = {};

    /** One settled delivery (`sent` or `delivery_failed`) per resolve. */
    let settledCount = 0;
    const settledWaiters: Array<() => void> = [];
    const settled = async (count: number) => {
      const deadline = Date.now() + 5_000;
      while (settledCount < count) {
        assert.ok(Date.now() < deadline, `${settledCount} deliveries settled, expected ${count}`);
        await new Promise<void>((resolve) => {
          settledWaiters.push(resolve);
          setTimeout(resolve, 50);
        });
      }
    };

    before(async () => {
      const otp: Partial<OtpOptions> = {
        resolveUser: (username) => people[username] ?? null,
        sms: failingFor(FAILING, capture),
        email: capture.email,
        metrics: prometheusMetrics({ registry }),
        maxAttempts: 2,
        deliveryRetries: 1,
        testDestinations: { 'tess.tester@example.com': TEST_CODE },
        limits: {
          failedVerifications: 3,
          lockSeconds: 1,
          maxConsecutiveFailures: 5,
          smsPerPrefix: { points: 2, windowSeconds: 3600 },
        },
      };
      const warn = console.warn;
      console.warn = () => undefined; // the test-destinations warning
      try {
        app = await makeApp({ otp });
      } finally {
        console.warn = warn;
      }
      for (const event of ['sent', 'delivery_failed'] as const) {
        app.service.on(event, () => {
          settledCount += 1;
          for (const wake of settledWaiters.splice(0)) wake();
        });
      }
      app.service.on('locked', (event) => locked.push(event));

      const record = (what: string, status: number) => (replies[what] ??= []).push(status);
      const send = async (client: Client, username: string, channel?: string) => {
        const reply = await client.post('/otp/send', channel === undefined ? { username } : { username, channel });
        record(`send ${username}`, reply.status);
        return reply;
      };
      const verify = async (client: Client, username: string, code: string) => {
        codes.add(code);
        const reply = await client.post('/otp/verify', { username, code });
        record(`verify ${username}`, reply.status);
        return reply;
      };
      const newCode = async (client: Client, username: string) => {
        const next = capture.nextCode(username);
        assert.equal((await send(client, username)).status, 202);
        const code = await next;
        codes.add(code);
        return code;
      };

      // alice: one code on both channels; a resend from the same session inside the cooldown; a wrong then the right code.
      const a = new Client(app.url);
      const aliceCode = await newCode(a, 'alice.walker');
      await settled(2);
      await send(a, 'alice.walker'); // 429 resendCooldownSeconds
      await verify(a, 'alice.walker', wrong(aliceCode)); // 401
      await verify(a, 'alice.walker', aliceCode); // 200

      // bob: his only channel fails twice (the first try and one retry).
      await send(new Client(app.url), 'bob.marley');
      await settled(3);

      // dave and erin share an exchange (+1 604 555), which smsPerPrefix allows two SMS.
      const d = new Client(app.url);
      const daveCode = await newCode(d, 'dave.grohl');
      await settled(4);
      await verify(d, 'dave.grohl', daveCode);
      const e1 = new Client(app.url);
      await newCode(e1, 'erin.brockovich');
      await settled(6);
      // erin again from a second session: her SMS is over smsPerPrefix, the email goes.
      const e2 = new Client(app.url);
      assert.equal((await send(e2, 'erin.brockovich')).status, 202);
      await settled(7);
      // SMS alone from a third session: refused outright by smsPerPrefix.
      await send(new Client(app.url), 'erin.brockovich', 'sms');
      // From the first session inside its cooldown: refused by the cooldown, the SMS over its quota too.
      await send(e1, 'erin.brockovich');

      // frank: a code burned by maxAttempts; a timed lock at failedVerifications; the permanent one at maxConsecutiveFailures.
      const f1 = new Client(app.url);
      const frank1 = await newCode(f1, 'frank.zappa');
      await verify(f1, 'frank.zappa', wrong(frank1)); // 401, failure 1
      await verify(f1, 'frank.zappa', wrong(frank1)); // 401, failure 2: the code is burned
      await verify(f1, 'frank.zappa', frank1); // 429 burned
      const f2 = new Client(app.url);
      const frank2 = await newCode(f2, 'frank.zappa');
      await verify(f2, 'frank.zappa', wrong(frank2)); // 401, failure 3: timed lock
      await verify(f2, 'frank.zappa', frank2); // 429 locked
      await sleep(1_100);
      await verify(f2, 'frank.zappa', wrong(frank2)); // 401, failure 4
      const f3 = new Client(app.url);
      const frank3 = await newCode(f3, 'frank.zappa');
      await verify(f3, 'frank.zappa', wrong(frank3)); // 401, failure 5: permanent lock
      await verify(f3, 'frank.zappa', frank3); // 429 locked
      await settled(10);

      // An unknown username gets a decoy, and a guess for it fails like any other.
      const m = new Client(app.url);
      await send(m, UNKNOWN);
      await verify(m, UNKNOWN, '424242');

      // tess's address is a test destination: nothing is delivered, the fixed code verifies.
      const t = new Client(app.url);
      assert.equal((await send(t, 'tess.tester')).status, 202);
      await verify(t, 'tess.tester', TEST_CODE);

      await settled(11);
      await sleep(DELIVERY_PAUSE_MS.max + 50); // nothing else is on its way (deliveries start after a random pause)
      for (const message of capture.outbox) codes.add(message.code);
      text = await registry.metrics();
    });
    after(() => app.close());

    it('answered the script as the contract says', () => {
      assert.deepEqual(replies, {
        'send alice.walker': [202, 429],
        'verify alice.walker': [401, 200],
        'send bob.marley': [202],
        'send dave.grohl': [202],
        'verify dave.grohl': [200],
        'send erin.brockovich': [202, 202, 429, 429],
        'send frank.zappa': [202, 202, 202],
        'verify frank.zappa': [401, 401, 429, 401, 429, 401, 401, 429],
        [`send ${UNKNOWN}`]: [202],
        [`verify ${UNKNOWN}`]: [401],
        'send tess.tester': [202],
        'verify tess.tester': [200],
      });
      assert.deepEqual(locked, [
        { username: 'frank.zappa', lockSeconds: 1, ip: '127.0.0.1' },
        { username: 'frank.zappa', permanent: true, ip: '127.0.0.1' },
      ]);
      assert.deepEqual(capture.outbox.map((x) => `${x.channel} ${x.username}`).sort(), [
        'email alice.walker',
        'email erin.brockovich',
        'email erin.brockovich',
        'email frank.zappa',
        'email frank.zappa',
        'email frank.zappa',
        'sms alice.walker',
        'sms dave.grohl',
        'sms erin.brockovich',
      ]);
    });

    it('counts sends per channel, outcome and area code (email without one)', () => {
      assert.deepEqual(series(parseScrape(text), 'blockid_otp_sends_total'), {
        [key({ channel: 'sms', outcome: 'sent', npa: '415' })]: 1,
        [key({ channel: 'email', outcome: 'sent', npa: '' })]: 6, // alice, erin ×2, frank ×3
        [key({ channel: 'sms', outcome: 'rate_limited', npa: '415' })]: 1, // alice's resend in the cooldown
        [key({ channel: 'email', outcome: 'rate_limited', npa: '' })]: 2, // alice's and erin's resends in the cooldown
        [key({ channel: 'sms', outcome: 'sent', npa: '212' })]: 1, // bob: handed to the sender, which failed
        [key({ channel: 'sms', outcome: 'sent', npa: '604' })]: 2, // dave, erin's first send
        [key({ channel: 'sms', outcome: 'rate_limited', npa: '604' })]: 3, // erin's other three sends
        [key({ channel: 'email', outcome: 'test', npa: '' })]: 1, // tess
      });
    });

    it('counts the decoy send, and every refusal by the limit’s option name', () => {
      const samples = parseScrape(text);
      assert.equal(sampleValue(samples, 'blockid_otp_unknown_user_sends_total'), 1);
      assert.deepEqual(series(samples, 'blockid_otp_rate_limited_total'), {
        [key({ limit: 'resendCooldownSeconds' })]: 2, // alice's resend, erin's resend
        // erin's SMS in her second send, her SMS-only send (her resend is one refusal: the cooldown's), and
        // frank's third send: he has no phone, so his SMS is a stand-in, counted as an unknown username's would be
        [key({ limit: 'smsPerPrefix' })]: 3,
        [key({ limit: 'sendsPerUsername' })]: 0,
        [key({ limit: 'sendsPerDestination' })]: 0,
        [key({ limit: 'sendsPerIp' })]: 0,
        [key({ limit: 'smsPerHour' })]: 0,
        [key({ limit: 'smsPerDay' })]: 0,
        [key({ limit: 'voicePerHour' })]: 0,
        [key({ limit: 'voicePerDay' })]: 0,
        [key({ limit: 'lookupsPerDay' })]: 0,
      });
    });

    it('counts every delivery attempt (the retry included) and times each one', () => {
      const samples = parseScrape(text);
      assert.deepEqual(series(samples, 'blockid_otp_deliveries_total'), {
        [key({ channel: 'sms', result: 'delivered' })]: 3, // alice, dave, erin
        [key({ channel: 'sms', result: 'failed' })]: 2, // bob: the try and its retry
        [key({ channel: 'email', result: 'delivered' })]: 6, // alice, erin ×2, frank ×3 (tess's test destination delivers nothing)
      });
      assert.equal(sampleValue(samples, 'blockid_otp_delivery_duration_seconds_count', { channel: 'sms' }), 5);
      assert.equal(sampleValue(samples, 'blockid_otp_delivery_duration_seconds_count', { channel: 'email' }), 6);
      assert.equal(sampleValue(samples, 'blockid_otp_delivery_duration_seconds_bucket', { channel: 'sms', le: '+Inf' }), 5);
    });

    it('counts verifications by method and result, locks by kind, and times the successful ones', () => {
      const samples = parseScrape(text);
      const verifications = series(samples, 'blockid_otp_verifications_total');
      assert.deepEqual(verifications, {
        [key({ method: 'code', result: 'verified' })]: 3, // alice, dave, tess
        [key({ method: 'code', result: 'invalid' })]: 7, // alice 1, frank 5, the unknown user 1
        [key({ method: 'code', result: 'burned' })]: 1,
        [key({ method: 'code', result: 'locked' })]: 2, // frank's right code during the timed lock, and after the permanent one
        ...Object.fromEntries(
          ['totp', 'recovery', 'link'].flatMap((method) => ['verified', 'invalid', 'burned', 'locked'].map((result) => [key({ method, result }), 0])),
        ),
      });
      assert.deepEqual(series(samples, 'blockid_otp_locks_total'), { [key({ kind: 'timed' })]: 1, [key({ kind: 'permanent' })]: 1 });
      assert.equal(sampleValue(samples, 'blockid_otp_time_to_verify_seconds_count'), 3);
      assert.equal(sampleValue(samples, 'blockid_otp_time_to_verify_seconds_bucket', { le: '5' }), 3, 'each verified within seconds of its send');
      // The conversion numerator: one per channel of each verified code (tess's test destination is not a send).
      assert.deepEqual(series(samples, 'blockid_otp_verified_sends_total'), {
        [key({ channel: 'sms', npa: '415' })]: 1, // alice
        [key({ channel: 'email', npa: '' })]: 1, // alice
        [key({ channel: 'sms', npa: '604' })]: 1, // dave
      });
    });

    it('holds no username, number, address, IP or code', () => {
      const secrets = [
        ...Object.keys(people),
        UNKNOWN,
        ...Object.values(people).flatMap((p) => [
          ...(p.smsTo === undefined ? [] : writings(p.smsTo)),
          ...(p.emailTo === undefined ? [] : [p.emailTo, p.emailTo.split('@')[0]!]),
        ]),
        '127.0.0.1',
        '::ffff:127.0.0.1',
        ...codes,
      ];
      assert.ok(codes.size >= 8, `${codes.size} codes collected`);
      assert.ok(assertNoPersonalData(text, secrets) > 40);
    });
  });
}

describe('metrics through createOtpService + generateOtp', () => {
  const registry = new Registry();
  const capture = captureSenders();
  const ip = '203.0.113.7';
  const john = { smsTo: '4155550100', smsISDCode: '1', emailTo: 'john.smith@example.com' };
  const codes: string[] = [];
  let text = '';

  before(async () => {
    const service = createOtpService({
      secret: SECRET,
      sms: failingFor('+16135550100', capture),
      email: capture.email,
      metrics: prometheusMetrics({ registry }),
      deliveryRetries: 0,
      limits: { sendsPerIp: { points: 2, windowSeconds: 3600 } },
    });
    const sent = await service.generateOtp('john.smith', john, { ip });
    assert.deepEqual([...sent.channels].sort(), ['email', 'sms']);
    const code = capture.lastCode('john.smith');
    codes.push(code);
    await assert.rejects(service.generateOtp('john.smith', john, { ip }), (error: unknown) => error instanceof OtpError && error.code === 'RATE_LIMITED');
    await assert.rejects(
      service.generateOtp('grace.hopper', { smsTo: '(613) 555-0100' }, { ip }),
      (error: unknown) => error instanceof OtpError && error.code === 'DELIVERY_FAILED',
    );
    await assert.rejects(
      service.generateOtp('ada.lovelace', { emailTo: 'ada@example.com' }, { ip }),
      (error: unknown) => error instanceof OtpError && error.code === 'RATE_LIMITED',
    );
    codes.push(wrong(code));
    assert.deepEqual(await service.verifyOtp('john.smith', wrong(code)), { ok: false, reason: 'invalid_code' });
    assert.deepEqual(await service.verifyOtp('john.smith', code), { ok: true });
    assert.deepEqual(await service.verifyOtp('john.smith', code), { ok: false, reason: 'invalid_code' });
    text = await registry.metrics();
  });

  it('counts the sends, the refusals and the deliveries', () => {
    const samples = parseScrape(text);
    assert.deepEqual(series(samples, 'blockid_otp_sends_total'), {
      [key({ channel: 'sms', outcome: 'sent', npa: '415' })]: 1,
      [key({ channel: 'email', outcome: 'sent', npa: '' })]: 1,
      [key({ channel: 'sms', outcome: 'rate_limited', npa: '415' })]: 1, // john's resend in the cooldown
      [key({ channel: 'email', outcome: 'rate_limited', npa: '' })]: 2, // john's resend, ada's send over sendsPerIp
      [key({ channel: 'sms', outcome: 'sent', npa: '613' })]: 1, // grace: handed to the sender, which failed
    });
    assert.equal(sampleValue(samples, 'blockid_otp_unknown_user_sends_total'), 0);
    assert.equal(sampleValue(samples, 'blockid_otp_rate_limited_total', { limit: 'resendCooldownSeconds' }), 1);
    assert.equal(sampleValue(samples, 'blockid_otp_rate_limited_total', { limit: 'sendsPerIp' }), 1);
    assert.deepEqual(series(samples, 'blockid_otp_deliveries_total'), {
      [key({ channel: 'sms', result: 'delivered' })]: 1,
      [key({ channel: 'sms', result: 'failed' })]: 1,
      [key({ channel: 'email', result: 'delivered' })]: 1,
    });
    assert.equal(sampleValue(samples, 'blockid_otp_delivery_duration_seconds_count', { channel: 'sms' }), 2);
    assert.equal(sampleValue(samples, 'blockid_otp_delivery_duration_seconds_count', { channel: 'email' }), 1);
  });

  it('counts the verifications and times the one that succeeded', () => {
    const samples = parseScrape(text);
    assert.equal(sampleValue(samples, 'blockid_otp_verifications_total', { method: 'code', result: 'invalid' }), 2, 'the wrong code, then the used one');
    assert.equal(sampleValue(samples, 'blockid_otp_verifications_total', { method: 'code', result: 'verified' }), 1);
    assert.equal(sampleValue(samples, 'blockid_otp_time_to_verify_seconds_count'), 1);
    assert.deepEqual(series(samples, 'blockid_otp_locks_total'), { [key({ kind: 'timed' })]: 0, [key({ kind: 'permanent' })]: 0 });
  });

  it('holds no username, number, address, IP or code', () => {
    const secrets = [
      'john.smith',
      'grace.hopper',
      'ada.lovelace',
      ...writings(john.smsTo),
      ...writings('(613) 555-0100'),
      john.emailTo,
      'ada@example.com',
      ip,
      ...codes,
    ];
    assertNoPersonalData(text, secrets);
  });
});
