/**
 * The Koa example app (example-app/koa.ts): password, code from the dev outbox, guarded route,
 * over its JSON endpoints; and, in the system Chromium, the same pages as the Express example.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../helpers/browser.js';
import { generate as totpCode } from 'otplib';
import { createKoaExample } from '../../example-app/koa.js';
import { ConfigError } from '../../example-app/config.js';
import { Client } from '../helpers/client.js';
import { closeServer, listen } from '../helpers/apps.js';

const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of closers) await close();
});

async function start() {
  const example = createKoaExample({ NODE_ENV: 'test', OTP_SECRET: 'koa-example-test-secret-0123456789abcdef' });
  const server = createServer(example.app.callback());
  const url = await listen(server);
  closers.push(async () => {
    await closeServer(server);
    await example.close();
  });
  return { example, client: new Client(url), url };
}

describe('example-app/koa.ts', () => {
  it('signs in with password and code, guards /account, and forgets the session at logout', async () => {
    const { client } = await start();
    assert.equal((await client.get('/account')).status, 401);
    const wrong = await client.post('/login', { username: 'john.smith', password: 'nope' });
    assert.equal(wrong.status, 401);
    const login = await client.post('/login', { username: 'john.smith', password: 'blockid-demo' });
    assert.equal(login.status, 200, login.text);
    assert.deepEqual(login.body.channels, ['sms', 'whatsapp', 'voice', 'email']);
    assert.equal((await client.post('/otp/send', { username: 'john.smith', channel: 'sms' })).status, 202);
    let outbox = (await client.get('/dev/outbox')).body as Array<{ channel: string; to: string; text: string }>;
    for (let i = 0; outbox.length === 0 && i < 50; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      outbox = (await client.get('/dev/outbox')).body;
    }
    assert.equal(outbox.length, 1);
    assert.equal(outbox[0]?.to, '+14155550100');
    const code = /\b(\d{6})\b/.exec(outbox[0]?.text ?? '')?.[1];
    assert.ok(code, 'the outbox shows the SMS text with its code');
    const verified = await client.post('/otp/verify', { username: 'john.smith', code });
    assert.equal(verified.status, 200, verified.text);
    const account = await client.get('/account');
    assert.equal(account.status, 200);
    assert.equal(account.body.displayName, 'John Smith');
    assert.equal((await client.post('/logout', {})).status, 204);
    assert.equal((await client.get('/account')).status, 401);
  });

  it('sets up an authenticator app and recovery codes, and signs in with each', async () => {
    const { client, example } = await start();
    const signIn = async () => {
      assert.equal((await client.post('/login', { username: 'john.smith', password: 'blockid-demo' })).status, 200);
    };
    await signIn();
    assert.equal((await client.post('/otp/send', { username: 'john.smith', channel: 'email' })).status, 202);
    let text = '';
    for (let i = 0; !text && i < 50; i++) {
      text = example.outbox?.entries().at(-1)?.text ?? '';
      if (!text) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const emailed = /\b(\d{6})\b/.exec(text)?.[1];
    assert.equal((await client.post('/otp/verify', { username: 'john.smith', code: emailed })).status, 200);

    const enrolled = await client.post('/account/totp', {});
    assert.equal(enrolled.status, 200, enrolled.text);
    const key = enrolled.body.secret as string;
    assert.match(enrolled.body.uri, /^otpauth:\/\/totp\//);
    assert.equal((await client.post('/account/totp/confirm', { code: '000000x' })).status, 422);
    const now = Math.floor(Date.now() / 1000);
    assert.equal((await client.post('/account/totp/confirm', { code: await totpCode({ secret: key, epoch: now }) })).status, 200);
    const recovery = await client.post('/account/recovery-codes', {});
    assert.equal(recovery.body.codes.length, 10);
    assert.ok(!JSON.stringify(example.factors.get('john.smith')).includes(recovery.body.codes[0]));

    await client.post('/logout', {});
    await signIn();
    const totp = await client.post('/otp/verify', { username: 'john.smith', code: await totpCode({ secret: key, epoch: now + 30 }), method: 'totp' });
    assert.equal(totp.status, 200, totp.text);
    assert.equal((await client.get('/account')).body.method, 'totp');

    await client.post('/logout', {});
    await signIn();
    assert.equal((await client.post('/otp/verify', { username: 'john.smith', code: recovery.body.codes[0], method: 'recovery' })).status, 200);
    const account = (await client.get('/account')).body;
    assert.deepEqual([account.method, account.authenticatorApp, account.recoveryCodesLeft], ['recovery', true, 9]);

    const metrics = await client.get('/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.text, /^blockid_otp_verifications_total\{method="totp",result="verified"\} 1$/m);
  });

  it('sends nothing for a user who did not pass the password step in this session', async () => {
    const { client, example } = await start();
    assert.equal((await client.post('/otp/send', { username: 'john.smith' })).status, 202);
    await new Promise((resolve) => setTimeout(resolve, 600)); // past the random pause before a delivery would start
    assert.equal(example.outbox?.entries().length, 0);
  });

  it("a form login without the page's form token is refused, other bodies get 415; no dev outbox in production", async () => {
    const { client } = await start();
    const form = await client.request('POST', '/login', { raw: 'username=john.smith&password=blockid-demo', contentType: 'application/x-www-form-urlencoded' });
    assert.equal(form.status, 403);
    assert.match(form.text, /This form has expired/);
    const text = await client.request('POST', '/login', { raw: 'john.smith', contentType: 'text/plain' });
    assert.equal(text.status, 415);
    assert.equal(text.body.error, 'unsupported_media_type');
    assert.throws(() => createKoaExample({ NODE_ENV: 'production' }), ConfigError);
    const production = createKoaExample({
      NODE_ENV: 'production',
      OTP_SECRET: 'p'.repeat(40),
      SESSION_SECRET: 's'.repeat(40),
      SMTP_URL: 'smtp://127.0.0.1:1',
      OTP_EMAIL_FROM: 'Demo <no-reply@example.com>',
    });
    closers.push(() => production.close());
    assert.equal(production.outbox, undefined);
  });
});

describe('example-app/koa.ts: the same pages as the Express example, in Chromium', () => {
  let browser: Browser | undefined;
  before(async () => {
    browser = await launchChromium();
  });
  after(() => browser?.close());

  const EXPRESS_PAGES = ['/login', '/login/code', '/account', '/account/totp', '/dev/outbox', '/favicon.ico', '/assets/app.css', '/assets/code-step.js'];

  it('sign-in page, code step (SMS from the dev outbox), account page, recovery codes, sign-out; no CSP problem', { timeout: 60_000 }, async () => {
    const { url, example } = await start();
    assert.ok(browser);
    const context = await browser.newContext();
    context.setDefaultTimeout(10_000);
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (message) => {
      if (/Content Security Policy/i.test(message.text())) problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(error.message));

    await page.goto(`${url}/account`);
    await page.waitForURL(`${url}/login`);
    assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Sign in');
    await page.getByLabel('Username').fill('john.smith');
    await page.getByLabel('Password').fill('blockid-demo');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.waitForURL(`${url}/login/code`);
    assert.equal(await page.evaluate(() => (globalThis as any).document.activeElement?.id), 'code-title');
    const field = page.getByLabel('Code', { exact: true });
    assert.equal(await field.getAttribute('autocomplete'), 'one-time-code');
    assert.equal(await field.getAttribute('inputmode'), 'numeric');

    await page.getByRole('button', { name: /^Send by SMS to/ }).click();
    await page.locator('#status', { hasText: 'We sent a code' }).waitFor();
    let text = '';
    for (let i = 0; !text && i < 100; i++) {
      text = example.outbox?.entries().at(-1)?.text ?? '';
      if (!text) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const code = /\b(\d{6})\b/.exec(text)?.[1] ?? '';
    await field.fill(code);
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.waitForURL(`${url}/account`);
    assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Hello, John Smith');

    await page.getByRole('button', { name: 'Generate recovery codes' }).click();
    await page.getByRole('heading', { name: 'Your recovery codes' }).waitFor();
    assert.equal(await page.locator('#recovery-codes li code').count(), 10);
    assert.equal(example.factors.get('john.smith').recoveryCodes.length, 10);

    await page.goto(`${url}/account`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${url}/login?signed-out`);
    await page.goto(`${url}/account`);
    await page.waitForURL(`${url}/login`);
    assert.deepEqual(problems, []);
    await context.close();
  });

  it('every page the Express example has answers on Koa too (HTML for a browser, the icon, the assets)', { timeout: 60_000 }, async () => {
    const { url } = await start();
    assert.ok(browser);
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${url}/login`);
    await page.getByLabel('Username').fill('ada.lovelace');
    await page.getByLabel('Password').fill('blockid-demo');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.waitForURL(`${url}/login/code`);
    for (const path of EXPRESS_PAGES) {
      const answer = await context.request.get(`${url}${path}`, { headers: { accept: 'text/html' }, maxRedirects: 0 });
      // Before the code step is done, the account pages send the browser to sign-in, as on Express.
      const expected = path.startsWith('/account') ? 303 : 200;
      assert.equal(answer.status(), expected, `${path}: ${answer.status()}`);
    }
    const icon = await context.request.get(`${url}/favicon.ico`);
    assert.match(icon.headers()['content-type'] ?? '', /^image\/svg\+xml/);
    const login = await context.request.get(`${url}/login`);
    assert.match(login.headers()['content-security-policy'] ?? '', /script-src 'self'/);
    const missing = await context.request.get(`${url}/no-such-page`, { headers: { accept: 'text/html' } });
    assert.equal(missing.status(), 404);
    assert.match(await missing.text(), /Page not found/);
    await context.close();
  });
});
