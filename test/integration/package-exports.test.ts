/**
 * The built package as a user installs it: build with the project's tsup config, `npm pack`,
 * unpack into a fresh app's node_modules next to nothing but the declared dependencies,
 * then import every entry point from ESM and CommonJS in child processes and type-check a
 * consumer against the shipped declarations. A second consumer also has the optional peers of
 * the subpaths (`prom-client` for `blockid-otp/metrics`, `pg` and `@types/pg` for
 * `blockid-otp/postgres`); the first has none, which shows the main entry never needs them.
 *
 * The build goes to a temporary directory (`tsup --out-dir`), not to the checkout's `dist/`, and
 * is shared with the other tests of the published package (test/helpers/packed.ts).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { makeConsumer, manifest, packedPackage, repo, typeCheck as typeCheckWith } from '../helpers/packed.js';

const run = promisify(execFile);

let work = '';
let app = '';
/** A consumer that has also installed the optional peers of the metrics and postgres subpaths. */
let peersApp = '';
/** A consumer of blockid-otp/hono and blockid-otp/fastify: Hono and Fastify installed, no other optional peer. */
let webApp = '';
let installed = '';
let packedFiles: string[] = [];

/** What a user of the package has installed next to it: its dependencies, Koa, and Node's types. */
const userPackages = [...Object.keys(manifest.dependencies), 'koa', 'koa-session', '@types/node'];
/** What a user of `blockid-otp/metrics` and `blockid-otp/postgres` adds. */
const peerPackages = ['prom-client', 'pg', '@types/pg'];

const childEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: 'test', OTP_SECRET: 'package-exports-secret-0123456789abcdef' };
  for (const name of [
    'REDIS_URL',
    'TWILIO_ACCOUNT_SID',
    'TWILIO_AUTH_TOKEN',
    'TWILIO_FROM',
    'TWILIO_MESSAGING_SERVICE_SID',
    'SMTP_URL',
    'OTP_EMAIL_FROM',
    'NODE_OPTIONS',
  ]) {
    delete env[name];
  }
  return env;
};

/** Runs `file` with plain Node in a consumer app (`app` by default) and returns the JSON it prints last. */
async function runInApp(file: string, source: string, dir = app): Promise<any> {
  await writeFile(join(dir, file), source);
  const { stdout } = await run(process.execPath, [file], { cwd: dir, env: childEnv(), timeout: 30_000 });
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? 'null');
}

/** Type-checks `files` as the consumers here always have: strict, with skipLibCheck (package-types.test.ts checks without it). */
const typeCheck = (dir: string, files: Record<string, string>) => typeCheckWith(dir, files, { skipLibCheck: true });

