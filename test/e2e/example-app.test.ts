// The example app end to end, in the system Chromium: password, code by SMS / email / both
// / WhatsApp / a call read from the dev outbox (or from an SMTP server when one is
// configured), verify, the guarded account page, an authenticator app (codes computed here
// with otplib, an implementation independent of blockid-otp's) and recovery codes,
// sign-out; plus the security headers, /metrics, Redis and PostgreSQL, and the start-up checks.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { generate as totpCode } from 'otplib';
import pg from 'pg';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { createClient } from 'redis';
import { DEV_OTP_SECRET } from '../../example-app/config.js';
import { ConfigError, createExampleApp, type ExampleApp } from '../../example-app/server.js';
import { SESSION_TABLE } from '../../example-app/storage.js';
import { launchChromium, listen } from '../helpers/browser.js';
import { startSmtpSink } from '../helpers/smtp.js';

const PASSWORD = 'blockid-demo';
const JOHN = { username: 'john.smith', name: 'John Smith', phone: '+14155550100', email: 'john.smith@example.com' };
const ADA = { username: 'ada.lovelace', name: 'Ada Lovelace', email: 'ada@example.com' };
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const TIMEOUT = { timeout: 60_000 };

let browser: Browser | undefined;
const cleanups: Array<() => Promise<unknown>> = [];

before(async () => {
  browser = await launchChromium();
});

after(async () => {
  const failures: unknown[] = [];
  for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => failures.push(error));
  await browser?.close();
  if (failures.length > 0) throw new AggregateError(failures, 'cleanup failed');
});

// ---- helpers ----------------------------------------------------------------------------

interface Running {
  url: string;
  example: ExampleApp;
}

/** A fresh app (its own memory store, so resend cooldowns of other tests do not apply). */
async function startApp(env: Record<string, string> = {}): Promise<Running> {
  const example = createExampleApp(env);
  cleanups.push(() => example.close());
  await example.ready;
  const listening = await listen(example.app);
  cleanups.push(() => listening.stop());
  return { url: listening.url, example };
}

interface Tab {
  page: Page;
  context: BrowserContext;
  /** Content-Security-Policy reports and uncaught script errors seen so far. */
  problems: string[];
}

async function openTab(): Promise<Tab> {
  assert.ok(browser, 'the browser did not start');
  const context = await browser.newContext({ viewport: { width: 1000, height: 720 } });
  cleanups.push(() => context.close());
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (message) => {
    if (/Content Security Policy/i.test(message.text())) problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(error.message));
  return { page, context, problems };
}

async function signIn(page: Page, url: string, username: string, password = PASSWORD): Promise<void> {
  await page.goto(`${url}/login`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Continue' }).click();
}

async function signInToCodeStep(page: Page, url: string, username: string): Promise<void> {
  await signIn(page, url, username);
  await page.waitForURL(`${url}/login/code`);
}

const channelButton = {
  sms: /^Send by SMS to/,
  email: /^Send by email to/,
  both: /^Send by SMS and email to/,
  whatsapp: /^Send by WhatsApp to/,
  voice: /^Call me at/,
};

async function sendCode(page: Page, channel: keyof typeof channelButton): Promise<void> {
  await page.getByRole('button', { name: channelButton[channel] }).click();
  await page.locator('#status', { hasText: 'We sent a code' }).waitFor();
}

/** The current code of an authenticator app holding `key` (base32), `offsetSeconds` from now. */
function appCode(key: string, offsetSeconds = 0): Promise<string> {
  return totpCode({ secret: key, epoch: Math.floor(Date.now() / 1000) + offsetSeconds });
}

/** Signs out from the account page. */
async function signOut(page: Page, url: string): Promise<void> {
  await page.goto(`${url}/account`);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(`${url}/login?signed-out`);
}

async function verifiedMethod(page: Page): Promise<string | null> {
  return page.locator('#verified-method').getAttribute('data-method');
}

interface OutboxMessage {
  channel: string;
  to: string;
  subject: string | null;
  text: string;
}

/** The messages on the /dev/outbox page, as listed (newest first). */
async function readOutboxPage(context: BrowserContext, url: string): Promise<OutboxMessage[]> {
  const page = await context.newPage();
  try {
    const response = await page.goto(`${url}/dev/outbox`);
    assert.equal(response?.status(), 200);
    return await page.locator('li.message').evaluateAll((items) =>
      items.map((li: any) => ({
        channel: String(li.dataset.channel),
        to: String(li.dataset.to),
        subject: li.querySelector('.message-subject')?.textContent ?? null,
        text: li.querySelector('.message-text')?.textContent ?? '',
      })),
    );
  } finally {
    await page.close();
  }
}

/** Polls the outbox page until it lists at least `count` messages (delivery is asynchronous). */
async function waitForOutbox(context: BrowserContext, url: string, count: number): Promise<OutboxMessage[]> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const messages = await readOutboxPage(context, url);
    if (messages.length >= count || Date.now() > deadline) return messages;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function codeIn(text: string): string {
  const match = /\b(\d{6})\b/.exec(text);
  assert.ok(match?.[1], `no 6-digit code in the message: ${text}`);
  return match[1];
}

async function enterCode(page: Page, code: string): Promise<void> {
  await page.getByLabel('Code', { exact: true }).fill(code);
  await page.getByRole('button', { name: 'Verify' }).click();
}

async function expectAccountPage(page: Page, url: string, user: { username: string; name: string }): Promise<void> {
  await page.waitForURL(`${url}/account`);
  assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), `Hello, ${user.name}`);
  assert.equal(await page.locator('.username').textContent(), user.username);
}

async function expectSignInPage(page: Page, url: string): Promise<void> {
  await page.waitForURL(`${url}/login`);
  assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Sign in');
}

/** Verified john.smith in a new tab, by SMS. */
async function verifiedJohn(url: string): Promise<Tab> {
  const tab = await openTab();
  await signInToCodeStep(tab.page, url, JOHN.username);
  await sendCode(tab.page, 'sms');
  const [sms] = await waitForOutbox(tab.context, url, 1);
  assert.ok(sms, 'no SMS in the dev outbox');
  await enterCode(tab.page, codeIn(sms.text));
  await expectAccountPage(tab.page, url, JOHN);
  return tab;
}

