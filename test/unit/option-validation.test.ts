/**
 * Every factory reports a bad option in the same words (src/core/validate.ts): an unknown
 * option with the nearest known name ("did you mean"), and a mistyped value with its type.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import {
  blockidOtp,
  createOtpService,
  memoryStore,
  nodemailerEmail,
  postgresStore,
  redisStore,
  requireOtp,
  twilioLookup,
  twilioSms,
  twilioVoice,
  twilioWhatsApp,
} from '../../src/index.js';
import { blockidOtpKoa, requireOtpKoa } from '../../src/koa.js';
import { prometheusMetrics } from '../../src/metrics.js';
import { describeValue } from '../../src/core/validate.js';
import { withoutDocsLink } from '../../src/core/errors.js';
import { captureSenders } from '../helpers/capture.js';
import { SECRET } from '../helpers/apps.js';

const capture = captureSenders();
const otp = { secret: SECRET, resolveUser: () => null, email: capture.email };
const redisClient = { isOpen: true, sendCommand: async () => null, withCommandOptions: () => ({}) };
const pool = {
  connect: async () => {
    throw new Error('unused');
  },
  query: async () => ({}),
};
const twilio = { messages: { create: async () => ({}) }, calls: { create: async () => ({}) } };
const lookupClient = { lookups: { v2: { phoneNumbers: () => ({ fetch: async () => ({}) }) } } };
const from = '+14155550111';

/** Each factory, called with one more (misspelt) option, and with one option of the wrong type. */
const factories: Array<{ name: string; misspelt: () => unknown; suggestion: string; mistyped: () => unknown; option: string; got: string }> = [
  {
    name: 'blockidOtp',
    misspelt: () => blockidOtp({ ...otp, ttlSecond: 60 } as never),
    suggestion: 'ttlSeconds',
    mistyped: () => blockidOtp({ ...otp, ttlSeconds: '300' } as never),
    option: 'ttlSeconds',
    got: 'the string "300"',
  },
  {
    name: 'blockidOtpKoa',
    misspelt: () => blockidOtpKoa({ ...otp, maxAttemps: 3 } as never),
    suggestion: 'maxAttempts',
    mistyped: () => blockidOtpKoa({ ...otp, codeLength: 6.5 }),
    option: 'codeLength',
    got: 'the number 6.5',
  },
  {
    name: 'requireOtp',
    misspelt: () => requireOtp({ redirectTo: '/login', maxAge: 5 } as never),
    suggestion: 'maxAgeSeconds',
    mistyped: () => requireOtp({ maxAgeSeconds: '60' } as never),
    option: 'maxAgeSeconds',
    got: 'the string "60"',
  },
  {
    name: 'requireOtpKoa',
    misspelt: () => requireOtpKoa({ method: ['totp'] } as never),
    suggestion: 'methods',
    mistyped: () => requireOtpKoa({ methods: 'totp' } as never),
    option: 'methods',
    got: 'the string "totp"',
  },
  {
    name: 'memoryStore',
    misspelt: () => memoryStore({ maxEntry: 5 } as never),
    suggestion: 'maxEntries',
    mistyped: () => memoryStore({ maxEntries: '5' } as never),
    option: 'maxEntries',
    got: 'the string "5"',
  },
  {
    name: 'redisStore',
    misspelt: () => redisStore({ client: redisClient, prefx: 'otp:' } as never),
    suggestion: 'prefix',
    mistyped: () => redisStore({ client: redisClient, commandTimeoutMs: '1000' } as never),
    option: 'commandTimeoutMs',
    got: 'the string "1000"',
  },
  {
    name: 'postgresStore',
    misspelt: () => postgresStore({ pool, schemas: 'auth' } as never),
    suggestion: 'schema',
    mistyped: () => postgresStore({ pool, createTables: 'no' } as never),
    option: 'createTables',
    got: 'the string "no"',
  },
  {
    name: 'twilioSms',
    misspelt: () => twilioSms({ client: twilio, form: from } as never),
    suggestion: 'from',
    mistyped: () => twilioSms({ client: twilio, from: 14155550111 } as never),
    option: 'from',
    got: 'the number 14155550111',
  },
  {
    name: 'twilioWhatsApp',
    misspelt: () => twilioWhatsApp({ client: twilio, from, contentSID: 'HX' } as never),
    suggestion: 'contentSid',
    mistyped: () => twilioWhatsApp({ client: twilio, from, contentSid: null } as never),
    option: 'contentSid',
    got: 'null',
  },
  {
    name: 'twilioVoice',
    misspelt: () => twilioVoice({ client: twilio, from, langauge: 'en-US' } as never),
    suggestion: 'language',
    mistyped: () => twilioVoice({ client: twilio, from, language: 1 } as never),
    option: 'language',
    got: 'the number 1',
  },
  {
    name: 'twilioLookup',
    misspelt: () => twilioLookup({ client: lookupClient, cacheSecond: 60 } as never),
    suggestion: 'cacheSeconds',
    mistyped: () => twilioLookup({ client: lookupClient, timeoutMs: '5000' } as never),
    option: 'timeoutMs',
    got: 'the string "5000"',
  },
  {
    name: 'nodemailerEmail',
    misspelt: () => nodemailerEmail({ transporter: { sendMail: async () => ({}) }, form: 'a@example.com' } as never),
    suggestion: 'from',
    mistyped: () => nodemailerEmail({ smtpUrl: 'smtp://localhost', from: 'a@example.com', transportOptions: 5 } as never),
    option: 'transportOptions',
    got: '',
  },
  {
    name: 'prometheusMetrics',
    misspelt: () => prometheusMetrics({ registery: new Registry() } as never),
    suggestion: 'registry',
    mistyped: () => prometheusMetrics({ registry: new Registry(), prefix: 5 } as never),
    option: 'prefix',
    got: 'the number 5',
  },
];