before(
  async () => {
    const packed = await packedPackage();
    packedFiles = packed.files;
    work = await mkdtemp(join(tmpdir(), 'blockid-otp-pack-'));
    app = join(work, 'app');
    installed = await makeConsumer(app, packed.tarball, userPackages);
    peersApp = join(work, 'app-peers');
    await makeConsumer(peersApp, packed.tarball, [...userPackages, ...peerPackages]);
    webApp = join(work, 'app-web');
    await makeConsumer(webApp, packed.tarball, [...Object.keys(manifest.dependencies), '@types/node', 'hono', 'fastify']);
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
  it('maps ".", "./koa", "./otp-provider", "./testing", "./metrics", "./postgres", "./fetch", "./hono", "./fastify" and "./store" for import and require, each with types', () => {
    for (const subpath of ['.', './koa', './otp-provider', './testing', './metrics', './postgres', './fetch', './hono', './fastify', './store']) {
      for (const condition of ['import', 'require']) {
        const kinds = targets.filter((t) => t.subpath === subpath && t.condition === condition).map((t) => t.kind);
        assert.deepEqual(kinds, ['types', 'default'], `${subpath} ${condition}`);
      }
    }
  });

  it('ships every file that exports points to, .d.ts for import and .d.cts for require', () => {
    assert.ok(targets.length >= 24);
    for (const { subpath, condition, kind, file } of targets) {
      const path = file.replace(/^\.\//, '');
      assert.ok(packedFiles.includes(path), `${subpath} ${condition} ${kind}: ${path} is in the tarball`);
      assert.ok(existsSync(join(installed, path)), `${path} is unpacked`);
      if (kind === 'types') assert.match(path, condition === 'import' ? /\.d\.ts$/ : /\.d\.cts$/);
    }
    assert.ok(!packedFiles.some((file) => file.startsWith('src/') || file.startsWith('test/')), 'no sources or tests in the tarball');
    assert.ok(!packedFiles.some((file) => file.endsWith('.map')), 'no source maps: they would point to src/, which is not shipped');
    for (const file of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md']) assert.ok(packedFiles.includes(file), `${file} is in the tarball`);
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
const otp = root.blockidOtp({ secret, email, resolveUser: () => null });
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
      blockidOtp: 'function',
      requireOtp: 'function',
      createOtpService: 'function',
      memoryStore: 'function',
      redisStore: 'function',
      twilioSms: 'function',
      nodemailerEmail: 'function',
      OtpError: 'function',
    });
    assert.deepEqual(report.verified, { ok: true });
    assert.deepEqual(report.invalidPhone, { code: 'INVALID_PHONE', isOtpError: true });
    assert.equal(report.koa.api, 'function,function,function,undefined', 'the programmatic API, and no .service');
    assert.deepEqual(report.koa.http, [401, 202, 200, 200], 'guard, send, verify, guard');
    assert.deepEqual(report.provider, {
      GenerateOTP: 'function',
      VerifyOTP: 'function',
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
  const otp = koa.blockidOtpKoa({ secret: process.env.OTP_SECRET, sms, resolveUser: () => null });
  const sent = await otp.generateOtp('grace', { smsTo: '(613) 555-0100' });
  const verified = await otp.verifyOtp('grace', codes[0]);
  const express = root.blockidOtp({ secret: process.env.OTP_SECRET, sms, resolveUser: () => null });
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
    const result = await typeCheck(app, {
      'consumer.mts': `
import { blockidOtp, requireOtp, OtpError, memoryStore, type OtpOptions, type RequireOtpOptions } from 'blockid-otp';
import { blockidOtpKoa, requireOtpKoa } from 'blockid-otp/koa';
import { GenerateOTP, VerifyOTP } from 'blockid-otp/otp-provider';
const options: OtpOptions = { secret: 'x'.repeat(32), store: memoryStore(), email: { send: async () => {} } };
const guard: RequireOtpOptions = { redirectTo: '/login', maxAgeSeconds: 60 };
const koa = blockidOtpKoa(options);
const result: Promise<{ ok: true } | { ok: false; reason: 'invalid_code' | 'too_many_attempts' }> = koa.verifyOtp('a', '123456');
const sent: Promise<{ channels: ('sms' | 'email')[]; expiresAt: Date }> = GenerateOTP('john.smith', { smsTo: '4155550100', smsISDCode: '1' });
void [result, sent, VerifyOTP, requireOtpKoa(guard), blockidOtp(options).on('sent', () => {}).off('sent', () => {}), requireOtp(), new OtpError('RATE_LIMITED', 'x').code];
// @ts-expect-error the middleware carries no service
void blockidOtp(options).service;
// @ts-expect-error codeLength is a number
blockidOtpKoa({ ...options, codeLength: '6' });
`,
      'consumer.cts': `
import koa = require('blockid-otp/koa');
import root = require('blockid-otp');
import OTP = require('blockid-otp/otp-provider');
const otp: root.BlockidOtpMiddleware = root.blockidOtp({ secret: 'x'.repeat(32), email: { send: async () => {} } });
const middleware: (ctx: any, next: () => Promise<unknown>) => Promise<void> = koa.blockidOtpKoa({ secret: 'x'.repeat(32), sms: { send: async () => {} } });
void [otp, middleware, OTP.VerifyOTP('a', '1')];
// @ts-expect-error requireOtpKoa takes options, not a string
koa.requireOtpKoa('/login');
`,
    });
    assert.equal(result, 'ok');
  });
});

describe('the subpaths blockid-otp/testing, blockid-otp/metrics and blockid-otp/postgres', () => {
  it('work with import, and testing and postgres need none of the optional peers', async () => {
    const report = await runInApp(
      'subpaths.mjs',
      `
import { blockidOtp, OtpError } from 'blockid-otp';
import { captureSenders } from 'blockid-otp/testing';
import { postgresStore, postgresSchemaSql } from 'blockid-otp/postgres';

const capture = captureSenders();
const otp = blockidOtp({ secret: process.env.OTP_SECRET, sms: capture.sms, email: capture.email, resolveUser: () => null });
const sent = await otp.generateOtp('Ada', { smsTo: '4155550100', emailTo: 'ada@example.com' });
const code = await capture.waitForCode('+1 415 555 0100', { timeoutMs: 1000 });
const verified = await otp.verifyOtp('ada', code);
const timeout = await capture.nextCode('ada', { timeoutMs: 20 }).then(() => 'resolved', (e) => e.constructor.name);

// No pg installed: the entry loads, and a store whose pool cannot connect fails closed with the root's OtpError.
const pool = { connect: async () => { throw new Error('no database here'); }, query: async () => { throw new Error('no database here'); } };
const store = postgresStore({ pool, createTables: false, sweepIntervalMs: 0, commandTimeoutMs: 200 });
const storeError = await store.get('k').then(() => 'resolved', (e) => ({ code: e.code, isRootOtpError: e instanceof OtpError }));
await store.close();
const metrics = await import('blockid-otp/metrics').then(() => 'loaded', (e) => ({ code: e.code, namesPeer: e.message.includes('prom-client') }));

console.log(JSON.stringify({
  channels: sent.channels, outbox: capture.outbox.map((m) => m.channel + ' ' + m.to), verified, timeout,
  schema: typeof postgresSchemaSql() === 'string' && postgresSchemaSql().includes('CREATE'), storeError, metrics,
}));
`,
    );
    assert.deepEqual(report.channels, ['sms', 'email']);
    assert.deepEqual(report.outbox, ['sms +14155550100', 'email ada@example.com']);
    assert.deepEqual(report.verified, { ok: true });
    assert.equal(report.timeout, 'Error', 'nextCode rejects after timeoutMs');
    assert.equal(report.schema, true);
    assert.deepEqual(report.storeError, { code: 'STORE_UNAVAILABLE', isRootOtpError: true });
    assert.deepEqual(report.metrics, { code: 'ERR_MODULE_NOT_FOUND', namesPeer: true }, "without prom-client, Node's own error names it");
  });

  it('work with require, and testing and postgres need none of the optional peers', async () => {
    const report = await runInApp(
      'subpaths.cjs',
      `
const root = require('blockid-otp');
const testing = require('blockid-otp/testing');
const postgres = require('blockid-otp/postgres');
(async () => {
  const capture = testing.captureSenders();
  const otp = root.createOtpService({ secret: process.env.OTP_SECRET, email: capture.email });
  await otp.generateOtp('grace', { emailTo: 'grace@example.com' });
  const verified = await otp.verifyOtp('grace', capture.lastCode('grace@example.com'));
  const pool = { connect: async () => { throw new Error('no database here'); }, query: async () => { throw new Error('no database here'); } };
  const store = postgres.postgresStore({ pool, createTables: false, sweepIntervalMs: 0, commandTimeoutMs: 200 });
  const storeError = await store.get('k').then(() => 'resolved', (e) => ({ code: e.code, isRootOtpError: e instanceof root.OtpError }));
  await store.close();
  let metrics = 'loaded';
  try { require('blockid-otp/metrics'); } catch (e) { metrics = { code: e.code, namesPeer: e.message.includes('prom-client') }; }
  console.log(JSON.stringify({
    names: [typeof testing.captureSenders, typeof postgres.postgresStore, typeof postgres.postgresSchemaSql, typeof root.postgresStore],
    verified, storeError, metrics, esModuleFlag: Object.keys(testing).includes('default'),
  }));
})().catch((e) => { console.error(e); process.exit(1); });
`,
    );
    assert.deepEqual(report.names, ['function', 'function', 'function', 'function']);
    assert.deepEqual(report.verified, { ok: true });
    assert.deepEqual(report.storeError, { code: 'STORE_UNAVAILABLE', isRootOtpError: true });
    assert.deepEqual(report.metrics, { code: 'MODULE_NOT_FOUND', namesPeer: true });
    assert.equal(report.esModuleFlag, false);
  });

  it('with prom-client and pg installed: metrics count a sign-in, and a pg Pool that cannot connect fails closed (import)', async () => {
    const report = await runInApp(
      'peers.mjs',
      `
import pg from 'pg';
import { Registry } from 'prom-client';
import { blockidOtp, OtpError } from 'blockid-otp';
import { captureSenders } from 'blockid-otp/testing';
import { prometheusMetrics } from 'blockid-otp/metrics';
import { postgresStore } from 'blockid-otp/postgres';

const registry = new Registry();
const capture = captureSenders();
const otp = blockidOtp({ secret: process.env.OTP_SECRET, email: capture.email, resolveUser: () => null, metrics: prometheusMetrics({ registry }) });
await otp.generateOtp('ada', { emailTo: 'ada@example.com' });
const verified = await otp.verifyOtp('ada', await capture.waitForCode('ada'));
const text = await registry.metrics();

// Port 1 on loopback: nothing listens, so the connection is refused at once.
const pool = new pg.Pool({ connectionString: 'postgres://user:pass@127.0.0.1:1/db', connectionTimeoutMillis: 500 });
pool.on('error', () => {});
const store = postgresStore({ pool, sweepIntervalMs: 0, commandTimeoutMs: 1000 });
const storeError = await store.get('k').then(() => 'resolved', (e) => ({ code: e.code, isRootOtpError: e instanceof OtpError }));
await store.close();
await pool.end();
console.log(JSON.stringify({
  verified, registry: prometheusMetrics({ registry: new Registry() }).registry instanceof Registry,
  sends: /^blockid_otp_sends_total\\{channel="email",outcome="sent",npa=""\\} 1$/m.test(text),
  verifications: /^blockid_otp_verifications_total\\{method="code",result="verified"\\} 1$/m.test(text),
  storeError,
}));
`,
      peersApp,
    );
    assert.deepEqual(report, {
      verified: { ok: true },
      registry: true,
      sends: true,
      verifications: true,
      storeError: { code: 'STORE_UNAVAILABLE', isRootOtpError: true },
    });
  });

  it('with prom-client and pg installed: the same with require', async () => {
    const report = await runInApp(
      'peers.cjs',
      `
const { Registry } = require('prom-client');
const { Pool } = require('pg');
const root = require('blockid-otp');
const { captureSenders } = require('blockid-otp/testing');
const { prometheusMetrics } = require('blockid-otp/metrics');
const { postgresStore } = require('blockid-otp/postgres');
(async () => {
  const registry = new Registry();
  const capture = captureSenders();
  const otp = root.blockidOtp({ secret: process.env.OTP_SECRET, sms: capture.sms, resolveUser: () => null, metrics: prometheusMetrics({ registry, prefix: 'myapp_otp_' }) });
  await otp.generateOtp('grace', { smsTo: '(613) 555-0100' });
  const verified = await otp.verifyOtp('grace', await capture.waitForCode('6135550100'));
  const text = await registry.metrics();
  const pool = new Pool({ connectionString: 'postgres://user:pass@127.0.0.1:1/db', connectionTimeoutMillis: 500 });
  pool.on('error', () => {});
  const store = postgresStore({ pool, sweepIntervalMs: 0, commandTimeoutMs: 1000 });
  const storeError = await store.get('k').then(() => 'resolved', (e) => ({ code: e.code, isRootOtpError: e instanceof root.OtpError }));
  await store.close();
  await pool.end();
  console.log(JSON.stringify({
    verified,
    sends: /^myapp_otp_sends_total\\{channel="sms",outcome="sent",npa="613"\\} 1$/m.test(text),
    storeError,
  }));
})().catch((e) => { console.error(e); process.exit(1); });
`,
      peersApp,
    );
    assert.deepEqual(report, { verified: { ok: true }, sends: true, storeError: { code: 'STORE_UNAVAILABLE', isRootOtpError: true } });
  });

  it('type-checks captureSenders, prometheusMetrics and postgresStore against the shipped .d.ts and .d.cts', async () => {
    const result = await typeCheck(peersApp, {
      'subpaths.mts': `
import pg from 'pg';
import { Registry } from 'prom-client';
import { blockidOtp, createOtpService } from 'blockid-otp';
import type { OtpStore } from 'blockid-otp/store';
import { blockidOtpKoa } from 'blockid-otp/koa';
import { captureSenders, type CapturedMessage, type CapturedSenders, type WaitOptions } from 'blockid-otp/testing';
import { prometheusMetrics, type PrometheusMetrics, type PrometheusMetricsOptions } from 'blockid-otp/metrics';
import { postgresStore, postgresSchemaSql, type PostgresStore, type PostgresStoreOptions } from 'blockid-otp/postgres';
import { postgresStore as fromRoot } from 'blockid-otp';

const capture: CapturedSenders = captureSenders();
const wait: WaitOptions = { timeoutMs: 100 };
const code: Promise<string> = capture.waitForCode('ada', wait);
const next: Promise<string> = capture.nextCode('+14155550100');
const last: string = capture.lastCode('ada@example.com');
const outbox: readonly CapturedMessage[] = capture.outbox;
const first = outbox[0];
if (first?.channel === 'email') { const html: string = first.html; void html; }
if (first?.channel === 'sms') { const body: string = first.body; void body; }
const metricsOptions: PrometheusMetricsOptions = { registry: new Registry(), prefix: 'myapp_otp_' };
const metrics: PrometheusMetrics = prometheusMetrics(metricsOptions);
const registry: Registry = metrics.registry;
const pool = new pg.Pool();
const storeOptions: PostgresStoreOptions = { pool, schema: 'auth', tablePrefix: 'otp_', createTables: false };
const store: PostgresStore = postgresStore(storeOptions);
const asStore: OtpStore = store;
const ready: Promise<void> = store.ready();
const swept: Promise<number> = store.sweep();
const sql: string = postgresSchemaSql({ schema: 'auth' });
const same: typeof postgresStore = fromRoot;
blockidOtp({ secret: 'x'.repeat(32), sms: capture.sms, email: capture.email, whatsapp: capture.whatsapp, voice: capture.voice, metrics, store });
blockidOtpKoa({ secret: 'x'.repeat(32), email: capture.email, metrics: prometheusMetrics(), store: postgresStore({ pool }) });
createOtpService({ secret: 'x'.repeat(32), email: capture.email, testDestinations: { 'qa@example.com': '000000' }, testDestinationsExpireAt: new Date() });
void [code, next, last, registry, asStore, ready, swept, sql, same];
// @ts-expect-error timeoutMs is a number
capture.waitForCode('ada', { timeoutMs: '100' });
// @ts-expect-error pool must be a pg Pool
postgresStore({ pool: 'postgres://localhost/db' });
// @ts-expect-error prefix is a string
prometheusMetrics({ prefix: 1 });
// @ts-expect-error testDestinations maps destinations to code strings
createOtpService({ secret: 'x'.repeat(32), email: capture.email, testDestinations: { 'qa@example.com': 123456 } });
`,
      'subpaths.cts': `
import testing = require('blockid-otp/testing');
import metrics = require('blockid-otp/metrics');
import postgres = require('blockid-otp/postgres');
import root = require('blockid-otp');
import pg = require('pg');
const capture: testing.CapturedSenders = testing.captureSenders();
const sink: metrics.PrometheusMetrics = metrics.prometheusMetrics();
const store: postgres.PostgresStore = postgres.postgresStore({ pool: new pg.Pool() });
const otp: root.BlockidOtpMiddleware = root.blockidOtp({ secret: 'x'.repeat(32), sms: capture.sms, metrics: sink, store });
const message: testing.CapturedMessage | undefined = capture.outbox[0];
void [otp, message];
// @ts-expect-error lastCode takes a string
capture.lastCode(42);
`,
    });
    assert.equal(result, 'ok');
  });
});

describe('the subpaths blockid-otp/hono and blockid-otp/fastify', () => {
  /** Signs in through `request(method, path, body?, cookie?)`: send, the captured code, verify, the guarded route. */
  const signIn = `
async function signIn(request, capture) {
  const before = await request('GET', '/account');
  const sent = await request('POST', '/otp/send', { username: 'ada' });
  const code = await capture.waitForCode('ada', { timeoutMs: 10_000 });
  const verified = await request('POST', '/otp/verify', { username: 'ada', code }, sent.cookie);
  const after = await request('GET', '/account', undefined, verified.cookie);
  return [before.status, sent.status, verified.status, after.status, after.body];
}
const options = (capture) => ({ secret: process.env.OTP_SECRET, resolveUser: (u) => (u === 'ada' ? { emailTo: 'ada@example.com' } : null), email: capture.email });
`;

  it('sign in with import, on Hono and on Fastify (its own cookie session), with nothing but hono and fastify installed', async () => {
    const report = await runInApp(
      'web.mjs',
      `
import { Hono } from 'hono';
import Fastify from 'fastify';
import { blockidOtpHono, requireOtpHono, cookieSession } from 'blockid-otp/hono';
import { blockidOtpFastify, requireOtpFastify } from 'blockid-otp/fastify';
import { captureSenders } from 'blockid-otp/testing';
${signIn}
const honoCapture = captureSenders();
const hono = new Hono().use(blockidOtpHono({ ...options(honoCapture), session: cookieSession({ secure: false }) }));
hono.get('/account', requireOtpHono(), (c) => c.json({ username: c.get('blockidOtp').username }));
const viaHono = await signIn(async (method, path, body, cookie) => {
  const response = await hono.request(path, { method, headers: { 'content-type': 'application/json', ...(cookie && { cookie }) }, body: body && JSON.stringify(body) });
  return { status: response.status, cookie: response.headers.get('set-cookie')?.split(';')[0], body: await response.json() };
}, honoCapture);

const fastifyCapture = captureSenders();
const fastify = Fastify();
await fastify.register(blockidOtpFastify, options(fastifyCapture));
fastify.get('/account', { preHandler: requireOtpFastify() }, async (request) => ({ username: request.blockidOtp.username }));
const viaFastify = await signIn(async (method, path, body, cookie) => {
  const response = await fastify.inject({ method, url: path, headers: { 'content-type': 'application/json', ...(cookie && { cookie }) }, payload: body && JSON.stringify(body) });
  return { status: response.statusCode, cookie: [response.headers['set-cookie']].flat()[0]?.split(';')[0], body: response.json() };
}, fastifyCapture);
console.log(JSON.stringify({ viaHono, viaFastify, api: typeof fastify.otp.generateOtp }));
`,
      webApp,
    );
    assert.deepEqual(report.viaHono, [401, 202, 200, 200, { username: 'ada' }]);
    assert.deepEqual(report.viaFastify, [401, 202, 200, 200, { username: 'ada' }]);
    assert.equal(report.api, 'function');
  });

  it('sign in with require, on Fastify, whose plugin keeps its decorators visible to the app', async () => {
    const report = await runInApp(
      'web.cjs',
      `
const Fastify = require('fastify');
const { blockidOtpFastify, requireOtpFastify, cookieSession } = require('blockid-otp/fastify');
const { blockidOtpHono } = require('blockid-otp/hono');
const { captureSenders } = require('blockid-otp/testing');
${signIn}
(async () => {
  const capture = captureSenders();
  const fastify = Fastify();
  await fastify.register(blockidOtpFastify, { ...options(capture), session: cookieSession({ secure: false }) });
  fastify.get('/account', { preHandler: requireOtpFastify() }, async (request) => ({ username: request.blockidOtp.username }));
  const viaFastify = await signIn(async (method, path, body, cookie) => {
    const response = await fastify.inject({ method, url: path, headers: { 'content-type': 'application/json', ...(cookie && { cookie }) }, payload: body && JSON.stringify(body) });
    return { status: response.statusCode, cookie: [response.headers['set-cookie']].flat()[0]?.split(';')[0], body: response.json() };
  }, capture);
  console.log(JSON.stringify({ viaFastify, hono: typeof blockidOtpHono }));
})();
`,
      webApp,
    );
    assert.deepEqual(report.viaFastify, [401, 202, 200, 200, { username: 'ada' }]);
    assert.equal(report.hono, 'function');
  });

  it('type-check under strict and exactOptionalPropertyTypes, without skipLibCheck, with only hono and fastify of the optional peers', async () => {
    const files = {
      'web-consumer.mts': `
import { Hono } from 'hono';
import Fastify from 'fastify';
import { blockidOtpHono, requireOtpHono, cookieSession, type BlockidOtpEnv } from 'blockid-otp/hono';
import { blockidOtpFastify, requireOtpFastify } from 'blockid-otp/fastify';
const email = { send: async () => {} };
const otp = blockidOtpHono({ secret: 'x'.repeat(32), email, session: cookieSession({ secure: false }), trustProxy: 1 });
const app = new Hono().use(otp);
app.get('/account', requireOtpHono({ maxAgeSeconds: 60 }), (c) => c.json({ username: c.get('blockidOtp')?.username ?? null }));
const typed = new Hono<BlockidOtpEnv>();
typed.get('/', (c) => c.text(c.get('blockidOtp')?.method ?? 'none'));
const same: typeof otp = otp.on('locked', () => {});
const fastify = Fastify();
await fastify.register(blockidOtpFastify, { secret: 'x'.repeat(32), email });
fastify.get('/account', { preHandler: requireOtpFastify({ methods: ['totp'] }) }, async (request) => ({ username: request.blockidOtp?.username ?? null }));
const sent: Promise<{ channels: ('sms' | 'email')[]; expiresAt: Date }> = fastify.otp.generateOtp('ada', { emailTo: 'ada@example.com' });
void [same, sent];
// @ts-expect-error trustProxy is a number of proxies
blockidOtpHono({ secret: 'x'.repeat(32), email, trustProxy: true });
`,
    };
    await writeFile(
      join(webApp, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          strict: true,
          exactOptionalPropertyTypes: true,
          skipLibCheck: false,
          noEmit: true,
          types: ['node'],
        },
        files: Object.keys(files),
      }),
    );
    for (const [name, source] of Object.entries(files)) await writeFile(join(webApp, name), source);
    const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = await run(process.execPath, [tsc, '-p', webApp], { cwd: webApp, timeout: 120_000 }).then(
      () => 'ok',
      (error: { stdout?: string }) => error.stdout ?? String(error),
    );
    assert.equal(result, 'ok');
  });
});