function cspDirectives(header: string): Map<string, string[]> {
  return new Map(
    header
      .split(';')
      .map((part) => part.trim().split(/\s+/))
      .filter((parts) => parts[0])
      .map(([name, ...sources]) => [name!.toLowerCase(), sources]),
  );
}

// ---- tests ------------------------------------------------------------------------------

describe('example app', () => {
  let shared: Running;
  before(async () => {
    shared = await startApp();
  });

  test('the CSP allows scripts and styles only from the app itself, never inline', async () => {
    for (const path of ['/login', '/dev/outbox', '/assets/code-step.js']) {
      const response = await fetch(`${shared.url}${path}`);
      assert.equal(response.status, 200, path);
      const header = response.headers.get('content-security-policy');
      assert.ok(header, `no Content-Security-Policy on ${path}`);
      const csp = cspDirectives(header);
      const scriptSrc = csp.get('script-src') ?? csp.get('default-src');
      assert.ok(scriptSrc, `no script-src on ${path}`);
      assert.ok(!scriptSrc.includes("'unsafe-inline'"), `script-src allows 'unsafe-inline' on ${path}: ${header}`);
      assert.ok(!scriptSrc.includes("'unsafe-eval'"), `script-src allows 'unsafe-eval' on ${path}`);
      assert.deepEqual(csp.get('script-src-attr'), ["'none'"]);
      assert.ok(!(csp.get('style-src') ?? []).includes("'unsafe-inline'"), `style-src allows 'unsafe-inline' on ${path}`);
    }
  });

  test('the session cookie is HttpOnly and SameSite=Lax (not Secure over plain http)', async () => {
    const response = await fetch(`${shared.url}/login`);
    const cookie = response.headers.get('set-cookie') ?? '';
    assert.match(cookie, /^blockid\.sid=/);
    assert.match(cookie, /; HttpOnly/i);
    assert.match(cookie, /; SameSite=Lax/i);
    assert.doesNotMatch(cookie, /; Secure/i);
  });

  test('the account page redirects to sign-in before verification, also after the password step', TIMEOUT, async () => {
    const { page } = await openTab();
    await page.goto(`${shared.url}/account`);
    await expectSignInPage(page, shared.url);

    await signInToCodeStep(page, shared.url, JOHN.username);
    await page.goto(`${shared.url}/account`);
    await expectSignInPage(page, shared.url);

    const api = await fetch(`${shared.url}/account`, { headers: { Accept: 'application/json' } });
    assert.equal(api.status, 401);
    assert.equal(((await api.json()) as { error: string }).error, 'otp_required');
  });

  test('a wrong password keeps the sign-in page with an error, and the code step stays closed', TIMEOUT, async () => {
    const { page } = await openTab();
    await signIn(page, shared.url, JOHN.username, 'not-the-password');
    await page.waitForURL(`${shared.url}/login`);
    assert.match((await page.getByRole('alert').textContent()) ?? '', /do not match/);
    assert.equal(await page.getByLabel('Username').inputValue(), JOHN.username);
    await page.goto(`${shared.url}/login/code`);
    await expectSignInPage(page, shared.url);
  });

  test('the sign-in page lists both demo accounts', TIMEOUT, async () => {
    const { page } = await openTab();
    await page.goto(`${shared.url}/login`);
    const demo = (await page.locator('.demo').textContent()) ?? '';
    for (const text of [JOHN.username, ADA.username, PASSWORD, '4155550100', JOHN.email, ADA.email]) {
      assert.ok(demo.includes(text), `the demo box does not mention ${text}`);
    }
  });

  test('by SMS: sign in, read the code from the dev outbox, verify, the account page greets john.smith', TIMEOUT, async () => {
    const { url } = await startApp();
    const { page, context, problems } = await openTab();
    await signInToCodeStep(page, url, JOHN.username);

    const code = page.getByLabel('Code', { exact: true });
    assert.equal(await code.getAttribute('autocomplete'), 'one-time-code');
    assert.equal(await code.getAttribute('inputmode'), 'numeric');
    assert.deepEqual(
      await page.locator('button[data-channel]').evaluateAll((b) => b.map((el: any) => el.dataset.channel)),
      ['sms', 'whatsapp', 'voice', 'email', 'both'],
      'SMS, WhatsApp, a call, email, and SMS and email (the dev outbox stands in for all four)',
    );
    assert.equal(await page.locator('script:not([src])').count(), 0, 'inline script on the code page');
    assert.equal(await page.locator('[style]').count(), 0, 'inline style on the code page');

    await sendCode(page, 'sms');
    assert.match((await page.locator('#status').textContent()) ?? '', /text message to the phone number ending in 0100/);
    assert.equal(await page.evaluate(() => (globalThis as any).document.activeElement?.id), 'code', 'focus moves to the Code field');
    const resend = page.locator('#resend');
    assert.ok(await resend.isDisabled(), 'resend is disabled during the cooldown');
    const countdown = /Resend code in (\d+) s/.exec((await resend.textContent()) ?? '');
    assert.ok(countdown, `no countdown on the resend button: ${await resend.textContent()}`);
    assert.ok(Number(countdown[1]) >= 1 && Number(countdown[1]) <= 30, `countdown ${countdown[1]} is not within the 30 s cooldown`);

    const messages = await waitForOutbox(context, url, 1);
    assert.equal(messages.length, 1);
    const [sms] = messages;
    assert.equal(sms?.channel, 'sms');
    assert.equal(sms?.to, JOHN.phone);
    assert.match(sms?.text ?? '', /BlockID Demo/);

    await enterCode(page, codeIn(sms?.text ?? ''));
    await expectAccountPage(page, url, JOHN);
    const status = await page.request.get(`${url}/otp/status`);
    assert.deepEqual({ verified: (await status.json()).verified, username: (await status.json()).username }, { verified: true, username: JOHN.username });
    assert.deepEqual(problems, []);
  });

  test('by email: the code arrives by email only and verifies', TIMEOUT, async () => {
    const { url } = await startApp();
    const { page, context, problems } = await openTab();
    await signInToCodeStep(page, url, JOHN.username);
    await sendCode(page, 'email');
    assert.match((await page.locator('#status').textContent()) ?? '', /by email to the example\.com address/);

    const messages = await waitForOutbox(context, url, 1);
    await new Promise((resolve) => setTimeout(resolve, 600)); // an SMS, if one were (wrongly) sent, would show by now
    assert.deepEqual(
      (await readOutboxPage(context, url)).map((m) => [m.channel, m.to]),
      [['email', JOHN.email]],
    );
    const [email] = messages;
    assert.match(email?.subject ?? '', /verification code/i);

    await enterCode(page, codeIn(email?.text ?? ''));
    await expectAccountPage(page, url, JOHN);
    assert.deepEqual(problems, []);
  });

  test('by SMS and email: one code, present in both messages', TIMEOUT, async () => {
    const { url } = await startApp();
    const { page, context, problems } = await openTab();
    await signInToCodeStep(page, url, JOHN.username);
    await sendCode(page, 'both');
    assert.match((await page.locator('#status').textContent()) ?? '', /text message to .* and by email to /);

    const messages = await waitForOutbox(context, url, 2);
    assert.equal(messages.length, 2);
    const sms = messages.find((m) => m.channel === 'sms');
    const email = messages.find((m) => m.channel === 'email');
    assert.equal(sms?.to, JOHN.phone);
    assert.equal(email?.to, JOHN.email);
    const code = codeIn(sms?.text ?? '');
    assert.equal(codeIn(email?.text ?? ''), code, 'the SMS and the email carry the same code');

    await enterCode(page, code);
    await expectAccountPage(page, url, JOHN);
    assert.deepEqual(problems, []);
  });

  test('a wrong code is announced in the aria-live region; the page stays usable and the right code then works', TIMEOUT, async () => {
    const { url } = await startApp();
    const { page, context, problems } = await openTab();
    await signInToCodeStep(page, url, JOHN.username);
    await sendCode(page, 'sms');
    const [sms] = await waitForOutbox(context, url, 1);
    const right = codeIn(sms?.text ?? '');
    const wrong = `${(Number(right[0]) + 1) % 10}${right.slice(1)}`;

    await enterCode(page, wrong);
    const feedback = page.locator('#feedback');
    await feedback.filter({ hasText: /not right/ }).waitFor();
    assert.ok(['polite', 'assertive'].includes((await feedback.getAttribute('aria-live')) ?? ''), 'feedback is not an aria-live region');
    const input = page.getByLabel('Code', { exact: true });
    assert.equal(await input.getAttribute('aria-invalid'), 'true');
    assert.ok(await input.isEditable(), 'the Code field still takes input');
    assert.ok(await page.getByRole('button', { name: 'Verify' }).isEnabled(), 'Verify is enabled again');
    assert.equal(page.url(), `${url}/login/code`);

    await enterCode(page, right);
    await expectAccountPage(page, url, JOHN);
    assert.deepEqual(problems, []);
  });

  test('sign-out destroys the session: the account page redirects again, also for the old cookie', TIMEOUT, async () => {
    const { url } = await startApp();
    const { page, context } = await verifiedJohn(url);
    const before = (await context.cookies(url)).find((c) => c.name === 'blockid.sid');
    assert.ok(before, 'no session cookie after verification');

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${url}/login?signed-out`);
    assert.equal(await page.getByRole('status').textContent(), 'You have signed out.');
    await page.goto(`${url}/account`);
    await expectSignInPage(page, url);

    const replay = await fetch(`${url}/account`, {
      headers: { Accept: 'application/json', Cookie: `blockid.sid=${before.value}` },
    });
    assert.equal(replay.status, 401, 'the old session cookie still opens the account');
  });

  test('an email-only user is offered email only, and signs in with it', TIMEOUT, async () => {
    const { url } = await startApp();
    const { page, context, problems } = await openTab();
    await signInToCodeStep(page, url, ADA.username);
    assert.deepEqual(await page.locator('button[data-channel]').evaluateAll((b) => b.map((el: any) => el.dataset.channel)), ['email']);
    await sendCode(page, 'email');
    const [email] = await waitForOutbox(context, url, 1);
    assert.equal(email?.to, ADA.email);
    await enterCode(page, codeIn(email?.text ?? ''));
    await expectAccountPage(page, url, ADA);
    assert.deepEqual(problems, []);
  });

  test('the code step sends only to the user who passed the password step', TIMEOUT, async () => {
    const { url, example } = await startApp();
    const { page } = await openTab();
    await signInToCodeStep(page, url, JOHN.username);
    const send = (username: string) =>
      page.evaluate(
        async ([username]) => {
          const response = await fetch('/otp/send', {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ username, channel: 'email' }),
          });
          return response.status;
        },
        [username],
      );
    assert.equal(await send(ADA.username), 202, 'same answer as for a real send');
    assert.equal(await send(JOHN.username), 202);
    const deadline = Date.now() + 5_000;
    while (!example.outbox?.entries().some((e) => e.to === JOHN.email) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const recipients = example.outbox?.entries().map((e) => e.to);
    assert.deepEqual(recipients, [JOHN.email], 'a code went to a user who did not pass the password step');
  });

  test('the dev outbox lists each message with recipient and text, newest first', TIMEOUT, async () => {
    const { url } = await startApp();
    const john = await openTab();
    await signInToCodeStep(john.page, url, JOHN.username);
    await sendCode(john.page, 'sms');
    await waitForOutbox(john.context, url, 1);
    const ada = await openTab();
    await signInToCodeStep(ada.page, url, ADA.username);
    await sendCode(ada.page, 'email');
    const messages = await waitForOutbox(ada.context, url, 2);
    assert.deepEqual(
      messages.map((m) => [m.channel, m.to]),
      [
        ['email', ADA.email],
        ['sms', JOHN.phone],
      ],
    );
    for (const message of messages) codeIn(message.text);
  });

  test('keyboard only: sign in, send and verify a code without the mouse', TIMEOUT, async () => {
    const { url } = await startApp();
    const { page, context } = await openTab();
    const active = () =>
      page.evaluate(() => {
        const el = (globalThis as any).document.activeElement;
        return { id: String(el?.id ?? ''), channel: String(el?.dataset?.channel ?? '') };
      });
    await page.goto(`${url}/login`);
    assert.equal((await active()).id, 'username', 'the Username field has focus on arrival');
    await page.keyboard.type(JOHN.username);
    await page.keyboard.press('Tab');
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press('Enter');
    await page.waitForURL(`${url}/login/code`);

    for (let i = 0; i < 10 && (await active()).channel !== 'sms'; i++) await page.keyboard.press('Tab');
    assert.equal((await active()).channel, 'sms', 'the SMS button is not reachable with Tab');
    await page.keyboard.press('Enter');
    await page.locator('#status', { hasText: 'We sent a code' }).waitFor();
    assert.equal((await active()).id, 'code');
    const [sms] = await waitForOutbox(context, url, 1);
    await page.keyboard.type(codeIn(sms?.text ?? ''));
    await page.keyboard.press('Enter');
    await expectAccountPage(page, url, JOHN);
  });
});

describe('example app: authenticator app and recovery codes', () => {
  test('set up an authenticator app (QR image under the CSP, key as text), sign out, sign in with its code', TIMEOUT, async () => {
    const { url, example } = await startApp();
    const tab = await verifiedJohn(url);
    const { page, problems } = tab;
    assert.equal(await verifiedMethod(page), 'code');

    await page.getByRole('button', { name: 'Set up an authenticator app' }).click();
    await page.waitForURL(`${url}/account/totp`);
    // The QR code is an image from the app itself: it loads under img-src 'self'.
    const qr = page.getByRole('img', { name: /QR code/ });
    await qr.evaluate((img: any) => img.decode());
    assert.ok((await qr.evaluate((img: any) => img.naturalWidth)) > 0, 'the QR code image did not load');
    const svg = await page.request.get(`${url}/account/totp/qr.svg`);
    assert.equal(svg.headers()['content-type'], 'image/svg+xml; charset=utf-8');
    assert.equal(svg.headers()['cache-control'], 'no-store');
    const key = ((await page.locator('#totp-key').textContent()) ?? '').replace(/\s/g, '');
    assert.match(key, /^[A-Z2-7]{32}$/);
    assert.match(
      (await page.getByRole('link', { name: /Open it in your authenticator app/ }).getAttribute('href')) ?? '',
      new RegExp(`^otpauth://totp/.*secret=${key}`),
    );

    // A wrong first code: the page says so, and nothing is saved yet.
    const right = await appCode(key);
    const field = page.getByLabel('Code from the app');
    await field.fill(`${(Number(right[0]) + 1) % 10}${right.slice(1)}`);
    await page.getByRole('button', { name: 'Turn on the authenticator app' }).click();
    assert.match((await page.getByRole('alert').textContent()) ?? '', /does not match/);
    assert.equal(await page.getByLabel('Code from the app').getAttribute('aria-invalid'), 'true');
    assert.equal(example.factors.get(JOHN.username).totp, undefined);

    await page.getByLabel('Code from the app').fill(await appCode(key));
    await page.getByRole('button', { name: 'Turn on the authenticator app' }).click();
    await page.waitForURL(`${url}/account`);
    assert.match((await page.getByRole('status').textContent()) ?? '', /Authenticator app added/);
    assert.match((await page.locator('#totp-state').textContent()) ?? '', /On since/);
    const sealed = example.factors.get(JOHN.username).totp ?? '';
    assert.ok(sealed.length > 0, "the sealed key is on the user's row");
    assert.ok(!sealed.includes(key) && !sealed.includes(key.toLowerCase()), 'the row holds the key sealed, not as text');
    assert.equal((await page.request.get(`${url}/account/totp/qr.svg`)).status(), 404, 'the set-up is over: no QR code any more');

    await signOut(page, url);
    await signInToCodeStep(page, url, JOHN.username);
    // An enrolled user is asked for the authenticator code first; nothing is sent.
    assert.ok(await page.locator('#channels').isHidden(), 'the send buttons wait behind "Get a code sent to you instead"');
    assert.equal(await page.evaluate(() => (globalThis as any).document.activeElement?.id), 'code', 'the Authenticator code field has focus on arrival');
    // The next step's code: the one used to confirm was this step's, and a step counts once.
    const code = await appCode(key, 30);
    await page.getByLabel('Authenticator code').fill(code);
    await page.getByRole('button', { name: 'Verify' }).click();
    await expectAccountPage(page, url, JOHN);
    assert.equal(await verifiedMethod(page), 'totp');
    assert.equal((await (await page.request.get(`${url}/otp/status`)).json()).method, 'totp');
    assert.equal(example.outbox?.entries().length, 1, 'only the SMS of the first sign-in was sent');

    // The same code again (a replay, well within its 30 s): refused.
    await signOut(page, url);
    await signInToCodeStep(page, url, JOHN.username);
    await page.getByLabel('Authenticator code').fill(code);
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.locator('#feedback', { hasText: /not right/ }).waitFor();
    assert.equal(page.url(), `${url}/login/code`);

    // A code by SMS or email is still one click away.
    await page.getByRole('button', { name: 'Get a code sent to you instead' }).click();
    assert.ok(await page.locator('#channels').isVisible());
    assert.deepEqual(problems, []);
  });

  test('recovery codes: shown once, stored as hashes, each signs in once (keyboard only on the code step)', TIMEOUT, async () => {
    const { url, example } = await startApp();
    const tab = await verifiedJohn(url);
    const { page, problems } = tab;
    await page.getByRole('button', { name: 'Generate recovery codes' }).click();
    await page.getByRole('heading', { name: 'Your recovery codes' }).waitFor();
    const codes = await page.locator('#recovery-codes li code').allTextContents();
    assert.equal(codes.length, 10);
    for (const code of codes) assert.match(code, /^[2-9A-HJKMNP-TV-Z]{4}-[2-9A-HJKMNP-TV-Z]{4}-[2-9A-HJKMNP-TV-Z]{4}$/);
    const stored = example.factors.get(JOHN.username).recoveryCodes;
    assert.equal(stored.length, 10);
    for (const code of codes) {
      assert.ok(!stored.some((hash) => hash.includes(code) || hash.includes(code.replace(/-/g, ''))), 'a recovery code is stored as itself');
    }

    // Shown once: the account page only counts them.
    await page.getByRole('link', { name: 'I have saved them' }).click();
    await page.waitForURL(`${url}/account`);
    assert.match((await page.locator('#recovery-state').textContent()) ?? '', /10 unused recovery codes/);
    const account = (await page.content()).toUpperCase();
    assert.ok(!codes.some((code) => account.includes(code)), 'the account page shows a recovery code again');

    await signOut(page, url);
    await signInToCodeStep(page, url, JOHN.username);
    const active = () =>
      page.evaluate(() => String((globalThis as any).document.activeElement?.dataset?.method ?? (globalThis as any).document.activeElement?.id ?? ''));
    for (let i = 0; i < 15 && (await active()) !== 'recovery'; i++) await page.keyboard.press('Tab');
    assert.equal(await active(), 'recovery', '"Use a recovery code" is not reachable with Tab');
    await page.keyboard.press('Enter');
    assert.equal(await active(), 'code', 'focus moves to the code field');
    assert.equal(await page.locator('#code-label').textContent(), 'Recovery code');
    assert.ok(await page.locator('#channels').isHidden());
    await page.keyboard.type(codes[3]!.toLowerCase()); // any case, with its dashes
    await page.keyboard.press('Enter');
    await expectAccountPage(page, url, JOHN);
    assert.equal(await verifiedMethod(page), 'recovery');
    assert.match((await page.locator('#recovery-state').textContent()) ?? '', /9 unused recovery codes/);
    assert.equal(example.factors.get(JOHN.username).recoveryCodes.length, 9, 'onRecoveryCodeUsed deleted the used hash');

    // The used code does not work a second time.
    await signOut(page, url);
    await signInToCodeStep(page, url, JOHN.username);
    await page.getByRole('button', { name: 'Use a recovery code' }).click();
    await page.getByLabel('Recovery code').fill(codes[3]!);
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.locator('#feedback', { hasText: /used already/ }).waitFor();
    // Another one does.
    await page.getByLabel('Recovery code').fill(codes[0]!);
    await page.getByRole('button', { name: 'Verify' }).click();
    await expectAccountPage(page, url, JOHN);
    assert.deepEqual(problems, []);
  });

  test('the account pages and their forms need a verified session and the form token', TIMEOUT, async () => {
    const { url } = await startApp();
    for (const path of ['/account/totp', '/account/totp/qr.svg']) {
      const response = await fetch(`${url}${path}`, { headers: { Accept: 'application/json' } });
      assert.equal(response.status, 401, path);
    }
    for (const path of ['/account/totp', '/account/totp/confirm', '/account/totp/remove', '/account/recovery-codes']) {
      const response = await fetch(`${url}${path}`, { method: 'POST', headers: { Accept: 'application/json' }, redirect: 'manual' });
      assert.equal(response.status, 401, path);
    }
    const { page } = await verifiedJohn(url);
    const forged = await page.request.post(`${url}/account/recovery-codes`, { form: { _csrf: 'forged' }, maxRedirects: 0 });
    assert.equal(forged.status(), 403);
  });
});

