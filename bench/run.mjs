#!/usr/bin/env node
/**
 * `npm run bench`: blockid-otp against plain-Express baselines and the `passwordless` package,
 * on the memory store, Redis and PostgreSQL (send and verify also with metrics on), the
 * PostgreSQL store's sweep of expired rows under load, and the memory cost of pending codes.
 *
 * Every server runs in its own child process (bench/server.mjs); this process only drives
 * load with autocannon. Each scenario is measured right next to its baseline (and its
 * with-metrics twin), for several rounds that rotate which goes first; every measurement is
 * preceded by a warm-up; the tables show medians. Figures go to stdout and to bench/RESULTS.md.
 *
 * Other processes' CPU use is measured during every run (from /proc); a set that they
 * disturbed is measured again, within a time budget, and the quietest attempt kept.
 *
 * Options: --quick (1 round of 2 s, for trying the bench out), --stores=memory,redis,postgres,
 * --skip-memory, --skip-peer, --skip-sweep, --worktree (bench the uncommitted src/ instead of
 * HEAD), --src=DIR (bench an experimental copy DIR/src, e.g. a proposed fix; implies
 * --no-write), --no-write (do not touch bench/RESULTS.md), --wait-quiet (first wait, at most
 * 25 minutes, for a 1-minute load average under 0.6; RESULTS.md says how that went), --render
 * (rewrite the full run's section of bench/RESULTS.md from the last run's figures).
 *
 * --ab[=REF]: instead of the full run, the old build (REF, default 15d3e33, the last commit
 * before the simplification pass) against the new one (HEAD, or the working tree with
 * --worktree) on memory and Redis, guard, send and verify, in alternating rounds: bench/ab.mjs
 * --old=REF, to which the other options are passed on (--rounds, --duration, --stores,
 * --scenarios, --no-write).
 * BENCH_DURATION / BENCH_ROUNDS / BENCH_RETRY_BUDGET (seconds) override.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import autocannon from 'autocannon';
import path from 'node:path';
import {
  BENCH_DIR,
  buildDist,
  writeResultsSection,
  cannon,
  cleanRedis,
  expiredRowsSql,
  machine,
  median,
  option,
  pgPool,
  postgresPids,
  request,
  sleep,
  startServer,
} from './lib.mjs';
import { baselineSessions, cyclingVerifySpec, getSpec, pendingCodeUsers, uniqueSendSpec, verifiedCookie } from './scenarios.mjs';

/**
 * @typedef {import('./lib.mjs').BenchServer} BenchServer
 * @typedef {import('./lib.mjs').CannonResult & { label: string }} Measured one measurement, with its label
 * @typedef {'scenario' | 'baseline' | 'metrics' | 'ceiling'} Variant
 * @typedef {{ server: BenchServer, spec: () => import('autocannon').Options, expected: number }} VariantSpec a variant's server, load and expected status
 * @typedef {{ scenario: Measured, baseline: Measured, metrics?: Measured, ceiling?: Measured, noise: number, attempts: number,
 *   ratio: number, cpuRatio: number, metricsRatio?: number, metricsCpuRatio?: number, metricsCost?: number, ceilingRatio?: number, ofCeiling?: number }} MeasuredSet
 *   the quietest attempt at a set of variants, and its ratios
 * @typedef {'memorystore' | 'hmac'} PeerName
 * @typedef {{ guard?: MeasuredSet, send: MeasuredSet, verify: MeasuredSet, verifyOutcomes: Array<Record<string, number>>,
 *   peer?: Partial<Record<PeerName, { send: Measured, verify: Measured }>> }} Round
 * @typedef {{ rounds: Round[], verifyUsed: number[], verifyUsers: number }} StoreRun
 * @typedef {{ label: string, otherCores: number }} Noisy
 * @typedef {{ asked: boolean, waitedSeconds: number, loadAtStart: number | undefined, gaveUp: boolean }} Quiet
 * @typedef {{ rps: number, p50: number, p99: number }} PeerFigures
 * @typedef {{ ours: number, baseline: number, memorystore: PeerFigures, hmac: PeerFigures }} PeerFlow
 * @typedef {{
 *   info: ReturnType<typeof machine>, build: string, pgVersion?: string, stores: Record<string, StoreRun>,
 *   rows: Array<ReturnType<typeof ratioRow>>, metricRows?: Array<ReturnType<typeof metricsRow>>, ceilingRows?: Array<ReturnType<typeof ceilingRow>>,
 *   peer?: { send: PeerFlow, verify: PeerFlow }, sweep?: Awaited<ReturnType<typeof sweepBench>>, memory?: import('./memory.mjs').MemoryReport,
 *   floods?: Array<Awaited<ReturnType<typeof floodBench>>>, noisy: Noisy[], quiet?: Quiet, loadAtEnd?: number, verifyUsers: number, pgVerifyUsers?: number,
 *   elapsedSeconds: number }} Report
 *   the full run's figures; --render reads them back from bench/.tmp/results.json, written by an earlier run (hence the optional fields)
 */

const args = new Set(process.argv.slice(2));
const QUICK = args.has('--quick');
/** The old build of `--ab`: the last commit before the simplification pass. */
const OLD_REF = '15d3e33';
const DURATION = Number(process.env.BENCH_DURATION ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (QUICK ? 1 : 12));
const WARMUP_FIRST = QUICK ? 1 : 2;
const WARMUP = QUICK ? 1 : 0.5;
const CONNECTIONS = 10;
const VERIFY_USERS = QUICK ? 4000 : 20_000;
/** Fewer on PostgreSQL, where setting them up takes longer; its slower verifies need fewer. */
const PG_VERIFY_USERS = QUICK ? 2000 : 10_000;
/** One schema per run for the PostgreSQL store's tables and the sessions, dropped at the end. */
const PG_SCHEMA = `blockid_bench_${process.pid}_${Date.now()}`;
const MAX_ATTEMPTS = 10;
/** @type {Record<PeerName, number>} */
const PEER_USERS = { memorystore: 10, hmac: 2000 };
const STORES = (option('stores') ?? 'memory,redis,postgres').split(',');
const RUN_PREFIX = `blockid-bench:${process.pid}-${Date.now()}:`;
const started = Date.now();

const log = (/** @type {unknown[]} */ ...parts) => console.log(`[${((Date.now() - started) / 1000).toFixed(0).padStart(3)} s]`, ...parts);

/**
 * Warm-up, then the measured run; `spec` is an autocannon options object (plus bench-only helpers).
 *
 * @param {import('./lib.mjs').BenchServer} server
 * @param {import('autocannon').Options & { label: string }} spec
 * @param {number} round
 * @param {{ withRedis?: boolean, ourPids?: () => Promise<number[]> }} [context]
 */
async function measure(server, spec, round, { withRedis = false, ourPids } = {}) {
  const { url, requests, headers } = spec;
  const options = { url, connections: CONNECTIONS, ...(requests && { requests }), ...(headers && { headers }) };
  await cannon({ ...options, duration: round === 0 ? WARMUP_FIRST : WARMUP });
  // Looked up after the warm-up, once the server's pool has opened its connections.
  const extraPids = ourPids ? await ourPids() : [];
  const result = await cannon({ ...options, duration: DURATION }, { serverPid: server.child.pid, withRedis, extraPids });
  return { ...result, label: spec.label };
}

/** @param {Measured} result */
function noteNoise(result) {
  if (result.otherCores > NOISY) noisy.push({ label: result.label, otherCores: result.otherCores });
}

/** Other processes using more than this many cores on average during a measurement: noted in RESULTS.md. */
const NOISY = 0.1;
/** @type {Noisy[]} */
const noisy = [];
/** A pair is measured again when other processes used more than this (at most MAX_RETRIES times, within the budget). */
const RETRY_ABOVE = 0.25;
const MAX_RETRIES = 2;
let retryBudgetSeconds = Number(process.env.BENCH_RETRY_BUDGET ?? (QUICK ? 0 : 60));

/**
 * @param {string} label
 * @param {import('./lib.mjs').CannonResult} result
 * @param {number} expected
 */
