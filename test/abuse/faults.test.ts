/**
 * Provider faults, injected under the real senders: the `twilio` SDK with an HTTP client that
 * hangs or answers 500, 429 or 400/21211, and nodemailer against SMTP servers that refuse,
 * refuse for now, are not there, or never say a word. Each send ends within the time budget,
 * with at most 1 + deliveryRetries provider calls, a delivery_failed event and a log line
 * without the code, and never an unhandled rejection.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import twilio from 'twilio';
import { DELIVERY_PAUSE_MS } from '../../src/core/send/after-reply.js';
import { nodemailerEmail, OtpError, twilioSms, type EmailSender, type OtpEventMap, type SmsSender } from '../../src/index.js';
import { expressApp, type TestApp } from '../helpers/apps.js';
import { captureLogger } from '../helpers/capture.js';
import { Client, closeAgents, holdsCode } from '../helpers/client.js';
import { directory, sleep } from '../helpers/util.js';
import { twilioClientAnswering } from '../helpers/prism.js';
import { closedPort, startSilentServer, startSmtpSink, type SilentServer, type SmtpSink } from '../helpers/smtp.js';

const BUDGET_MS = 1500;
const RETRIES = 1;
const SLACK_MS = 1_000;
const PHONE = '+14155550100';
const EMAIL = 'victim@example.com';

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
process.on('unhandledRejection', onUnhandled);
process.on('uncaughtException', onUnhandled);

const apps: TestApp[] = [];
const stops: Array<() => Promise<void>> = [];
after(async () => {
  for (const app of apps) await app.close();
  closeAgents();
  for (const stop of stops) await stop();
  process.off('unhandledRejection', onUnhandled);
  process.off('uncaughtException', onUnhandled);
});

/** Wraps a sender to count the calls made to it and keep the codes it was given. */
function counted<S extends SmsSender | EmailSender>(inner: S) {
  const codes: string[] = [];
  const sender = { send: (message: Parameters<S['send']>[0]) => (codes.push(message.code), inner.send(message as never)) } as S;
  return { sender, codes };
}

/** A real twilio client whose HTTP layer never answers. */
function hangingTwilio() {
  const requests: unknown[] = [];
  class Hanging extends twilio.RequestClient {
    override request<T>(opts: unknown): Promise<T> {
      requests.push(opts);
      return new Promise<T>(() => undefined);
    }
  }
  return { client: twilio('AC0123456789abcdef0123456789abcdef', 'token', { httpClient: new Hanging() }), requests };
}

interface Scenario {
  name: string;
  channel: 'sms' | 'email';
  sender: () => Promise<SmsSender | EmailSender>;
  /** Provider calls expected: 1, or 1 + retries for a retryable fault that leaves time. */
  calls: number;
  /** Provider requests seen below the sender, when the harness can count them. */
  providerRequests?: () => number;
}

let smtp550: SmtpSink;
let smtp451: SmtpSink;
let silent: SilentServer;
before(async () => {
  smtp550 = await startSmtpSink({ rejectRecipient: { responseCode: 550, message: `No such user ${EMAIL}` } });
  smtp451 = await startSmtpSink({ rejectRecipient: { responseCode: 451, message: 'Try again later' } });
  silent = await startSilentServer();
  stops.push(
    () => smtp550.stop(),
    () => smtp451.stop(),
    () => silent.stop(),
  );
});