describe('example app: the code step reads right for each way in', () => {
  const activeId = (page: Page) => page.evaluate(() => String((globalThis as any).document.activeElement?.id ?? ''));

  test("on arrival focus is on the step's heading (a code must be asked for first), never on <body>", TIMEOUT, async () => {
    const { url } = await startApp();
    const { page } = await openTab();
    await signInToCodeStep(page, url, JOHN.username);
    assert.equal(await activeId(page), 'code-title');
    assert.equal(await page.evaluate(() => (globalThis as any).document.activeElement?.tagName), 'H1');
  });

  test('the code field takes digits only: inputmode, pattern, one-time-code, and typed letters never get in', TIMEOUT, async () => {
    const { url } = await startApp();
    const { page } = await openTab();
    await signInToCodeStep(page, url, JOHN.username);
    const code = page.getByLabel('Code', { exact: true });
    assert.equal(await code.getAttribute('inputmode'), 'numeric');
    assert.equal(await code.getAttribute('autocomplete'), 'one-time-code');
    assert.equal(await code.getAttribute('pattern'), '[0-9]*');
    await code.pressSequentially('12ab3-4 5x6');
    assert.equal(await code.inputValue(), '123456');
    await code.fill('');
    await code.pressSequentially('1234567890');
    assert.equal(await code.inputValue(), '123456', 'no more digits than a code has');
  });

  test("an authenticator user lands on the code field; in recovery-code mode the page asks for a recovery code, not the app's", TIMEOUT, async () => {
    const { url, example } = await startApp();
    // The page only needs to know that the user has both (their values are not checked here).
    example.factors.setTotp(JOHN.username, 'sealed-key-for-the-page');
    example.factors.setRecoveryCodes(JOHN.username, ['hash-for-the-page']);
    const { page } = await openTab();
    await signInToCodeStep(page, url, JOHN.username);
    const lead = page.locator('.lead');
    assert.match((await lead.textContent()) ?? '', /authenticator app/);
    assert.equal(await activeId(page), 'code', 'the Authenticator code field has focus');

    await page.getByRole('button', { name: 'Use a recovery code' }).click();
    const text = (await lead.textContent()) ?? '';
    assert.doesNotMatch(text, /authenticator/i, `recovery mode still reads: ${text}`);
    assert.match(text, /recovery codes you saved/);
    const field = page.getByLabel('Recovery code');
    assert.equal(await field.getAttribute('inputmode'), 'text');
    assert.equal(await field.getAttribute('pattern'), '[0-9A-Za-z \\-]*');
    await field.pressSequentially('7kqm-3dwx');
    assert.equal(await field.inputValue(), '7kqm-3dwx', 'recovery codes keep their letters');
    assert.equal(await activeId(page), 'code');

    await page.getByRole('button', { name: 'Get a code sent to you instead' }).click();
    assert.match((await lead.textContent()) ?? '', /we send you a 6-digit code/);
  });

  test('/favicon.ico is served (the site icon, as SVG), and pages link it', TIMEOUT, async () => {
    const { url } = await startApp();
    const { page, context } = await openTab();
    const icon = await context.request.get(`${url}/favicon.ico`);
    assert.equal(icon.status(), 200);
    assert.match(icon.headers()['content-type'] ?? '', /^image\/svg\+xml/);
    assert.match(await icon.text(), /^<svg /);
    await page.goto(`${url}/login`);
    const href = await page.locator('link[rel="icon"]').getAttribute('href');
    assert.equal((await context.request.get(`${url}${href}`)).status(), 200);
  });
});