function checkStatuses(label, result, expected) {
  const unexpected = Object.entries(result.statuses).filter(([code]) => Number(code) !== expected);
  if (unexpected.length > 0 || result.errors > 0 || result.timeouts > 0) {
    log(`  ! ${label}: unexpected answers ${JSON.stringify(result.statuses)}, errors ${result.errors}, timeouts ${result.timeouts}`);
  }
}

/** @param {number | null | undefined} value @param {number} [digits] */
const fmt = (value, digits = 0) =>
  value === undefined || value === null || Number.isNaN(value)
    ? '—'
    : value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/**
 * Measures a set of variants (a scenario, its baseline, and e.g. the scenario with metrics)
 * back to back, each after its warm-up; the order rotates with the round, so each variant goes
 * first once in three rounds. A set disturbed by other processes is measured again (within a
 * fixed time budget) and the quietest attempt kept.
 *
 * @param {string} store
 * @param {string} name
 * @param {number} round
 * @param {{ scenario: VariantSpec, baseline: VariantSpec, metrics?: VariantSpec, ceiling?: VariantSpec }} variants
 * @param {() => Promise<number[]>} [ourPids]
 * @returns {Promise<MeasuredSet>}
 */
async function measureSet(store, name, round, variants, ourPids) {
  const keys = /** @type {Variant[]} */ (Object.keys(variants));
  const order = keys.map((_, i) => /** @type {Variant} */ (keys[(i + round) % keys.length]));
  /** @type {{ measured: Map<Variant, Measured>, noise: number, attempts: number } | undefined} */
  let quietest;
  for (let attempt = 0; ; attempt++) {
    /** @type {Map<Variant, Measured>} in the order measured */
    const tried = new Map();
    for (const which of order) {
      const { server, spec, expected } = /** @type {VariantSpec} */ (variants[which]); // `which` is one of its keys
      const measured = await measure(server, { ...spec(), label: `${store} round ${round + 1} ${name} ${which}` }, round, {
        withRedis: store === 'redis',
        ourPids,
      });
      tried.set(which, measured);
      checkStatuses(`${store} ${name} ${which}`, measured, expected);
    }
    const noise = Math.max(...[...tried.values()].map((measured) => measured.otherCores));
    if (quietest === undefined || noise < quietest.noise) quietest = { measured: tried, noise, attempts: attempt + 1 };
    const cost = keys.length * (DURATION + WARMUP) + 1;
    if (quietest.noise <= RETRY_ABOVE || attempt >= MAX_RETRIES || retryBudgetSeconds < cost) break;
    retryBudgetSeconds -= cost;
    log(`  ${store} ${name}: other processes used ${fmt(noise, 2)} cores; measuring the set again`);
  }
  const { measured, noise, attempts } = quietest;
  for (const key of keys) {
    const result = measured.get(key);
    if (result !== undefined) noteNoise(result);
  }
  const scenario = measured.get('scenario');
  const baseline = measured.get('baseline');
  if (scenario === undefined || baseline === undefined) throw new Error(`${store} ${name}: the scenario or its baseline was not measured`);
  /** @param {Measured} result server CPU per request, NaN when unknown */
  const cpu = (result) => result.serverCpuUsPerRequest ?? Number.NaN;
  /** @type {MeasuredSet} */
  const out = {
    ...Object.fromEntries(measured),
    scenario,
    baseline,
    noise,
    attempts,
    ratio: scenario.rps / baseline.rps,
    cpuRatio: cpu(baseline) / cpu(scenario),
  };
  if (out.metrics) {
    out.metricsRatio = out.metrics.rps / out.baseline.rps;
    out.metricsCpuRatio = cpu(out.baseline) / cpu(out.metrics);
    // The direct figure: with metrics ÷ without, both measured in this set.
    out.metricsCost = out.metrics.rps / out.scenario.rps;
  }
  if (out.ceiling) {
    out.ceilingRatio = out.ceiling.rps / out.baseline.rps;
    out.ofCeiling = out.scenario.rps / out.ceiling.rps;
  }
  log(
    `${store} round ${round + 1} ${name}: ${fmt(out.scenario.rps)} vs ${fmt(out.baseline.rps)} req/s = ${fmt(out.ratio, 3)}x` +
      (out.metrics ? `; with metrics ${fmt(out.metrics.rps)} req/s = ${fmt(out.metricsRatio, 3)}x (${fmt(out.metricsCost, 3)} of without)` : '') +
      (out.ceiling ? `; ceiling ${fmt(out.ceiling.rps)} req/s = ${fmt(out.ceilingRatio, 3)}x (store at ${fmt(out.ofCeiling, 3)} of it)` : '') +
      `; server CPU ${keys.map((key) => fmt(measured.get(key)?.serverCpuUsPerRequest)).join(' / ')} µs/req (${keys.join(' / ')})` +
      (out.scenario.storeCpuUsPerRequest === undefined
        ? '; '
        : `, store CPU ${keys.map((key) => fmt(measured.get(key)?.storeCpuUsPerRequest)).join(' / ')}; `) +
      `others used ${keys.map((key) => fmt(measured.get(key)?.otherCores, 2)).join(' / ')} cores` +
      (out.attempts > 1 ? ` (quietest of ${out.attempts} attempts)` : ''),
  );
  return out;
}

/**
 * One store, ROUNDS rounds of: guard (not on PostgreSQL: the guard reads only the session),
 * send and verify, each against its baseline; on memory and Redis also send and verify with
 * metrics; on Redis and PostgreSQL also send and verify on the store's ceiling (memoryStore()
 * state plus one write round trip to that database per operation: bench/server.mjs
 * `storeProbe`), on memory the send on its ceiling (the least work a send must do, written
 * inline: bench/minimal-send.mjs). The peer rides along on memory (first round only).
 *
 * @param {string} dist
 * @param {string} store
 * @param {boolean} withPeer
 * @returns {Promise<StoreRun>}
 */