describe("the built package without the optional senders' peers (no nodemailer, no twilio installed)", () => {
  const creating = `
const attempts = {
  nodemailer: () => nodemailerEmail({ smtpUrl: 'smtp://127.0.0.1:2525', from: 'a@example.com' }),
  twilio: () => twilioSms({ accountSid: 'AC0123456789abcdef0123456789abcdef', authToken: 'token', from: '+14155550111' }),
};
const report = {};
for (const [peer, create] of Object.entries(attempts)) {
  try { create(); report[peer] = 'created'; } catch (e) { report[peer] = { name: e.name, namesPeer: e.message.includes('npm install ' + peer), linked: e.message.endsWith('(see docs/errors.md#missing-peer-dependency)') }; }
}
console.log(JSON.stringify(report));
`;
  const expected = { name: 'TypeError', namesPeer: true, linked: true };

  it('import: nodemailerEmail({ smtpUrl }) and twilioSms({ accountSid, authToken }) fail at creation, naming the package', async () => {
    const report = await runInApp('no-peers.mjs', `import { nodemailerEmail, twilioSms } from 'blockid-otp';\n${creating}`);
    assert.deepEqual(report, { nodemailer: expected, twilio: expected });
  });

  it('require: the same', async () => {
    const report = await runInApp('no-peers.cjs', `const { nodemailerEmail, twilioSms } = require('blockid-otp');\n${creating}`);
    assert.deepEqual(report, { nodemailer: expected, twilio: expected });
  });

  it('a ready-made transporter needs no peer', async () => {
    const report = await runInApp(
      'ready-made.mjs',
      `import { nodemailerEmail } from 'blockid-otp';
nodemailerEmail({ transporter: { sendMail: async () => ({}) }, from: 'a@example.com' });
console.log(JSON.stringify('created'));`,
    );
    assert.equal(report, 'created');
  });

  it('with nodemailer and twilio installed next to the package, both are created (import and require)', async () => {
    const modules = join(peersApp, 'node_modules');
    for (const peer of ['nodemailer', 'twilio']) {
      if (!existsSync(join(modules, peer))) await symlink(join(repo, 'node_modules', peer), join(modules, peer), 'dir');
    }
    const esm = await runInApp('with-peers.mjs', `import { nodemailerEmail, twilioSms } from 'blockid-otp';\n${creating}`, peersApp);
    const cjs = await runInApp('with-peers.cjs', `const { nodemailerEmail, twilioSms } = require('blockid-otp');\n${creating}`, peersApp);
    assert.deepEqual(esm, { nodemailer: 'created', twilio: 'created' });
    assert.deepEqual(cjs, { nodemailer: 'created', twilio: 'created' });
  });
});
