/**
 * No silent failures: a delivery that fails with nobody watching (no `logger`, no
 * `delivery_failed` listener) still says why on the console, at most once a minute per
 * cause, and never with the code, the destination or the username; a sender whose optional
 * package is missing refuses to be created.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtemp, mkdir, cp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { nodemailerEmail, twilioSms } from '../../src/index.js';
import { expressApp, type TestApp } from '../helpers/apps.js';
import { Client } from '../helpers/client.js';
import { closedPort } from '../helpers/smtp.js';
import { listen, closeServer } from '../helpers/apps.js';
import { twilioClientFor } from '../helpers/prism.js';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '..', '..');

/** console.warn, recorded (and kept off the test output) for this test. */
function recordWarnings(t: TestContext): string[] {
  const warnings: string[] = [];
  t.mock.method(console, 'warn', (...args: unknown[]) => void warnings.push(args.map(String).join(' ')));
  return warnings;
}

async function until(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** What a warning must never hold: ada's address and name, or a run of digits as long as a code. */
function assertScrubbed(text: string): void {
  assert.doesNotMatch(text, /ada/i, 'no username or address');
  assert.doesNotMatch(text, /\d{6}/, 'no code');
}

describe('a failed delivery nobody watches is warned about on the console', () => {
  let app: TestApp | undefined;
  after(() => app?.close());

  it('SMTP server down: /send answers 202, then one console.warn with the cause and the docs link, at most once a minute', async (t) => {
    const warnings = recordWarnings(t);
    const smtpUrl = `smtp://127.0.0.1:${await closedPort()}`;
    app = await expressApp({ otp: { email: nodemailerEmail({ smtpUrl, from: 'no-reply@example.com' }) } });
    const reply = await new Client(app.url).request('POST', '/otp/send', { json: { username: 'ada.lovelace', channel: 'email' } });
    assert.equal(reply.status, 202);
    await until(() => warnings.length > 0, 'the warning');
    const [warning = ''] = warnings;
    assert.match(warning, /could not be delivered by email/);
    assert.match(warning, /ECONNREFUSED/, 'the cause');
    assert.match(warning, /"logger"/, 'says how to see every failure');
    assert.match(warning, /\(see docs\/errors\.md#delivery-failed\)$/);
    assertScrubbed(warning);

    // The same cause again within the minute: no second line.
    await assert.rejects(app.service.generateOtp('ada.lovelace', { emailTo: 'ada@example.com' }), { code: 'DELIVERY_FAILED' });
    assert.equal(warnings.length, 1);

    // A minute later the same cause is worth a line again.
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() + 61_000 });
    await assert.rejects(app.service.generateOtp('ada.lovelace', { emailTo: 'ada@example.com' }), { code: 'DELIVERY_FAILED' });
    assert.equal(warnings.length, 2);
    assertScrubbed(warnings[1] ?? '');
  });

  it('a logger or a delivery_failed listener sees the failure instead: no console line', async (t) => {
    const warnings = recordWarnings(t);
    const smtpUrl = `smtp://127.0.0.1:${await closedPort()}`;
    const logged: object[] = [];
    const logger = { info: () => undefined, warn: () => undefined, error: (details: object) => void logged.push(details) };
    const withLogger = await expressApp({ otp: { logger, email: nodemailerEmail({ smtpUrl, from: 'no-reply@example.com' }) } });
    t.after(() => withLogger.close());
    await assert.rejects(withLogger.service.generateOtp('ada.lovelace', { emailTo: 'ada@example.com' }));
    assert.equal(logged.length, 1);

    const withListener = await expressApp({ otp: { email: nodemailerEmail({ smtpUrl, from: 'no-reply@example.com' }) } });
    t.after(() => withListener.close());
    const heard: unknown[] = [];
    withListener.service.on('delivery_failed', (event) => void heard.push(event));
    await assert.rejects(withListener.service.generateOtp('ada.lovelace', { emailTo: 'ada@example.com' }));
    assert.equal(heard.length, 1);
    assert.deepEqual(warnings, []);
  });

  it('an attacker who knows a username and opens many sessions cannot flood the console: still one line', async (t) => {
    const warnings = recordWarnings(t);
    const smtpUrl = `smtp://127.0.0.1:${await closedPort()}`;
    let failedAttempts = 0;
    const count = () => undefined;
    // A metrics sink is neither a logger nor a listener: it only tells this test when every delivery is over.
    const metrics = {
      send: count,
      unknownUserSend: count,
      rateLimited: count,
      verification: count,
      lock: count,
      timeToVerify: count,
      delivery: (_channel: string, result: string) => void (result === 'failed' && (failedAttempts += 1)),
    };
    const flooded = await expressApp({ otp: { metrics, email: nodemailerEmail({ smtpUrl, from: 'no-reply@example.com' }) } });
    t.after(() => flooded.close());
    const sessions = 8;
    for (let i = 0; i < sessions; i++) {
      const reply = await new Client(flooded.url).request('POST', '/otp/send', {
        json: { username: 'ada.lovelace', channel: 'email' },
        headers: { 'x-forwarded-for': `198.51.100.${i}` },
      });
      assert.equal(reply.status, 202);
    }
    // Each delivery tries twice (a refused connection is retried once).
    await until(() => failedAttempts >= sessions * 2, 'every delivery to fail');
    assert.equal(warnings.length, 1);
    assertScrubbed(warnings[0] ?? '');
  });

  describe('Twilio refusing the request (the real twilio SDK against a local server)', () => {
    let refusing: Server;
    let url = '';
    before(async () => {
      refusing = createServer((_req, res) => {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ code: 20003, message: 'Authenticate', more_info: 'https://www.twilio.com/docs/errors/20003', status: 401 }));
      });
      url = await listen(refusing);
    });
    after(() => closeServer(refusing));

    it("/send answers 202, then one console.warn naming sms, Twilio, the HTTP status and Twilio's error code", async (t) => {
      const warnings = recordWarnings(t);
      const { client, requests } = twilioClientFor(url);
      const sms = twilioSms({ client, from: '+14155550111' });
      const twilioApp = await expressApp({ otp: { sms } });
      t.after(() => twilioApp.close());
      const reply = await new Client(twilioApp.url).request('POST', '/otp/send', { json: { username: 'grace.hopper', channel: 'sms' } });
      assert.equal(reply.status, 202);
      await until(() => warnings.length > 0, 'the warning');
      assert.equal(requests.length, 1, 'the SDK did call the server');
      const [warning = ''] = warnings;
      assert.match(warning, /could not be delivered by sms \(OtpError DELIVERY_FAILED twilio HTTP 401 20003\)/);
      assert.doesNotMatch(warning, /grace|613|555/i, 'no username or number');
      assertScrubbed(warning);
    });

    it('a connection refused is a cause of its own, warned once', async (t) => {
      const warnings = recordWarnings(t);
      const { client } = twilioClientFor(`http://127.0.0.1:${await closedPort()}`);
      const twilioApp = await expressApp({ otp: { sms: twilioSms({ client, from: '+14155550111' }) } });
      t.after(() => twilioApp.close());
      for (const n of [1, 2]) {
        await assert.rejects(twilioApp.service.generateOtp(`someone-${n}`, { smsTo: '4155550123' }), { code: 'DELIVERY_FAILED' });
      }
      assert.equal(warnings.length, 1);
      assert.match(warnings[0] ?? '', /by sms \(OtpError DELIVERY_FAILED twilio ECONNREFUSED\)/);
    });
  });
});