async function benchStore(dist, store, withPeer) {
  const prefix = `${RUN_PREFIX}${store}:`;
  const postgres = store === 'postgres';
  const withGuard = !postgres;
  const withMetrics = !postgres;
  const withCeiling = store !== 'memory';
  const verifyUsers = postgres ? PG_VERIFY_USERS : VERIFY_USERS;
  // PostgreSQL: one schema for the whole run, each server under its own table prefix.
  /** @param {string} name @param {string} tag @param {Record<string, unknown>} config */
  const server = (name, tag, config) =>
    startServer({
      name: `${store}/${name}`,
      dist,
      store,
      prefix: `${prefix}${tag}:`,
      ...config,
      ...(postgres && { pgSchema: PG_SCHEMA, tablePrefix: `${tag}_` }),
    });
  const pgAdmin = postgres ? await pgPool({ max: 2 }) : undefined;
  if (pgAdmin) await pgAdmin.query(`CREATE SCHEMA IF NOT EXISTS ${PG_SCHEMA}`);
  const ourPids = pgAdmin ? () => postgresPids(pgAdmin) : undefined;
  log(`${store}: starting servers`);
  // The guard pair gets two servers of its own, alike but for requireOtp(), so neither carries the
  // sessions and codes that the send and verify scenarios pile up (a bigger heap costs GC time).
  const guarded = withGuard ? await server('otp-guarded', 'a', { kind: 'otp', guard: true }) : undefined;
  const open = withGuard ? await server('otp-unguarded', 'b', { kind: 'otp', guard: false }) : undefined;
  const flows = await server('otp', 'c', { kind: 'otp', guard: true });
  const baseline = await server('baseline', 'd', { kind: 'baseline' });
  const metered = withMetrics ? await server('otp-metrics', 'm', { kind: 'otp', guard: true, metrics: true }) : undefined;
  const ceiling = withCeiling ? await server('otp-ceiling', 'p', { kind: 'otp', guard: true, storeProbe: 'write' }) : undefined;
  // Memory's send ceiling: the least work a send must do, written inline (bench/minimal-send.mjs).
  const minimal = store === 'memory' ? await server('minimal', 'n', { kind: 'minimal' }) : undefined;
  const sendCeiling = ceiling ?? minimal;
  /** @type {Record<PeerName, BenchServer> | undefined} */
  const peers = withPeer
    ? {
        memorystore: await startServer({ name: 'passwordless/memorystore', kind: 'passwordless', tokenStore: 'memorystore', store: 'memory' }),
        hmac: await startServer({ name: 'passwordless/hmac', kind: 'passwordless', tokenStore: 'hmac', store: 'memory' }),
      }
    : undefined;
  const servers = [guarded, open, flows, baseline, metered, ceiling, minimal, ...Object.values(peers ?? {})].filter((s) => s !== undefined);

  try {
    log(
      `${store}: ${withGuard ? 'verified sessions, ' : ''}${verifyUsers} users with a pending code${withMetrics ? ' (twice: with and without metrics)' : ''}, ${verifyUsers} baseline sessions`,
    );
    const guardedCookie = guarded ? await verifiedCookie(guarded.url, 'bench.user') : undefined;
    const openCookie = open ? await verifiedCookie(open.url, 'bench.user') : undefined;
    // As many requests in flight as the load has (more would only queue for PostgreSQL's per-IP counter row).
    const concurrency = postgres ? CONNECTIONS : 32;
    const verifySpec = cyclingVerifySpec(flows.url, '/otp/verify', await pendingCodeUsers(flows.url, { count: verifyUsers, tag: store, concurrency }), {
      budget: MAX_ATTEMPTS,
    });
    const meteredVerifySpec = metered
      ? cyclingVerifySpec(metered.url, '/otp/verify', await pendingCodeUsers(metered.url, { count: verifyUsers, tag: store, concurrency }), {
          budget: MAX_ATTEMPTS,
        })
      : undefined;
    const ceilingVerifySpec = ceiling
      ? cyclingVerifySpec(ceiling.url, '/otp/verify', await pendingCodeUsers(ceiling.url, { count: verifyUsers, tag: store, concurrency }), {
          budget: MAX_ATTEMPTS,
        })
      : undefined;
    const baselineVerifySpec = cyclingVerifySpec(baseline.url, '/write', await baselineSessions(baseline.url, { count: verifyUsers, tag: store, concurrency }));
    /** @type {Partial<Record<PeerName, ReturnType<typeof cyclingVerifySpec>>>} */
    const peerVerify = {};
    if (peers) {
      for (const [name, peerServer] of /** @type {Array<[PeerName, BenchServer]>} */ (Object.entries(peers))) {
        log(`${store}: ${PEER_USERS[name]} passwordless (${name}) users with a pending token`);
        const users = await pendingCodeUsers(peerServer.url, { count: PEER_USERS[name], tag: `pl-${name}`, path: '/pl/send', concurrency: 10 });
        peerVerify[name] = cyclingVerifySpec(peerServer.url, '/pl/verify', users);
      }
    }
    /** @type {Array<[BenchServer, ReturnType<typeof cyclingVerifySpec>]>} */
    const verifiers = [[flows, verifySpec]];
    if (metered && meteredVerifySpec) verifiers.push([metered, meteredVerifySpec]);
    if (ceiling && ceilingVerifySpec) verifiers.push([ceiling, ceilingVerifySpec]);

    /** @type {Round[]} */
    const rounds = [];
    for (let round = 0; round < ROUNDS; round++) {
      const result = /** @type {Round} */ ({}); // send, verify and verifyOutcomes are set below
      if (guarded && open && guardedCookie !== undefined && openCookie !== undefined) {
        result.guard = await measureSet(store, 'guard', round, {
          scenario: { server: guarded, spec: () => getSpec(guarded.url, '/data', guardedCookie), expected: 200 },
          baseline: { server: open, spec: () => getSpec(open.url, '/data', openCookie), expected: 200 },
        });
      }
      const sendTag = `${store}-${round}`;
      result.send = await measureSet(
        store,
        'send',
        round,
        {
          scenario: { server: flows, spec: () => uniqueSendSpec(flows.url, '/otp/send', sendTag), expected: 202 },
          ...(metered && { metrics: { server: metered, spec: () => uniqueSendSpec(metered.url, '/otp/send', sendTag), expected: 202 } }),
          ...(sendCeiling && { ceiling: { server: sendCeiling, spec: () => uniqueSendSpec(sendCeiling.url, '/otp/send', sendTag), expected: 202 } }),
          baseline: { server: baseline, spec: () => uniqueSendSpec(baseline.url, '/write', sendTag), expected: 202 },
        },
        ourPids,
      );
      for (const [verifier] of verifiers) await request(`${verifier.url}/__bench/stats/reset`, { method: 'POST' });
      result.verify = await measureSet(
        store,
        'verify',
        round,
        {
          scenario: { server: flows, spec: () => verifySpec, expected: 401 },
          ...(metered && meteredVerifySpec && { metrics: { server: metered, spec: () => meteredVerifySpec, expected: 401 } }),
          ...(ceiling && ceilingVerifySpec && { ceiling: { server: ceiling, spec: () => ceilingVerifySpec, expected: 401 } }),
          baseline: { server: baseline, spec: () => baselineVerifySpec, expected: 202 },
        },
        ourPids,
      );
      result.verifyOutcomes = [];
      for (const [verifier, spec] of verifiers) {
        const outcomes = (await request(`${verifier.url}/__bench/stats`)).body.failed;
        result.verifyOutcomes.push(outcomes);
        if (spec.exhausted()) log(`  ! ${store}: the verify cycle went past ${MAX_ATTEMPTS} guesses per user`);
        if (Object.keys(outcomes).some((reason) => reason !== 'wrong_code'))
          log(`  ! ${store}: verify outcomes other than wrong_code: ${JSON.stringify(outcomes)}`);
      }
      if (peers && round === 0) {
        result.peer = {};
        for (const name of /** @type {PeerName[]} */ (Object.keys(peers))) {
          const send = await measure(
            peers[name],
            { ...uniqueSendSpec(peers[name].url, '/pl/send', `pl-${name}-${round}`), label: `passwordless ${name} request` },
            round,
          );
          checkStatuses(`passwordless ${name} request`, send, 202);
          const peerSpec = peerVerify[name];
          if (peerSpec === undefined) throw new Error(`no verify spec for passwordless ${name}`);
          const verify = await measure(peers[name], { ...peerSpec, label: `passwordless ${name} accept` }, round);
          checkStatuses(`passwordless ${name} accept`, verify, 401);
          noteNoise(send);
          noteNoise(verify);
          result.peer[name] = { send, verify };
          log(`peer round ${round + 1} passwordless/${name}: request ${fmt(send.rps)} req/s, accept ${fmt(verify.rps)} req/s`);
        }
      }
      rounds.push(result);
    }
    return { rounds, verifyUsed: verifiers.map(([, spec]) => spec.used()), verifyUsers };
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    if (store === 'redis') log(`redis: removed ${await cleanRedis(prefix)} bench keys`);
    await pgAdmin?.end();
  }
}

/**
 * bench/memory.mjs in a child with --expose-gc; resolves with its JSON report.
 *
 * @param {string} dist
 * @returns {Promise<import('./memory.mjs').MemoryReport>}
 */
function memoryBench(dist) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', path.join(BENCH_DIR, 'memory.mjs'), dist], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (/** @type {string} */ text) => {
      out += text;
    });
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`bench/memory.mjs exited with ${code}`));
      resolve(JSON.parse(out.trim().split('\n').pop() ?? ''));
    });
  });
}

/**
 * A flood of sends to unknown users against a server with a stub session (so the heap is the
 * plugin's), heap (after gc) read at several points.
 *
 * @param {string} dist
 * @param {{ label: string, otp?: Record<string, unknown>, defaultOptions?: boolean, memoryStore?: Record<string, unknown>, trustProxy?: boolean,
 *   seconds: number, step: number, distinctIps: boolean }} options
 */
