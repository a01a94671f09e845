// Makes the README screenshots of the example app: docs/sign-in.png, docs/code-step.png and
// docs/account.png, at 1000x720, in the system Chromium (no browser download).
//   npx tsx example-app/screenshots.ts
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { launchChromium, listen } from '../test/helpers/browser.js';
import { createExampleApp } from './server.js';

const docs = fileURLToPath(new URL('../docs/', import.meta.url));
const example = createExampleApp({});
const listening = await listen(example.app);
const browser = await launchChromium();

try {
  await mkdir(docs, { recursive: true });
  const { url } = listening;
  const context = await browser.newContext({ viewport: { width: 1000, height: 720 }, deviceScaleFactor: 1 });
  const page = await context.newPage();

  await page.goto(`${url}/login`);
  await page.screenshot({ path: `${docs}sign-in.png` });

  await page.getByLabel('Username').fill('john.smith');
  await page.getByLabel('Password').fill('blockid-demo');
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.waitForURL(`${url}/login/code`);
  await page.getByRole('button', { name: /^Send by SMS to/ }).click();
  await page.locator('#status', { hasText: 'We sent a code' }).waitFor();

  let text = '';
  for (let i = 0; i < 50 && !text; i++) {
    text = example.outbox?.entries().at(-1)?.text ?? '';
    if (!text) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const code = /\b(\d{6})\b/.exec(text)?.[1];
  if (!code) throw new Error('no code in the dev outbox');
  await page.getByLabel('Code', { exact: true }).fill(code);
  await page.locator('#resend', { hasText: /in 2\d s/ }).waitFor(); // a moment into the countdown
  await page.screenshot({ path: `${docs}code-step.png` });

  await page.getByRole('button', { name: 'Verify' }).click();
  await page.waitForURL(`${url}/account`);
  await page.mouse.move(0, 0);
  await page.screenshot({ path: `${docs}account.png` });
  console.log(`Saved ${docs}sign-in.png, code-step.png and account.png`);
} finally {
  await browser.close();
  await listening.stop();
  await example.close();
}
