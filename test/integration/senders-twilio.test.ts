import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { SmsMessage } from '../../src/core/types.js';
import { twilioSms, type TwilioSmsOptions } from '../../src/senders/twilio/index.js';
import { startPrism, testAccountSid, testAuthToken, twilioClientAnswering, twilioClientFor, twilioSpecPath, type PrismMock } from '../helpers/prism.js';
import { deliveryError } from '../helpers/sender-contract.js';

const code = '493817';
const message: SmsMessage = { to: '+14155550100', body: `Your blockid code is ${code}`, code, username: 'john.smith' };
const from = '+14155550111';
const messagingServiceSid = 'MG0123456789abcdef0123456789abcdef';
const messagesPath = `/2010-04-01/Accounts/${testAccountSid}/Messages.json`;

describe("twilioSms through the twilio SDK against Twilio's OpenAPI description (Prism)", () => {
  let prism: PrismMock | null = null;
  const skipReason = `Twilio OpenAPI spec not found at ${twilioSpecPath}`;
  before(async () => {
    prism = await startPrism();
  });
  after(async () => {
    await prism?.stop();
  });

  it('sends To, From and Body exactly as passed, and the spec accepts the request', async (t) => {
    if (!prism) return t.skip(skipReason);
    const { client, requests } = twilioClientFor(prism.baseUrl);
    await twilioSms({ client, from }).send(message);
    assert.deepEqual(requests, [{ method: 'POST', path: messagesPath, form: { To: message.to, From: from, Body: message.body }, status: 201 }]);
  });

  it('sends MessagingServiceSid instead of From when given one', async (t) => {
    if (!prism) return t.skip(skipReason);
    const { client, requests } = twilioClientFor(prism.baseUrl);
    await twilioSms({ client, messagingServiceSid }).send(message);
    assert.deepEqual(requests, [
      { method: 'POST', path: messagesPath, form: { To: message.to, Body: message.body, MessagingServiceSid: messagingServiceSid }, status: 201 },
    ]);
  });

  it('the mock does validate: a request the spec forbids is answered 422 and fails the send', async (t) => {
    if (!prism) return t.skip(skipReason);
    const { client, requests } = twilioClientFor(prism.baseUrl);
    const error = await deliveryError(twilioSms({ client, messagingServiceSid: 'MG-not-a-service-sid' }).send(message), [
      code,
      'Your blockid code',
      message.to,
    ]);
    assert.equal(requests[0]?.status, 422);
    assert.equal(error.retryable, false);
    assert.match(error.message, /HTTP 422/);
  });
});

describe('twilioSms options', () => {
  const { client } = twilioClientAnswering(201, {});
  const refused: [string, unknown, RegExp][] = [
    ['neither from nor messagingServiceSid', { client }, /pass either "from" or "messagingServiceSid"/],
    ['both from and messagingServiceSid', { client, from, messagingServiceSid }, /pass either "from" or "messagingServiceSid"/],
    ['no client and no credentials', { from }, /"accountSid"/],
    ['a client and credentials', { client, accountSid: testAccountSid, authToken: testAuthToken, from }, /not both/],
    ['an accountSid that is not one', { accountSid: 'SK123', authToken: testAuthToken, from }, /"accountSid"/],
    ['a missing authToken', { accountSid: testAccountSid, from }, /"authToken"/],
    ['an empty from', { client, from: ' ' }, /"from"/],
    ['a messagingServiceSid that is not one', { client, messagingServiceSid: 'PN123' }, /"messagingServiceSid"/],
    ['clientOptions with a client', { client, from, clientOptions: { timeout: 1 } }, /"clientOptions"/],
  ];
  for (const [what, options, expected] of refused) {
    it(`refuses ${what} with a TypeError`, () => {
      assert.throws(
        () => twilioSms(options as TwilioSmsOptions),
        (error: unknown) => {
          assert.ok(error instanceof TypeError);
          assert.match(error.message, /^twilioSms: /);
          assert.match(error.message, expected);
          return true;
        },
      );
    });
  }
});

describe('twilioSms without the twilio package installed', () => {
  it('imports, and reports a missing SDK only when it needs one', async () => {
    const script = `
      import { register } from 'node:module';
      register('data:text/javascript,' + encodeURIComponent(
        'export async function resolve(specifier, context, next) {' +
        '  if (specifier === "twilio") throw Object.assign(new Error("Cannot find package twilio"), { code: "ERR_MODULE_NOT_FOUND" });' +
        '  return next(specifier, context);' +
        '}'));
      const { twilioSms } = await import(${JSON.stringify(new URL('../../src/senders/twilio/index.ts', import.meta.url).href)});
      const sms = twilioSms({ accountSid: ${JSON.stringify(testAccountSid)}, authToken: 'token', from: '+14155550111' });
      const error = await sms.send({ to: '+14155550100', body: 'b', code: '1', username: 'u' }).catch((e) => e);
      console.log(JSON.stringify({ code: error?.code, message: error?.message }));
    `;
    const run = promisify(execFile);
    const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script]);
    const result = JSON.parse(stdout) as { code: string; message: string };
    assert.equal(result.code, 'DELIVERY_FAILED');
    assert.match(result.message, /npm install twilio/);
  });
});