async function floodBench(dist, { label, otp = {}, defaultOptions = false, memoryStore, trustProxy = false, seconds, step, distinctIps }) {
  const server = await startServer(
    { name: 'flood', kind: 'flood', dist, store: 'memory', otp, defaultOptions, memoryStore, trustProxy },
    { execArgv: ['--expose-gc'] },
  );
  /** @type {Array<{ t: number, sends: number, heapMiB: number, statuses: Record<string, number>, rps?: number }>} */
  const points = [];
  try {
    /** @returns {Promise<number>} the server's heap used after gc (/__bench/heap) */
    const heap = async () => (await request(`${server.url}/__bench/heap`)).body.heapUsed;
    const base = await heap();
    points.push({ t: 0, sends: 0, heapMiB: 0, statuses: {} });
    let n = 0;
    let ip = 0;
    for (let t = step; t <= seconds; t += step) {
      const result = await cannon({
        url: server.url,
        connections: CONNECTIONS,
        duration: step,
        requests: [
          {
            method: 'POST',
            path: '/otp/send',
            headers: { 'content-type': 'application/json' },
            setupRequest: (req) => {
              n += 1;
              ip = (ip + 1) % 0x1000000;
              // A different /56 in the IPv6 documentation prefix each time (the per-IP quota keys IPv6 by /56).
              const forwarded = `2001:db8:${(ip >> 8).toString(16)}:${(ip & 255).toString(16)}00::1`;
              const headers = distinctIps ? { ...req.headers, 'x-forwarded-for': forwarded } : req.headers;
              return { ...req, headers, body: `{"username":"nobody-${n}"}` };
            },
          },
        ],
      });
      points.push({ t, sends: n, heapMiB: ((await heap()) - base) / 2 ** 20, statuses: result.statuses, rps: result.rps });
    }
    return { label, points };
  } finally {
    await server.stop();
  }
}

/**
 * Percentile `p` (0..100) of `values` (nearest rank); undefined for none.
 *
 * @param {number[]} values
 * @param {number} p
 */