describe('example app: channels and senders', () => {
  test('WhatsApp and a call: the dev outbox shows the template text and the words of the call, and their codes verify', TIMEOUT, async () => {
    const { url } = await startApp();
    const whatsapp = await openTab();
    await signInToCodeStep(whatsapp.page, url, JOHN.username);
    await sendCode(whatsapp.page, 'whatsapp');
    assert.match((await whatsapp.page.locator('#status').textContent()) ?? '', /by WhatsApp to the phone number ending in 0100/);
    const [message] = await waitForOutbox(whatsapp.context, url, 1);
    assert.equal(message?.channel, 'whatsapp');
    assert.equal(message?.to, JOHN.phone);
    assert.match(message?.text ?? '', /^\d{6} is your verification code\. For your security, do not share this code\.$/);
    await enterCode(whatsapp.page, codeIn(message?.text ?? ''));
    await expectAccountPage(whatsapp.page, url, JOHN);

    const call = await openTab();
    await signInToCodeStep(call.page, url, JOHN.username);
    await sendCode(call.page, 'voice');
    assert.match((await call.page.locator('#status').textContent()) ?? '', /voice call to the phone number ending in 0100/);
    const messages = await waitForOutbox(call.context, url, 2);
    const spoken = messages.find((m) => m.channel === 'voice');
    assert.equal(spoken?.to, JOHN.phone);
    assert.equal(spoken?.subject, 'What the call says');
    // Digit by digit, twice: "Your BlockID Demo code is: 1. 2. 3. 4. 5. 6." and "Again, …".
    const readings = [...(spoken?.text ?? '').matchAll(/((?:\d\. ){5}\d\.)/g)].map((m) => m[1]!.replace(/\D/g, ''));
    assert.equal(readings.length, 2, spoken?.text);
    assert.equal(readings[0], readings[1]);
    assert.match(spoken?.text ?? '', /^Your BlockID Demo code is:/);
    await enterCode(call.page, readings[0]!);
    await expectAccountPage(call.page, url, JOHN);
  });

  test('DEV_OUTBOX_CHANNELS narrows what the outbox stands in for', TIMEOUT, async () => {
    const { url, example } = await startApp({ DEV_OUTBOX_CHANNELS: 'sms,email' });
    assert.deepEqual(example.senders.outboxChannels, ['sms', 'email']);
    const { page } = await openTab();
    await signInToCodeStep(page, url, JOHN.username);
    assert.deepEqual(await page.locator('button[data-channel]').evaluateAll((b) => b.map((el: any) => el.dataset.channel)), ['sms', 'email', 'both']);
  });

  test('with SMTP configured and no Twilio: email codes arrive by SMTP, never on /dev/outbox; SMS still go to the outbox', TIMEOUT, async () => {
    const smtp = await startSmtpSink();
    cleanups.push(() => smtp.stop());
    const { url, example } = await startApp({ SMTP_URL: smtp.url, OTP_EMAIL_FROM: 'BlockID Demo <no-reply@example.com>' });
    assert.deepEqual(example.senders.outboxChannels, ['sms', 'whatsapp', 'voice']);
    const { page, context, problems } = await openTab();
    await signInToCodeStep(page, url, JOHN.username);
    await sendCode(page, 'both');

    const [mail] = await smtp.waitFor(1);
    assert.equal(mail?.to && !Array.isArray(mail.to) ? mail.to.value[0]?.address : undefined, JOHN.email);
    const emailed = codeIn(mail?.text ?? '');
    const [sms] = await waitForOutbox(context, url, 1);
    await new Promise((resolve) => setTimeout(resolve, 600)); // an email, if one were (wrongly) kept, would show by now
    const outbox = await readOutboxPage(context, url);
    assert.deepEqual(
      outbox.map((m) => [m.channel, m.to]),
      [['sms', JOHN.phone]],
      'the outbox lists only the SMS',
    );
    assert.ok(!example.outbox?.entries().some((entry) => entry.channel === 'email'));
    assert.equal(codeIn(sms?.text ?? ''), emailed, 'one code on both channels');

    assert.match(await outboxChannelsLine(page, url), /In use for: SMS, WhatsApp and voice calls\./);

    await enterCode(page, emailed);
    await expectAccountPage(page, url, JOHN);
    assert.deepEqual(problems, []);
  });

  test('with Twilio WhatsApp and calls configured, the code step offers them and only the other channels use the outbox', TIMEOUT, async () => {
    const { url, example } = await startApp({
      TWILIO_ACCOUNT_SID: `AC${'0'.repeat(32)}`,
      TWILIO_AUTH_TOKEN: 'test-token',
      TWILIO_WHATSAPP_FROM: '+15005550006',
      TWILIO_WHATSAPP_CONTENT_SID: `HX${'0'.repeat(32)}`,
      TWILIO_VOICE_FROM: '+15005550006',
    });
    assert.deepEqual(example.senders.outboxChannels, ['sms', 'email']);
    assert.deepEqual(example.senders.channels, { sms: true, email: true, whatsapp: true, voice: true });
    const { page } = await openTab();
    await signInToCodeStep(page, url, JOHN.username);
    // Nothing is sent here: that would call Twilio.
    assert.deepEqual(await page.locator('button[data-channel]').evaluateAll((b) => b.map((el: any) => el.dataset.channel)), [
      'sms',
      'whatsapp',
      'voice',
      'email',
      'both',
    ]);
    assert.match(await outboxChannelsLine(page, url), /In use for: SMS and email\./);
  });
});

