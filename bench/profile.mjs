#!/usr/bin/env node
/**
 * Where the time goes: runs one server under `node --cpu-prof`, drives one scenario with
 * autocannon, and writes the top functions by self time (samples taken during the load only,
 * set-up cut out) to bench/PROFILE.md. The raw .cpuprofile files stay in bench/.tmp/prof.
 *
 *   node bench/profile.mjs [--stores=memory,redis,postgres] [--scenarios=send,verify,guard] [--seconds=10] [--worktree] [--metrics]
 *   (--out=FILE: write there instead of bench/PROFILE.md;
 *    --resummarize: rewrite PROFILE.md from the profiles already in bench/.tmp/prof;
 *    --src=DIR: profile an experimental copy DIR/src instead of HEAD;
 *    --against-minimal: on memory, compare the send with its ceiling, the inline send of
 *    bench/minimal-send.mjs, instead of the baseline: the "baseline" columns are then its figures)
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BENCH_DIR, TMP, buildDist, cannon, cleanRedis, machine, pgPool, postgresPids, startServer } from './lib.mjs';
import { baselineSessions, cyclingVerifySpec, getSpec, pendingCodeUsers, uniqueSendSpec, verifiedCookie } from './scenarios.mjs';

const argv = process.argv.slice(2);
const option = (name, fallback) => argv.find((arg) => arg.startsWith(`--${name}=`))?.split('=')[1] ?? fallback;
const STORES = option('stores', 'memory,redis').split(',');
const SCENARIOS = option('scenarios', 'send,verify').split(',');
const SECONDS = Number(option('seconds', '10'));
const TOP = 25;
const PREFIX = `blockid-bench:profile-${process.pid}:`;
const PG_SCHEMA = `blockid_profile_${process.pid}`;
/** --metrics: the blockid-otp server gets prometheusMetrics({ registry: new Registry() }). */
const METRICS = argv.includes('--metrics');
const AGAINST_MINIMAL = argv.includes('--against-minimal');
let pgAdmin;

const mark = (server) =>
  new Promise((resolve) => {
    const onMessage = (message) => {
      if (message?.type !== 'mark') return;
      server.child.off('message', onMessage);
      resolve(message.us);
    };
    server.child.on('message', onMessage);
    server.child.send('mark');
  });

/** Runs `kind` under --cpu-prof; returns the profile's samples between the two marks around the load. */
async function profileRun(label, config, prepare) {
  const dir = path.join(TMP, 'prof', label.replace(/[^a-z0-9]+/gi, '-'));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const server = await startServer(config, { execArgv: ['--cpu-prof', `--cpu-prof-dir=${dir}`] });
  let window;
  let result;
  try {
    const spec = await prepare(server.url);
    await cannon({ url: spec.url, requests: spec.requests, headers: spec.headers, duration: 2 }); // warm-up
    const from = await mark(server);
    const extraPids = config.store === 'postgres' ? await postgresPids(pgAdmin) : [];
    result = await cannon({ url: spec.url, requests: spec.requests, headers: spec.headers, duration: SECONDS }, { serverPid: server.child.pid, withRedis: config.store === 'redis', extraPids });
    const to = await mark(server);
    window = { from, to };
  } finally {
    await server.stop();
  }
  writeFileSync(path.join(dir, 'run.json'), JSON.stringify({ window, result }));
  return loadRun(label);
}

/** A finished run from bench/.tmp/prof (with --resummarize, nothing is run again). */
function loadRun(label) {
  const dir = path.join(TMP, 'prof', label.replace(/[^a-z0-9]+/gi, '-'));
  const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'));
  const { window, result } = JSON.parse(readFileSync(path.join(dir, 'run.json'), 'utf8'));
  return { profile: JSON.parse(readFileSync(path.join(dir, file), 'utf8')), window, result, file: path.join(dir, file) };
}

function category(url, name) {
  if (name === '(garbage collector)') return 'GC';
  if (name === '(idle)' || name === '(program)' || name === '(root)') return name;
  if (!url) return 'V8 / native';
  if (url.includes('/bench/.tmp/')) return 'blockid-otp';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1];
  if (url.startsWith('node:')) return url.replace(/^node:internal\/(crypto|streams|process|webstreams)\/.*/, 'node:internal/$1');
  if (url.includes('/bench/')) return 'bench server';
  return url;
}