function percentile(values, p) {
  if (values.length === 0) return undefined;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/**
 * autocannon with every response's time kept (ms since start, latency ms, status); `stop()` ends it early.
 *
 * @param {import('autocannon').Options} options
 */
function tracedLoad(options) {
  /** @type {Array<[number, number, number]>} */
  const samples = [];
  const t0 = performance.now();
  /** @type {import('autocannon').Instance | undefined} */
  let started;
  /** @type {Promise<import('autocannon').Result>} */
  const done = new Promise((resolve, reject) => {
    started = autocannon({ connections: CONNECTIONS, ...options }, (error, result) => (error ? reject(error) : resolve(result)));
  });
  const instance = started; // set by the executor, which has run by now
  if (instance === undefined) throw new Error('autocannon did not start');
  instance.on('response', (_client, status, _bytes, latencyMs) => samples.push([performance.now() - t0, latencyMs, status]));
  return { t0, samples, done, stop: () => instance.stop() };
}

/** The expired rows the sweep scenario writes, by table (100,000 in all), as expired sends leave them. */
const SWEEP_ROWS = QUICK ? { slots: 8000, users: 4000, counters: 8000 } : { slots: 40_000, users: 20_000, counters: 40_000 };
const SWEEP_INTERVAL_MS = 1000;

/**
 * PostgreSQL: expired rows are removed by the store's own bounded sweep (its timer, default
 * sweepBatchSize) while sends keep answering. One server whose store sweeps every second; sends
 * run throughout; after a quiet stretch the bench writes the expired rows with one INSERT per
 * table (one transaction), then counts what is left every 250 ms until nothing is.
 *
 * @param {string} dist
 */
async function sweepBench(dist) {
  const admin = await pgPool({ max: 2 });
  const tablePrefix = 's_';
  const table = (/** @type {string} */ name) => `${PG_SCHEMA}.${tablePrefix}${name}`;
  const server = await startServer({
    name: 'postgres/sweep',
    kind: 'otp',
    guard: false,
    dist,
    store: 'postgres',
    prefix: `${RUN_PREFIX}sweep:`,
    pgSchema: PG_SCHEMA,
    tablePrefix,
    sweepIntervalMs: SWEEP_INTERVAL_MS,
  });
  const expiredSql = `SELECT ${Object.keys(SWEEP_ROWS)
    .map((name) => `(SELECT count(*) FROM ${table(name)} WHERE expires_at < now())`)
    .join(' + ')} AS n`;
  const liveSlotsSql = `SELECT count(*) AS n FROM ${table('slots')} WHERE expires_at >= now()`;
  const insertSql = expiredRowsSql(table, SWEEP_ROWS);
  const total = Object.values(SWEEP_ROWS).reduce((a, b) => a + b, 0);
  const QUIET_MS = QUICK ? 2000 : 4000;
  const MAX_MS = 60_000;
  const now = () => performance.now();
  try {
    const load = tracedLoad({
      url: server.url,
      requests: uniqueSendSpec(server.url, '/otp/send', 'sweep').requests,
      duration: MAX_MS / 1000 + QUIET_MS / 1000 + 10,
    });
    const at = (/** @type {number} */ t) => t - load.t0;
    await sleep(QUIET_MS);
    const insertStart = at(now());
    await admin.query(insertSql);
    const committed = at(now());
    log(`postgres sweep: ${total.toLocaleString('en-US')} expired rows written in ${fmt(committed - insertStart)} ms`);
    /** @type {Array<[number, number]>} ms since the load started, expired rows left */
    const remaining = [];
    let gone;
    while (at(now()) - committed < MAX_MS) {
      const { rows } = await admin.query(expiredSql);
      const left = Number(rows[0].n);
      remaining.push([at(now()), left]);
      if (left === 0) {
        gone = at(now());
        break;
      }
      await sleep(250);
    }
    await sleep(QUIET_MS);
    const end = at(now());
    load.stop();
    const result = await load.done;
    /** @param {number} from @param {number} to ms since the load started */
    const window = (from, to) => {
      const inside = load.samples.filter(([t]) => t >= from && t < to);
      const latencies = inside.map(([, ms]) => ms);
      /** @type {Record<number, number>} */
      const statuses = {};
      for (const [, , status] of inside) statuses[status] = (statuses[status] ?? 0) + 1;
      return {
        from,
        to,
        requests: inside.length,
        rps: inside.length / ((to - from) / 1000),
        p50: percentile(latencies, 50),
        p99: percentile(latencies, 99),
        max: percentile(latencies, 100),
        statuses,
      };
    };
    const sweepEnd = gone ?? end;
    // One second of steady load is left out at the start (connections opening).
    const phases = {
      before: window(1000, insertStart),
      insert: window(insertStart, committed),
      sweep: window(committed, sweepEnd),
      after: window(sweepEnd, end),
    };
    const timeline = [];
    for (let t = committed; t < sweepEnd; t += 1000) {
      const point = [...remaining].reverse().find(([time]) => time < t + 1000);
      timeline.push({ ...window(t, t + 1000), remaining: point?.[1] });
    }
    const accepted = load.samples.filter(([, , status]) => status === 202).length;
    const liveSlots = Number((await admin.query(liveSlotsSql)).rows[0].n);
    const report = {
      rows: SWEEP_ROWS,
      total,
      intervalMs: SWEEP_INTERVAL_MS,
      insertMs: committed - insertStart,
      removedMs: gone === undefined ? undefined : gone - committed,
      phases,
      timeline,
      accepted,
      liveSlots,
      errors: result.errors,
      timeouts: result.timeouts,
    };
    log(
      `postgres sweep: ${gone === undefined ? `NOT all removed within ${MAX_MS / 1000} s` : `all removed ${fmt(report.removedMs)} ms after the commit`}; ` +
        `sends p50/p99 ${fmt(phases.before.p50, 1)}/${fmt(phases.before.p99, 1)} ms before, ${fmt(phases.sweep.p50, 1)}/${fmt(phases.sweep.p99, 1)} ms during the sweep; ` +
        `${accepted} sends accepted, ${liveSlots} live code rows kept`,
    );
    return report;
  } finally {
    await server.stop();
    await admin.end();
  }
}

/**
 * Targets (scenario ÷ baseline req/s) per store and scenario.
 *
 * @type {Record<string, { guard: number, send: number, verify: number }>}
 */
const TARGETS = {
  memory: { guard: 0.95, send: 0.9, verify: 0.8 },
  redis: { guard: 0.95, send: 0.85, verify: 0.9 },
  postgres: { guard: 0.95, send: 0.7, verify: 0.7 },
};
/** Metrics may cost at most 5 % (with ÷ without >= 0.95). */
const METRICS_TARGET = 0.95;

/** @param {number | undefined} value a figure, NaN when missing (as median() counts it) */
const orNaN = (value) => value ?? Number.NaN;

/**
 * The set `name` of each round (every round has the sets its first one has).
 *
 * @param {Round[]} rounds
 * @param {'guard' | 'send' | 'verify'} name
 */
function setsOf(rounds, name) {
  return rounds.map((round) => {
    const set = round[name];
    if (set === undefined) throw new Error(`a round without its ${name} set`);
    return set;
  });
}

/**
 * A set's `metrics` or `ceiling` measurement.
 *
 * @param {MeasuredSet} set
 * @param {'metrics' | 'ceiling'} variant
 */
function variantOf(set, variant) {
  const measured = set[variant];
  if (measured === undefined) throw new Error(`a set without its ${variant} measurement`);
  return measured;
}

/**
 * @param {string} store
 * @param {'send' | 'verify'} name
 * @param {Round[]} rounds
 */
function metricsRow(store, name, rounds) {
  const sets = setsOf(rounds, name);
  const costs = sets.map((set) => orNaN(set.metricsCost));
  const cost = median(costs);
  return {
    store,
    name,
    ratio: median(sets.map((set) => set.ratio)),
    metricsRatio: median(sets.map((set) => orNaN(set.metricsRatio))),
    rps: median(sets.map((set) => set.scenario.rps)),
    metricsRps: median(sets.map((set) => variantOf(set, 'metrics').rps)),
    cpu: median(sets.map((set) => orNaN(set.scenario.serverCpuUsPerRequest))),
    metricsCpu: median(sets.map((set) => orNaN(variantOf(set, 'metrics').serverCpuUsPerRequest))),
    cost,
    costs,
    target: METRICS_TARGET,
    met: cost >= METRICS_TARGET,
  };
}

/**
 * A store against its ceiling: what any design that keeps the state in that database could reach.
 *
 * @param {string} store
 * @param {'send' | 'verify'} name
 * @param {Round[]} rounds
 * @param {number} target
 */
function ceilingRow(store, name, rounds, target) {
  const sets = setsOf(rounds, name);
  const ofCeiling = sets.map((set) => orNaN(set.ofCeiling));
  const ceilingRatio = median(sets.map((set) => orNaN(set.ceilingRatio)));
  return {
    store,
    name,
    ratio: median(sets.map((set) => set.ratio)),
    ceilingRatio,
    ofCeiling: median(ofCeiling),
    ofCeilings: ofCeiling,
    rps: median(sets.map((set) => set.scenario.rps)),
    ceilingRps: median(sets.map((set) => variantOf(set, 'ceiling').rps)),
    target,
    reachable: ceilingRatio >= target,
  };
}

/**
 * @param {string} store
 * @param {'guard' | 'send' | 'verify'} name
 * @param {{ scenario: string, baseline: string }} label
 * @param {Round[]} rounds
 * @param {number} target
 */
function ratioRow(store, name, label, rounds, target) {
  const sets = setsOf(rounds, name);
  /** @param {'scenario' | 'baseline'} which @param {'rps' | 'p50' | 'p99' | 'serverCpuUsPerRequest' | 'storeCpuUsPerRequest'} field */
  const pick = (which, field) => median(sets.map((set) => orNaN(set[which][field])));
  const ratios = sets.map((set) => set.ratio);
  const ratio = median(ratios);
  return {
    store,
    name,
    label,
    scenario: {
      rps: pick('scenario', 'rps'),
      p50: pick('scenario', 'p50'),
      p99: pick('scenario', 'p99'),
      cpu: pick('scenario', 'serverCpuUsPerRequest'),
      storeCpu: pick('scenario', 'storeCpuUsPerRequest'),
    },
    baseline: {
      rps: pick('baseline', 'rps'),
      p50: pick('baseline', 'p50'),
      p99: pick('baseline', 'p99'),
      cpu: pick('baseline', 'serverCpuUsPerRequest'),
      storeCpu: pick('baseline', 'storeCpuUsPerRequest'),
    },
    ratio,
    ratios,
    cpuRatio: median(sets.map((set) => set.cpuRatio)),
    target,
    met: ratio >= target,
  };
}

/** @param {Report} report */
function quietLine(report) {
  const { quiet, loadAtEnd } = report;
  if (!quiet?.asked) return `Started without waiting for a quiet machine; 1-minute load average at the end: ${loadAtEnd ?? '—'}.`;
  const waited = `${fmt(quiet.waitedSeconds)} s`;
  const bench = `the bench itself took ${fmt(report.elapsedSeconds - quiet.waitedSeconds)} s`;
  return quiet.gaveUp
    ? `The machine did not get quiet (1-minute load average < 0.6) within 25 minutes of waiting: run anyway, at a load of ${quiet.loadAtStart}; ${bench}; 1-minute load at the end: ${loadAtEnd} (the bench's own load included).`
    : `Started once the 1-minute load average was under 0.6 (${quiet.loadAtStart}, after waiting ${waited}, counted in the whole run); ${bench}; 1-minute load at the end: ${loadAtEnd} (the bench's own load included).`;
}

/**
 * @param {Awaited<ReturnType<typeof sweepBench>>} sweep
 * @param {(...lines: string[]) => void} push
 */
function renderSweep(sweep, push) {
  const ms = (/** @type {number | undefined} */ value) => (value === undefined ? '—' : `${fmt(value, 1)}`);
  /** @param {string} name @param {(typeof sweep)['phases']['before']} p */
  const phase = (name, p) =>
    `| ${name} | ${fmt((p.to - p.from) / 1000, 1)} s | ${fmt(p.requests)} | ${fmt(p.rps)} | ${ms(p.p50)} | ${ms(p.p99)} | ${ms(p.max)} | ${JSON.stringify(p.statuses)} |`;
  push(
    '## PostgreSQL: expired rows removed by the bounded sweep while sends answer',
    '',
    `One server (\`postgresStore({ pool, sweepIntervalMs: ${sweep.intervalMs} })\`, default \`sweepBatchSize\` 1000: each sweep statement deletes at most 1,000 expired rows of one table, a run repeats it at most 100 times per table and lets requests in between; the interval is lowered from the default 60 s so the bench need not wait a minute). ` +
      `\`POST /otp/send\` runs throughout (as in the send scenario, 10 connections). After a quiet stretch the bench writes ${sweep.total.toLocaleString('en-US')} expired rows straight into the store's tables in one transaction ` +
      `(${Object.entries(sweep.rows)
        .map(([t, n]) => `${n.toLocaleString('en-US')} in \`${t}\``)
        .join(', ')}; expired 1 to 60 minutes ago), then counts the expired rows left every 250 ms.`,
    '',
    sweep.removedMs === undefined
      ? `**Not all expired rows were removed within the bench's 60 s.**`
      : `**All ${sweep.total.toLocaleString('en-US')} expired rows were gone ${fmt(sweep.removedMs / 1000, 2)} s after the INSERT committed** (the timer fires every ${sweep.intervalMs / 1000} s, so up to that much of it is waiting for the next run). The INSERT itself took ${fmt(sweep.insertMs / 1000, 2)} s.`,
    '',
    '| phase | length | sends answered | req/s | p50 ms | p99 ms | max ms | answers |',
    '|---|--:|--:|--:|--:|--:|--:|---|',
    phase('before (no expired rows)', sweep.phases.before),
    phase('the INSERT of the expired rows', sweep.phases.insert),
    phase('**sweeping** (commit → none left)', sweep.phases.sweep),
    phase('after', sweep.phases.after),
    '',
    'Second by second from the commit (expired rows left at the last count within the second):',
    '',
    '| from commit (s) | expired rows left | sends answered | p50 ms | p99 ms |',
    '|--:|--:|--:|--:|--:|',
  );
  const commit = sweep.phases.sweep.from;
  for (const point of sweep.timeline) {
    push(
      `| ${fmt((point.from - commit) / 1000, 1)} | ${point.remaining === undefined ? '—' : point.remaining.toLocaleString('en-US')} | ${fmt(point.requests)} | ${ms(point.p50)} | ${ms(point.p99)} |`,
    );
  }
  push(
    '',
    `Sends accepted during the whole load: ${sweep.accepted.toLocaleString('en-US')}; live code rows in \`slots\` afterwards: ${sweep.liveSlots.toLocaleString('en-US')} (the sweep deleted only expired rows); autocannon errors ${sweep.errors}, timeouts ${sweep.timeouts}.`,
    '',
  );
}

