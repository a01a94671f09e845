/**
 * The adapters under load: guard, send and verify on fetch (served on Node by
 * @hono/node-server), Hono, Fastify and Express, all with `cookieSession()`, each against the
 * same framework's own plain routes (bench/framework-server.mjs, kind `baseline`: JSON and one
 * cookie written): GET /data for the guard, POST /write (parse the JSON body, answer 202) for
 * send and verify. The OTP work of a send or verify is the server's CPU per request above its
 * framework's baseline; Express's is the yardstick for the others'. Two yardsticks for that
 * measure: a fixed amount of CPU work on each framework's plain route (what the measure reads
 * for identical work), and Express's plain route reading the body and answering as its adapter
 * does, without express.json() and res.json() (what Express's baseline spends that its OTP
 * routes do not). Also measures the cookie session's seal + unseal per request. Prints Markdown tables; writes no file.
 *
 * Usage: node bench/frameworks.mjs [--quick] [--frameworks=fetch,hono,fastify,express]
 * --quick: 2 s per measurement (trying it out), else 10 s. Builds the committed src/ (HEAD)
 * with tsup into bench/.tmp first.
 */
import { execFileSync, fork } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BENCH_DIR, ROOT, TMP, cannon, machine, median } from './lib.mjs';
import { cyclingVerifySpec, getSpec, pendingCodeUsers, uniqueSendSpec, verifiedCookie } from './scenarios.mjs';

/**
 * @typedef {{ url: string, pid: number | undefined, stop: () => Promise<void> }} FrameworkServer
 * @typedef {{ spec: import('autocannon').Options, server: FrameworkServer, status: number }} Side a scenario on one server, and the status it answers
 */

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const DURATION = QUICK ? 1.5 : 3;
const ROUNDS = QUICK ? 2 : 6;
const FRAMEWORKS = (args.find((arg) => arg.startsWith('--frameworks='))?.split('=')[1] ?? 'fetch,hono,fastify,express').split(',');
const ENTRIES = ['index', 'fetch', 'hono', 'fastify'];
/** The fixed work of the baselines' POST /work (bench/framework-server.mjs): keyed hashes per request, about a send's OTP work. */
const WORK_HMACS = 100;
const FIXED_WORK = `fixed work (POST /work: the plain route plus ${WORK_HMACS} HMACs)`;
const LEAN = "lean route (POST /write-lean: Express's plain route reading and answering as its adapter does)";

/** The fetch, hono and fastify entries of HEAD, built as the package's ESM build is. */
function build() {
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  const srcRoot = path.join(os.tmpdir(), `blockid-otp-bench-frameworks-${commit}`);
  rmSync(srcRoot, { recursive: true, force: true });
  mkdirSync(srcRoot, { recursive: true });
  execFileSync('sh', ['-c', `git archive HEAD src | tar -x -C "${srcRoot}"`], { cwd: ROOT });
  const distDir = path.join(TMP, `build-frameworks-${commit}`);
  rmSync(distDir, { recursive: true, force: true });
  const entries = [...ENTRIES.map((name) => path.join(srcRoot, 'src', `${name}.ts`)), path.join(srcRoot, 'src', 'core', 'http', 'cookie-session.ts')];
  execFileSync('npx', ['tsup', ...entries, '--no-config', '--format', 'esm', '--target', 'node20', '--out-dir', distDir, '--silent'], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  for (const name of [...ENTRIES, 'core/http/cookie-session'])
    if (!existsSync(path.join(distDir, `${name}.js`))) throw new Error(`build failed: ${name}.js missing`);
  return { distDir, commit };
}

/**
 * bench/framework-server.mjs in its own process; resolves with { url, pid, stop() } once it listens.
 *
 * @param {{ framework: string, kind: 'otp' | 'baseline', distDir: string, workHmacs?: number }} config
 * @returns {Promise<FrameworkServer>}
 */
function start(config) {
  const child = fork(path.join(BENCH_DIR, 'framework-server.mjs'), [], {
    env: { ...process.env, BENCH_SERVER: JSON.stringify(config) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${config.framework} ${config.kind} server exited early (${code})`)));
    child.once('message', (message) => {
      const { port } = /** @type {{ port: number }} */ (message); // framework-server.mjs's ready message
      child.removeAllListeners('exit');
      resolve({
        url: `http://127.0.0.1:${port}`,
        pid: child.pid,
        stop: () =>
          /** @type {Promise<void>} */ (
            new Promise((done) => {
              if (child.exitCode !== null) return done();
              child.once('exit', () => done());
              child.send('stop');
            })
          ),
      });
    });
  });
}

/**
 * One measurement; refuses a run whose answers are not the expected status (a broken scenario, not a slow one).
 *
 * @param {import('autocannon').Options} spec
 * @param {FrameworkServer} server
 * @param {number} status
 */
