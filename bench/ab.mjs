#!/usr/bin/env node
/**
 * Short alternating pairs: on a noisy machine the median of many short pairs moves less than a
 * few long runs. Two modes.
 *
 * One scenario against its baseline, for trying a change before a full `npm run bench`
 * (printed round by round, nothing written):
 *
 *   node bench/ab.mjs --store=memory|redis|postgres --scenario=send|verify|guard
 *        [--rounds=16] [--duration=1.5] [--warmup=0.5] [--users=4000]
 *        [--otp='{"synchronousCommit":false}'] [--b-otp='{"storeProbe":"write"}'] [--src=DIR]
 *
 * Builds the working tree's src/ (or DIR/src with --src). `--otp` is merged into the OTP
 * server's config (bench/server.mjs), e.g. a postgresStore option, or `{"kind":"minimal"}` for
 * memory's send ceiling (bench/minimal-send.mjs) against the baseline; `--b-otp='{"kind":"minimal"}'`
 * measures the package's send against that ceiling. PostgreSQL tables go to a
 * schema of the run's own, dropped at the end; Redis keys under a prefix of its own, deleted.
 *
 * The old build against the new one (`npm run bench -- --ab[=REF]` runs this):
 *
 *   node bench/ab.mjs --old=REF [--worktree] [--stores=memory,redis] [--scenarios=guard,send,verify]
 *        [--rounds=6] [--duration=1.5] [--warmup=0.5] [--users=8000] [--no-write]
 *
 * Builds REF's src/ (old) and HEAD's (new; the working tree with --worktree). The old build
 * is served by REF's own bench/server.mjs (git archive, so its options match that build's
 * API), the new one by this bench/server.mjs; the same HTTP scenarios drive both. For each
 * store and scenario, each round measures old and new back to back, the order swapping every
 * round; the table (new ÷ old per scenario, median of the rounds) goes to stdout and to its
 * own section of bench/RESULTS.md.
 */
import { buildDist, cannon, cleanRedis, median, pgPool, startServer } from './lib.mjs';
import { oldAgainstNew } from './old-vs-new.mjs';
import { baselineSessions, cyclingVerifySpec, getSpec, pendingCodeUsers, uniqueSendSpec, verifiedCookie } from './scenarios.mjs';

/** @type {(name: string) => string | undefined} */
const option = (name) =>
  process.argv
    .slice(2)
    .find((arg) => arg.startsWith(`--${name}=`))
    ?.slice(name.length + 3);
const oldRef = option('old');
if (oldRef !== undefined) {
  await oldAgainstNew(oldRef, { option, flag: (name) => process.argv.includes(`--${name}`) });
  process.exit(0);
}
const store = option('store') ?? 'memory';
const scenario = option('scenario') ?? 'send';
const rounds = Number(option('rounds') ?? '16');
const duration = Number(option('duration') ?? '1.5');
const warmup = Number(option('warmup') ?? '0.5');
const users = Number(option('users') ?? '4000');
const extra = JSON.parse(option('otp') ?? '{}');
const src = option('src');
if (!['memory', 'redis', 'postgres'].includes(store) || !['send', 'verify', 'guard'].includes(scenario)) {
  console.error('usage: node bench/ab.mjs --store=memory|redis|postgres --scenario=send|verify|guard [--rounds=N] [--duration=S] [--otp=JSON] [--src=DIR]');
  process.exit(2);
}

const { dist, label } = buildDist(src === undefined ? { worktree: true } : { srcRoot: src });
const prefix = `blockid-ab:${process.pid}:`;
const schema = `blockid_ab_${process.pid}`;
let admin;
if (store === 'postgres') {
  admin = await pgPool({ max: 2 });
  await admin.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
}
/** @param {string} tag @param {Record<string, unknown>} config merged into the server's BENCH_SERVER config */
const server = (tag, config) => startServer({ name: tag, dist, store, prefix: `${prefix}${tag}:`, pgSchema: schema, tablePrefix: `${tag}_`, ...config });
const a = await server('a', { kind: 'otp', guard: true, ...extra });
// --b-otp=JSON: side b is the OTP server with this config merged instead of the baseline (two builds of one scenario, e.g. a store against its storeProbe ceiling).
const bOtp = option('b-otp');
const b =
  bOtp !== undefined
    ? await server('b', { kind: 'otp', guard: scenario === 'guard', ...JSON.parse(bOtp) })
    : scenario === 'guard'
      ? await server('b', { kind: 'otp', guard: false, ...extra })
      : await server('b', { kind: 'baseline' });