/** The "In use for" line of the outbox page, from a fresh page of the same browser context. */
async function outboxChannelsLine(page: Page, url: string): Promise<string> {
  const other = await page.context().newPage();
  try {
    await other.goto(`${url}/dev/outbox`);
    return (await other.locator('#outbox-channels').textContent()) ?? '';
  } finally {
    await other.close();
  }
}

describe('example app: sign-in link', () => {
  test('signs in by clicking the email\'s link in the dev outbox; another device gets the "type the code" page', TIMEOUT, async () => {
    const { url } = await startApp();
    const tab = await openTab();
    await signInToCodeStep(tab.page, url, ADA.username);
    await sendCode(tab.page, 'email');
    const [email] = await waitForOutbox(tab.context, url, 1);
    const link = /https?:\/\/\S+(\/otp\/link\?t=[A-Za-z0-9_-]+)/.exec(email?.text ?? '')?.[1];
    assert.ok(link && email?.text.includes(codeIn(email.text)), 'the email in the outbox holds the code and the link');
    // Another device (a second browser context, no session) opens the link and presses the button.
    const otherDevice = await openTab();
    const page = await otherDevice.page.goto(`${url}${link}`);
    assert.equal(page?.headers()['referrer-policy'], 'no-referrer');
    await otherDevice.page.getByRole('button', { name: 'Sign in' }).click();
    await otherDevice.page.getByRole('heading', { name: 'Type the code instead' }).waitFor();
    // The device that asked: the outbox's link, then the confirmation page's button.
    await tab.page.goto(`${url}/dev/outbox`);
    await tab.page.getByRole('link', { name: 'Open the sign-in link' }).first().click();
    await tab.page.getByRole('button', { name: 'Sign in' }).click();
    await expectAccountPage(tab.page, url, ADA);
    assert.equal(await verifiedMethod(tab.page), 'link');
    assert.deepEqual([...tab.problems, ...otherDevice.problems], [], 'no CSP report or script error');
  });
});

