import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { inspect, promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { OtpError } from '../../src/core/errors.js';
import type { EmailMessage } from '../../src/core/types.js';
import { nodemailerEmail, type NodemailerEmailOptions } from '../../src/senders/nodemailer.js';
import { closedPort, startSilentServer, startSmtpSink, type SilentServer, type SmtpSink } from '../helpers/smtp.js';

const code = '493817';
const from = 'Acme Sign-in <no-reply@acme.test>';
const message: EmailMessage = {
  to: 'john.smith@example.com',
  subject: 'Your Acme sign-in code',
  text: `Your code is ${code}. It expires in 5 minutes.`,
  html: `<p>Your code is <strong>${code}</strong>. It expires in 5 minutes.</p>`,
  code,
  username: 'john.smith',
};

async function deliveryError(send: Promise<void>): Promise<OtpError> {
  const error = await send.then(() => assert.fail('send should have failed'), (e: unknown) => e);
  assert.ok(error instanceof OtpError, `expected an OtpError, got ${inspect(error)}`);
  assert.equal(error.code, 'DELIVERY_FAILED');
  for (const text of [error.message, JSON.stringify(error), JSON.stringify(error.cause), inspect(error, { depth: 10 })]) {
    assert.ok(!text.includes(code), `the passcode leaked: ${text}`);
  }
  return error;
}

describe('nodemailerEmail to an SMTP server', () => {
  let sink: SmtpSink;
  before(async () => {
    sink = await startSmtpSink();
  });
  after(() => sink.stop());

  it('delivers subject, from, to, and the code in both text and HTML', async () => {
    const transporter = nodemailer.createTransport({ host: '127.0.0.1', port: sink.port, secure: false, ignoreTLS: true });
    await nodemailerEmail({ transporter, from }).send(message);
    const [mail] = await sink.waitFor(1);
    assert.ok(mail);
    assert.equal(mail.subject, message.subject);
    assert.deepEqual(mail.from?.value, [{ name: 'Acme Sign-in', address: 'no-reply@acme.test' }]);
    const to = Array.isArray(mail.to) ? mail.to : [mail.to];
    assert.deepEqual(to.flatMap((address) => address?.value.map((a) => a.address)), [message.to]);
    assert.equal(mail.text?.trim(), message.text);
    assert.ok(typeof mail.html === 'string' && mail.html.includes(`<strong>${code}</strong>`), `html: ${String(mail.html)}`);
  });

  it('works from { smtpUrl, from }', async () => {
    await nodemailerEmail({ smtpUrl: sink.url, from }).send({ ...message, to: 'jane@example.com' });
    const mails = await sink.waitFor(2);
    const mail = mails[1];
    assert.equal(mail?.subject, message.subject);
    assert.ok(mail?.text?.includes(code));
  });
});

describe('nodemailerEmail failures', () => {
  it('a refused connection is DELIVERY_FAILED, retryable, with no code in the message', async () => {
    const email = nodemailerEmail({ smtpUrl: `smtp://127.0.0.1:${await closedPort()}`, from });
    const error = await deliveryError(email.send(message));
    assert.equal(error.retryable, true);
    assert.equal(error.message, 'SMTP server could not be reached (ECONNREFUSED) (see docs/errors.md#delivery-failed)');
  });

  describe('a server that accepts the connection and never answers', () => {
    let silent: SilentServer;
    before(async () => {
      silent = await startSilentServer();
    });
    after(() => silent.stop());

    it('ends within the configured timeout as DELIVERY_FAILED, retryable', async () => {
      const transportOptions = { connectionTimeout: 500, greetingTimeout: 300, socketTimeout: 500 };
      const email = nodemailerEmail({ smtpUrl: `smtp://127.0.0.1:${silent.port}`, from, transportOptions });
      const startedMs = Date.now();
      const error = await deliveryError(email.send(message));
      const elapsedMs = Date.now() - startedMs;
      assert.ok(elapsedMs >= 250 && elapsedMs < 3_000, `ended after ${elapsedMs} ms`);
      assert.equal(error.retryable, true);
      assert.equal(error.message, 'SMTP server could not be reached (ETIMEDOUT) (see docs/errors.md#delivery-failed)');
    });
  });

  for (const [responseCode, retryable] of [[451, true], [550, false]] as const) {
    describe(`a server that answers RCPT TO with ${responseCode}`, () => {
      let sink: SmtpSink;
      before(async () => {
        sink = await startSmtpSink({ rejectRecipient: { responseCode, message: 'Recipient refused' } });
      });
      after(() => sink.stop());

      it(`is DELIVERY_FAILED, retryable: ${retryable}`, async () => {
        const error = await deliveryError(nodemailerEmail({ smtpUrl: sink.url, from }).send(message));
        assert.equal(error.retryable, retryable);
        assert.equal(error.message, `SMTP server refused the message (reply ${responseCode} to RCPT TO) (see docs/errors.md#delivery-failed)`);
        assert.deepEqual(error.cause, { provider: 'smtp', responseCode, command: 'RCPT TO', errorCode: 'EENVELOPE' });
        assert.equal(sink.messages.length, 0);
      });
    });
  }
});

describe('nodemailerEmail options', () => {
  const transporter = nodemailer.createTransport({ jsonTransport: true });
  const refused: [string, unknown, RegExp][] = [
    ['neither transporter nor smtpUrl', { from }, /pass either "transporter" or "smtpUrl"/],
    ['both transporter and smtpUrl', { transporter, smtpUrl: 'smtp://127.0.0.1:25', from }, /pass either "transporter" or "smtpUrl"/],
    ['something that is not a transporter', { transporter: {}, from }, /"transporter" must be a nodemailer transporter/],
    ['an smtpUrl that is not an SMTP URL', { smtpUrl: 'http://mail.example.com', from }, /"smtpUrl" must be a URL/],
    ['a missing from', { smtpUrl: 'smtp://127.0.0.1:25' }, /"from"/],
    ['transportOptions with a transporter', { transporter, from, transportOptions: {} }, /"transportOptions"/],
    ['an unknown option', { smtpUrl: 'smtp://127.0.0.1:25', from, timeout: 5 }, /unknown option "timeout"/],
  ];
  for (const [what, options, expected] of refused) {
    it(`refuses ${what} with a TypeError`, () => {
      assert.throws(() => nodemailerEmail(options as NodemailerEmailOptions), (error: unknown) => {
        assert.ok(error instanceof TypeError);
        assert.match(error.message, /^nodemailerEmail: /);
        assert.match(error.message, expected);
        return true;
      });
    });
  }
});

describe('nodemailerEmail without the nodemailer package installed', () => {
  it('imports, and reports a missing package only when it needs one', async () => {
    const script = `
      import { register } from 'node:module';
      register('data:text/javascript,' + encodeURIComponent(
        'export async function resolve(specifier, context, next) {' +
        '  if (specifier === "nodemailer") throw Object.assign(new Error("Cannot find package nodemailer"), { code: "ERR_MODULE_NOT_FOUND" });' +
        '  return next(specifier, context);' +
        '}'));
      const { nodemailerEmail } = await import(${JSON.stringify(new URL('../../src/senders/nodemailer.ts', import.meta.url).href)});
      const sent = [];
      await nodemailerEmail({ transporter: { sendMail: async (mail) => sent.push(mail) }, from: 'a@b.test' })
        .send({ to: 'c@d.test', subject: 's', text: 't', html: 'h', code: '1', username: 'u' });
      const email = nodemailerEmail({ smtpUrl: 'smtp://127.0.0.1:25', from: 'a@b.test' });
      const error = await email.send({ to: 'c@d.test', subject: 's', text: 't', html: 'h', code: '1', username: 'u' }).catch((e) => e);
      console.log(JSON.stringify({ sent: sent.length, code: error?.code, message: error?.message }));
    `;
    const run = promisify(execFile);
    const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script]);
    const result = JSON.parse(stdout) as { sent: number; code: string; message: string };
    assert.equal(result.sent, 1);
    assert.equal(result.code, 'DELIVERY_FAILED');
    assert.match(result.message, /npm install nodemailer/);
  });
});
