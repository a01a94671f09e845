/**
 * `blockid-otp/otp-provider` says which environment variable is missing, and `OTP.close()`
 * lets a script that uses REDIS_URL exit.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import * as OTP from '../../src/otp-provider.js';
import { OtpError } from '../../src/core/errors.js';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp.js';

const SECRET = 'otp-provider-env-secret-0123456789abcdef';
const repo = resolve(import.meta.dirname, '..', '..');

describe('blockid-otp/otp-provider names the missing environment variable', () => {
  const saved = { ...process.env };
  after(async () => {
    process.env = saved;
    await OTP.close();
  });

  const refusal = async (destinations: Parameters<typeof OTP.GenerateOTP>[1]): Promise<OtpError> => {
    const error = await OTP.GenerateOTP('john.smith', destinations).then(
      () => assert.fail('should be refused'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof OtpError, String(error));
    assert.equal(error.code, 'CHANNEL_NOT_CONFIGURED');
    assert.match(error.message, /\(see docs\/errors\.md#channel-not-configured\)$/);
    return error;
  };

  it('SMTP_URL without OTP_EMAIL_FROM: "OTP_EMAIL_FROM is not set", not "no email sender"', async () => {
    process.env = { ...saved, OTP_SECRET: SECRET, SMTP_URL: 'smtp://127.0.0.1:2525' };
    delete process.env.OTP_EMAIL_FROM;
    await OTP.close();
    const error = await refusal({ emailTo: 'john.smith@example.com' });
    assert.match(error.message, /^OTP_EMAIL_FROM is not set: blockid-otp\/otp-provider sends email only with SMTP_URL, OTP_EMAIL_FROM set/);
  });

  it('no Twilio variables at all: names the first and lists the rest', async () => {
    process.env = { ...saved, OTP_SECRET: SECRET, SMTP_URL: 'smtp://127.0.0.1:2525', OTP_EMAIL_FROM: 'no-reply@example.com' };
    for (const name of ['TWILIO_ACCOUNT_SID', 'TWILIO_AUTH_TOKEN', 'TWILIO_FROM', 'TWILIO_MESSAGING_SERVICE_SID']) delete process.env[name];
    await OTP.close();
    const error = await refusal({ smsTo: '4155550100', smsISDCode: '1' });
    assert.match(error.message, /^TWILIO_ACCOUNT_SID is not set \(nor TWILIO_AUTH_TOKEN, TWILIO_FROM\)/);
  });

  it('TWILIO_MESSAGING_SERVICE_SID stands in for TWILIO_FROM', async () => {
    process.env = { ...saved, OTP_SECRET: SECRET, TWILIO_AUTH_TOKEN: 'token', TWILIO_MESSAGING_SERVICE_SID: 'MG0123456789abcdef0123456789abcdef' };
    delete process.env.TWILIO_ACCOUNT_SID;
    delete process.env.TWILIO_FROM;
    await OTP.close();
    const error = await refusal({ smsTo: '4155550100' });
    assert.match(error.message, /^TWILIO_ACCOUNT_SID is not set: /);
  });

  it('OTP_SECRET missing: a TypeError naming it, with the docs link', async () => {
    process.env = { ...saved };
    delete process.env.OTP_SECRET;
    await OTP.close();
    await assert.rejects(OTP.GenerateOTP('john.smith', { emailTo: 'a@example.com' }), (error: unknown) => {
      assert.ok(error instanceof TypeError);
      assert.match(error.message, /OTP_SECRET is not set/);
      assert.match(error.message, /\(see docs\/errors\.md#missing-environment-variable\)$/);
      return true;
    });
  });
});

describe('OTP.close() lets a script that uses REDIS_URL exit', () => {
  let smtp: SmtpSink;
  let work = '';
  before(async () => {
    smtp = await startSmtpSink();
    work = await mkdtemp(join(tmpdir(), 'blockid-otp-close-'));
  });
  after(async () => {
    await smtp.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Runs a script that sends through the facade; resolves with whether it exited within `waitMs` of having sent. */
  const runScript = async (closeAtEnd: boolean, waitMs: number): Promise<{ exited: boolean; code: number | null; output: string }> => {
    const file = join(work, `script-${closeAtEnd}.mjs`);
    const facade = pathToFileURL(join(repo, 'src/otp-provider.ts')).href;
    await writeFile(
      file,
      `import * as OTP from ${JSON.stringify(facade)};
       const sent = await OTP.GenerateOTP('close.script.${Date.now()}', { emailTo: 'script@example.com' });
       console.log(JSON.stringify(sent.channels));
       ${closeAtEnd ? 'await OTP.close();' : ''}`,
    );
    const env = { ...process.env, OTP_SECRET: SECRET, SMTP_URL: smtp.url, OTP_EMAIL_FROM: 'no-reply@example.com', REDIS_URL: 'redis://127.0.0.1:6379' };
    const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), file], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const exit = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
    // The clock starts once the script has sent (starting tsx and connecting take their own time).
    const startup = Date.now() + 30_000;
    while (!output.includes(']') && Date.now() < startup && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    const timer = new Promise<'running'>((done) => setTimeout(() => done('running'), waitMs));
    const first = await Promise.race([exit, timer]);
    if (first === 'running') {
      child.kill();
      await exit;
      return { exited: false, code: null, output };
    }
    return { exited: true, code: first, output };
  };

  it('with OTP.close() at the end the script exits on its own, after sending', async () => {
    const result = await runScript(true, 10_000);
    assert.ok(result.exited, `the script exited: ${result.output}`);
    assert.equal(result.code, 0, result.output);
    assert.match(result.output, /\["email"\]/);
  });

  it('without it the open Redis connection keeps the script running (what close() is for)', async () => {
    const result = await runScript(false, 3_000);
    assert.match(result.output, /\["email"\]/, 'it did send');
    assert.equal(result.exited, false);
  });
});
