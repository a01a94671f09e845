/**
 * The Next.js 16 App Router example (example-app/next) as it runs in production: `next build`
 * (which also type-checks the route files, `export const GET = otp.fetch` included) and
 * `next start` on a free port, against the BUILT package, then a sign-in over real HTTP. The
 * code arrives by real email (nodemailer to an SMTP sink in this process): `next start` runs
 * with NODE_ENV=production, where the dev outbox refuses to run.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { builtPackage, repoRoot } from '../helpers/built.js';
import { assertNoCodeLeaked, Client } from '../helpers/client.js';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp.js';

const exampleDir = join(repoRoot, 'example-app', 'next');
const nextBin = join(repoRoot, 'node_modules', 'next', 'dist', 'bin', 'next');

/** Runs `next <args>` in the example; resolves with its output, rejects with it on failure. */
function next(args: string[], env: Record<string, string>): { child: ChildProcess; done: Promise<string> } {
  const child = spawn(process.execPath, [nextBin, ...args], {
    cwd: exampleDir,
    env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1', NODE_ENV: 'production', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const done = new Promise<string>((resolve, reject) => {
    child.on('exit', (code) => (code === 0 ? resolve(output) : reject(new Error(`next ${args.join(' ')} exited with ${code}:\n${output.slice(-6000)}`))));
  });
  return { child, done };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const codeIn = (text: string) => /\b(\d{6})\b/.exec(text)?.[1];

describe('the Next.js 16 example (next build, next start)', { timeout: 900_000 }, () => {
  let smtp: SmtpSink;
  let server: ChildProcess | undefined;
  let url: string;
  const codes: string[] = [];

  before(async () => {
    await builtPackage();
    smtp = await startSmtpSink();
    const env = { SMTP_URL: smtp.url, OTP_SECRET: 'next-example-test-secret-0123456789abcdef' };
    const started = Date.now();
    await next(['build'], env).done;
    console.log(`# next build took ${Math.round((Date.now() - started) / 1000)} s`);
    const port = await freePort();
    const start = next(['start', '--port', String(port), '--hostname', '127.0.0.1'], env);
    server = start.child;
    start.done.catch(() => {}); // ended by after(); a failure to start shows as the wait below timing out
    url = `http://127.0.0.1:${port}`;
    for (let tries = 0; ; tries++) {
      const ready = await fetch(`${url}/`).then(
        (response) => response.ok,
        () => false,
      );
      if (ready) break;
      if (tries > 600) throw new Error('next start did not answer within 60 s');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });
  after(async () => {
    server?.kill('SIGTERM');
    await smtp?.stop();
  });

  /** The code of the `count`-th email, read from the SMTP sink. */
  const mailedCode = async (count: number) => {
    const mail = (await smtp.waitFor(count, 10_000))[count - 1]!;
    const code = codeIn(mail.text ?? '');
    assert.ok(code, 'a code in the email');
    codes.push(code);
    return code;
  };

  it('refuses the guarded page (401) and route handler (401 otp_required) before a sign-in', async () => {
    const client = new Client(url);
    const page = await client.get('/account', 'text/html');
    assert.equal(page.status, 401);
    assert.match(page.text, /Sign in first/);
    const api = await client.get('/api/account');
    assert.equal(api.status, 401);
    assert.equal(api.body.error, 'otp_required');
    assert.equal((await client.get('/dev/outbox')).status, 404, 'no outbox in production');
  });

  it('signs in end to end: send, code by email, a wrong code 401, verify, then the guarded page and route 200, and sign-out', async () => {
    const client = new Client(url);
    const sent = await client.post('/otp/send', { username: 'ada' });
    assert.equal(sent.status, 202, sent.text);
    assert.deepEqual(sent.body, { status: 'sent', expiresIn: 300, resendIn: 30 });
    assert.match(sent.headers.getSetCookie()[0] ?? '', /^__Host-blockid-otp=v1\.[\w-]+; Max-Age=86400; Path=\/; HttpOnly; SameSite=Lax; Secure$/);
    const code = await mailedCode(smtp.messages.length + 1);

    const wrong = await client.post('/otp/verify', { username: 'ada', code: code === '000000' ? '111111' : '000000' });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.error, 'invalid_code');
    const verified = await client.post('/otp/verify', { username: 'ada', code });
    assert.equal(verified.status, 200, verified.text);
    assert.deepEqual(verified.body, { status: 'verified', username: 'ada' });

    const status = await client.get('/otp/status'); // GET is otp.fetch exported as is: Next passes { params }
    assert.equal(status.status, 200);
    assert.equal(status.body.verified, true);
    const page = await client.get('/account', 'text/html');
    assert.equal(page.status, 200);
    assert.match(page.text, /Signed in as <strong>ada<\/strong>/);
    const api = await client.get('/api/account');
    assert.equal(api.status, 200);
    assert.equal(api.body.username, 'ada');

    const signedOut = await client.request('POST', '/signout');
    assert.equal(signedOut.status, 303);
    assert.equal(signedOut.headers.get('location'), '/login');
    assert.equal((await client.get('/api/account')).status, 401);
  });

  it('answers an unknown username exactly as a known one, 415 to a form post, and 404 to another path under /otp', async () => {
    const send = async (username: string) => {
      const reply = await new Client(url).post('/otp/send', { username });
      return { status: reply.status, body: reply.text, cookie: reply.headers.getSetCookie().map((cookie) => cookie.replace(/=v1\.[\w-]+/, '=…')) };
    };
    const before = smtp.messages.length;
    const known = await send('grace');
    const unknown = await send('nobody');
    assert.deepEqual(unknown, known);
    await mailedCode(before + 1);
    await new Promise((resolve) => setTimeout(resolve, 600)); // past the unknown user's random pause, had it a delivery
    assert.equal(smtp.messages.length, before + 1, 'nothing mailed for the unknown username');
    const form = await new Client(url).request('POST', '/otp/send', { raw: 'username=ada', contentType: 'application/x-www-form-urlencoded' });
    assert.equal(form.status, 415);
    assert.equal(form.body.error, 'unsupported_media_type');
    assert.equal((await new Client(url).get('/otp/elsewhere')).status, 404);
  });

  it('never puts a code in a response', () => {
    assert.ok(codes.length >= 2);
    assert.ok(assertNoCodeLeaked(codes) > 0);
  });
});