function summarize(profile, window) {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const key = (node) => {
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url ? `${category(url, functionName)} ${path.basename(url)}:${lineNumber + 1}` : '';
    return `${functionName || '(anonymous)'}\u0000${file}`;
  };
  const self = new Map();
  const inclusive = new Map();
  const categories = new Map();
  let time = profile.startTime;
  let total = 0;
  let idle = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    time += profile.timeDeltas[i] ?? 0;
    const next = i + 1 < profile.samples.length ? (profile.timeDeltas[i + 1] ?? 0) : 0;
    if (window && (time < window.from || time > window.to)) continue;
    const node = nodes.get(profile.samples[i]);
    const us = Math.max(next, 0);
    const name = node.callFrame.functionName;
    if (name === '(idle)') {
      idle += us;
      continue;
    }
    total += us;
    const k = key(node);
    self.set(k, (self.get(k) ?? 0) + us);
    const cat = category(node.callFrame.url, name);
    categories.set(cat, (categories.get(cat) ?? 0) + us);
    const seen = new Set();
    for (let id = node.id; id !== undefined; id = parent.get(id)) {
      const frame = nodes.get(id);
      const fk = key(frame);
      if (seen.has(fk)) continue;
      seen.add(fk);
      inclusive.set(fk, (inclusive.get(fk) ?? 0) + us);
    }
  }
  return { self, inclusive, categories, total, idle };
}

const label = (k) => {
  const [name, file] = k.split('\u0000');
  return `\`${name}\`${file ? ` (${file})` : ''}`;
};

function table(entries, total, requests, heading) {
  const lines = [`| ${heading} | ms | % of busy | µs per request |`, '|---|--:|--:|--:|'];
  for (const [k, us] of entries) lines.push(`| ${label(k)} | ${(us / 1000).toFixed(0)} | ${((us / total) * 100).toFixed(1)} | ${(us / requests).toFixed(1)} |`);
  return lines.join('\n');
}

/** Per-request difference scenario − baseline, for categories or functions, biggest first. */
function diffTable(a, b, heading, limit, format = (k) => k) {
  const keys = new Set([...a.map.keys(), ...b.map.keys()]);
  const rows = [...keys]
    .map((k) => [k, (a.map.get(k) ?? 0) / a.requests, (b.map.get(k) ?? 0) / b.requests])
    .sort((x, y) => y[1] - y[2] - (x[1] - x[2]))
    .slice(0, limit);
  return [`| ${heading} | scenario µs/req | baseline µs/req | extra µs/req |`, '|---|--:|--:|--:|', ...rows.map(([k, x, y]) => `| ${format(k)} | ${x.toFixed(1)} | ${y.toFixed(1)} | **${(x - y).toFixed(1)}** |`)].join('\n');
}