describe('a sender whose optional package is not installed fails at creation', () => {
  let work = '';
  /** Runs `source` as an ES module in a copy of src/ whose node_modules lacks nodemailer and twilio. */
  const runWithoutPeers = async (source: string) => {
    await writeFile(join(work, 'check.ts'), source);
    const tsx = import.meta.resolve('tsx');
    const { stdout } = await run(process.execPath, ['--import', tsx, 'check.ts'], { cwd: work, timeout: 30_000 });
    return JSON.parse(stdout.trim().split('\n').at(-1) ?? 'null') as { name: string; message: string } | null;
  };

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'blockid-otp-no-peers-'));
    await cp(join(repo, 'src'), join(work, 'src'), { recursive: true });
    await writeFile(join(work, 'package.json'), JSON.stringify({ name: 'no-peers', private: true, type: 'module' }));
    for (const name of ['@opentelemetry/api', '@oslojs/otp', '@oslojs/binary', '@oslojs/crypto', '@oslojs/encoding', 'libphonenumber-js', 'ipaddr.js']) {
      await mkdir(join(work, 'node_modules', name, '..'), { recursive: true });
      await symlink(join(repo, 'node_modules', name), join(work, 'node_modules', name), 'dir').catch(() => undefined);
    }
  });
  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  const creating = (call: string) => `
    import { nodemailerEmail, twilioSms, twilioLookup } from './src/index.ts';
    let outcome = null;
    try { ${call}; } catch (error) { outcome = { name: error.name, message: error.message }; }
    console.log(JSON.stringify(outcome));
  `;

  it('nodemailerEmail({ smtpUrl }) without nodemailer: a TypeError that says npm install nodemailer', async () => {
    const outcome = await runWithoutPeers(creating(`nodemailerEmail({ smtpUrl: 'smtp://127.0.0.1:2525', from: 'a@example.com' })`));
    assert.equal(outcome?.name, 'TypeError');
    assert.match(
      outcome?.message ?? '',
      /^nodemailerEmail: "smtpUrl" needs the optional package "nodemailer", which is not installed: run `npm install nodemailer`/,
    );
    assert.match(outcome?.message ?? '', /\(see docs\/errors\.md#missing-peer-dependency\)$/);
  });

  it('twilioSms({ accountSid, authToken }) and twilioLookup(...) without twilio: a TypeError that says npm install twilio', async () => {
    for (const call of [
      `twilioSms({ accountSid: 'AC0123456789abcdef0123456789abcdef', authToken: 'token', from: '+14155550111' })`,
      `twilioLookup({ accountSid: 'AC0123456789abcdef0123456789abcdef', authToken: 'token' })`,
    ]) {
      const outcome = await runWithoutPeers(creating(call));
      assert.equal(outcome?.name, 'TypeError', call);
      assert.match(outcome?.message ?? '', /needs the optional package "twilio", which is not installed: run `npm install twilio`/);
    }
  });

  it('a ready-made transporter or client needs no peer: creation succeeds there', async () => {
    const outcome = await runWithoutPeers(creating(`nodemailerEmail({ transporter: { sendMail: async () => ({}) }, from: 'a@example.com' })`));
    assert.equal(outcome, null);
  });
});