async function measure(spec, server, status) {
  const result = await cannon({ ...spec, duration: DURATION }, { serverPid: server.pid });
  const wrong = Object.entries(result.statuses).filter(([code]) => code !== String(status));
  if (wrong.length > 0 || result.errors > 0) throw new Error(`expected only ${status}, got ${JSON.stringify(result.statuses)} and ${result.errors} errors`);
  return result;
}

/**
 * A scenario and its baseline in `ROUNDS` alternating pairs (which goes first rotates), so a
 * change in the machine's load falls on both; the figures are medians of the pairs.
 *
 * @param {Side} ours
 * @param {Side} base
 */
async function pairs(ours, base) {
  /** @type {Array<{ ours: import('./lib.mjs').CannonResult, base: import('./lib.mjs').CannonResult }>} */
  const rounds = [];
  for (let round = 0; round < ROUNDS; round++) {
    const first = round % 2 === 0 ? ours : base;
    const second = first === ours ? base : ours;
    const a = await measure(first.spec, first.server, first.status);
    const b = await measure(second.spec, second.server, second.status);
    rounds.push(first === ours ? { ours: a, base: b } : { ours: b, base: a });
  }
  /** @param {(round: (typeof rounds)[number]) => number | undefined} pick undefined (no CPU figure) counts as NaN */
  const med = (pick) => median(rounds.map((r) => pick(r) ?? Number.NaN));
  return {
    ratio: med((r) => r.ours.rps / r.base.rps),
    ours: { rps: med((r) => r.ours.rps), cpuUs: med((r) => r.ours.serverCpuUsPerRequest), p99: med((r) => r.ours.p99) },
    base: { rps: med((r) => r.base.rps), cpuUs: med((r) => r.base.serverCpuUsPerRequest), p99: med((r) => r.base.p99) },
    /** The server CPU per request above the baseline's, per pair. */
    workUs: med((r) => (r.ours.serverCpuUsPerRequest ?? Number.NaN) - (r.base.serverCpuUsPerRequest ?? Number.NaN)),
    otherCores: Math.max(...rounds.flatMap((r) => [r.ours.otherCores, r.base.otherCores])),
  };
}

/** @param {string} framework @param {string} distDir */
async function benchFramework(framework, distDir) {
  const otp = await start({ framework, kind: 'otp', distDir });
  const baseline = await start({ framework, kind: 'baseline', distDir, workHmacs: WORK_HMACS });
  try {
    /** @type {Array<[string, Awaited<ReturnType<typeof pairs>>]>} */
    const rows = [];
    const cookie = await verifiedCookie(otp.url, `g-${framework}`);
    rows.push([
      'guard (GET /data, verified)',
      await pairs(
        { spec: getSpec(otp.url, '/data', cookie), server: otp, status: 200 },
        { spec: getSpec(baseline.url, '/data', ''), server: baseline, status: 200 },
      ),
    ]);
    rows.push([
      'send (POST /otp/send, new user and session each)',
      await pairs(
        { spec: uniqueSendSpec(otp.url, '/otp/send', framework), server: otp, status: 202 },
        { spec: uniqueSendSpec(baseline.url, '/write', framework), server: baseline, status: 202 },
      ),
    ]);
    const users = await pendingCodeUsers(otp.url, { count: QUICK ? 10_000 : 25_000, tag: framework });
    const verify = cyclingVerifySpec(otp.url, '/otp/verify', users, { budget: 10 });
    rows.push([
      'verify (POST /otp/verify, a wrong code)',
      await pairs({ spec: verify, server: otp, status: 401 }, { spec: cyclingVerifySpec(baseline.url, '/write', users), server: baseline, status: 202 }),
    ]);
    // The yardstick: the same CPU work on every framework, measured as the OTP work is.
    rows.push([
      FIXED_WORK,
      await pairs(
        { spec: uniqueSendSpec(baseline.url, '/work', framework), server: baseline, status: 202 },
        { spec: uniqueSendSpec(baseline.url, '/write', framework), server: baseline, status: 202 },
      ),
    ]);
    if (framework === 'express')
      rows.push([
        LEAN,
        await pairs(
          { spec: uniqueSendSpec(baseline.url, '/write-lean', framework), server: baseline, status: 202 },
          { spec: uniqueSendSpec(baseline.url, '/write', framework), server: baseline, status: 202 },
        ),
      ]);
    if (verify.exhausted()) console.warn(`[${framework}] the verify run went past the attempt budget of its users: later answers did not compare`);
    return rows.map(([scenario, figures]) => ({ framework, scenario, ...figures }));
  } finally {
    await otp.stop();
    await baseline.stop();
  }
}

/**
 * µs per seal and per unseal of a session cookie holding a verified flag (the build's own createCookieSessions).
 *
 * @param {string} distDir
 */