const from = '+14155550111';
const twilioAnswering = (status: number, code: number, message: string) => {
  const mock = twilioClientAnswering(status, { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status });
  return { sender: twilioSms({ client: mock.client, from }), requests: mock.requests };
};
const scenarios: Scenario[] = (() => {
  const hang = hangingTwilio();
  const e500 = twilioAnswering(500, 20500, 'Internal Server Error');
  const e429 = twilioAnswering(429, 20429, 'Too Many Requests');
  const e21211 = twilioAnswering(400, 21211, `The 'To' number ${PHONE} is not a valid phone number.`);
  const mail =
    (port: () => number, extra: object = {}) =>
    async () =>
      nodemailerEmail({ smtpUrl: `smtp://127.0.0.1:${port()}`, from: 'no-reply@acme.test', transportOptions: { ignoreTLS: true, ...extra } });
  let refusedPort = 0;
  return [
    {
      name: 'Twilio HTTP client that hangs',
      channel: 'sms',
      sender: async () => twilioSms({ client: hang.client, from }),
      calls: 1,
      providerRequests: () => hang.requests.length,
    },
    { name: 'Twilio 500', channel: 'sms', sender: async () => e500.sender, calls: 1 + RETRIES, providerRequests: () => e500.requests.length },
    { name: 'Twilio 429', channel: 'sms', sender: async () => e429.sender, calls: 1 + RETRIES, providerRequests: () => e429.requests.length },
    { name: 'Twilio 400 / 21211 (invalid To)', channel: 'sms', sender: async () => e21211.sender, calls: 1, providerRequests: () => e21211.requests.length },
    { name: 'SMTP server refusing the recipient (550)', channel: 'email', sender: mail(() => smtp550.port), calls: 1 },
    { name: 'SMTP server refusing for now (451)', channel: 'email', sender: mail(() => smtp451.port), calls: 1 + RETRIES },
    {
      name: 'SMTP server not listening',
      channel: 'email',
      sender: async () => {
        refusedPort = await closedPort();
        return mail(() => refusedPort)();
      },
      calls: 1 + RETRIES,
    },
    { name: 'SMTP server that never answers', channel: 'email', sender: mail(() => silent.port), calls: 1 },
  ];
})();

