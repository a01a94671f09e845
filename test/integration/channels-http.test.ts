/**
 * WhatsApp, voice, fallback, the number-type rules and the line-type lookup over real HTTP
 * on every framework. WhatsApp, voice, SMS and Lookup go through the real
 * `twilio` SDK against Prism mocking Twilio's own OpenAPI descriptions (kept in
 * ../shared/twilio-oai, never copied here); the quota tests use the capture senders.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { DELIVERY_PAUSE_MS } from '../../src/core/send/after-reply.js';
import { OtpError, twilioLookup, twilioSms, twilioVoice, twilioWhatsApp, type OtpEventMap, type OtpOptions, type ResolvedUser } from '../../src/index.js';
import { frameworks, type AppFactory, type TestApp } from '../helpers/apps.js';
import { captureSenders } from '../helpers/capture.js';
import { assertNoCodeLeaked, Client } from '../helpers/client.js';
import {
  requestViolations,
  startLookupPrism,
  startPrism,
  testAccountSid,
  twilioClientAnswering,
  twilioClientFor,
  twilioLookupSpecPath,
  twilioSpecPath,
  type PrismMock,
  type RecordedRequest,
} from '../helpers/prism.js';
import { parseXml, textOf, type XmlElement } from '../helpers/xml.js';

const skipReason = `Twilio's OpenAPI descriptions not found (${twilioSpecPath}, ${twilioLookupSpecPath}): the Prism-backed tests are skipped`;
const whatsappFrom = '+14155550111';
const voiceFrom = '+14155550122';
const smsFrom = '+14155550133';
const contentSid = 'HX0123456789abcdef0123456789abcdef';
const messagesPath = `/2010-04-01/Accounts/${testAccountSid}/Messages.json`;
const callsPath = `/2010-04-01/Accounts/${testAccountSid}/Calls.json`;
const lineTypeExample = { Prefer: 'example=fetchLineTypeIntelligence' };
const twilio500 = { code: 20500, message: 'Internal Server Error', more_info: 'https://www.twilio.com/docs/errors/20500', status: 500 };

const people: Record<string, ResolvedUser> = {
  'john.smith': { smsTo: '4155550100', smsISDCode: '1', emailTo: 'john.smith@example.com' },
  // Another account on the same number, written another way: the number's quotas still count it once.
  'john.twin': { smsTo: '(415) 555-0100' },
  'alan.turing': { smsTo: '312-555-0177' },
  'ada.lovelace': { smsTo: '+1 212 555 0142' },
  'marie.curie': { smsTo: '514-555-0100', locale: 'fr-CA' },
  'toll.free': { smsTo: '800-234-5678' },
};
const resolveUser = (username: string) => people[username] ?? null;
/** Every code this file read, checked against every reply at the end. */
const seenCodes = new Set<string>();

let prism: PrismMock | null = null;
let lookupPrism: PrismMock | null = null;
before(async () => {
  [prism, lookupPrism] = await Promise.all([startPrism(), startLookupPrism()]);
  if (!prism || !lookupPrism) console.log(`# ${skipReason}`);
});
after(async () => {
  await Promise.all([prism?.stop(), lookupPrism?.stop()]);
  const replies = assertNoCodeLeaked(seenCodes);
  console.log(`# ${replies} replies, none holding one of the ${seenCodes.size} codes delivered`);
});

