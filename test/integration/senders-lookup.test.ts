/**
 * twilioLookup through the real `twilio` SDK against Prism mocking Twilio's own Lookup v2
 * description. That spec's examples break its own response schema, so the mock runs
 * without `--errors` and the request's validation is read from Prism's `sl-violations`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { inspect } from 'node:util';
import { OtpError } from '../../src/core/errors.js';
import { TWILIO_LINE_TYPES, twilioLookup, type TwilioLookupOptions } from '../../src/senders/twilio/index.js';
import {
  requestViolations,
  startLookupPrism,
  testAccountSid,
  testAuthToken,
  twilioClientAnswering,
  twilioClientFor,
  twilioLookupSpecPath,
  type PrismMock,
} from '../helpers/prism.js';
import { closedPort, startSilentServer, type SilentServer } from '../helpers/smtp.js';

/** The number of the spec's examples. */
const number = '+14159929960';
/** The SDK puts the number into the path as written, `+` included. */
const lookupPath = `/v2/PhoneNumbers/${number}`;
const lineTypeExample = { Prefer: 'example=fetchLineTypeIntelligence' };
const skipReason = `Twilio Lookup OpenAPI spec not found at ${twilioLookupSpecPath}`;

async function lookupError(lookup: Promise<unknown>): Promise<OtpError> {
  const error = await lookup.then(
    () => assert.fail('lookup should have failed'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof OtpError, `expected an OtpError, got ${inspect(error)}`);
  assert.equal(error.code, 'DELIVERY_FAILED');
  for (const text of [error.message, JSON.stringify(error.cause) ?? '', inspect(error, { depth: 10 })]) {
    assert.ok(!text.includes('4159929960'), `the number leaked: ${text}`);
  }
  return error;
}

describe("twilioLookup through the twilio SDK against Twilio's Lookup v2 description (Prism)", () => {
  let prism: PrismMock | null = null;
  before(async () => {
    prism = await startLookupPrism();
  });
  after(async () => {
    await prism?.stop();
  });

  it("asks lookups.twilio.com for line_type_intelligence and answers the example's type (nonFixedVoip)", async (t) => {
    if (!prism) return t.skip(skipReason);
    const { client, requests } = twilioClientFor({ lookups: prism.baseUrl }, undefined, { headers: lineTypeExample });
    assert.deepEqual(await twilioLookup({ client }).lookup(number), { lineType: 'nonFixedVoip' });
    assert.equal(requests.length, 1);
    const [request] = requests;
    assert.equal(request?.method, 'GET');
    assert.equal(request?.path, lookupPath);
    assert.deepEqual(request?.query, { Fields: 'line_type_intelligence' });
    assert.equal(request?.status, 200);
    // The header is read: it lists the spec's own example breaking the response schema, and nothing about the request.
    assert.ok(
      request?.violations?.some((violation) => violation.location[0] === 'response'),
      'Prism reported its validation in sl-violations',
    );
    assert.deepEqual(requestViolations(request), [], 'the request passes the spec');
  });

  it("a number without line type intelligence (the spec's plain example) answers null", async (t) => {
    if (!prism) return t.skip(skipReason);
    const { client, requests } = twilioClientFor({ lookups: prism.baseUrl });
    assert.deepEqual(await twilioLookup({ client }).lookup(number), { lineType: null });
    assert.equal(requests[0]?.status, 200);
    assert.deepEqual(requestViolations(requests[0]), []);
  });

  it('builds its own client from accountSid and authToken, once', async (t) => {
    if (!prism) return t.skip(skipReason);
    const { httpClient, requests } = twilioClientFor({ lookups: prism.baseUrl }, undefined, { headers: lineTypeExample });
    const lookup = twilioLookup({ accountSid: testAccountSid, authToken: testAuthToken, clientOptions: { httpClient } });
    assert.deepEqual(await lookup.lookup(number), { lineType: 'nonFixedVoip' });
    assert.deepEqual(await lookup.lookup('+14155550100'), { lineType: 'nonFixedVoip' });
    assert.deepEqual(
      requests.map((request) => [request.path, request.status]),
      [
        [lookupPath, 200],
        ['/v2/PhoneNumbers/+14155550100', 200],
      ],
    );
  });
});

describe('twilioLookup answers', () => {
  const answers: Array<[string, unknown, string | null]> = [
    ['a mobile number', { line_type_intelligence: { type: 'mobile', carrier_name: 'Carrier', error_code: null } }, 'mobile'],
    ['a landline', { line_type_intelligence: { type: 'landline' } }, 'landline'],
    ['a type Twilio adds later', { line_type_intelligence: { type: 'satellite' } }, 'satellite'],
    ['line_type_intelligence: null', { line_type_intelligence: null }, null],
    ['type: null (e.g. error_code 60600)', { line_type_intelligence: { type: null, error_code: 60600 } }, null],
    ['an empty type', { line_type_intelligence: { type: '' } }, null],
    ['no line_type_intelligence at all', { phone_number: number, valid: false }, null],
  ];
  for (const [what, body, lineType] of answers) {
    it(`${what} → ${String(lineType)}`, async () => {
      const { client, requests } = twilioClientAnswering(200, body);
      assert.deepEqual(await twilioLookup({ client }).lookup(number), { lineType });
      assert.equal(requests[0]?.method, 'GET', 'the real SDK made the request');
    });
  }
});

describe('twilioLookup failures', () => {
  const twilioErrors = [
    { status: 400, twilioCode: 60200, retryable: false, text: 'Invalid parameter' },
    { status: 404, twilioCode: 20404, retryable: false, text: 'The requested resource was not found' },
    { status: 429, twilioCode: 20429, retryable: true, text: 'Too Many Requests' },
    { status: 500, twilioCode: 20500, retryable: true, text: 'Internal Server Error' },
    { status: 503, twilioCode: 20503, retryable: true, text: 'Service Unavailable' },
  ];
  for (const { status, twilioCode, retryable, text } of twilioErrors) {
    it(`HTTP ${status} (Twilio error ${twilioCode}) is DELIVERY_FAILED, retryable: ${retryable}`, async () => {
      const more_info = `https://www.twilio.com/docs/errors/${twilioCode}`;
      const { client } = twilioClientAnswering(status, { code: twilioCode, message: text, more_info, status });
      const error = await lookupError(twilioLookup({ client }).lookup(number));
      assert.equal(error.retryable, retryable);
      assert.equal(error.message, `Twilio Lookup refused the request (error ${twilioCode}, HTTP ${status}) (see docs/errors.md#delivery-failed)`);
      assert.deepEqual(error.cause, { provider: 'twilio', status, code: twilioCode });
    });
  }

  it('a refused connection is DELIVERY_FAILED, retryable', async () => {
    const { client } = twilioClientFor({ lookups: `http://127.0.0.1:${await closedPort()}` });
    const error = await lookupError(twilioLookup({ client }).lookup(number));
    assert.equal(error.retryable, true);
    assert.equal(error.message, 'Twilio Lookup could not be reached (ECONNREFUSED) (see docs/errors.md#delivery-failed)');
  });

  describe('a server that never answers', () => {
    let silent: SilentServer;
    before(async () => {
      silent = await startSilentServer();
    });
    after(() => silent.stop());

    it('times out after timeoutMs as DELIVERY_FAILED, retryable', async () => {
      const { client } = twilioClientFor({ lookups: `http://127.0.0.1:${silent.port}` }, 10_000);
      const startedMs = Date.now();
      const error = await lookupError(twilioLookup({ client, timeoutMs: 300 }).lookup(number));
      const elapsedMs = Date.now() - startedMs;
      assert.ok(elapsedMs >= 250 && elapsedMs < 3_000, `timed out after ${elapsedMs} ms`);
      assert.equal(error.retryable, true);
      assert.equal(error.message, 'Twilio Lookup did not answer within 300 ms (see docs/errors.md#delivery-failed)');
    });
  });
});

describe('twilioLookup options', () => {
  const { client } = twilioClientAnswering(200, {});

  it('defaults: block, allow mobile only, 30 days of cache', () => {
    const lookup = twilioLookup({ client });
    assert.equal(lookup.mode, 'block');
    assert.deepEqual(lookup.allow, ['mobile']);
    assert.equal(lookup.cacheSeconds, 2_592_000);
  });

  it('takes every Twilio line type, monitor mode and its own cache time', () => {
    const lookup = twilioLookup({ client, allow: [...TWILIO_LINE_TYPES, 'mobile'], mode: 'monitor', cacheSeconds: 86_400 });
    assert.deepEqual(lookup.allow, TWILIO_LINE_TYPES, 'each type once');
    assert.ok(Object.isFrozen(lookup.allow));
    assert.equal(lookup.mode, 'monitor');
    assert.equal(lookup.cacheSeconds, 86_400);
  });

  it('lookup() takes E.164 only', async () => {
    await assert.rejects(twilioLookup({ client }).lookup('4155550100'), TypeError);
  });

  const refused: [string, unknown, RegExp][] = [
    ['no options', undefined, /expected an options object/],
    ['no client and no credentials', {}, /"accountSid"/],
    ['something that is not a client', { client: { lookups: {} } }, /"client" must be a twilio client/],
    ['an allow that is not an array', { client, allow: 'mobile' }, /"allow" must be a non-empty array of line types/],
    ['an empty allow', { client, allow: [] }, /"allow" must be a non-empty array/],
    ['a line type in another spelling', { client, allow: ['Mobile'] }, /unknown line type "Mobile"; did you mean "mobile"\?/],
    ["libphonenumber's spelling", { client, allow: ['mobile', 'TOLL_FREE'] }, /did you mean "tollFree"\?/],
    ['an unknown line type', { client, allow: ['voip'] }, /unknown line type "voip"; expected mobile, landline, fixedVoip, nonFixedVoip/],
    ['an unknown mode', { client, mode: 'warn' }, /"mode" must be "block" or "monitor"/],
    ['cacheSeconds of 0', { client, cacheSeconds: 0 }, /option "cacheSeconds" must be a whole number from 60 to 31536000 \(got the number 0\)/],
    ['fractional cacheSeconds', { client, cacheSeconds: 90.5 }, /"cacheSeconds"/],
    ['cacheSeconds over a year', { client, cacheSeconds: 40_000_000 }, /"cacheSeconds"/],
    ['cacheSeconds as a string', { client, cacheSeconds: '3600' }, /"cacheSeconds"/],
    ['a timeoutMs too short', { client, timeoutMs: 50 }, /option "timeoutMs" must be a whole number from 100 to 30000 \(got the number 50\)/],
    ['an unknown option', { client, allowTypes: ['mobile'] }, /unknown option "allowTypes"/],
  ];
  for (const [what, options, expected] of refused) {
    it(`refuses ${what} with a TypeError`, () => {
      assert.throws(
        () => twilioLookup(options as TwilioLookupOptions),
        (error: unknown) => {
          assert.ok(error instanceof TypeError);
          assert.match(error.message, /^twilioLookup: /);
          assert.match(error.message, expected);
          return true;
        },
      );
    });
  }
});