describe('provider faults', () => {
  for (const scenario of scenarios) {
    it(`${scenario.name}: answered within the budget, ≤ 1 + retries calls, a delivery_failed event, no code in any log line`, async () => {
      const inner = await scenario.sender();
      const { sender, codes } = counted(inner);
      const logger = captureLogger();
      const destination = scenario.channel === 'sms' ? { smsTo: PHONE } : { emailTo: EMAIL };
      const app = await expressApp({
        channels: [scenario.channel],
        otp: {
          [scenario.channel]: sender,
          resolveUser: directory([['victim', destination]]),
          awaitDelivery: true,
          deliveryTimeoutMs: BUDGET_MS,
          deliveryRetries: RETRIES,
          resendCooldownSeconds: 0,
          logger,
        },
      });
      apps.push(app);
      const failures: Array<OtpEventMap['delivery_failed']> = [];
      app.service.on('delivery_failed', (event) => failures.push(event));

      // Over HTTP, waiting for delivery (awaitDelivery): the answer comes within the budget.
      let started = Date.now();
      const answer = await new Client(app.url, { keepAlive: 64 }).post('/otp/send', { username: 'victim' });
      const httpMs = Date.now() - started;
      assert.equal(answer.status, 502, answer.text);
      assert.equal(answer.body.error, 'delivery_failed');
      assert.ok(httpMs <= BUDGET_MS + SLACK_MS, `HTTP answer after ${httpMs} ms`);

      // The programmatic API: rejects with DELIVERY_FAILED within the budget.
      started = Date.now();
      const error = await app.service.generateOtp('victim', destination).then(
        () => assert.fail('should fail'),
        (e: unknown) => e,
      );
      const apiMs = Date.now() - started;
      assert.ok(error instanceof OtpError && error.code === 'DELIVERY_FAILED', String(error));
      assert.ok(apiMs <= BUDGET_MS + SLACK_MS, `generateOtp settled after ${apiMs} ms`);

      const perSend = codes.length / 2;
      const below = scenario.providerRequests?.();
      console.log(
        `# ${scenario.name}: HTTP ${answer.status} after ${httpMs} ms, generateOtp after ${apiMs} ms; sender calls per send ${perSend}` +
          `${below === undefined ? '' : `, provider requests ${below}`}; reason "${failures[0]?.reason}"`,
      );
      assert.equal(codes.length, 2 * scenario.calls, `sender calls ${codes.length} for 2 sends`);
      assert.ok(scenario.calls <= 1 + RETRIES);
      if (below !== undefined) assert.equal(below, 2 * scenario.calls);

      assert.equal(failures.length, 2);
      assert.deepEqual(
        failures.map((f) => f.ip),
        ['127.0.0.1', undefined],
        'the HTTP send names the client IP; generateOtp has none',
      );
      for (const failure of failures) {
        assert.equal(failure.username, 'victim');
        assert.equal(failure.channel, scenario.channel);
        assert.equal(failure.attempts, scenario.calls);
        assert.equal(failure.destination, scenario.channel === 'sms' ? '+1******0100' : 'v***@example.com');
      }
      const failedLines = logger.lines.filter((line) => line.includes('"otp.delivery_failed"'));
      assert.equal(failedLines.length, 2);
      assert.ok(failedLines.every((line) => line.includes('"level":"error"')));
      assert.ok(codes.length > 0);
      for (const line of logger.lines) {
        for (const code of codes) assert.ok(!holdsCode(line, code), `a code in a log line: ${line}`);
        assert.ok(!line.includes(PHONE) && !line.includes(EMAIL), `an unmasked destination in a log line: ${line}`);
      }
    });
  }

  it('with awaitDelivery off, a hanging provider does not delay the answer, and its failure still arrives as an event', async () => {
    const hang = hangingTwilio();
    const failures: Array<OtpEventMap['delivery_failed']> = [];
    const app = await expressApp({
      channels: ['sms'],
      otp: { sms: twilioSms({ client: hang.client, from }), resolveUser: directory([['victim', { smsTo: PHONE }]]), deliveryTimeoutMs: 300 },
    });
    apps.push(app);
    app.service.on('delivery_failed', (event) => failures.push(event));
    const answer = await new Client(app.url, { keepAlive: 64 }).post('/otp/send', { username: 'victim' });
    assert.equal(answer.status, 202);
    assert.equal(hang.requests.length, 0, 'answered before the provider was called');
    assert.ok(answer.ms < 2_000, `answered after ${answer.ms} ms`);
    assert.equal(failures.length, 0);
    // Delivery starts after the random pause, then times out after deliveryTimeoutMs.
    const deadline = Date.now() + DELIVERY_PAUSE_MS.max + 300 + SLACK_MS;
    while (failures.length === 0 && Date.now() < deadline) await sleep(20);
    assert.deepEqual(
      failures.map((f) => [f.reason, f.attempts]),
      [['timed out', 1]],
    );
  });

  it('a sender that throws synchronously, a listener that throws and a logger that throws break nothing', async () => {
    const throwing: SmsSender = {
      send: () => {
        throw new Error('boom');
      },
    };
    const brokenLogger = {
      info: () => {
        throw new Error('logger down');
      },
      warn: () => {
        throw new Error('logger down');
      },
      error: () => {
        throw new Error('logger down');
      },
    };
    const app = await expressApp({
      channels: ['sms'],
      otp: { sms: throwing, resolveUser: directory([['victim', { smsTo: PHONE }]]), logger: brokenLogger, resendCooldownSeconds: 0 },
    });
    apps.push(app);
    app.service.on('delivery_failed', () => {
      throw new Error('listener down');
    });
    app.service.on('rate_limited', () => {
      throw new Error('listener down');
    });
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push((await new Client(app.url, { keepAlive: 64 }).post('/otp/send', { username: 'victim' })).status);
    assert.deepEqual(answers, [202, 202, 202]);
    await sleep(DELIVERY_PAUSE_MS.max + 100); // the throwing sender, listener and logger run after the pause
    assert.deepEqual(app.errors, []);
  });

  it('no unhandled rejection or uncaught exception in this whole file', async () => {
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(unhandled.map(String), []);
  });
});