/** @param {Report} report */
function render(report) {
  const { info, build, stores, memory, floods } = report;
  /** @type {string[]} */
  const lines = [];
  const push = (/** @type {string[]} */ ...more) => lines.push(...more);
  push(
    `Generated by \`npm run bench\` (bench/run.mjs) on ${info.date}.`,
    '',
    `- Machine: ${info.cpus} × ${info.model} (os.cpus().length = ${info.cpus}), ${info.memory}, ${info.platform}`,
    `- Node ${info.node}; package built with tsup (ESM, target node20) from ${build}`,
    `- autocannon, ${CONNECTIONS} connections, ${DURATION} s per measurement after a ${WARMUP_FIRST} s (first round) / ${WARMUP} s warm-up, ` +
      `${ROUNDS} rounds; in each round a scenario, its baseline (and the scenario with metrics) are measured back to back, in an order that rotates so each goes first in turn; figures are medians over the rounds, the ratio is the median of the per-round ratios`,
    `- Each server is its own child process; the load generator is the parent process. Redis (127.0.0.1:6379) and PostgreSQL ${report.pgVersion ?? '15'} (127.0.0.1:5432, a schema of the run's own, dropped at the end) share the same ${info.cpus} cores.`,
    `- Whole run: ${report.elapsedSeconds.toFixed(0)} s. ${quietLine(report)}`,
    '',
    '## Scenario vs baseline',
    '',
    '| store | scenario | req/s | p50 ms | p99 ms | server CPU µs/req | store CPU µs/req | baseline | req/s | p50 ms | p99 ms | server CPU µs/req | store CPU µs/req | ratio (req/s) | per round | target | met | CPU-cost ratio |',
    '|---|---|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|---|--:|---|--:|',
  );
  for (const row of report.rows) {
    push(
      `| ${row.store} | ${row.label.scenario} | ${fmt(row.scenario.rps)} | ${fmt(row.scenario.p50)} | ${fmt(row.scenario.p99)} | ${fmt(row.scenario.cpu)} | ${fmt(row.scenario.storeCpu)} | ${row.label.baseline} | ${fmt(row.baseline.rps)} | ${fmt(row.baseline.p50)} | ${fmt(row.baseline.p99)} | ${fmt(row.baseline.cpu)} | ${fmt(row.baseline.storeCpu)} | **${fmt(row.ratio, 2)}×** | ${row.ratios.map((r) => fmt(r, 2)).join(' / ')} | ≥ ${row.target}× | ${row.met ? 'yes' : '**no**'} | ${fmt(row.cpuRatio, 2)}× |`,
    );
  }
  push(
    '',
    "*ratio (req/s)* is the target figure: scenario throughput ÷ baseline throughput. *server CPU µs/req* is the server process's user + system CPU time (all threads, from /proc) divided by the requests it answered (the Node process only); *store CPU µs/req* is the same for Redis, or for PostgreSQL (the backends of the bench's own connections and the server's background processes: WAL writer, checkpointer, autovacuum), on the same 2 cores; *CPU-cost ratio* = baseline CPU per request ÷ scenario CPU per request, a figure that other load on the machine disturbs less than req/s does.",
    '',
  );
  const metricRows = report.metricRows ?? [];
  if (metricRows.length > 0) {
    push(
      '## Metrics enabled',
      '',
      'The same send and verify scenarios on a third server, alike but for `metrics: prometheusMetrics({ registry: new Registry() })` (blockid-otp/metrics, a fresh prom-client registry, never scraped), measured in the same sets as the rows above.',
      '',
      '| store | scenario | ratio without metrics | ratio with metrics | req/s without | req/s with | server CPU µs/req without | with | with ÷ without (req/s) | per round | target | met |',
      '|---|---|--:|--:|--:|--:|--:|--:|--:|---|--:|---|',
    );
    for (const row of metricRows) {
      push(
        `| ${row.store} | ${row.name} | ${fmt(row.ratio, 2)}× | ${fmt(row.metricsRatio, 2)}× | ${fmt(row.rps)} | ${fmt(row.metricsRps)} | ${fmt(row.cpu)} | ${fmt(row.metricsCpu)} | **${fmt(row.cost, 2)}×** | ${row.costs.map((r) => fmt(r, 2)).join(' / ')} | ≥ ${row.target}× | ${row.met ? 'yes' : '**no**'} |`,
      );
    }
    push('', "*with ÷ without* is the median of the per-round quotients of the two servers' throughputs (metrics cost ≤ 5 % when it is ≥ 0.95×).", '');
  }
  const ceilingRows = report.ceilingRows ?? [];
  if (ceilingRows.length > 0) {
    push(
      '## Each store against its ceiling',
      '',
      "A fourth server in the same sets keeps the codes and quotas in `memoryStore()` and makes, before each send and verify, one round trip to the store's database on the app's own connection: an upsert of one row of the request's own in its own transaction on PostgreSQL, an `INCR` of one key of its own on Redis (`storeProbe: 'write'` in bench/server.mjs). It is the cheapest way to keep shared state in that database in a round trip of its own beside the session's: a real store pays that round trip too, plus its decision made in the database instead of in Node. *ceiling ÷ baseline* shows what such a design can reach at best (a store can pass it only where its script costs less than memoryStore()'s decision in Node, as a Redis script can), and *store ÷ ceiling* how close this one comes. On memory the send's ceiling is a fourth server whose `POST /otp/send` is written inline with the least work a send must do and nothing else (bench/minimal-send.mjs: the same session and JSON body as the baseline; keyed hashes of the username, the session binding, the code and each new destination; the cooldown and five quota counters checked before any is counted; one record per user; the 202, then two messages composed for no-op senders): a yardstick for what any design of the send could reach in one process, not a product.",
      '',
      '| store | scenario | store ÷ baseline | ceiling ÷ baseline | store ÷ ceiling | per round | req/s store | req/s ceiling | target (÷ baseline) | ceiling meets the target |',
      '|---|---|--:|--:|--:|---|--:|--:|--:|---|',
    );
    for (const row of ceilingRows) {
      push(
        `| ${row.store} | ${row.name} | ${fmt(row.ratio, 2)}× | ${fmt(row.ceilingRatio, 2)}× | **${fmt(row.ofCeiling, 2)}×** | ${row.ofCeilings.map((r) => fmt(r, 2)).join(' / ')} | ${fmt(row.rps)} | ${fmt(row.ceilingRps)} | ≥ ${row.target}× | ${row.reachable ? 'yes' : '**no**'} |`,
      );
    }
    push('', '*store ÷ ceiling* and *ceiling ÷ baseline* are medians of per-round quotients.', '');
  }
  if (report.noisy.length > 0) {
    push(
      `Measurements during which other processes on the machine used more than ${NOISY} of a core on average (the figures above include them): ` +
        report.noisy.map((n) => `${n.label} (${fmt(n.otherCores, 2)})`).join('; ') +
        '.',
      '',
    );
  } else {
    push(`No measurement saw other processes use more than ${NOISY} of a core on average.`, '');
  }
  push('Scenarios:', '');
  push(
    "- **stores**: *memory*: `memoryStore()`, sessions in express-session's MemoryStore; *redis*: `redisStore({ client })`, sessions in Redis (connect-redis); *postgres*: `postgresStore({ pool })` from blockid-otp/postgres, sessions in PostgreSQL (connect-pg-simple), one `pg` Pool (max 20) for both, as the example app does with `DATABASE_URL`. Each baseline keeps its sessions where its scenario does.",
    '- **guard**: `GET /data` behind `requireOtp()` with a session verified by a real send + verify, vs the same app (plugin mounted, same verified session) with the route unguarded. Not run on PostgreSQL (the guard reads only the session).',
    '- **send**: `POST /otp/send`, a new username on every request and no cookie, so every request is a first send from a fresh session (a new session binding, its own code slot, no cooldown to meet): `resolveUser` returns an SMS number and an email address for everyone (both channels, no-op senders), quotas raised to 1,000,000, `smsPerHour`/`smsPerDay` off, so the store decides a whole plan (cooldown, per-username quota, per-IP counter, per-destination counters for both targets, per-prefix counter) and keeps the code; vs `POST /write`: `express.json()` and one session write, same body, same fresh sessions.',
    `- **verify**: \`POST /otp/verify\` with a wrong code, cycling through ${report.verifyUsers.toLocaleString('en-US')} users (${(report.pgVerifyUsers ?? report.verifyUsers).toLocaleString('en-US')} on PostgreSQL) that each have a pending code sent from their own session (the request carries that session's cookie, so the guess is compared against that session's code); \`maxAttempts\` 10, \`failedVerifications\` 91 (the most the package accepts with \`maxAttempts\` 10: it keeps failedVerifications + maxAttempts − 1 within NIST’s 100), \`maxConsecutiveFailures\` 100: a code burns after 10 guesses, before either lock, and the cycle gives no user 10; vs \`POST /write\` on the baseline cycling through as many existing sessions (load + write).`,
    '',
  );
  for (const [store, data] of Object.entries(stores)) {
    const outcomes = data.rounds.map((r) => r.verifyOutcomes.map((o) => JSON.stringify(o)).join(' + '));
    const names = ['without metrics', ...(data.rounds[0]?.verify.metrics ? ['with metrics'] : []), ...(data.rounds[0]?.verify.ceiling ? ['ceiling'] : [])];
    const servers = names.length > 1 ? ` (${names.join(' + ')})` : '';
    push(
      `Verify outcomes on ${store} (from the plugin's \`failed\` events, per round${servers}, warm-ups included): ${outcomes.join(', ')}; ` +
        `guesses used ${data.verifyUsed.map((n) => n.toLocaleString('en-US')).join(' + ')} of a budget of ${(data.verifyUsers * MAX_ATTEMPTS).toLocaleString('en-US')}${data.verifyUsed.length > 1 ? ' each' : ''}.`,
      '',
    );
  }
  if (report.sweep) renderSweep(report.sweep, push);

  if (report.peer) {
    const { peer } = report;
    push(
      '## Peer: the `passwordless` package (memory)',
      '',
      "`passwordless` 1.1.3 `requestToken` / `acceptToken` (with `allowPost`), numeric 6-digit tokens (`numberToken: { max: 1e6 }`), express-session, express.json(), measured in the first round of the memory rows above (once, to keep the run short), against the same baseline; the blockid-otp and baseline figures here are that round's.",
      '- *memorystore*: its own memory TokenStore, `passwordless-memorystore` 0.0.1, which hashes tokens with bcryptjs (cost 10, pure JS).',
      `- *hmac*: a bench-written TokenStore (bench/server.mjs) with HMAC-SHA256 and a constant-time compare, the hashing blockid-otp does, to show the framework's own cost. Accept cycles through ${PEER_USERS.memorystore} (memorystore) / ${PEER_USERS.hmac} (hmac) users with a pending token and wrong tokens (passwordless has no attempt budget).`,
      '',
      '| flow | blockid-otp req/s | passwordless memorystore req/s (p50 / p99 ms) | blockid-otp ÷ memorystore | passwordless hmac req/s (p50 / p99 ms) | blockid-otp ÷ hmac | baseline req/s | memorystore ÷ baseline | hmac ÷ baseline |',
      '|---|--:|--:|--:|--:|--:|--:|--:|--:|',
    );
    for (const flow of /** @type {const} */ (['send', 'verify'])) {
      const p = peer[flow];
      push(
        `| ${flow === 'send' ? 'send / requestToken' : 'verify (wrong code) / acceptToken'} | ${fmt(p.ours)} | ${fmt(p.memorystore.rps, 1)} (${fmt(p.memorystore.p50)} / ${fmt(p.memorystore.p99)}) | **${fmt(p.ours / p.memorystore.rps, 1)}×** | ${fmt(p.hmac.rps)} (${fmt(p.hmac.p50)} / ${fmt(p.hmac.p99)}) | **${fmt(p.ours / p.hmac.rps, 2)}×** | ${fmt(p.baseline)} | ${fmt(p.memorystore.rps / p.baseline, 3)}× | ${fmt(p.hmac.rps / p.baseline, 2)}× |`,
      );
    }
    push('');
  }

  if (memory) {
    const kib = (/** @type {number | undefined} */ bytes) => `${fmt(bytes)} B`;
    const mib = (/** @type {number | undefined} */ bytes) => `${fmt(bytes === undefined ? undefined : bytes / 2 ** 20, 1)} MiB`;
    push(
      '## Memory (`memoryStore()`)',
      '',
      `Run in a child process with \`--expose-gc\`; heap used after \`gc()\`, before and after. ${memory.count.toLocaleString('en-US')} sends each.`,
      '',
      '| what | heap growth | per pending code |',
      '|---|--:|--:|',
      `| store only: \`memoryStore().send(plan)\`, admitted plans of a first send from a new session, without quota counters (code record + cooldown marker) | ${mib(memory.storeOnly?.bytes)} | **${kib(memory.storeOnly?.perCode)}** |`,
      `| full send: \`otp.generateOtp()\` to SMS + email (record, cooldown, and the per-username, per-destination and per-prefix quota counters, all of which live until their window ends) | ${mib(memory.service?.bytes)} | **${kib(memory.service?.perCode)}** |`,
      '',
      'Expiry (ttl 1 s, cooldown 1 s):',
      '',
      '| case | heap after the sends | after waiting | waited |',
      '|---|--:|--:|--:|',
    );
    for (const sweep of memory.sweeps) push(`| ${sweep.label} | ${mib(sweep.afterSends)} | ${mib(sweep.afterWait)} | ${fmt(sweep.waitedMs)} ms |`);
    push('');
  }
  if (floods) {
    push(
      '### Flood of sends to unknown users',
      '',
      "`POST /otp/send` with a new unknown username on every request (`resolveUser` returns null, so a decoy record is issued), 10 connections, against a server whose session is a stub (nothing kept), so the heap growth is the plugin's. Heap growth over the start, after `gc()`:",
      '',
    );
    for (const flood of floods) {
      push(`**${flood.label}**`, '', '| t (s) | sends so far | heap growth | answers in this step |', '|--:|--:|--:|---|');
      for (const point of flood.points)
        push(`| ${point.t} | ${point.sends.toLocaleString('en-US')} | ${fmt(point.heapMiB, 1)} MiB | ${JSON.stringify(point.statuses)} |`);
      push('');
    }
  }
  return lines.join('\n');
}

