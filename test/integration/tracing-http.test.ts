/**
 * Traces end to end: the OpenTelemetry SDK (in-memory exporter, AsyncLocalStorage context
 * manager) registered globally, real HTTP on Express and Koa, SMS and Line Type lookups
 * through the real `twilio` SDK (its HTTP layer answering canned Twilio replies), and the
 * spans checked for names, kinds, attributes, parent/child links and the absence of any
 * username, number, address, IP or code.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import twilio from 'twilio';
import type RequestClient from 'twilio/lib/base/RequestClient.js';
import { twilioLookup, twilioSms, type Destinations, type EmailSender, type OtpOptions } from '../../src/index.js';
import { captureSenders } from '../../src/testing.js';
import { expressApp, koaApp, type AppFactory, type TestApp } from '../helpers/apps.js';
import { Client } from '../helpers/client.js';
import { DELIVERY_PAUSE_MS } from '../../src/core/send/after-reply.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const contextManager = new AsyncLocalStorageContextManager();
/** Every span any test saw, and every code sent or tried, for the personal-data check at the end. */
const everySpan: ReadableSpan[] = [];
const everyCode = new Set<string>(['000000', '123456']);

before(() => {
  assert.equal(context.setGlobalContextManager(contextManager.enable()), true);
  assert.equal(trace.setGlobalTracerProvider(provider), true);
});
after(async () => {
  trace.disable();
  context.disable();
  await provider.shutdown();
});

const people: Record<string, Destinations> = {
  'alice.walker': { smsTo: '(415) 555-0101', emailTo: 'alice.walker@example.com' },
  /** Twilio refuses this number: HTTP 400, error 21211. */
  'bob.marley': { smsTo: '212-555-0199' },
  /** Twilio answers every other request for this number 503 (error 20503): each send's first try fails, its retry goes. */
  'carol.king': { smsTo: '+1 312 555 0142' },
  /** The mail server refuses this address (a sender of the app's own, throwing a code). */
  'dave.grohl': { emailTo: 'dave.grohl@example.org' },
  'frank.zappa': { emailTo: 'frank.zappa@example.net' },
};
const UNKNOWN = 'mallory.nobody';
const REFUSED = '+12125550199';
const FLAKY = '+13125550142';
const BOUNCING = 'dave.grohl@example.org';
const from = '+14155550111';

type Options = RequestClient.RequestOptions<unknown>;
type Answer = Awaited<ReturnType<RequestClient['request']>>;

/**
 * A real `twilio` client whose HTTP layer answers as Twilio would: Messages (refusing
 * REFUSED, failing FLAKY once with a 503) and Lookup v2 (every number a mobile line).
 * Keeps each SMS body, to read the codes from.
 */