describe('one way to report a bad option, for every factory', () => {
  for (const { name, misspelt, suggestion, mistyped, option, got } of factories) {
    it(`${name}: a misspelt option gets a "did you mean", a mistyped one names its type`, () => {
      assert.throws(misspelt, (error: unknown) => {
        assert.ok(error instanceof TypeError);
        assert.match(error.message, new RegExp(`^${name}: unknown option "\\w+": did you mean "${suggestion}"\\? \\(see docs/errors\\.md#invalid-[a-z-]+\\)$`));
        return true;
      });
      assert.throws(mistyped, (error: unknown) => {
        assert.ok(error instanceof TypeError);
        assert.ok(error.message.startsWith(`${name}: option "${option}" must be `), error.message);
        if (got !== '') assert.ok(withoutDocsLink(error.message).endsWith(`(got ${got}).`), error.message);
        assert.match(error.message, /\(see docs\/errors\.md#invalid-[a-z-]+\)$/);
        return true;
      });
    });
  }

  it('says the wanted range and the type got, in the words of the contract', () => {
    assert.throws(() => blockidOtp({ ...otp, ttlSeconds: '300' } as never), {
      message: 'blockidOtp: option "ttlSeconds" must be a whole number from 1 to 600 (got the string "300"). (see docs/errors.md#invalid-options)',
    });
  });

  it('never echoes a secret: a bad authToken or smtpUrl is named, not shown', () => {
    const token = 'auth-token-that-must-not-show';
    assert.throws(
      () => twilioSms({ accountSid: 'nope', authToken: token, from } as never),
      (error: unknown) => !String((error as Error).message).includes(token),
    );
    const url = 'http://user:hunter2-secret@mail.example';
    assert.throws(
      () => nodemailerEmail({ smtpUrl: url, from: 'a@example.com' }),
      (error: unknown) => !String((error as Error).message).includes('hunter2'),
    );
    assert.throws(
      () => blockidOtp({ ...otp, secret: 'short-secret-shown-nowhere' }),
      (error: unknown) => !String((error as Error).message).includes('short-secret'),
    );
  });

  it('describes values by type, and long strings by length only', () => {
    assert.equal(describeValue('300'), 'the string "300"');
    assert.equal(describeValue(300), 'the number 300');
    assert.equal(describeValue(true), 'the boolean true');
    assert.equal(describeValue([1]), 'an array');
    assert.equal(describeValue('x'.repeat(41)), 'a string of 41 characters');
  });
});

describe('resolveUser', () => {
  it('is refused when missing from the HTTP middleware, at creation (Express and Koa)', () => {
    for (const [name, make] of [
      ['blockidOtp', blockidOtp],
      ['blockidOtpKoa', blockidOtpKoa],
    ] as const) {
      assert.throws(() => make({ secret: SECRET, email: capture.email }), {
        name: 'TypeError',
        message: new RegExp(`^${name}: option "resolveUser" is required for the HTTP endpoints.*createOtpService`),
      });
    }
  });

  it('is not needed by the programmatic API alone', async () => {
    const service = createOtpService({ secret: SECRET, email: capture.email });
    const sent = await service.generateOtp('ada', { emailTo: 'ada@example.com' });
    assert.deepEqual(sent.channels, ['email']);
    assert.deepEqual(await service.verifyOtp('ada', capture.lastCode('ada@example.com')), { ok: true });
  });
});
