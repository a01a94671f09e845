/**
 * The README's Quick start, as a newcomer follows it: an empty folder, `npm init -y`, the packed
 * package and the peers the README names installed (offline, from this repository), the
 * ```` ```ts quickstart ```` block saved verbatim as server.ts and started with tsx on a free
 * port. Then, over real HTTP: the password, a send, the code read from the development outbox,
 * a verify, and the guarded page. And the attack the Quick start's `resolveUser` stops: a
 * stranger who knows only the username, from many cookie-less sessions, neither gets a code
 * delivered nor locks the user out. Last, the README's browser snippet and docs/browser.md's code
 * step sign in from Chromium.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import ts from 'typescript';
import { launchChromium } from '../helpers/browser.js';
import { installPacked, packedPackage } from '../helpers/packed.js';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '..', '..');

/** What the Quick start's install lines add, and tsc for the type-check. */
const quickStartPackages = ['express', 'express-session', 'tsx', '@types/express', '@types/express-session', '@types/node'];

const readme = await readFile(join(repo, 'README.md'), 'utf8');
const quickStart = /^```ts quickstart\n([\s\S]*?)^```$/m.exec(readme)?.[1];
const browserPage = await readFile(join(repo, 'docs', 'browser.md'), 'utf8');
/** docs/browser.md's complete code step: its first html block and its first ```ts browser block. */
const codeStep = { html: /^```html\n([\s\S]*?)^```$/m.exec(browserPage)?.[1], script: /^```ts browser\n([\s\S]*?)^```$/m.exec(browserPage)?.[1] };
/** The README's "browser side": the first ```ts browser block. */
const browserSide = /^```ts browser\n([\s\S]*?)^```$/m.exec(readme)?.[1];

let app = '';
let server: ChildProcess | undefined;
let base = '';
let output = '';

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((done) => probe.listen(0, '127.0.0.1', done));
  const { port } = probe.address() as { port: number };
  await new Promise((done) => probe.close(done));
  return port;
}

/** One browser: keeps its cookies, as `fetch(..., { credentials })` does in a page. */
function browser() {
  const jar = new Map<string, string>();
  return async (method: string, path: string, body?: object) => {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: { cookie: [...jar].map(([name, value]) => `${name}=${value}`).join('; '), ...(body && { 'content-type': 'application/json' }) },
      ...(body && { body: JSON.stringify(body) }),
    });
    for (const cookie of response.headers.getSetCookie()) {
      const [pair = ''] = cookie.split(';');
      const at = pair.indexOf('=');
      jar.set(pair.slice(0, at), pair.slice(at + 1));
    }
    const text = await response.text();
    return { status: response.status, text, json: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
  };
}

/** A request without cookies: a fresh session every time. */
const stranger = () => browser();

async function outbox(): Promise<Array<{ channel: string; to: string; text: string; username: string }>> {
  const { status, json } = await browser()('GET', '/dev/outbox');
  assert.equal(status, 200);
  return json as unknown as Array<{ channel: string; to: string; text: string; username: string }>;
}

before(
  async () => {
    assert.ok(quickStart, 'README.md has a ```ts quickstart block');
    app = await mkdtemp(join(tmpdir(), 'blockid-otp-quickstart-'));
    await run('npm', ['init', '-y'], { cwd: app, timeout: 30_000 }); // as the README says: a CommonJS package.json
    await installPacked(app, quickStartPackages);
    await writeFile(join(app, 'server.ts'), quickStart);

    const port = await freePort();
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port) };
    for (const name of ['NODE_ENV', 'NODE_OPTIONS', 'NODE_TEST_CONTEXT', 'OTP_SECRET', 'SESSION_SECRET']) delete env[name];
    // `npx tsx server.ts`, without npx's registry lookup: tsx's own command line, in its own process group.
    server = spawn(process.execPath, [join(app, 'node_modules', 'tsx', 'dist', 'cli.mjs'), 'server.ts'], { cwd: app, env, detached: true });
    server.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    server.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const started = Date.now();
    while (!output.includes(`http://localhost:${port}`)) {
      if (server.exitCode !== null || Date.now() - started > 60_000) assert.fail(`the quick start did not start:\n${output}`);
      await new Promise((done) => setTimeout(done, 50));
    }
    base = `http://localhost:${port}`;
  },
  { timeout: 300_000 },
);