function cannedTwilio() {
  const bodies: Array<{ to: string; body: string }> = [];
  let flakyCalls = 0;
  const answer = (statusCode: number, body: unknown): Answer => ({ statusCode, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  class CannedClient extends twilio.RequestClient {
    override async request<T>(opts: Options): Promise<Answer & { body: T }> {
      const url = new URL(opts.uri);
      if (url.hostname.startsWith('lookups.')) {
        const number = decodeURIComponent(url.pathname.split('/').at(-1) ?? '');
        return answer(200, { phone_number: number, valid: true, line_type_intelligence: { type: 'mobile', error_code: null } }) as Answer & { body: T };
      }
      const form = opts.data as Record<string, string>;
      if (form.To === REFUSED) {
        return answer(400, {
          code: 21211,
          message: `The 'To' number ${form.To} is not a valid phone number.`,
          more_info: 'https://www.twilio.com/docs/errors/21211',
          status: 400,
        }) as Answer & { body: T };
      }
      if (form.To === FLAKY && flakyCalls++ % 2 === 0) {
        return answer(503, { code: 20503, message: 'Service Unavailable', more_info: 'https://www.twilio.com/docs/errors/20503', status: 503 }) as Answer & {
          body: T;
        };
      }
      bodies.push({ to: String(form.To), body: String(form.Body) });
      return answer(201, { sid: `SM${'0'.repeat(32)}`, to: form.To, from: form.From, body: form.Body, status: 'queued' }) as Answer & { body: T };
    }
  }
  return { client: twilio('AC0123456789abcdef0123456789abcdef', 'test-auth-token', { httpClient: new CannedClient() }), bodies };
}

/** An email sender of the app's own that bounces one address the way nodemailer reports it (a code, and a message quoting the address). */
function bouncingFor(address: string, capture: ReturnType<typeof captureSenders>): EmailSender {
  return {
    async send(message) {
      if (message.to === address)
        throw Object.assign(new Error(`550 5.1.1 <${message.to}>: Recipient address rejected`), { code: 'EENVELOPE', responseCode: 550 });
      await capture.email.send(message);
    },
  };
}

const named = (name: string) => exporter.getFinishedSpans().filter((s) => s.name === name);
function only(name: string): ReadableSpan {
  const found = named(name);
  assert.equal(found.length, 1, `${found.length} spans named ${name}`);
  return found[0]!;
}
function isChild(child: ReadableSpan, parent: ReadableSpan): boolean {
  return child.parentSpanContext?.spanId === parent.spanContext().spanId && child.spanContext().traceId === parent.spanContext().traceId;
}
/** A wrong code of the same shape: every digit moved by one. */
const shifted = (code: string) => code.replace(/\d/g, (d) => String((Number(d) + 1) % 10));
const nanos = ([seconds, ns]: [number, number]) => BigInt(seconds) * 1_000_000_000n + BigInt(ns);

/** Resolves once `count` spans named `name` have ended (deliveries run after the reply). */
async function ended(name: string, count: number): Promise<ReadableSpan[]> {
  const deadline = Date.now() + 5_000;
  while (named(name).length < count) {
    assert.ok(Date.now() < deadline, `${named(name).length} ${name} spans ended, expected ${count}`);
    await sleep(10);
  }
  await sleep(30); // and no more than that
  return named(name);
}

const frameworks: Array<[string, AppFactory]> = [
  ['express', expressApp],
  ['koa', (options) => koaApp(options)],
];

for (const [framework, makeApp] of frameworks) {
  describe(`traces over HTTP on ${framework}`, () => {
    const capture = captureSenders();
    const twilioApi = cannedTwilio();
    let app: TestApp;
    /** The newest code sent to a username, by SMS (read from Twilio's request) or email. */
    const codeFor = (username: string): string => {
      const sms = people[username]?.smsTo;
      const text = [...twilioApi.bodies].reverse().find((b) => sms !== undefined && b.to === `+1${sms.replace(/\D/g, '').slice(-10)}`)?.body;
      return text?.match(/\d{6}/)?.[0] ?? capture.lastCode(username);
    };

    before(async () => {
      const otp: Partial<OtpOptions> = {
        resolveUser: (username) => people[username] ?? null,
        sms: twilioSms({ client: twilioApi.client, from }),
        email: bouncingFor(BOUNCING, capture),
        lookup: twilioLookup({ client: twilioApi.client }),
        maxAttempts: 2,
        deliveryRetries: 1,
        limits: { failedVerifications: 3, lockSeconds: 60 },
      };
      app = await makeApp({ otp });
    });
    afterEach(() => {
      everySpan.push(...exporter.getFinishedSpans());
      exporter.reset();
    });
    after(async () => {
      for (const { body } of twilioApi.bodies) everyCode.add(body.match(/\d{6}/)?.[0] ?? '');
      for (const message of capture.outbox) everyCode.add(message.code);
      everyCode.delete('');
      await app.close();
    });

    it('a send is one blockid_otp.send span, with a blockid_otp.deliver child per channel that ends after the reply', async () => {
      const client = new Client(app.url);
      assert.equal((await client.post('/otp/send', { username: 'alice.walker' })).status, 202);
      const deliveries = await ended('blockid_otp.deliver', 2);
      const send = only('blockid_otp.send');
      assert.equal(send.kind, SpanKind.INTERNAL);
      assert.deepEqual(send.attributes, { 'blockid_otp.channel': 'both', 'blockid_otp.outcome': 'sent' });
      assert.equal(send.status.code, SpanStatusCode.UNSET);
      assert.equal(send.parentSpanContext, undefined, 'no HTTP instrumentation here: the send is the root');
      assert.equal(send.instrumentationScope.name, 'blockid-otp');
      assert.deepEqual(
        deliveries.map((d) => d.attributes).sort((a, b) => String(a['blockid_otp.channel']).localeCompare(String(b['blockid_otp.channel']))),
        [
          { 'blockid_otp.channel': 'email', 'blockid_otp.provider': 'custom', 'blockid_otp.attempt': 1 },
          { 'blockid_otp.channel': 'sms', 'blockid_otp.provider': 'twilio', 'blockid_otp.attempt': 1 },
        ],
      );
      for (const delivery of deliveries) {
        assert.ok(isChild(delivery, send), 'a delivery is a child of its send');
        assert.equal(delivery.kind, SpanKind.CLIENT);
        assert.equal(delivery.status.code, SpanStatusCode.UNSET);
        assert.ok(nanos(delivery.startTime) >= nanos(send.endTime), 'delivered after the send span (and the reply) ended');
      }
    });

    it('the line-type lookup before a first SMS belongs to the send’s trace', async () => {
      const client = new Client(app.url);
      assert.equal((await client.post('/otp/send', { username: 'carol.king' })).status, 202);
      await ended('blockid_otp.deliver', 2);
      const lookup = only('blockid_otp.lookup');
      assert.equal(lookup.kind, SpanKind.CLIENT);
      assert.deepEqual(lookup.attributes, { 'blockid_otp.provider': 'twilio' });
      assert.ok(isChild(lookup, only('blockid_otp.send')), 'the lookup is a child of the send');
    });

    it('a failed attempt is status ERROR with a fixed message and its error code, with no exception event', async () => {
      assert.equal((await new Client(app.url).post('/otp/send', { username: 'dave.grohl' })).status, 202);
      const [bounced] = await ended('blockid_otp.deliver', 1);
      assert.ok(bounced);
      assert.ok(isChild(bounced, only('blockid_otp.send')));
      assert.deepEqual(bounced.attributes, {
        'blockid_otp.channel': 'email',
        'blockid_otp.provider': 'custom',
        'blockid_otp.attempt': 1,
        'error.type': 'EENVELOPE',
      });
      assert.deepEqual(bounced.status, { code: SpanStatusCode.ERROR, message: 'delivery failed' });
      assert.deepEqual(bounced.events, []);
      assert.equal(only('blockid_otp.send').status.code, SpanStatusCode.UNSET, 'the send itself succeeded: it answered 202');
    });

    it('each Twilio attempt is its own span: a retried 503, then the refused number', async () => {
      // carol's number was looked up above; this send fails once (503) and is retried.
      await new Client(app.url).post('/otp/send', { username: 'carol.king', channel: 'sms' });
      const [first, retry] = (await ended('blockid_otp.deliver', 2)).sort(
        (a, b) => Number(a.attributes['blockid_otp.attempt']) - Number(b.attributes['blockid_otp.attempt']),
      );
      assert.ok(first && retry);
      const send = only('blockid_otp.send');
      assert.ok(isChild(first, send) && isChild(retry, send), 'both attempts are children of the one send');
      assert.deepEqual([first.attributes['blockid_otp.attempt'], retry.attributes['blockid_otp.attempt']], [1, 2]);
      assert.equal(first.attributes['blockid_otp.provider'], 'twilio');
      assert.deepEqual(first.status, { code: SpanStatusCode.ERROR, message: 'delivery failed' });
      assert.equal(typeof first.attributes['error.type'], 'string');
      assert.equal(retry.status.code, SpanStatusCode.UNSET);
      assert.equal(retry.attributes['error.type'], undefined);
      exporter.reset();

      await new Client(app.url).post('/otp/send', { username: 'bob.marley' });
      const [refused] = await ended('blockid_otp.deliver', 1);
      assert.ok(refused);
      assert.deepEqual(refused.status, { code: SpanStatusCode.ERROR, message: 'delivery failed' });
      assert.equal(refused.attributes['blockid_otp.attempt'], 1, 'a 400 is not retried');
      assert.equal(named('blockid_otp.deliver').length, 1);
    });

    it('error.type on a Twilio failure is Twilio’s error code (21211, 20503)', async () => {
      for (const [username, expected] of [
        ['bob.marley', '21211'],
        ['carol.king', '20503'],
      ] as const) {
        exporter.reset();
        await new Client(app.url).post('/otp/send', { username, channel: 'sms' });
        const spans = await ended('blockid_otp.deliver', username === 'carol.king' ? 2 : 1);
        const failed = spans.find((s) => s.status.code === SpanStatusCode.ERROR);
        assert.equal(failed?.attributes['error.type'], expected);
      }
    });

    it('a verify is one blockid_otp.verify span with its method and result, never an error status', async () => {
      const a = new Client(app.url);
      await a.post('/otp/send', { username: 'frank.zappa' });
      await ended('blockid_otp.deliver', 1);
      const code = codeFor('frank.zappa');
      const wrong = shifted(code);
      const statuses = [];
      statuses.push((await a.post('/otp/verify', { username: 'frank.zappa', code: wrong })).status); // invalid
      statuses.push((await a.post('/otp/verify', { username: 'frank.zappa', code: wrong })).status); // invalid, the code is burned
      statuses.push((await a.post('/otp/verify', { username: 'frank.zappa', code })).status); // burned
      const b = new Client(app.url);
      await b.post('/otp/send', { username: 'frank.zappa' });
      await ended('blockid_otp.deliver', 2);
      const second = codeFor('frank.zappa');
      statuses.push((await b.post('/otp/verify', { username: 'frank.zappa', code: shifted(second) })).status); // invalid: the timed lock starts
      statuses.push((await b.post('/otp/verify', { username: 'frank.zappa', code: second })).status); // locked
      const c = new Client(app.url);
      await c.post('/otp/send', { username: 'alice.walker', channel: 'email' });
      await ended('blockid_otp.deliver', 3);
      statuses.push((await c.post('/otp/verify', { username: 'alice.walker', code: '123456', method: 'totp' })).status); // invalid: no authenticator app
      statuses.push((await c.post('/otp/verify', { username: 'alice.walker', code: '000000', method: 'recovery' })).status); // invalid: no recovery codes
      statuses.push((await c.post('/otp/verify', { username: 'alice.walker', code: capture.lastCode('alice.walker') })).status); // verified
      assert.deepEqual(statuses, [401, 401, 429, 401, 429, 401, 401, 200]);

      const verifies = named('blockid_otp.verify').sort((x, y) => Number(nanos(x.startTime) - nanos(y.startTime)));
      assert.deepEqual(
        verifies.map((v) => v.attributes),
        [
          { 'blockid_otp.method': 'code', 'blockid_otp.result': 'invalid' },
          { 'blockid_otp.method': 'code', 'blockid_otp.result': 'invalid' },
          { 'blockid_otp.method': 'code', 'blockid_otp.result': 'burned' },
          { 'blockid_otp.method': 'code', 'blockid_otp.result': 'invalid' },
          { 'blockid_otp.method': 'code', 'blockid_otp.result': 'locked' },
          { 'blockid_otp.method': 'totp', 'blockid_otp.result': 'invalid' },
          { 'blockid_otp.method': 'recovery', 'blockid_otp.result': 'invalid' },
          { 'blockid_otp.method': 'code', 'blockid_otp.result': 'verified' },
        ],
      );
      for (const verify of verifies) {
        assert.equal(verify.kind, SpanKind.INTERNAL);
        assert.equal(verify.status.code, SpanStatusCode.UNSET, 'a wrong code is an outcome, not an error');
        assert.equal(verify.parentSpanContext, undefined);
        assert.deepEqual(verify.events, []);
      }
    });

    it('a refused send says rate_limited and delivers nothing; an unknown user’s says decoy', async () => {
      const client = new Client(app.url);
      await client.post('/otp/send', { username: 'dave.grohl' });
      await ended('blockid_otp.deliver', 1);
      exporter.reset();
      assert.equal((await client.post('/otp/send', { username: 'dave.grohl' })).status, 429);
      assert.equal((await new Client(app.url).post('/otp/send', { username: UNKNOWN })).status, 202);
      await sleep(DELIVERY_PAUSE_MS.max + 50); // a delivery, if one were (wrongly) started, would have its span by now
      const [refused, decoy] = named('blockid_otp.send').sort((x, y) => Number(nanos(x.startTime) - nanos(y.startTime)));
      assert.ok(refused && decoy);
      assert.equal(refused.attributes['blockid_otp.outcome'], 'rate_limited');
      assert.equal(refused.attributes['blockid_otp.channel'], 'both');
      assert.deepEqual(refused.status, { code: SpanStatusCode.ERROR, message: 'send failed' });
      assert.equal(refused.attributes['error.type'], 'RATE_LIMITED');
      assert.deepEqual(decoy.attributes, { 'blockid_otp.channel': 'both', 'blockid_otp.outcome': 'decoy' });
      assert.equal(decoy.status.code, SpanStatusCode.UNSET);
      assert.deepEqual(named('blockid_otp.deliver'), [], 'neither delivers anything');
      assert.deepEqual(named('blockid_otp.lookup'), []);
    });
  });
}

describe('traces hold no personal data', () => {
  it('no span name, attribute, event, link or status message holds a username, number, address, IP or code', () => {
    assert.ok(everySpan.length >= 40, `${everySpan.length} spans recorded`);
    const recorded = JSON.stringify(everySpan.map((s) => ({ name: s.name, attributes: s.attributes, events: s.events, links: s.links, status: s.status })));
    const numbers = Object.values(people).flatMap((p) => {
      if (p.smsTo === undefined) return [];
      const digits = p.smsTo.replace(/\D/g, '').slice(-10);
      return [
        p.smsTo,
        `+1${digits}`,
        `1${digits}`,
        digits,
        `${digits.slice(0, 3)}${digits.slice(6)}`,
        `${digits.slice(3, 6)}${digits.slice(6)}`,
        `${digits.slice(3, 6)}-${digits.slice(6)}`,
      ];
    });
    const addresses = Object.values(people).flatMap((p) => (p.emailTo === undefined ? [] : [p.emailTo, p.emailTo.split('@')[0]!]));
    assert.ok(everyCode.size >= 12, `${everyCode.size} codes`);
    const secrets = [...Object.keys(people), UNKNOWN, ...numbers, ...addresses, '127.0.0.1', '::ffff:127.0.0.1', ...everyCode];
    for (const secret of secrets) assert.ok(!recorded.includes(secret), `a span holds ${secret}`);
    const names = new Set(everySpan.map((s) => s.name));
    assert.deepEqual(names, new Set(['blockid_otp.send', 'blockid_otp.deliver', 'blockid_otp.verify', 'blockid_otp.lookup']));
    const keys = new Set(everySpan.flatMap((s) => Object.keys(s.attributes)));
    assert.deepEqual(
      keys,
      new Set([
        'blockid_otp.channel',
        'blockid_otp.outcome',
        'blockid_otp.attempt',
        'blockid_otp.provider',
        'blockid_otp.method',
        'blockid_otp.result',
        'error.type',
      ]),
    );
  });
});
