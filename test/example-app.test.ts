// The example app end to end, in the system Chromium: password, code by SMS / email / both
// read from the dev outbox, verify, the guarded account page, sign-out; plus the security
// headers and the production start-up checks.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { createClient } from 'redis';
import { DEV_OTP_SECRET } from '../example-app/config.js';
import { ConfigError, createExampleApp, type ExampleApp } from '../example-app/server.js';
import { launchChromium, listen } from './helpers/browser.js';

const PASSWORD = 'blockid-demo';
const JOHN = { username: 'john.smith', name: 'John Smith', phone: '+14155550100', email: 'john.smith@example.com' };
const ADA = { username: 'ada.lovelace', name: 'Ada Lovelace', email: 'ada@example.com' };
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
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
};

async function sendCode(page: Page, channel: keyof typeof channelButton): Promise<void> {
  await page.getByRole('button', { name: channelButton[channel] }).click();
  await page.locator('#status', { hasText: 'We sent a code' }).waitFor();
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
    assert.deepEqual(
      { verified: (await status.json()).verified, username: (await status.json()).username },
      { verified: true, username: JOHN.username },
    );
    assert.deepEqual(problems, []);
  });

  test('by email: the code arrives by email only and verifies', TIMEOUT, async () => {
    const { url } = await startApp();
    const { page, context, problems } = await openTab();
    await signInToCodeStep(page, url, JOHN.username);
    await sendCode(page, 'email');
    assert.match((await page.locator('#status').textContent()) ?? '', /by email to the example\.com address/);

    const messages = await waitForOutbox(context, url, 1);
    await new Promise((resolve) => setTimeout(resolve, 200)); // an SMS, if one were (wrongly) sent, would show by now
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
    const active = () => page.evaluate(() => {
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
});