after(async () => {
  if (server?.pid !== undefined && server.exitCode === null) {
    const exited = new Promise((done) => server?.once('exit', done));
    process.kill(-server.pid, 'SIGTERM');
    await exited;
  }
  if (app) await rm(app, { recursive: true, force: true });
});

describe('the README Quick start, against the packed package', () => {
  it('is in the tarball with the docs it links to', async () => {
    const { files } = await packedPackage();
    assert.ok(files.includes('README.md'));
    for (const page of [
      'docs/security.md',
      'docs/browser.md',
      'docs/errors.md',
      'docs/express.md',
      'docs/grafana-dashboard.json',
      'docs/prometheus-rules.yml',
    ]) {
      assert.ok(files.includes(page), `${page} is published`);
    }
    assert.ok(!files.some((file) => /^(src|test|bench|example-app)\//.test(file)), 'no sources, tests or benchmarks');
  });

  it('type-checks as written against the packed package (tsc --strict)', { timeout: 120_000 }, async () => {
    await writeFile(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: ['node'],
        },
        files: ['server.ts'],
      }),
    );
    const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = await run(process.execPath, [tsc, '-p', app], { cwd: app, timeout: 120_000 }).then(
      () => 'ok',
      (error: { stdout?: string }) => error.stdout ?? String(error),
    );
    assert.equal(result, 'ok');
  });

  it('keeps a stranger who knows only the username away from the user (decoys, no delivery, no lock)', { timeout: 60_000 }, async () => {
    // A wrong password gets nothing.
    const guess = await browser()('POST', '/login', { username: 'ada', password: 'password123' });
    assert.equal(guess.status, 401);
    // Five sessions, each asking for a code and guessing five times: 25 wrong guesses, more than
    // the 20 in a row that would lock a real user for 15 minutes.
    for (let session = 0; session < 5; session++) {
      const attacker = browser();
      assert.equal((await attacker('POST', '/otp/send', { username: 'ada' })).status, 202, 'the same answer as for a real send');
      for (let attempt = 0; attempt < 5; attempt++) {
        const { status } = await attacker('POST', '/otp/verify', { username: 'ada', code: String(100000 + session * 10 + attempt) });
        assert.ok(status === 401 || status === 429, `a guess gets 401 or 429, got ${status}`);
      }
    }
    // Cookie-less requests too, each one a new session (up to the per-username quota of 10 sends an hour).
    for (let request = 0; request < 4; request++) {
      assert.equal((await stranger()('POST', '/otp/send', { username: 'ada' })).status, 202);
      assert.equal((await stranger()('POST', '/otp/verify', { username: 'ada', code: '123456' })).status, 401);
    }
    assert.deepEqual(await outbox(), [], 'nothing was delivered to the user');
  });

  it('signs in: password, send, the code from the development outbox, verify, the guarded page', { timeout: 60_000 }, async () => {
    const ada = browser();
    assert.equal((await ada('GET', '/account')).status, 401, 'the page needs the code');
    const login = await ada('POST', '/login', { username: 'ada', password: 'correct horse' });
    assert.equal(login.status, 200, login.text);

    const sent = await ada('POST', '/otp/send', { username: 'ada' });
    assert.equal(sent.status, 202, sent.text);
    let messages = await outbox();
    for (let waited = 0; messages.length < 2 && waited < 5_000; waited += 50) {
      await new Promise((done) => setTimeout(done, 50)); // deliveries start after the 202
      messages = await outbox();
    }
    assert.deepEqual(messages.map((m) => m.channel).sort(), ['email', 'sms'], 'one code by email and SMS');
    const codes = messages.map((m) => /\b(\d{6})\b/.exec(m.text)?.[1]);
    assert.ok(codes[0] !== undefined && codes.every((c) => c === codes[0]), 'the same code on both channels');
    const code = codes[0]!;
    assert.ok(!sent.text.includes(code), 'the send answer does not hold the code');

    // Another browser that passed no password cannot use it.
    assert.equal((await browser()('POST', '/otp/verify', { username: 'ada', code })).status, 401);

    const verified = await ada('POST', '/otp/verify', { username: 'ada', code });
    assert.equal(verified.status, 200, `not locked by the stranger above: ${verified.text}`);
    assert.deepEqual(verified.json, { status: 'verified', username: 'ada' });
    const account = await ada('GET', '/account');
    assert.equal(account.status, 200);
    assert.deepEqual(account.json, { signedInAs: 'ada' });
    assert.equal((await ada('POST', '/otp/verify', { username: 'ada', code })).status, 401, 'a code works once');
    assert.ok(!output.includes(code), 'the code is never logged');
  });

  it("signs in from Chromium with the README's browser snippet", { timeout: 90_000 }, async () => {
    assert.ok(browserSide, 'README.md has a ```ts browser block');
    const script = ts.transpileModule(browserSide, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext } }).outputText;
    const chromium = await launchChromium();
    try {
      const page = await chromium.newPage();
      const before = (await outbox()).length;
      // The snippet asks for the code with window.prompt(): answer with the one the outbox holds.
      page.on('dialog', (dialog) => {
        void (async () => {
          let messages = await outbox();
          for (let waited = 0; messages.length < before + 2 && waited < 5_000; waited += 50) {
            await new Promise((done) => setTimeout(done, 50));
            messages = await outbox();
          }
          await dialog.accept(/\b(\d{6})\b/.exec(messages.at(-1)?.text ?? '')?.[1] ?? '');
        })();
      });
      await page.goto(`${base}/dev/outbox`); // any page of the app's origin
      // The snippet ends by navigating to /account, which ends the evaluation too.
      await Promise.all([page.waitForURL(`${base}/account`, { timeout: 30_000 }), page.evaluate(`(async () => {\n${script}\n})()`).catch(() => undefined)]);
      assert.deepEqual(JSON.parse((await page.evaluate('document.body.innerText')) as string), { signedInAs: 'ada' });
    } finally {
      await chromium.close();
    }
  });

  it("signs in from Chromium with docs/browser.md's code step (HTML, script, resend countdown)", { timeout: 90_000 }, async () => {
    assert.ok(codeStep.html && codeStep.script, 'docs/browser.md has an html block and a ```ts browser block');
    const script = ts.transpileModule(codeStep.script, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext } }).outputText;
    const chromium = await launchChromium();
    try {
      const page = await chromium.newPage();
      await page.goto(`${base}/dev/outbox`); // any page of the app's origin
      // The sign-in step before it: the password, and the username kept for the code step.
      const login = await page.evaluate(`(async () => {
        sessionStorage.setItem('username', 'ada');
        const response = await fetch('/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: 'ada', password: 'correct horse' }) });
        return response.status;
      })()`);
      assert.equal(login, 200);
      const before = (await outbox()).length;
      await page.evaluate(`document.body.innerHTML = ${JSON.stringify(codeStep.html)}`);
      await page.evaluate(`(async () => {\n${script}\n})()`); // sends the code at once
      let messages = await outbox();
      for (let waited = 0; messages.length < before + 2 && waited < 5_000; waited += 50) {
        await new Promise((done) => setTimeout(done, 50));
        messages = await outbox();
      }
      const code = /\b(\d{6})\b/.exec(messages.at(-1)?.text ?? '')?.[1];
      assert.ok(code, 'a code was sent');
      assert.match((await page.textContent('#status')) ?? '', /We sent you a code/);
      assert.match((await page.textContent('#resend')) ?? '', /^Send a new code \(\d+ s\)$/, 'the resend countdown');
      assert.equal(await page.isDisabled('#resend'), true);

      await page.fill('#code', '000000'); // a wrong code first: the page says so and stays
      await page.click('button[type=submit]');
      await page.waitForFunction(`document.querySelector('#status').textContent.includes('not right')`);
      await page.fill('#code', code);
      await Promise.all([page.waitForURL(`${base}/account`, { timeout: 30_000 }), page.click('button[type=submit]')]);
      assert.deepEqual(JSON.parse((await page.evaluate('document.body.innerText')) as string), { signedInAs: 'ada' });
    } finally {
      await chromium.close();
    }
  });
});