async function sealCost(distDir) {
  /** @type {typeof import('../src/fetch.js')} */
  const { cookieSession } = await import(path.join(distDir, 'fetch.js'));
  /** @type {typeof import('../src/core/http/cookie-session.js')} */
  const { createCookieSessions } = await import(path.join(distDir, 'core', 'http', 'cookie-session.js'));
  const sessions = createCookieSessions(cookieSession({ secure: false }), 'bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz');
  const flag = { verified: true, username: 'bench.user.0001', verifiedAt: Date.now(), method: 'code' };
  const sealOnce = async () => {
    const state = await sessions.load(undefined);
    state.port.write('blockidOtp', flag);
    return state.setCookie();
  };
  const header = await sealOnce();
  if (header === undefined) throw new Error('the session wrote no cookie');
  const cookie = header.slice(0, header.indexOf(';'));
  const opened = /** @type {import('../src/index.js').OtpSessionFlag | undefined} */ ((await sessions.load(cookie)).port.read('blockidOtp'));
  if (opened?.verified !== true) throw new Error('the sealed cookie did not open');
  /** @param {() => Promise<unknown>} work @param {number} count */
  const time = async (work, count) => {
    for (let i = 0; i < 2000; i++) await work(); // warm-up
    const started = process.hrtime.bigint();
    for (let i = 0; i < count; i++) await work();
    return Number(process.hrtime.bigint() - started) / 1000 / count;
  };
  const count = QUICK ? 20_000 : 100_000;
  const empty = await time(async () => {}, count); // the loop and its await
  const unseal = (await time(() => sessions.load(cookie), count)) - empty;
  const seal = (await time(sealOnce, count)) - empty - ((await time(() => sessions.load(undefined), count)) - empty); // minus a new session's id
  return { seal, unseal, cookieBytes: cookie.length };
}

const { distDir, commit } = build();
/** @type {Awaited<ReturnType<typeof benchFramework>>} */
const results = [];
for (const framework of FRAMEWORKS) results.push(...(await benchFramework(framework, distDir)));
const cost = await sealCost(distDir);

const m = machine();
const fmt = (/** @type {number} */ n) => Math.round(n).toLocaleString('en-US');
const us = (/** @type {number | undefined} */ n) => (n === undefined ? '–' : n.toFixed(0));
console.log(`\n## Adapters against their framework's plain routes (commit ${commit}${QUICK ? ', --quick' : ''})\n`);
console.log(
  `${m.cpus} × ${m.model}, Node ${m.node}; ${ROUNDS} alternating pairs of ${DURATION} s per scenario, 10 connections, medians; every adapter on cookieSession() and memoryStore(); baselines answer JSON and write one cookie.\n`,
);
console.log(
  "| framework | scenario | req/s | baseline req/s | ratio | server µs/req | baseline µs/req | work µs | ÷ Express work | ÷ Express work above Express's lean route | p99 ms | baseline p99 ms |",
);
console.log('|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
/** @param {string} framework @param {string} scenario */
const find = (framework, scenario) => results.find((other) => other.framework === framework && other.scenario === scenario);
// What Express's plain route spends on express.json() and res.json() beyond reading and answering as its adapter does (negative).
const lean = find('express', LEAN);
for (const row of results) {
  const { framework, scenario, ours, base } = row;
  const express = find('express', scenario);
  const compared = express !== undefined && !scenario.startsWith('guard') && scenario !== LEAN;
  const versus = compared ? `${(row.workUs / express.workUs).toFixed(2)}×` : '–';
  const versusLean =
    compared && lean !== undefined && scenario !== FIXED_WORK && framework !== 'express' ? `${(row.workUs / (express.workUs - lean.workUs)).toFixed(2)}×` : '–';
  console.log(
    `| ${framework} | ${scenario} | ${fmt(ours.rps)} | ${fmt(base.rps)} | ${row.ratio.toFixed(2)}× | ${us(ours.cpuUs)} | ${us(base.cpuUs)} | ${us(row.workUs)} | ${versus} | ${versusLean} | ${ours.p99} | ${base.p99} |`,
  );
}
const busiest = Math.max(...results.map((row) => row.otherCores));
console.log(`\nOther processes used up to ${busiest.toFixed(2)} of a core during a measurement.`);
console.log("Targets: guard ≥ 0.95× of the plain route; OTP work per send and per verify within 1.2× of Express's.");
console.log(
  `Yardsticks: the fixed-work row is the same ${WORK_HMACS} HMACs on each plain route (its "÷ Express work" is what the measure reads for identical work). The lean route is Express's plain route without express.json() and res.json(), which its adapter does not use either; the last ratio column counts Express's OTP work above it.\n`,
);
console.log(
  `cookieSession(): seal ${cost.seal.toFixed(1)} µs, unseal ${cost.unseal.toFixed(1)} µs per request (a ${cost.cookieBytes}-byte cookie holding the verified flag; node:crypto AES-256-GCM).`,
);