/** Resolves once `check()` is true, polling; fails after `timeoutMs`. */
async function until(what: string, check: () => boolean, timeoutMs = 4000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** The code a WhatsApp template message carried (template variable 1). */
const whatsappCode = (request: RecordedRequest | undefined): string => {
  const code = (JSON.parse(request?.form.ContentVariables ?? '{}') as Record<string, string>)['1'] ?? '';
  assert.match(code, /^\d{6}$/);
  seenCodes.add(code);
  return code;
};

/** The two `<Say>` of a call's TwiML (well-formed: `<Response><Say/><Pause/><Say/></Response>`), and the code they read. */
const callCode = (request: RecordedRequest | undefined): { code: string; says: XmlElement[] } => {
  const root = parseXml(request?.form.Twiml ?? '');
  assert.equal(root.name, 'Response');
  const elements = root.children.filter((child): child is XmlElement => typeof child !== 'string');
  assert.deepEqual(
    elements.map((element) => element.name),
    ['Say', 'Pause', 'Say'],
  );
  const says = [elements[0]!, elements[2]!];
  const [first, again] = says.map((say) => textOf(say).replace(/\D/g, ''));
  assert.equal(first, again, 'the code is read twice');
  assert.match(first ?? '', /^\d{6}$/);
  for (const say of says) assert.ok(textOf(say).includes(`${[...first!].join('. ')}.`), 'digit by digit');
  seenCodes.add(first!);
  return { code: first!, says };
};

for (const [framework, makeApp] of frameworks as Array<[string, AppFactory]>) {
  describe(`WhatsApp, voice, fallback and number checks over HTTP on ${framework}`, () => {
    const apps: TestApp[] = [];
    const events: { [E in keyof OtpEventMap]?: OtpEventMap[E][] } = {};
    after(async () => {
      for (const app of apps) {
        for (const message of app.capture.outbox) seenCodes.add(message.code);
        await app.close();
      }
    });

    /** An app on this framework with `otp`; its events land in `events` (reset per app). */
    let latest: TestApp | undefined;
    const start = async (otp: Partial<OtpOptions>) => {
      const app = await makeApp({ otp: { resolveUser, limits: { sendsPerIp: { points: 10_000, windowSeconds: 600 } }, ...otp } });
      apps.push(app);
      for (const name of Object.keys(events) as Array<keyof OtpEventMap>) delete events[name];
      // Only the latest app's events: an earlier app's deliveries may still run (they start after a pause).
      latest = app;
      for (const name of ['sent', 'delivery_failed', 'line_type', 'rate_limited'] as const) {
        app.service.on(name, (event) => {
          if (latest === app) ((events[name] ??= []) as unknown[]).push(event);
        });
      }
      return app;
    };
    const send = (app: TestApp, username: string, channel?: string, headers?: Record<string, string>) => {
      const client = new Client(app.url);
      return client
        .post('/otp/send', channel === undefined ? { username } : { username, channel }, headers ? { headers } : {})
        .then((reply) => ({ client, reply }));
    };
    const verify = (client: Client, username: string, code: string) => client.post('/otp/verify', { username, code });
    const accepted = { status: 'sent', expiresIn: 300, resendIn: 30 };

    describe('the whatsapp and voice channels (twilio SDK against Prism)', () => {
      it('channel "whatsapp" sends the authentication template through twilioWhatsApp; its code verifies', async (t) => {
        if (!prism) return t.skip(skipReason);
        const twilio = twilioClientFor(prism.baseUrl);
        const app = await start({ whatsapp: twilioWhatsApp({ client: twilio.client, from: whatsappFrom, contentSid }) });
        const { client, reply } = await send(app, 'john.smith', 'whatsapp');
        assert.equal(reply.status, 202, reply.text);
        assert.deepEqual(reply.body, accepted);
        await until('the WhatsApp message', () => twilio.requests[0]?.status !== undefined);
        const [request] = twilio.requests;
        assert.equal(request?.method, 'POST');
        assert.equal(request?.path, messagesPath);
        assert.equal(request?.status, 201, 'Prism (with --errors) accepted the request as the spec describes it');
        assert.deepEqual(Object.keys(request?.form ?? {}).sort(), ['ContentSid', 'ContentVariables', 'From', 'To']);
        assert.equal(request?.form.To, 'whatsapp:+14155550100');
        assert.equal(request?.form.From, `whatsapp:${whatsappFrom}`);
        assert.equal(request?.form.ContentSid, contentSid);
        const code = whatsappCode(request);
        assert.equal(app.capture.outbox.length, 0, 'no SMS and no email besides');
        assert.deepEqual(
          events.sent?.map((e) => [e.channel, e.destination]),
          [['whatsapp', '+1******0100']],
        );
        assert.equal((await verify(client, 'john.smith', code)).status, 200);
        assert.equal((await client.get('/otp/status')).body.method, 'code');
        assert.equal((await verify(client, 'john.smith', code)).status, 401, 'once');
      });

      it('channel "voice" calls through twilioVoice with TwiML that reads each digit twice, in the user\'s language; its code verifies', async (t) => {
        if (!prism) return t.skip(skipReason);
        const twilio = twilioClientFor(prism.baseUrl);
        const app = await start({ voice: twilioVoice({ client: twilio.client, from: voiceFrom }), appName: 'Acme' });
        const english = await send(app, 'alan.turing', 'voice');
        assert.equal(english.reply.status, 202, english.reply.text);
        const french = await send(app, 'ada.lovelace', 'voice', { 'accept-language': 'fr-CA,fr;q=0.9' });
        assert.equal(french.reply.status, 202);
        await until('two calls', () => twilio.requests.filter((r) => r.status !== undefined).length === 2);
        const byTo = (to: string) => twilio.requests.find((r) => r.form.To === to);
        for (const [to, language, opening] of [
          ['+13125550177', 'en-US', 'Your Acme code is:'],
          ['+12125550142', 'fr-CA', 'Votre code Acme est :'],
        ] as const) {
          const request = byTo(to);
          assert.equal(request?.path, callsPath);
          assert.equal(request?.status, 201, 'Prism accepted the call');
          assert.deepEqual(Object.keys(request?.form ?? {}).sort(), ['From', 'To', 'Twiml']);
          assert.equal(request?.form.From, voiceFrom);
          const { says } = callCode(request);
          assert.equal(says[0]?.attributes.language, language);
          assert.ok(textOf(says[0]!).startsWith(opening), textOf(says[0]!));
        }
        assert.equal((await verify(english.client, 'alan.turing', callCode(byTo('+13125550177')).code)).status, 200);
        assert.equal((await verify(french.client, 'ada.lovelace', callCode(byTo('+12125550142')).code)).status, 200);
      });

      it('400 invalid_request for a channel whose sender is not configured (known and unknown users alike)', async () => {
        const app = await start({});
        for (const channel of ['whatsapp', 'voice']) {
          for (const username of ['john.smith', 'nobody.here']) {
            const { reply } = await send(app, username, channel);
            assert.equal(reply.status, 400, `${channel} for ${username}`);
            assert.equal(reply.body.error, 'invalid_request');
            assert.match(reply.body.message, new RegExp(channel));
          }
        }
        assert.equal(app.capture.outbox.length, 0);
        const { reply } = await send(await start({ whatsapp: captureSenders().whatsapp }), 'john.smith', 'voice');
        assert.equal(reply.status, 400, 'whatsapp alone does not enable voice');
      });
    });

    describe('quotas and spend breakers cover every phone channel', () => {
      it('sendsPerDestination counts one number across sms, whatsapp and voice, whoever asks', async () => {
        const phone = captureSenders();
        const app = await start({
          whatsapp: phone.whatsapp,
          voice: phone.voice,
          limits: { sendsPerIp: { points: 10_000, windowSeconds: 600 }, sendsPerDestination: { points: 3, windowSeconds: 600 } },
        });
        for (const [username, channel] of [
          ['john.smith', 'sms'],
          ['john.twin', 'whatsapp'],
          ['john.smith', 'voice'],
        ]) {
          assert.equal((await send(app, username!, channel)).reply.status, 202, `${channel} for ${username}`);
        }
        await until('three deliveries', () => app.capture.outbox.length + phone.outbox.length === 3);
        for (const [username, channel] of [
          ['john.twin', 'sms'],
          ['john.smith', 'whatsapp'],
          ['john.twin', 'voice'],
        ]) {
          const { reply } = await send(app, username!, channel);
          assert.equal(reply.status, 429, `the 4th send to the number, by ${channel} for ${username}`);
          assert.equal(reply.body.error, 'rate_limited');
          assert.ok(Number(reply.headers.get('retry-after')) > 0);
        }
        assert.deepEqual(
          events.rate_limited?.map((e) => e.limit),
          Array(3).fill('sendsPerDestination'),
        );
        assert.equal((await send(app, 'alan.turing', 'voice')).reply.status, 202, 'another number is not affected');
      });

      it('voice has its own breaker (limits.voicePerHour); WhatsApp counts in the SMS breakers', async () => {
        const phone = captureSenders();
        const limits = { sendsPerIp: { points: 10_000, windowSeconds: 600 }, voicePerHour: 1, smsPerHour: 2 };
        const app = await start({ whatsapp: phone.whatsapp, voice: phone.voice, limits });
        assert.equal((await send(app, 'john.smith', 'voice')).reply.status, 202, 'the first call');
        const second = await send(app, 'alan.turing', 'voice');
        assert.equal(second.reply.status, 429, 'the second call this hour');
        assert.equal(events.rate_limited?.at(-1)?.limit, 'voicePerHour');
        assert.equal((await send(app, 'alan.turing', 'sms')).reply.status, 202, 'SMS is not held by the voice breaker');
        assert.equal((await send(app, 'ada.lovelace', 'whatsapp')).reply.status, 202);
        const third = await send(app, 'marie.curie', 'sms');
        assert.equal(third.reply.status, 429, 'SMS + WhatsApp spent smsPerHour (2)');
        assert.equal(events.rate_limited?.at(-1)?.limit, 'smsPerHour');
        await until('three deliveries', () => app.capture.outbox.length + phone.outbox.length === 3);
        assert.deepEqual([...app.capture.outbox, ...phone.outbox].map((m) => m.channel).sort(), ['sms', 'voice', 'whatsapp']);
      });
    });

    describe('fallback: the same code on the next channel', () => {
      it('WhatsApp answering 500 hands the code to SMS within deliveryTimeoutMs; that one code verifies once', async (t) => {
        if (!prism) return t.skip(skipReason);
        const failing = twilioClientAnswering(500, twilio500);
        const twilio = twilioClientFor(prism.baseUrl);
        const deliveryTimeoutMs = 3000;
        const app = await start({
          whatsapp: twilioWhatsApp({ client: failing.client, from: whatsappFrom, contentSid }),
          sms: twilioSms({ client: twilio.client, from: smsFrom }),
          voice: twilioVoice({ client: twilio.client, from: voiceFrom }),
          fallback: ['whatsapp', 'sms', 'voice'],
          deliveryTimeoutMs,
        });
        const started = Date.now();
        const { client, reply } = await send(app, 'john.smith', 'whatsapp');
        assert.equal(reply.status, 202);
        assert.deepEqual(reply.body, accepted, 'the answer does not wait for, or tell of, the fallback');
        await until('the SMS', () => twilio.requests[0]?.status !== undefined, deliveryTimeoutMs + 1000);
        const elapsed = Date.now() - started;
        assert.ok(elapsed < DELIVERY_PAUSE_MS.max + deliveryTimeoutMs, `fell back within the budget, which starts after the pause (${elapsed} ms)`);
        assert.equal(failing.requests.length, 2, 'a 500 is retried once (deliveryRetries 1), then given up');
        const code = whatsappCode(failing.requests[0]);
        assert.equal(whatsappCode(failing.requests[1]), code, 'the retry carried the same code');
        const [sms] = twilio.requests;
        assert.equal(sms?.path, messagesPath);
        assert.equal(sms?.status, 201);
        assert.equal(sms?.form.To, '+14155550100');
        assert.equal(sms?.form.From, smsFrom);
        assert.ok(sms?.form.Body?.includes(code), "the SMS carries the WhatsApp message's code");
        await sleep(100);
        assert.equal(twilio.requests.length, 1, 'SMS got through: no call');
        assert.deepEqual(
          events.delivery_failed?.map((e) => [e.channel, e.attempts, e.reason]),
          [['whatsapp', 2, 'OtpError: Twilio refused the message (error 20500, HTTP 500)']],
        );
        assert.deepEqual(
          events.sent?.map((e) => e.channel),
          ['sms'],
        );
        assert.equal((await verify(client, 'john.smith', code)).status, 200);
        assert.equal((await verify(client, 'john.smith', code)).status, 401, 'once, whichever channel delivered it');
      });

      it('an SMS sender that throws hands the code to a voice call; the code verifies once', async (t) => {
        if (!prism) return t.skip(skipReason);
        const twilio = twilioClientFor(prism.baseUrl);
        let tried = 0;
        const app = await start({
          sms: { send: async (message) => void (tried++, assert.fail(`carrier down, dropping ${message.code} to ${message.to}`)) },
          voice: twilioVoice({ client: twilio.client, from: voiceFrom }),
          fallback: ['sms', 'voice'],
        });
        const { client, reply } = await send(app, 'alan.turing', 'sms');
        assert.equal(reply.status, 202);
        await until('the call', () => twilio.requests[0]?.status !== undefined);
        assert.equal(tried, 1, 'a plain Error is not retried');
        const [call] = twilio.requests;
        assert.equal(call?.path, callsPath);
        assert.equal(call?.status, 201);
        assert.equal(call?.form.To, '+13125550177');
        const { code } = callCode(call);
        const [failure] = events.delivery_failed ?? [];
        assert.equal(failure?.channel, 'sms');
        assert.ok(failure && !failure.reason.includes(code) && failure.reason.includes('[code]'), `the code is scrubbed from the reason: ${failure?.reason}`);
        assert.ok(!failure.reason.includes('+13125550177'), 'and so is the number');
        assert.equal((await verify(client, 'alan.turing', code)).status, 200);
        assert.equal((await verify(client, 'alan.turing', code)).status, 401);
      });

      it('one deliveryTimeoutMs for the whole chain: nothing reaches a sender after it, even when the first channel hangs', async () => {
        const deliveryTimeoutMs = 300;
        const handedAt: number[] = [];
        const app = await start({
          whatsapp: { send: () => sleep(1500) },
          sms: { send: async () => void handedAt.push(Date.now()) },
          fallback: ['whatsapp', 'sms'],
          deliveryTimeoutMs,
        });
        const started = Date.now();
        assert.equal((await send(app, 'john.smith', 'whatsapp')).reply.status, 202);
        await until('the timeout', () => (events.delivery_failed?.length ?? 0) > 0, 2000);
        assert.deepEqual(
          events.delivery_failed?.map((e) => [e.channel, e.reason]),
          [['whatsapp', 'timed out']],
        );
        await sleep(deliveryTimeoutMs + 200);
        // WhatsApp hangs until past the chain's time, so none is left for the SMS fallback.
        assert.deepEqual(
          handedAt.map((at) => at - started),
          [],
          'an SMS was handed over (ms after the send) though the chain had no time left',
        );
      });
    });

    describe("line-type lookup (twilio SDK against Prism's Lookup v2 mock)", () => {
      /** A Lookup client answering the spec's fetchLineTypeIntelligence example: type nonFixedVoip, for any number. */
      const voipLookup = () => twilioClientFor({ lookups: lookupPrism!.baseUrl }, undefined, { headers: lineTypeExample });

      it('block mode: the send answers 202 as always, nothing goes to the VoIP number, a line_type event says why; generateOtp rejects INVALID_PHONE', async (t) => {
        if (!lookupPrism) return t.skip(skipReason);
        const lookups = voipLookup();
        const app = await start({ lookup: twilioLookup({ client: lookups.client, allow: ['mobile'], mode: 'block' }) });
        const { reply } = await send(app, 'john.smith', 'both');
        assert.equal(reply.status, 202);
        assert.deepEqual(reply.body, accepted);
        await until('the line_type event', () => (events.line_type?.length ?? 0) === 1);
        assert.deepEqual(events.line_type, [
          { username: 'john.smith', destination: '+1******0100', lineType: 'nonFixedVoip', mode: 'block', outcome: 'refused' },
        ]);
        await app.capture.waitFor(1);
        await sleep(50);
        assert.deepEqual(
          app.capture.outbox.map((m) => m.channel),
          ['email'],
          'the email still goes; the SMS does not',
        );
        const [request] = lookups.requests;
        assert.equal(request?.path, '/v2/PhoneNumbers/+14155550100');
        assert.deepEqual(request?.query, { Fields: 'line_type_intelligence' });
        assert.equal(request?.status, 200);
        assert.deepEqual(requestViolations(request), [], 'the request passes the Lookup spec');

        await assert.rejects(app.service.generateOtp('alan.turing', { smsTo: '312-555-0177' }), (error: unknown) => {
          assert.ok(error instanceof OtpError);
          assert.equal(error.code, 'INVALID_PHONE');
          return true;
        });
        assert.equal(lookups.requests.length, 2, 'a new number, a new lookup');
        assert.equal(events.line_type?.at(-1)?.outcome, 'refused');
        assert.equal(app.capture.outbox.length, 1, 'still only the email');
      });

      it('monitor mode: the code goes out and a line_type event reports the type; a cached answer makes no second request', async (t) => {
        if (!lookupPrism) return t.skip(skipReason);
        const lookups = voipLookup();
        const app = await start({ lookup: twilioLookup({ client: lookups.client, mode: 'monitor' }) });
        const first = await send(app, 'john.smith', 'sms');
        assert.equal(first.reply.status, 202);
        await app.capture.waitFor(1);
        assert.deepEqual(events.line_type, [
          { username: 'john.smith', destination: '+1******0100', lineType: 'nonFixedVoip', mode: 'monitor', outcome: 'reported' },
        ]);
        // The same number again (another account, another writing): answered from the store.
        assert.equal((await send(app, 'john.twin', 'sms')).reply.status, 202);
        await app.capture.waitFor(2);
        assert.equal(lookups.requests.length, 1, 'one lookup for one number');
        assert.equal(events.line_type?.length, 2, 'the cached type is still reported');
        const result = await app.service.generateOtp('grace', { smsTo: '4155550100' });
        assert.deepEqual(result.channels, ['sms']);
        assert.equal(lookups.requests.length, 1, 'generateOtp reads the cache too');
        assert.equal((await verify(first.client, 'john.smith', app.capture.lastCode('john.smith'))).status, 200);
      });

      it('a Lookup error fails closed in block mode (and is not cached), and blocks nothing in monitor mode', async (t) => {
        if (!lookupPrism) return t.skip(skipReason);
        const failing = twilioClientAnswering(500, twilio500);
        const blocking = await start({ lookup: twilioLookup({ client: failing.client, mode: 'block' }) });
        for (let i = 1; i <= 2; i++) {
          assert.equal((await send(blocking, 'john.smith', 'sms')).reply.status, 202);
          await until('the line_type event', () => (events.line_type?.length ?? 0) === i);
          assert.equal(failing.requests.length, i, `lookup ${i}: a failure is not cached`);
        }
        await assert.rejects(blocking.service.generateOtp('alan.turing', { smsTo: '312-555-0177' }), { code: 'INVALID_PHONE' });
        await sleep(50);
        assert.equal(blocking.capture.outbox.length, 0, 'nothing sent while Lookup fails');
        assert.deepEqual(
          events.line_type?.map((e) => [e.lineType, e.mode, e.outcome]),
          Array(3).fill([null, 'block', 'failed']),
        );

        const alsoFailing = twilioClientAnswering(500, twilio500);
        const monitoring = await start({ lookup: twilioLookup({ client: alsoFailing.client, mode: 'monitor' }) });
        assert.equal((await send(monitoring, 'john.smith', 'sms')).reply.status, 202);
        await monitoring.capture.waitFor(1);
        assert.deepEqual(
          events.line_type?.map((e) => [e.lineType, e.mode, e.outcome]),
          [[null, 'monitor', 'failed']],
        );
        assert.deepEqual((await monitoring.service.generateOtp('alan.turing', { smsTo: '312-555-0177' })).channels, ['sms']);
      });

      it('each lookup counts in limits.lookupsPerDay; once it is spent, block mode fails closed without asking Twilio', async (t) => {
        if (!lookupPrism) return t.skip(skipReason);
        const lookups = voipLookup();
        const app = await start({
          lookup: twilioLookup({ client: lookups.client, allow: ['mobile', 'nonFixedVoip'], mode: 'block' }),
          limits: { sendsPerIp: { points: 10_000, windowSeconds: 600 }, lookupsPerDay: 1 },
        });
        assert.equal((await send(app, 'john.smith', 'sms')).reply.status, 202);
        await app.capture.waitFor(1);
        assert.equal(events.line_type?.length ?? 0, 0, 'an allowed type is not an event');
        assert.equal((await send(app, 'alan.turing', 'sms')).reply.status, 202);
        await until('the line_type event', () => (events.line_type?.length ?? 0) === 1);
        assert.deepEqual(
          events.line_type?.map((e) => [e.destination, e.outcome]),
          [['+1******0177', 'failed']],
        );
        assert.equal(lookups.requests.length, 1, 'no second lookup');
        assert.equal((await send(app, 'john.twin', 'sms')).reply.status, 202, 'a cached number needs no budget');
        await app.capture.waitFor(2);
        assert.deepEqual(
          app.capture.outbox.map((m) => m.to),
          ['+14155550100', '+14155550100'],
        );
      });
    });

    describe('number types', () => {
      it('a toll-free number is refused by default (INVALID_PHONE; over HTTP nothing is sent) and accepted with allowNumberTypes: ["TOLL_FREE"]', async () => {
        const strict = await start({});
        await assert.rejects(strict.service.generateOtp('toll.free', { smsTo: '800-234-5678' }), (error: unknown) => {
          assert.ok(error instanceof OtpError);
          assert.equal(error.code, 'INVALID_PHONE');
          assert.match(error.message, /toll-free/);
          return true;
        });
        const { reply } = await send(strict, 'toll.free', 'sms');
        assert.equal(reply.status, 202, 'the HTTP send answers as always');
        assert.deepEqual(reply.body, accepted);
        await sleep(DELIVERY_PAUSE_MS.max + 50); // past the pause before delivery
        assert.equal(strict.capture.outbox.length, 0);

        const lenient = await start({ allowNumberTypes: ['TOLL_FREE'] });
        assert.deepEqual((await lenient.service.generateOtp('toll.free', { smsTo: '800-234-5678' })).channels, ['sms']);
        const over = await send(lenient, 'toll.free', 'sms');
        assert.equal(over.reply.status, 202);
        await lenient.capture.waitFor(2);
        assert.deepEqual(
          lenient.capture.outbox.map((m) => m.to),
          ['+18002345678', '+18002345678'],
        );
        assert.equal((await verify(over.client, 'toll.free', lenient.capture.lastCode('toll.free'))).status, 200);
        await assert.rejects(lenient.service.generateOtp('premium', { smsTo: '900-234-5678' }), { code: 'INVALID_PHONE' }, 'other types stay refused');
      });
    });
  });
}