/** The full run's section of bench/RESULTS.md (bench/lib.mjs writeResultsSection). */
const FULL_RUN_SECTION = 'full-run';

async function main() {
  const ab = process.argv.slice(2).find((arg) => arg === '--ab' || arg.startsWith('--ab='));
  if (ab !== undefined) {
    // The A/B of two builds is bench/ab.mjs's: run it with the rest of the options.
    const ref = ab.includes('=') ? ab.slice('--ab='.length) : OLD_REF;
    const rest = process.argv.slice(2).filter((arg) => arg !== ab);
    const child = spawn(process.execPath, [path.join(BENCH_DIR, 'ab.mjs'), `--old=${ref}`, ...rest], { stdio: 'inherit' });
    const code = await new Promise((resolve) => child.on('exit', (exitCode) => resolve(exitCode ?? 1)));
    process.exit(code);
  }
  if (args.has('--render')) {
    // Re-renders the full run's section of bench/RESULTS.md from its figures (bench/.tmp/results.json), e.g. after changing render().
    const report = JSON.parse(readFileSync(path.join(BENCH_DIR, '.tmp', 'results.json'), 'utf8'));
    writeResultsSection(FULL_RUN_SECTION, render(report));
    log('re-rendered bench/RESULTS.md from bench/.tmp/results.json');
    return;
  }
  const info = machine();
  log(`${info.cpus} × ${info.model}, Node ${info.node}`);
  if (args.has('--wait-quiet')) await waitForQuiet();
  const { dist, label: build } = buildDist({ worktree: args.has('--worktree'), srcRoot: option('src') });
  log(`built ${build}`);

  let pgVersion;
  if (STORES.includes('postgres')) {
    const admin = await pgPool({ max: 1 });
    pgVersion = (await admin.query('SHOW server_version')).rows[0].server_version.split(' ')[0];
    await admin.end();
  }

  /** @type {Record<string, StoreRun>} */
  const stores = {};
  for (const store of STORES) stores[store] = await benchStore(dist, store, store === 'memory' && !args.has('--skip-peer'));

  const rows = [];
  const metricRows = [];
  const ceilingRows = [];
  for (const [store, data] of Object.entries(stores)) {
    const target = TARGETS[store];
    const first = data.rounds[0];
    if (target === undefined) throw new Error(`no targets for store ${store}`);
    if (first === undefined) throw new Error('no rounds were measured (BENCH_ROUNDS must be at least 1)');
    if (first.guard) rows.push(ratioRow(store, 'guard', { scenario: '`requireOtp()` GET', baseline: 'unguarded GET' }, data.rounds, target.guard));
    rows.push(ratioRow(store, 'send', { scenario: '`POST /otp/send`', baseline: 'JSON + session write' }, data.rounds, target.send));
    rows.push(ratioRow(store, 'verify', { scenario: '`POST /otp/verify` (wrong)', baseline: 'JSON + session write' }, data.rounds, target.verify));
    for (const name of /** @type {const} */ (['send', 'verify'])) if (first[name].metrics) metricRows.push(metricsRow(store, name, data.rounds));
    for (const name of /** @type {const} */ (['send', 'verify'])) if (first[name].ceiling) ceilingRows.push(ceilingRow(store, name, data.rounds, target[name]));
  }

  let peer;
  if (stores.memory?.rounds[0]?.peer) {
    // The peer is measured in the first round only: the blockid-otp figures beside it are that round's.
    const rounds = stores.memory.rounds.filter((r) => r.peer);
    /**
     * Medians of the passwordless server `name`'s `flow` measurements.
     *
     * @param {PeerName} name
     * @param {'send' | 'verify'} flow
     * @returns {PeerFigures}
     */
    const peerFigures = (name, flow) => {
      const measured = rounds.map((r) => {
        const figures = r.peer?.[name];
        if (figures === undefined) throw new Error(`a round without passwordless ${name}`);
        return figures[flow];
      });
      return { rps: median(measured.map((m) => m.rps)), p50: median(measured.map((m) => m.p50)), p99: median(measured.map((m) => m.p99)) };
    };
    /** @param {'send' | 'verify'} ours @param {'send' | 'verify'} theirs @returns {PeerFlow} */
    const flow = (ours, theirs) => ({
      ours: median(rounds.map((r) => r[ours].scenario.rps)),
      baseline: median(rounds.map((r) => r[ours].baseline.rps)),
      memorystore: peerFigures('memorystore', theirs),
      hmac: peerFigures('hmac', theirs),
    });
    peer = { send: flow('send', 'send'), verify: flow('verify', 'verify') };
  }

  let sweep;
  if (STORES.includes('postgres') && !args.has('--skip-sweep')) {
    log('postgres: expired rows removed by the bounded sweep while sends answer');
    sweep = await sweepBench(dist);
  }

  let memory;
  let floods;
  if (!args.has('--skip-memory')) {
    log('memory: bytes per pending code and expiry');
    memory = await memoryBench(dist);
    log('memory: floods of sends to unknown users');
    const seconds = QUICK ? 4 : 12;
    const step = QUICK ? 2 : 3;
    floods = [
      await floodBench(dist, {
        label: 'default options, one client IP (the per-IP quota of 30 per hour answers 429)',
        defaultOptions: true,
        seconds,
        step,
        distinctIps: false,
      }),
      await floodBench(dist, {
        label:
          'default options, a new client IP on every request (X-Forwarded-For, trust proxy 1): nothing refuses, every entry lives its full window (record 300 s, per-username and per-IP counters 3600 s)',
        defaultOptions: true,
        trustProxy: true,
        seconds,
        step,
        distinctIps: true,
      }),
      await floodBench(dist, {
        label:
          'short lifetimes (ttl 2 s, cooldown 1 s, every quota window 2 s, sweepIntervalMs 500), a new IP on every request: memory levels off at about rate × lifetime',
        otp: {
          ttlSeconds: 2,
          resendCooldownSeconds: 1,
          limits: {
            sendsPerUsername: { points: 1_000_000, windowSeconds: 2 },
            sendsPerDestination: { points: 1_000_000, windowSeconds: 2 },
            sendsPerIp: { points: 1_000_000, windowSeconds: 2 },
            smsPerPrefix: { points: 1_000_000, windowSeconds: 2 },
            smsPerHour: 0,
            smsPerDay: 0,
            failedVerifications: 91,
            lockSeconds: 2,
          },
        },
        memoryStore: { sweepIntervalMs: 500 },
        trustProxy: true,
        seconds,
        step,
        distinctIps: true,
      }),
    ];
  }

  await dropSchema();
  const report = {
    info,
    build,
    pgVersion,
    stores,
    rows,
    metricRows,
    ceilingRows,
    peer,
    sweep,
    memory,
    floods,
    noisy,
    quiet,
    loadAtEnd: loadAverage(),
    verifyUsers: VERIFY_USERS,
    pgVerifyUsers: PG_VERIFY_USERS,
    elapsedSeconds: (Date.now() - started) / 1000,
  };
  const markdown = render(report);
  console.log(`\n${markdown}`);
  if (!args.has('--no-write') && option('src') === undefined) {
    writeResultsSection(FULL_RUN_SECTION, markdown);
    writeFileSync(path.join(BENCH_DIR, '.tmp', 'results.json'), JSON.stringify(report, null, 2));
    log('wrote bench/RESULTS.md');
  }
  log(`done in ${report.elapsedSeconds.toFixed(0)} s`);
}

