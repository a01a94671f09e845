import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import type { EmailMessage } from '../../src/core/types.js';
import { nodemailerEmail, type NodemailerEmailOptions } from '../../src/senders/nodemailer.js';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp.js';

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
    assert.deepEqual(
      to.flatMap((address) => address?.value.map((a) => a.address)),
      [message.to],
    );
    assert.equal(mail.text?.trim(), message.text);
    assert.ok(typeof mail.html === 'string' && mail.html.includes(`<strong>${code}</strong>`), `html: ${String(mail.html)}`);
  });
});

describe('nodemailerEmail options', () => {
  const transporter = nodemailer.createTransport({ jsonTransport: true });
  const refused: [string, unknown, RegExp][] = [
    ['neither transporter nor smtpUrl', { from }, /pass either "transporter" or "smtpUrl"/],
    ['both transporter and smtpUrl', { transporter, smtpUrl: 'smtp://127.0.0.1:25', from }, /pass either "transporter" or "smtpUrl"/],
    ['an smtpUrl that is not an SMTP URL', { smtpUrl: 'http://mail.example.com', from }, /"smtpUrl" must be a URL/],
    ['a missing from', { smtpUrl: 'smtp://127.0.0.1:25' }, /"from"/],
    ['transportOptions with a transporter', { transporter, from, transportOptions: {} }, /"transportOptions"/],
  ];
  for (const [what, options, expected] of refused) {
    it(`refuses ${what} with a TypeError`, () => {
      assert.throws(
        () => nodemailerEmail(options as NodemailerEmailOptions),
        (error: unknown) => {
          assert.ok(error instanceof TypeError);
          assert.match(error.message, /^nodemailerEmail: /);
          assert.match(error.message, expected);
          return true;
        },
      );
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
