/**
 * The built package as a user installs it: build with the project's tsup config, `npm pack`,
 * unpack into a fresh app's node_modules next to nothing but the declared dependencies,
 * then import every entry point from ESM and CommonJS in child processes and type-check a
 * consumer against the shipped declarations.
 *
 * The build goes to a temporary directory (`tsup --out-dir`), not to the checkout's `dist/`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '..');
const manifest = JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  dependencies: Record<string, string>;
  exports: Record<string, string | Record<string, Record<string, string>>>;
};

let work = '';
let app = '';
let installed = '';
let packedFiles: string[] = [];

/** What a user of the package has installed next to it: its dependencies, Koa, and Node's types. */
const userPackages = [...Object.keys(manifest.dependencies), 'koa', 'koa-session', '@types/node'];

const childEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: 'test', OTP_SECRET: 'package-exports-secret-0123456789abcdef' };
  for (const name of ['REDIS_URL', 'TWILIO_ACCOUNT_SID', 'TWILIO_AUTH_TOKEN', 'TWILIO_FROM', 'TWILIO_MESSAGING_SERVICE_SID', 'SMTP_URL', 'OTP_EMAIL_FROM', 'NODE_OPTIONS']) {
    delete env[name];
  }
  return env;
};

/** Runs `file` with plain Node in the consumer app and returns the JSON it prints last. */
async function runInApp(file: string, source: string): Promise<any> {
  await writeFile(join(app, file), source);
  const { stdout } = await run(process.execPath, [file], { cwd: app, env: childEnv(), timeout: 30_000 });
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? 'null');
}

before(
  async () => {
    work = await mkdtemp(join(tmpdir(), 'blockid-otp-pack-'));
    const pkg = join(work, 'pkg');
    await run('npx', ['tsup', '--out-dir', join(pkg, 'dist')], { cwd: repo, timeout: 150_000 });
    await cp(join(repo, 'package.json'), join(pkg, 'package.json'));
    if (existsSync(join(repo, 'README.md'))) await cp(join(repo, 'README.md'), join(pkg, 'README.md'));
    const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: pkg, timeout: 60_000 });
    const [packed] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    assert.ok(packed, 'npm pack reported a tarball');
    packedFiles = packed.files.map((file) => file.path);

    app = join(work, 'app');
    const modules = join(app, 'node_modules');
    await mkdir(modules, { recursive: true });
    await run('tar', ['-xzf', join(work, packed.filename), '-C', modules]);
    installed = join(modules, manifest.name);
    await rename(join(modules, 'package'), installed);
    for (const name of userPackages) {
      await mkdir(join(modules, name, '..'), { recursive: true });
      await symlink(join(repo, 'node_modules', name), join(modules, name), 'dir');
    }
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
  },
  { timeout: 240_000 },
);

after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** The `import` and `require` targets of every subpath in `exports`. */
const targets = Object.entries(manifest.exports).flatMap(([subpath, conditions]) =>
  typeof conditions === 'string'
    ? []
    : Object.entries(conditions).flatMap(([condition, files]) => Object.entries(files).map(([kind, file]) => ({ subpath, condition, kind, file }))),
);