const concurrency = store === 'postgres' ? 10 : 32;
/** @type {Record<'a' | 'b', (round: number) => import('autocannon').Options>} */
let specs;
if (scenario === 'send') {
  specs = { a: (r) => uniqueSendSpec(a.url, '/otp/send', `a${r}`), b: (r) => uniqueSendSpec(b.url, bOtp === undefined ? '/write' : '/otp/send', `b${r}`) };
} else if (scenario === 'verify') {
  const va = cyclingVerifySpec(a.url, '/otp/verify', await pendingCodeUsers(a.url, { count: users, tag: 'ab', concurrency }), { budget: 10 });
  const vb =
    bOtp === undefined
      ? cyclingVerifySpec(b.url, '/write', await baselineSessions(b.url, { count: users, tag: 'ab', concurrency }))
      : cyclingVerifySpec(b.url, '/otp/verify', await pendingCodeUsers(b.url, { count: users, tag: 'ab', concurrency }), { budget: 10 });
  specs = { a: () => va, b: () => vb };
} else {
  const [ca, cb] = [await verifiedCookie(a.url, 'bench.user'), await verifiedCookie(b.url, 'bench.user')];
  specs = { a: () => getSpec(a.url, '/data', ca), b: () => getSpec(b.url, '/data', cb) };
}

console.log(`${store} ${scenario}: ${label}; ${rounds} pairs of ${duration} s after ${warmup} s of warm-up`);
const ratios = [];
/** @type {Record<'a' | 'b', number[]>} */
const cpu = { a: [], b: [] };
try {
  for (let round = 0; round < rounds; round++) {
    const result = /** @type {Record<'a' | 'b', import('./lib.mjs').CannonResult & { serverCpuUsPerRequest: number }>} */ ({});
    for (const side of /** @type {Array<'a' | 'b'>} */ (round % 2 === 0 ? ['a', 'b'] : ['b', 'a'])) {
      const target = side === 'a' ? a : b;
      const spec = specs[side](round);
      const options = { url: spec.url, ...(spec.requests && { requests: spec.requests }), ...(spec.headers && { headers: spec.headers }) };
      await cannon({ ...options, duration: round === 0 ? 2 : warmup });
      const measured = await cannon({ ...options, duration }, { serverPid: target.child.pid, withRedis: store === 'redis' });
      const { serverCpuUsPerRequest } = measured;
      if (serverCpuUsPerRequest === undefined) throw new Error(`side ${side}: no server CPU per request (${measured.total} requests)`);
      result[side] = { ...measured, serverCpuUsPerRequest };
      cpu[side].push(serverCpuUsPerRequest);
    }
    ratios.push(result.a.rps / result.b.rps);
    console.log(
      `round ${String(round + 1).padStart(2)}: ${result.a.rps.toFixed(0)} vs ${result.b.rps.toFixed(0)} req/s = ${(result.a.rps / result.b.rps).toFixed(2)}×;` +
        ` server CPU ${result.a.serverCpuUsPerRequest.toFixed(0)} / ${result.b.serverCpuUsPerRequest.toFixed(0)} µs/req; answers ${JSON.stringify(result.a.statuses)}`,
    );
  }
  console.log(
    `median ratio ${median(ratios).toFixed(2)}× (range ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}); median server CPU ${median(cpu.a).toFixed(0)} / ${median(cpu.b).toFixed(0)} µs/req`,
  );
} finally {
  await a.stop();
  await b.stop();
  if (admin !== undefined) {
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
  }
  if (store === 'redis') await cleanRedis(prefix);
}
process.exit(0);