/** The machine's 1-minute load average. */
function loadAverage() {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}

/** `--wait-quiet`: polls the load every 30 s until the 1-minute figure is under 0.6, for at most 25 minutes. */
const quiet = { asked: args.has('--wait-quiet'), waitedSeconds: 0, loadAtStart: /** @type {number | undefined} */ (undefined), gaveUp: false };
async function waitForQuiet() {
  const QUIET_LOAD = 0.6;
  const GIVE_UP_S = 25 * 60;
  const from = Date.now();
  for (;;) {
    const load = loadAverage();
    quiet.waitedSeconds = (Date.now() - from) / 1000;
    if (load < QUIET_LOAD) break;
    if (quiet.waitedSeconds >= GIVE_UP_S) {
      quiet.gaveUp = true;
      log(`machine still busy (1-minute load ${load}) after ${fmt(quiet.waitedSeconds / 60)} minutes: running anyway`);
      break;
    }
    log(`waiting for a quiet machine: 1-minute load ${load} (>= ${QUIET_LOAD})`);
    await sleep(30_000);
  }
  quiet.loadAtStart = loadAverage();
  log(`starting at 1-minute load ${quiet.loadAtStart} after waiting ${fmt(quiet.waitedSeconds)} s`);
}

/** Drops the run's PostgreSQL schema (tables, functions, sessions), if it was made. */
async function dropSchema() {
  if (!STORES.includes('postgres')) return;
  const admin = await pgPool({ max: 1 });
  try {
    await admin.query(`DROP SCHEMA IF EXISTS ${PG_SCHEMA} CASCADE`);
  } finally {
    await admin.end();
  }
}

let interrupted = false;
process.on('SIGINT', () => {
  if (interrupted) process.exit(130);
  interrupted = true;
  log('interrupted: cleaning Redis keys, dropping the PostgreSQL schema and stopping');
  Promise.allSettled([cleanRedis(RUN_PREFIX), dropSchema()]).finally(() => process.exit(130));
});

main().catch(async (error) => {
  console.error(error);
  await Promise.allSettled([cleanRedis(RUN_PREFIX), dropSchema()]);
  process.exit(1);
});