describe('example app: metrics', () => {
  test('GET /metrics in development: blockid_otp_ counters after a send and a verify, and no personal data', TIMEOUT, async () => {
    const { url } = await startApp();
    const { page, context } = await openTab();
    await signInToCodeStep(page, url, JOHN.username);
    await sendCode(page, 'sms');
    const [sms] = await waitForOutbox(context, url, 1);
    const code = codeIn(sms?.text ?? '');
    await enterCode(page, code);
    await expectAccountPage(page, url, JOHN);

    const response = await fetch(`${url}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    assert.equal(response.headers.get('set-cookie'), null, 'a scrape starts no session');
    const text = await response.text();
    assert.match(text, /^blockid_otp_sends_total\{channel="sms",outcome="sent",npa="415"\} 1$/m);
    assert.match(text, /^blockid_otp_deliveries_total\{channel="sms",result="delivered"\} 1$/m);
    assert.match(text, /^blockid_otp_verifications_total\{method="code",result="verified"\} 1$/m);
    assert.match(text, /^blockid_otp_time_to_verify_seconds_count 1$/m);
    // Names, labels and help texts, without the sample values (a duration could contain any digits).
    const words = text.replace(/ [-+0-9.e]+$/gm, '');
    for (const secret of [JOHN.username, 'john', '4155550100', JOHN.phone, '5550100', JOHN.email, 'example.com', code, '127.0.0.1']) {
      assert.ok(!words.includes(secret), `the scrape contains ${secret}`);
    }
  });

  test('in production /metrics exists only with METRICS=1; METRICS=0 turns it off in development', TIMEOUT, async () => {
    const production = (extra: Record<string, string>) => ({
      NODE_ENV: 'production',
      SMTP_URL: 'smtp://127.0.0.1:9',
      OTP_EMAIL_FROM: 'BlockID Demo <no-reply@example.com>',
      OTP_SECRET: randomBytes(32).toString('base64url'),
      SESSION_SECRET: randomBytes(32).toString('base64url'),
      ...extra,
    });
    assert.equal((await fetch(`${(await startApp(production({}))).url}/metrics`)).status, 404);
    const on = await fetch(`${(await startApp(production({ METRICS: '1' }))).url}/metrics`);
    assert.equal(on.status, 200);
    assert.match(await on.text(), /^# TYPE blockid_otp_sends_total counter$/m);
    assert.equal((await fetch(`${(await startApp({ METRICS: '0' })).url}/metrics`)).status, 404);
  });
});

describe('example app configuration', () => {
  const productionEnv = (): Record<string, string> => ({
    NODE_ENV: 'production',
    TWILIO_ACCOUNT_SID: `AC${'0'.repeat(32)}`,
    TWILIO_AUTH_TOKEN: 'test-token',
    TWILIO_FROM: '+15005550006',
    SMTP_URL: 'smtp://127.0.0.1:9',
    OTP_EMAIL_FROM: 'BlockID Demo <no-reply@example.com>',
    OTP_SECRET: randomBytes(32).toString('base64url'),
    SESSION_SECRET: randomBytes(32).toString('base64url'),
    TRUST_PROXY: '1',
  });

  const refuses = (env: Record<string, string>, pattern: RegExp) =>
    assert.throws(
      () => createExampleApp(env),
      (error: unknown) => error instanceof ConfigError && pattern.test(error.message),
    );

  test('production without a real sender refuses to start, naming the variables to set', () => {
    refuses({ NODE_ENV: 'production', OTP_SECRET: 'x'.repeat(40), SESSION_SECRET: 'y'.repeat(40) }, /TWILIO_ACCOUNT_SID.*SMTP_URL/s);
  });

  test('production refuses missing or built-in secrets', () => {
    const { OTP_SECRET: _otp, ...withoutOtpSecret } = productionEnv();
    refuses(withoutOtpSecret, /OTP_SECRET is required in production/);
    const { SESSION_SECRET: _session, ...withoutSessionSecret } = productionEnv();
    refuses(withoutSessionSecret, /SESSION_SECRET is required in production/);
    refuses({ ...productionEnv(), OTP_SECRET: DEV_OTP_SECRET }, /OTP_SECRET is the built-in development secret/);
  });

  test('a partial Twilio or SMTP configuration is refused with the missing variable', () => {
    refuses({ TWILIO_ACCOUNT_SID: `AC${'0'.repeat(32)}`, TWILIO_FROM: '+15005550006' }, /TWILIO_AUTH_TOKEN/);
    refuses({ SMTP_URL: 'smtp://127.0.0.1:9' }, /OTP_EMAIL_FROM/);
    refuses({ TWILIO_VOICE_FROM: '+15005550006' }, /TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN/);
    const credentials = { TWILIO_ACCOUNT_SID: `AC${'0'.repeat(32)}`, TWILIO_AUTH_TOKEN: 'test-token' };
    refuses({ ...credentials, TWILIO_WHATSAPP_FROM: '+15005550006' }, /TWILIO_WHATSAPP_CONTENT_SID/);
    refuses({ ...credentials, TWILIO_WHATSAPP_CONTENT_SID: `HX${'0'.repeat(32)}` }, /TWILIO_WHATSAPP_FROM/);
    refuses(credentials, /TWILIO_FROM .*TWILIO_WHATSAPP_FROM .*TWILIO_VOICE_FROM/);
  });

  test('unclear settings are refused: Redis and PostgreSQL at once, an unknown outbox channel, a bad METRICS or DATABASE_SCHEMA', () => {
    refuses({ REDIS_URL, DATABASE_URL }, /REDIS_URL and DATABASE_URL are both set/);
    refuses({ DEV_OUTBOX_CHANNELS: 'sms,fax' }, /DEV_OUTBOX_CHANNELS has "fax"/);
    refuses({ METRICS: 'maybe' }, /METRICS must be 1 or 0/);
    refuses({ DATABASE_URL, DATABASE_SCHEMA: 'Robert"; DROP' }, /DATABASE_SCHEMA must be/);
  });

  test('production with real senders only: no dev outbox, and every channel goes out for real', () => {
    const example = createExampleApp(productionEnv());
    cleanups.push(() => example.close());
    assert.equal(example.outbox, undefined);
    assert.deepEqual(example.senders.outboxChannels, []);
    assert.deepEqual(example.senders.channels, { sms: true, email: true, whatsapp: false, voice: false });
  });

  test('production: no dev outbox, Secure session cookie behind a TLS proxy, HSTS', TIMEOUT, async () => {
    const { url, example } = await startApp(productionEnv());
    assert.equal(example.outbox, undefined);
    assert.equal((await fetch(`${url}/dev/outbox`)).status, 404);
    const response = await fetch(`${url}/login`, { headers: { 'X-Forwarded-Proto': 'https' } });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('set-cookie') ?? '', /; Secure/i);
    assert.match(response.headers.get('strict-transport-security') ?? '', /max-age=\d+/);
    assert.match(response.headers.get('content-security-policy') ?? '', /upgrade-insecure-requests/);
  });

  test('with REDIS_URL two app instances share codes and sessions through Redis', TIMEOUT, async () => {
    const prefix = `blockid-example-test:${randomUUID()}:`;
    const redis = createClient({ url: REDIS_URL });
    redis.on('error', () => {});
    await redis.connect().catch((error: Error) => {
      throw new Error(`Redis is not reachable at ${REDIS_URL} (${error.message}); the test machine runs it on 127.0.0.1:6379.`);
    });
    cleanups.push(async () => {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(keys);
      await redis.close();
    });
    const env = { REDIS_URL, REDIS_PREFIX: prefix };
    const first = await startApp(env);
    const second = await startApp(env);

    const { page, context } = await openTab();
    await signInToCodeStep(page, first.url, JOHN.username);
    await sendCode(page, 'sms');
    assert.ok((await redis.keys(`${prefix}sess:*`)).length >= 1, 'no session in Redis');
    assert.ok((await redis.keys(`${prefix}otp:*`)).length >= 1, 'no code in Redis');
    const [sms] = await waitForOutbox(context, first.url, 1);

    // Cookies do not depend on the port: the same browser session reaches the second instance.
    await page.goto(`${second.url}/login/code`);
    await enterCode(page, codeIn(sms?.text ?? ''));
    await expectAccountPage(page, second.url, JOHN);
    await page.goto(`${first.url}/account`);
    await expectAccountPage(page, first.url, JOHN);
  });

  test('with DATABASE_URL two app instances share codes and sessions through PostgreSQL', TIMEOUT, async () => {
    const schema = `blockid_example_test_${randomBytes(6).toString('hex')}`;
    const admin = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
    admin.on('error', () => {});
    await admin.query('SELECT 1').catch((error: Error) => {
      throw new Error(`PostgreSQL is not reachable at ${DATABASE_URL} (${error.message}); the test machine runs it on 127.0.0.1:5432.`);
    });
    // Pushed first, so it runs last: after both apps have closed their pools.
    cleanups.push(async () => {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await admin.end();
    });
    const env = { DATABASE_URL, DATABASE_SCHEMA: schema };
    // Both start at once: the tables are created once, under locks, without a failure.
    const [first, second] = await Promise.all([startApp(env), startApp(env)]);
    assert.equal(first.example.storage, 'PostgreSQL');
    const count = async (table: string) => Number((await admin.query(`SELECT count(*) AS n FROM ${schema}.${table}`)).rows[0].n);

    const { page, context } = await openTab();
    await signInToCodeStep(page, first.url, JOHN.username);
    await sendCode(page, 'sms');
    assert.ok((await count(SESSION_TABLE)) >= 1, 'no session in PostgreSQL');
    assert.ok((await count('blockid_otp_slots')) >= 1, 'no code in PostgreSQL');
    const [sms] = await waitForOutbox(context, first.url, 1);
    const code = codeIn(sms?.text ?? '');
    const rows = JSON.stringify((await admin.query(`SELECT * FROM ${schema}.blockid_otp_slots`)).rows);
    assert.ok(!rows.includes(code) && !rows.includes(JOHN.username), 'a plain code or username in the codes table');

    // Cookies do not depend on the port: the same browser session reaches the second instance.
    await page.goto(`${second.url}/login/code`);
    await enterCode(page, code);
    await expectAccountPage(page, second.url, JOHN);
    await page.goto(`${first.url}/account`);
    await expectAccountPage(page, first.url, JOHN);
  });
});