describe('the packed package', () => {
  it('maps ".", "./koa" and "./otp-provider" for import and require, each with types', () => {
    for (const subpath of ['.', './koa', './otp-provider']) {
      for (const condition of ['import', 'require']) {
        const kinds = targets.filter((t) => t.subpath === subpath && t.condition === condition).map((t) => t.kind);
        assert.deepEqual(kinds, ['types', 'default'], `${subpath} ${condition}`);
      }
    }
  });

  it('ships every file that exports points to, .d.ts for import and .d.cts for require', () => {
    assert.ok(targets.length >= 12);
    for (const { subpath, condition, kind, file } of targets) {
      const path = file.replace(/^\.\//, '');
      assert.ok(packedFiles.includes(path), `${subpath} ${condition} ${kind}: ${path} is in the tarball`);
      assert.ok(existsSync(join(installed, path)), `${path} is unpacked`);
      if (kind === 'types') assert.match(path, condition === 'import' ? /\.d\.ts$/ : /\.d\.cts$/);
    }
    assert.ok(!packedFiles.some((file) => file.startsWith('src/') || file.startsWith('test/')), 'no sources or tests in the tarball');
  });
});

describe('loading the built package', () => {
  it("works with import from 'blockid-otp', 'blockid-otp/koa' and 'blockid-otp/otp-provider'", async () => {
    const report = await runInApp(
      'check.mjs',
      `
import * as root from 'blockid-otp';
import { blockidOtpKoa, requireOtpKoa } from 'blockid-otp/koa';
import Koa from 'koa';
import session from 'koa-session';

const names = ['blockidOtp', 'requireOtp', 'createOtpService', 'memoryStore', 'redisStore', 'twilioSms', 'nodemailerEmail', 'OtpError'];
const codes = [];
const email = { send: async (m) => void codes.push(m.code) };
const secret = process.env.OTP_SECRET;

// The programmatic API from the root entry.
const otp = root.blockidOtp({ secret, email });
await otp.generateOtp('ada', { emailTo: 'ada@example.com' });
const verified = await otp.verifyOtp('ada', codes.at(-1));
const invalidPhone = await otp.generateOtp('ada', { smsTo: '1234567890' }).catch((e) => ({ code: e.code, isOtpError: e instanceof root.OtpError }));

// The Koa entry, over HTTP.
const app = new Koa();
app.keys = ['k'];
app.use(session({}, app));
const middleware = blockidOtpKoa({ secret, email, resolveUser: (u) => (u === 'ada' ? { emailTo: 'ada@example.com' } : null) });
app.use(middleware);
app.use(requireOtpKoa());
app.use((ctx) => void (ctx.body = { account: true }));
const server = app.listen(0, '127.0.0.1');
await new Promise((r) => server.once('listening', r));
const base = 'http://127.0.0.1:' + server.address().port;
const jar = new Map();
const call = async (method, path, json) => {
  const res = await fetch(base + path, {
    method,
    headers: { cookie: [...jar].map(([k, v]) => k + '=' + v).join('; '), ...(json && { 'content-type': 'application/json' }) },
    body: json && JSON.stringify(json),
  });
  for (const c of res.headers.getSetCookie()) { const [pair] = c.split(';'); const i = pair.indexOf('='); jar.set(pair.slice(0, i), pair.slice(i + 1)); }
  return res.status;
};
const before = codes.length;
const http = [await call('GET', '/account'), await call('POST', '/otp/send', { username: 'ada' })];
while (codes.length === before) await new Promise((r) => setTimeout(r, 10));
http.push(await call('POST', '/otp/verify', { username: 'ada', code: codes.at(-1) }), await call('GET', '/account'));
server.close();

const provider = await import('blockid-otp/otp-provider');
const providerVerify = await provider.VerifyOTP('john.smith', '123456');
const providerUnconfigured = await provider.GenerateOTP('john.smith', { smsTo: '4155550100', smsISDCode: '1' }).then(() => 'sent', (e) => e.name);
await provider.reset?.();

console.log(JSON.stringify({
  root: Object.fromEntries(names.map((n) => [n, typeof root[n]])),
  verified, invalidPhone,
  koa: { api: typeof middleware.generateOtp + ',' + typeof middleware.verifyOtp + ',' + typeof middleware.on + ',' + typeof middleware.service, http },
  provider: { GenerateOTP: typeof provider.GenerateOTP, VerifyOTP: typeof provider.VerifyOTP, providerVerify, providerUnconfigured },
}));
`,
    );
    assert.deepEqual(report.root, {
      blockidOtp: 'function', requireOtp: 'function', createOtpService: 'function', memoryStore: 'function',
      redisStore: 'function', twilioSms: 'function', nodemailerEmail: 'function', OtpError: 'function',
    });
    assert.deepEqual(report.verified, { ok: true });
    assert.deepEqual(report.invalidPhone, { code: 'INVALID_PHONE', isOtpError: true });
    assert.equal(report.koa.api, 'function,function,function,object');
    assert.deepEqual(report.koa.http, [401, 202, 200, 200], 'guard, send, verify, guard');
    assert.deepEqual(report.provider, {
      GenerateOTP: 'function', VerifyOTP: 'function',
      providerVerify: { ok: false, reason: 'invalid_code' },
      providerUnconfigured: 'OtpError',
    });
  });

  it("works with require('blockid-otp'), require('blockid-otp/koa') and require('blockid-otp/otp-provider')", async () => {
    const report = await runInApp(
      'check.cjs',
      `
const root = require('blockid-otp');
const koa = require('blockid-otp/koa');
const OTP = require('blockid-otp/otp-provider');
(async () => {
  const codes = [];
  const sms = { send: async (m) => void codes.push(m.code) };
  const otp = koa.blockidOtpKoa({ secret: process.env.OTP_SECRET, sms });
  const sent = await otp.generateOtp('grace', { smsTo: '(613) 555-0100' });
  const verified = await otp.verifyOtp('grace', codes[0]);
  const express = root.blockidOtp({ secret: process.env.OTP_SECRET, sms });
  const badOption = (() => { try { root.blockidOtp({ secret: 'short', sms }); } catch (e) { return e.constructor.name; } })();
  const providerVerify = await OTP.VerifyOTP('john.smith', '000000');
  await OTP.reset?.();
  console.log(JSON.stringify({
    guard: typeof koa.requireOtpKoa(), requireOtp: typeof root.requireOtp(),
    channels: sent.channels, verified, express: typeof express.generateOtp, badOption,
    provider: [typeof OTP.GenerateOTP, typeof OTP.VerifyOTP], providerVerify,
    esModuleFlag: Object.keys(root).includes('default'),
  }));
})().catch((e) => { console.error(e); process.exit(1); });
`,
    );
    assert.equal(report.guard, 'function');
    assert.equal(report.requireOtp, 'function');
    assert.deepEqual(report.channels, ['sms']);
    assert.deepEqual(report.verified, { ok: true });
    assert.equal(report.express, 'function');
    assert.equal(report.badOption, 'TypeError');
    assert.deepEqual(report.provider, ['function', 'function']);
    assert.deepEqual(report.providerVerify, { ok: false, reason: 'invalid_code' });
    assert.equal(report.esModuleFlag, false, 'require() gives the named exports, not a { default } wrapper');
  });

  it('type-checks a consumer against the shipped .d.ts (import) and .d.cts (require)', async () => {
    await writeFile(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, skipLibCheck: true, types: ['node'] },
        files: ['consumer.mts', 'consumer.cts'],
      }),
    );
    await writeFile(
      join(app, 'consumer.mts'),
      `
import { blockidOtp, requireOtp, OtpError, memoryStore, type OtpOptions, type RequireOtpOptions } from 'blockid-otp';
import { blockidOtpKoa, requireOtpKoa } from 'blockid-otp/koa';
import { GenerateOTP, VerifyOTP } from 'blockid-otp/otp-provider';
const options: OtpOptions = { secret: 'x'.repeat(32), store: memoryStore(), email: { send: async () => {} } };
const guard: RequireOtpOptions = { redirectTo: '/login', maxAgeSeconds: 60 };
const koa = blockidOtpKoa(options);
const result: Promise<{ ok: true } | { ok: false; reason: 'invalid_code' | 'too_many_attempts' }> = koa.verifyOtp('a', '123456');
const sent: Promise<{ channels: ('sms' | 'email')[]; expiresAt: Date }> = GenerateOTP('john.smith', { smsTo: '4155550100', smsISDCode: '1' });
void [result, sent, VerifyOTP, requireOtpKoa(guard), blockidOtp(options).service, requireOtp(), new OtpError('RATE_LIMITED', 'x').code];
// @ts-expect-error codeLength is a number
blockidOtpKoa({ ...options, codeLength: '6' });
`,
    );
    await writeFile(
      join(app, 'consumer.cts'),
      `
import koa = require('blockid-otp/koa');
import root = require('blockid-otp');
import OTP = require('blockid-otp/otp-provider');
const otp: root.BlockidOtpMiddleware = root.blockidOtp({ secret: 'x'.repeat(32), email: { send: async () => {} } });
const middleware: (ctx: any, next: () => Promise<unknown>) => Promise<void> = koa.blockidOtpKoa({ secret: 'x'.repeat(32), sms: { send: async () => {} } });
void [otp, middleware, OTP.VerifyOTP('a', '1')];
// @ts-expect-error requireOtpKoa takes options, not a string
koa.requireOtpKoa('/login');
`,
    );
    const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = await run(process.execPath, [tsc, '-p', app], { cwd: app, timeout: 60_000 }).then(
      () => 'ok',
      (error: { stdout?: string }) => error.stdout ?? String(error),
    );
    assert.equal(result, 'ok');
  });
});
