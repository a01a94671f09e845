/**
 * The published types as a user's project sees them: the packed package unpacked into a
 * scratch app that has only its dependencies, TypeScript and Node's types (linked from this
 * repo's node_modules: no network), type-checked under `strict` and
 * `exactOptionalPropertyTypes` WITHOUT `skipLibCheck`, so every shipped .d.ts/.d.cts and
 * every chunk they import is compiled. An entry that named a type of an optional peer it
 * does not need (`pg`, `redis`, `twilio`, `nodemailer`, `prom-client`, `koa`) fails here.
 *
 * Also: `@arethetypeswrong/cli` on the tarball, and the CommonJS build's error class name.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeConsumer, manifest, packedPackage, repo, run, typeCheck, type PackedPackage } from '../helpers/packed.js';

/** The optional peers an entry's types need; the app that imports the entry has installed them. */
const peersOf: Record<string, string[]> = { 'blockid-otp/metrics': ['prom-client'], 'blockid-otp/hono': ['hono'], 'blockid-otp/fastify': ['fastify'] };
/** What every user's app has: the package's own dependencies and Node's types. */
const basePackages = [...Object.keys(manifest.dependencies), '@types/node'];
/** Strict, with undefined never standing in for a missing property, and every library file checked. */
const strictest = { strict: true, exactOptionalPropertyTypes: true, skipLibCheck: false, noUncheckedIndexedAccess: true };

/** Every import specifier of package.json `exports`, so a new entry is checked without editing this file. */
const specifiers = Object.keys(manifest.exports)
  .filter((subpath) => subpath !== './package.json')
  .map((subpath) => (subpath === '.' ? manifest.name : `${manifest.name}${subpath.slice(1)}`));

let packed: PackedPackage;
let work = '';

before(
  async () => {
    packed = await packedPackage();
    work = await mkdtemp(join(tmpdir(), 'blockid-otp-types-'));
  },
  { timeout: 300_000 },
);

after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** Imports of `entries` from ESM (`import * as`) and from CommonJS (`import x = require()`). */
function importEverything(entries: string[]): Record<string, string> {
  const esm = entries.map((specifier, i) => `import * as entry${i} from '${specifier}';`);
  const cjs = entries.map((specifier, i) => `import entry${i} = require('${specifier}');`);
  const use = `void [${entries.map((_, i) => `entry${i}`).join(', ')}];\n`;
  return { 'every-entry.mts': `${esm.join('\n')}\n${use}`, 'every-entry.cts': `${cjs.join('\n')}\n${use}` };
}

/** Every optional option set to `undefined`, as code under `exactOptionalPropertyTypes` writes it. */
const usage = `
// @ts-expect-error the store protocol is exported from blockid-otp/store, not from the main entry
import type { OtpStore as NotFromTheMainEntry } from 'blockid-otp';
import {
  blockidOtp, requireOtp, createOtpService, memoryStore, redisStore, postgresStore, twilioSms, twilioWhatsApp, twilioVoice, twilioLookup,
  nodemailerEmail, devOutbox, OtpError, type OtpOptions, type RedisStoreClient, type PostgresPoolLike, type MailTransporterLike, type TwilioClientLike,
} from 'blockid-otp';
import { blockidOtpKoa, requireOtpKoa } from 'blockid-otp/koa';
import { captureSenders } from 'blockid-otp/testing';
import { postgresStore as fromPostgresEntry, postgresSchemaSql } from 'blockid-otp/postgres';
import type { OtpStore, SendPlan } from 'blockid-otp/store';
import { GenerateOTP } from 'blockid-otp/otp-provider';

const capture = captureSenders();
const options: OtpOptions = {
  secret: 'x'.repeat(32), resolveUser: undefined, sms: capture.sms, email: undefined, store: memoryStore({ maxEntries: undefined, sweepIntervalMs: undefined }),
  basePath: undefined, codeLength: undefined, ttlSeconds: undefined, maxAttempts: undefined, resendCooldownSeconds: undefined,
  limits: { sendsPerIp: undefined, lockSeconds: undefined }, messages: { en: { sms: undefined } }, logger: undefined, metrics: undefined,
  testDestinations: undefined, testDestinationsExpireAt: undefined, fallback: undefined, lookup: undefined, onRecoveryCodeUsed: undefined,
};
const middleware = blockidOtp(options);
const koa = blockidOtpKoa(options);
const service = createOtpService(options);
requireOtp({ redirectTo: undefined, maxAgeSeconds: undefined, methods: undefined });
requireOtpKoa({ redirectTo: undefined, maxAgeSeconds: undefined, methods: undefined });

const client: RedisStoreClient = { isOpen: true, sendCommand: async () => null, withCommandOptions: () => ({}) };
redisStore({ client, prefix: undefined, commandTimeoutMs: undefined });
const pool: PostgresPoolLike = {
  connect: async () => ({ query: async () => ({}), on: () => {}, off: () => {}, release: () => {} }),
  query: async () => ({}),
};
postgresStore({
  pool, schema: undefined, tablePrefix: undefined, createTables: undefined, sweepIntervalMs: undefined, sweepBatchSize: undefined,
  commandTimeoutMs: undefined, synchronousCommit: undefined,
});
fromPostgresEntry({ pool });
postgresSchemaSql({ schema: undefined, tablePrefix: undefined });

const twilio: TwilioClientLike = { messages: { create: async () => ({}) } };
twilioSms({ client: twilio, from: '+14155550100' });
twilioSms({ accountSid: 'AC0', authToken: 'token', clientOptions: undefined, messagingServiceSid: 'MG0' });
twilioWhatsApp({ accountSid: 'AC0', authToken: 'token', clientOptions: { timeout: undefined }, from: '+14155550111', contentSid: 'HX0' });
twilioVoice({ accountSid: 'AC0', authToken: 'token', from: '+14155550100', voice: undefined, language: undefined });
twilioLookup({ accountSid: 'AC0', authToken: 'token', allow: undefined, mode: undefined, cacheSeconds: undefined, timeoutMs: undefined });
const transporter: MailTransporterLike = { sendMail: async () => ({}) };
nodemailerEmail({ transporter, from: 'otp@example.com' });
nodemailerEmail({ smtpUrl: 'smtp://localhost', from: 'otp@example.com', transportOptions: { socketTimeout: undefined } });
devOutbox({ limit: undefined, env: undefined });

const sent: Promise<{ channels: ('sms' | 'email')[]; expiresAt: Date }> = middleware.generateOtp(
  'ada', { smsTo: undefined, smsISDCode: undefined, emailTo: 'ada@example.com', locale: undefined }, { ip: undefined },
);
const chained: typeof koa = koa.on('sent', (event) => void event.username).off('sent', () => {});
const enrolled = service.totp.enroll('ada', { issuer: undefined, accountName: undefined });
const codes = service.recoveryCodes.generate({ count: undefined });
const code: Promise<string> = capture.waitForCode('ada', { timeoutMs: undefined });
const store: OtpStore = memoryStore();
const plan: SendPlan | undefined = undefined;
void [sent, chained, enrolled, codes, code, store, plan, GenerateOTP, new OtpError('RATE_LIMITED', 'x').code];
// @ts-expect-error the middleware carries the programmatic API, not the service
void middleware.service;
// @ts-expect-error nor the resolved options
void koa.options;
`;

