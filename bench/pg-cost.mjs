#!/usr/bin/env node
/**
 * postgresStore alone, without HTTP: PostgreSQL CPU, Node CPU and calls per second for one
 * operation, on 10 connections of one Pool, for the working tree and (with --rev or --src) an
 * earlier build, measured in alternating rounds in one process.
 *
 *   node bench/pg-cost.mjs [--op=verify|send|send-hot] [--rev=REV | --src=DIR] [--rounds=8] [--calls=1500]
 *
 * verify: a wrong code for one of 4,000 users with a pending code (a mismatch, as in the bench's
 * verify scenario); send: a both-channel plan with every counter of its own; send-hot: the same
 * with the per-IP and number-block counters shared by every call, as in the bench's send
 * scenario. PostgreSQL CPU is the user + system time of the Pool's own backends (/proc), so it
 * leaves out the WAL writer and other background processes. Nothing is written to the repository.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, buildDist, median, pgPool, pool as inParallel, processCpuUs } from './lib.mjs';

const option = (name, fallback) => process.argv.slice(2).find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const op = option('op', 'verify');
const rounds = Number(option('rounds', '8'));
const calls = Number(option('calls', '1500'));
if (!['verify', 'send', 'send-hot'].includes(op)) {
  console.error('usage: node bench/pg-cost.mjs [--op=verify|send|send-hot] [--rev=REV | --src=DIR] [--rounds=N] [--calls=N]');
  process.exit(2);
}

const builds = [{ name: 'worktree', ...buildDist({ worktree: true }) }];
const rev = option('rev');
let src = option('src');
if (rev !== undefined) {
  src = path.join(os.tmpdir(), `blockid-otp-pg-cost-${rev}`);
  rmSync(src, { recursive: true, force: true });
  mkdirSync(src, { recursive: true });
  execFileSync('sh', ['-c', `git archive "${rev}" src | tar -x -C "${src}"`], { cwd: ROOT });
}
// The working tree's build goes first: buildDist reuses one folder for every experiment.
if (src !== undefined) builds.push({ name: rev ?? src, ...buildDist({ srcRoot: src }) });
for (const build of builds) build.postgresStore = (await import(pathToFileURL(path.join(path.dirname(build.dist), 'postgres.js')).href)).postgresStore;

const CONNECTIONS = 10;
const pool = await pgPool({ max: CONNECTIONS, idleTimeoutMillis: 0 });
const clients = await Promise.all(Array.from({ length: CONNECTIONS }, () => pool.connect()));
const pids = await Promise.all(clients.map(async (client) => (await client.query('SELECT pg_backend_pid() AS p')).rows[0].p));
for (const client of clients) client.release();
const backendCpuUs = () => pids.reduce((sum, pid) => sum + processCpuUs(pid), 0);

const window = (limit, key) => ({ limit, key, points: 1_000_000, windowMs: 3_600_000, mode: 'take' });
const policy = { maxAttempts: 1_000_000, failedVerifications: 0, lockMs: 900_000, maxConsecutiveFailures: 1_000_000, failureMemoryMs: 86_400_000 };
const USERS = 4000;
let sent = 0;
const plan = (hot) => {
  const i = sent++;
  return {
    user: `u${i}`,
    space: 'user',
    slot: `s${i}`,
    cooldownMs: 30_000,
    perUser: { points: 1_000_000, windowMs: 3_600_000 },
    request: [window('sendsPerIp', hot ? 'ip' : `ip:${i}`)],
    targets: [[window('sendsPerDestination', `sms:${i}`), window('smsPerPrefix', hot ? 'prefix' : `prefix:${i}`)], [window('sendsPerDestination', `email:${i}`)]],
    code: { hash: `h${i}`, ttlMs: 600_000, issuedAtMs: Date.now() },
  };
};

const schemas = [];
try {
  for (const build of builds) {
    const schema = `blockid_pg_cost_${process.pid}_${builds.indexOf(build)}`;
    schemas.push(schema);
    await pool.query(`CREATE SCHEMA ${schema}`);
    build.store = build.postgresStore({ pool, schema, sweepIntervalMs: 0 });
    await build.store.ready();
    // Users with a pending code, for the verifies (the sends' own rows come from `plan` as well).
    if (op === 'verify') {
      await inParallel(USERS, CONNECTIONS, async (i) => {
        const decision = await build.store.send({ ...plan(false), user: `v${i}`, slot: `s${i}` });
        if (!decision.ok) throw new Error('set-up send refused');
      });
    }
  }
  const call = {
    verify: async (store, i) => {
      const u = i % USERS;
      const outcome = await store.verify({ user: `v${u}`, slots: [`s${u}`], hash: 'wrong', policy });
      if (outcome.result !== 'mismatch') throw new Error(`verify answered ${JSON.stringify(outcome)}`);
    },
    send: async (store) => {
      if (!(await store.send(plan(false))).ok) throw new Error('send refused');
    },
    'send-hot': async (store) => {
      if (!(await store.send(plan(true))).ok) throw new Error('send refused');
    },
  }[op];

  console.log(`${op}: ${builds.map((b) => b.label).join(' vs ')}; ${rounds} rounds of ${calls} calls on 10 connections`);
  for (let round = 0; round < rounds; round++) {
    for (const build of round % 2 === 0 ? builds : [...builds].reverse()) {
      const backend = backendCpuUs();
      const cpu = process.cpuUsage();
      const start = performance.now();
      await inParallel(calls, CONNECTIONS, (i) => call(build.store, i));
      const ms = performance.now() - start;
      const node = process.cpuUsage(cpu);
      (build.pg ??= []).push((backendCpuUs() - backend) / calls);
      (build.node ??= []).push((node.user + node.system) / calls);
      (build.rate ??= []).push((calls / ms) * 1000);
    }
  }
  for (const build of builds) {
    console.log(
      `${build.name}: PostgreSQL ${median(build.pg).toFixed(0)} µs, Node ${median(build.node).toFixed(0)} µs per call, ${median(build.rate).toFixed(0)} calls/s` +
        ` (medians; PostgreSQL per round ${build.pg.map((x) => x.toFixed(0)).join(' ')})`,
    );
  }
} finally {
  for (const build of builds) await build.store?.close();
  for (const schema of schemas) await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await pool.end();
}
