// Makes the README screenshots of the example app, at 1000x720, in the system Chromium (no
// browser download): docs/sign-in.png, code-step.png, account.png, totp-setup.png,
// recovery-codes.png, code-step-totp.png and dev-outbox.png.
//   npx tsx example-app/screenshots.ts [output directory, default docs/]
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generate } from 'otplib';
import { launchChromium, listen } from '../test/helpers/browser.js';
import { createExampleApp } from './server.js';

const out = process.argv[2] ? `${resolve(process.argv[2])}/` : fileURLToPath(new URL('../docs/', import.meta.url));
const example = createExampleApp({});
const listening = await listen(example.app);
const browser = await launchChromium();
const saved: string[] = [];

try {
  await mkdir(out, { recursive: true });
  const { url } = listening;
  const context = await browser.newContext({ viewport: { width: 1000, height: 720 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const shoot = async (name: string, fullPage = false) => {
    await page.mouse.move(0, 0);
    await page.screenshot({ path: `${out}${name}.png`, fullPage });
    saved.push(`${name}.png`);
  };
  const signIn = async () => {
    await page.goto(`${url}/login`);
    await page.getByLabel('Username').fill('john.smith');
    await page.getByLabel('Password').fill('blockid-demo');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.waitForURL(`${url}/login/code`);
  };

  await page.goto(`${url}/login`);
  await shoot('sign-in');

  await signIn();
  await page.getByRole('button', { name: /^Send by SMS to/ }).click();
  await page.locator('#status', { hasText: 'We sent a code' }).waitFor();
  let text = '';
  for (let i = 0; i < 50 && !text; i++) {
    text = example.outbox?.entries().at(-1)?.text ?? '';
    if (!text) await new Promise((done) => setTimeout(done, 100));
  }
  const code = /\b(\d{6})\b/.exec(text)?.[1];
  if (!code) throw new Error('no code in the dev outbox');
  await page.getByLabel('Code', { exact: true }).fill(code);
  await page.locator('#resend', { hasText: /in 2\d s/ }).waitFor(); // a moment into the countdown
  await shoot('code-step', true);

  await page.getByRole('button', { name: 'Verify' }).click();
  await page.waitForURL(`${url}/account`);
  await shoot('account', true);

  await page.getByRole('button', { name: 'Set up an authenticator app' }).click();
  await page.waitForURL(`${url}/account/totp`);
  await page.locator('img.qr').evaluate((img: any) => img.decode());
  await shoot('totp-setup', true);
  const key = ((await page.locator('#totp-key').textContent()) ?? '').replace(/\s/g, '');
  await page.getByLabel('Code from the app').fill(await generate({ secret: key }));
  await page.getByRole('button', { name: 'Turn on the authenticator app' }).click();
  await page.waitForURL(`${url}/account`);

  await page.getByRole('button', { name: 'Generate recovery codes' }).click();
  await page.getByRole('heading', { name: 'Your recovery codes' }).waitFor();
  await shoot('recovery-codes', true);

  await page.goto(`${url}/account`);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/signed-out/);
  await signIn();
  await shoot('code-step-totp', true);

  await page.goto(`${url}/dev/outbox`);
  await shoot('dev-outbox', true);
  console.log(`Saved ${saved.join(', ')} in ${out}`);
} finally {
  await browser.close();
  await listening.stop();
  await example.close();
}