describe('the packed types in a consumer project (strict, exactOptionalPropertyTypes, no skipLibCheck)', () => {
  it('compile for every entry from ESM and CommonJS, with no optional peer installed beyond what an entry needs', async () => {
    // One app per set of peers: the entries that need none share the bare app.
    const groups = new Map<string, string[]>();
    for (const specifier of specifiers) {
      const peers = (peersOf[specifier] ?? []).join(',');
      groups.set(peers, [...(groups.get(peers) ?? []), specifier]);
    }
    assert.ok((groups.get('') ?? []).length >= 6, 'most entries need no peer');
    for (const [peers, entries] of groups) {
      const dir = join(work, `app-${peers || 'bare'}`);
      await makeConsumer(dir, packed.tarball, [...basePackages, ...peers.split(',').filter(Boolean)]);
      const files = { ...importEverything(entries), ...(peers === '' && { 'usage.mts': usage }) };
      assert.equal(await typeCheck(dir, files, strictest), 'ok', `${entries.join(', ')} with ${peers || 'no peers'}`);
    }
  });

  it('the check fails where it should: a type from an uninstalled peer, and a wrong option type', async () => {
    const dir = join(work, 'app-negative');
    await makeConsumer(dir, packed.tarball, basePackages);
    const output = await typeCheck(
      dir,
      {
        'metrics.mts': "import { prometheusMetrics } from 'blockid-otp/metrics';\nvoid prometheusMetrics;\n",
        'wrong.mts': "import { blockidOtp } from 'blockid-otp';\nblockidOtp({ secret: 'x', email: { send: async () => {} }, ttlSeconds: '300' });\n",
      },
      strictest,
    );
    assert.match(output, /prom-client/, 'blockid-otp/metrics needs prom-client, and the check sees it');
    assert.match(output, /wrong\.mts\(2,\d+\): error TS2322/, 'ttlSeconds is a number');
  });
});

describe('the tarball under @arethetypeswrong/cli', () => {
  it('has no problem for any entry, in node10, node16 (ESM and CJS) and bundler resolution', async () => {
    const attw = join(repo, 'node_modules', '@arethetypeswrong', 'cli', 'dist', 'index.js');
    const result = await run(process.execPath, [attw, packed.tarball, '--format', 'json'], { cwd: repo, timeout: 120_000 }).then(
      ({ stdout }) => ({ failed: false, stdout }),
      (error: { stdout?: string }) => ({ failed: true, stdout: error.stdout ?? String(error) }),
    );
    const report = JSON.parse(result.stdout) as { problems: object; analysis: { problems: unknown[]; entrypoints: Record<string, unknown> } };
    assert.deepEqual(report.analysis.problems, [], 'attw finds no problem');
    assert.deepEqual(report.problems, {});
    assert.equal(result.failed, false);
    const checked = Object.keys(report.analysis.entrypoints).sort();
    for (const specifier of specifiers) assert.ok(checked.includes(specifier.replace(manifest.name, '.')), `attw checked ${specifier}`);
  });
});

describe('the CommonJS build', () => {
  it("names the error class OtpError, in its name, its inspection and an error's stack", async () => {
    const dir = join(work, 'app-cjs');
    await makeConsumer(dir, packed.tarball, Object.keys(manifest.dependencies));
    const script = `
const { inspect } = require('node:util');
const { OtpError } = require('blockid-otp');
const error = new OtpError('RATE_LIMITED', 'slow down');
console.log(JSON.stringify({ name: OtpError.name, inspected: inspect(OtpError), stack: error.stack.split('\\n')[0], constructor: error.constructor.name }));
`;
    const { stdout } = await run(process.execPath, ['-e', script], { cwd: dir, timeout: 30_000 });
    assert.deepEqual(JSON.parse(stdout), {
      name: 'OtpError',
      inspected: '[class OtpError extends Error]',
      stack: 'OtpError: slow down (see docs/errors.md#rate-limited)',
      constructor: 'OtpError',
    });
  });
});