async function main() {
  if (STORES.includes('postgres')) {
    pgAdmin = await pgPool({ max: 2 });
    await pgAdmin.query(`CREATE SCHEMA IF NOT EXISTS ${PG_SCHEMA}`);
  }
  const { dist, label: build } = buildDist({ worktree: argv.includes('--worktree'), srcRoot: option('src', undefined) });
  const info = machine();
  const sections = [];
  for (const store of STORES) {
    for (const scenario of SCENARIOS) {
      const prefix = `${PREFIX}${store}-${scenario}:`;
      const runs = [];
      const pg = (tag) => (store === 'postgres' ? { pgSchema: PG_SCHEMA, tablePrefix: `${scenario}_${tag}_` } : {});
      const otpConfig = { name: `profile ${store} ${scenario}`, kind: 'otp', guard: true, metrics: METRICS, dist, store, prefix, ...pg('a') };
      const baseConfig = { name: `profile ${store} baseline`, kind: scenario === 'guard' ? 'otp' : 'baseline', guard: false, dist, store, prefix: `${prefix}b:`, ...pg('b') };
      if (scenario === 'send') {
        runs.push(['blockid-otp POST /otp/send', otpConfig, async (url) => uniqueSendSpec(url, '/otp/send', 'profile')]);
        if (AGAINST_MINIMAL && store === 'memory') runs.push(['inline minimal send POST /otp/send', { ...baseConfig, name: 'profile memory minimal', kind: 'minimal' }, async (url) => uniqueSendSpec(url, '/otp/send', 'profile')]);
        else runs.push(['baseline POST /write', baseConfig, async (url) => uniqueSendSpec(url, '/write', 'profile')]);
      } else if (scenario === 'verify') {
        runs.push(['blockid-otp POST /otp/verify (wrong code)', otpConfig, async (url) => cyclingVerifySpec(url, '/otp/verify', await pendingCodeUsers(url, { count: 8000, tag: 'p', concurrency: 10 }))]);
        runs.push(['baseline POST /write (existing sessions)', baseConfig, async (url) => cyclingVerifySpec(url, '/write', await baselineSessions(url, { count: 8000, tag: 'p', concurrency: 10 }))]);
      } else if (scenario === 'guard') {
        runs.push(['blockid-otp requireOtp() GET /data', otpConfig, async (url) => getSpec(url, '/data', await verifiedCookie(url, 'bench.user'))]);
        runs.push(['unguarded GET /data', baseConfig, async (url) => getSpec(url, '/data', await verifiedCookie(url, 'bench.user'))]);
      }
      const done = [];
      for (const [name, config, prepare] of runs) {
        console.log(`profiling ${store}: ${name}`);
        const { profile, window, result } = argv.includes('--resummarize') ? loadRun(`${store}-${name}`) : await profileRun(`${store}-${name}`, config, prepare);
        done.push({ name, result, summary: summarize(profile, window) });
      }
      const [ours, base] = done;
      const perRequest = ({ summary, result }) => summary.total / result.total;
      sections.push(
        `## ${store}: ${ours.name} vs ${base.name}`,
        '',
        `- scenario: ${ours.result.total.toLocaleString('en-US')} requests in ${SECONDS} s (${Math.round(ours.result.rps).toLocaleString('en-US')} req/s while profiling), server busy ${(ours.summary.total / 1000).toFixed(0)} ms of the window: **${perRequest(ours).toFixed(0)} µs per request**`,
        `- baseline: ${base.result.total.toLocaleString('en-US')} requests (${Math.round(base.result.rps).toLocaleString('en-US')} req/s), busy ${(base.summary.total / 1000).toFixed(0)} ms: **${perRequest(base).toFixed(0)} µs per request**`,
        `- process CPU time from /proc (profiler overhead included): ${ours.result.serverCpuUsPerRequest?.toFixed(0)} vs ${base.result.serverCpuUsPerRequest?.toFixed(0)} µs per request; other processes used ${ours.result.otherCores?.toFixed(2)} / ${base.result.otherCores?.toFixed(2)} cores meanwhile`,
        `- so the scenario costs ${(perRequest(ours) - perRequest(base)).toFixed(0)} µs more per request (${(perRequest(base) / perRequest(ours)).toFixed(2)}× the baseline's throughput at equal CPU).`,
        '',
        diffTable({ map: ours.summary.categories, requests: ours.result.total }, { map: base.summary.categories, requests: base.result.total }, 'where (self time, by package or module)', 16),
        '',
        diffTable({ map: ours.summary.self, requests: ours.result.total }, { map: base.summary.self, requests: base.result.total }, 'functions with the most extra self time', 20, label),
        '',
        table([...ours.summary.self].sort((a, b) => b[1] - a[1]).slice(0, TOP), ours.summary.total, ours.result.total, `scenario: top ${TOP} functions by self time`),
        '',
        table(
          [...ours.summary.inclusive].filter(([k]) => k.includes('\u0000blockid-otp ')).sort((a, b) => b[1] - a[1]).slice(0, 20),
          ours.summary.total,
          ours.result.total,
          'scenario: blockid-otp functions by inclusive time (callees included; an async caller counts its callees only up to their first await)',
        ),
        '',
      );
      if (store === 'redis') await cleanRedis(prefix);
    }
  }
  const markdown = [
    '# Where the time goes (CPU profiles)',
    '',
    `Generated by \`node bench/profile.mjs\` on ${info.date}: ${info.cpus} × ${info.model}, Node ${info.node}, blockid-otp built from ${build}.`,
    `Each server runs alone under \`node --cpu-prof\` (1 ms sampling), ${SECONDS} s of autocannon load (10 connections) after a 2 s warm-up;`,
    'only the samples taken during the measured load are counted (set-up and warm-up are cut out by timestamp). Raw profiles: bench/.tmp/prof/ (not committed).',
    '"Self" time is spent in the function itself; "inclusive" adds its callees. `blockid-otp chunk-….js:N` / `index.js:N` is a line of the tsup bundle.',
    '',
    ...sections,
  ].join('\n');
  const experiment = option('src', undefined) !== undefined;
  const out = option('out', undefined) ?? (experiment ? path.join(TMP, 'PROFILE-experiment.md') : path.join(BENCH_DIR, 'PROFILE.md'));
  writeFileSync(out, `${markdown}\n`);
  console.log(markdown);
}

async function dropSchema() {
  if (pgAdmin === undefined) return;
  await pgAdmin.query(`DROP SCHEMA IF EXISTS ${PG_SCHEMA} CASCADE`).catch(() => undefined);
  await pgAdmin.end();
  pgAdmin = undefined;
}

main()
  .then(dropSchema)
  .catch(async (error) => {
    console.error(error);
    await cleanRedis(PREFIX).catch(() => undefined);
    await dropSchema();
    process.exit(1);
  });
