#!/usr/bin/env node
/**
 * postgresStore alone, without HTTP: PostgreSQL CPU, Node CPU and calls per second for one
 * operation, on 10 connections of one Pool, for the working tree and (with --rev or --src) an
 * earlier build, measured in alternating rounds in one process.
 *
 *   node bench/pg-cost.mjs [--op=verify|send|send-hot] [--rev=REV | --src=DIR] [--rounds=8] [--calls=1500]
 *        [--otp='{"unlogged":true}'] [--b-otp='{...}']
 *
 * verify: a wrong code for one of 4,000 users with a pending code (a mismatch, as in the bench's
 * verify scenario); send: a both-channel plan with every counter of its own; send-hot: the same
 * with the per-IP and number-block counters shared by every call, as in the bench's send
 * scenario. PostgreSQL CPU is the user + system time of the Pool's own backends (/proc), so it
 * leaves out the WAL writer and other background processes. Nothing is written to the repository.
 *
 * Also what each call writes: row versions per call by table (inserts, updates and how many of
 * those were HOT, deletes; from pg_stat_user_tables of the run's own schema, whose backends are
 * made to flush their statistics first), WAL bytes per call (`pg_current_wal_lsn()` before and
 * after the round: the whole server's WAL, so other engineers' writes in the same seconds are
 * counted too; the lowest round is the closest), and, after the last round, the tables' and
 * indexes' bytes on disk per row set (`pg_total_relation_size` of the schema's tables ÷ the
 * calls that wrote them). `--otp` adds postgresStore options to the working tree's store
 * (`--b-otp` to the other build's, or with neither --rev nor --src a second store of the working
 * tree with those options), e.g. `--b-otp='{"unlogged":true}'` for logged against unlogged tables.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, buildDist, median, option, pgPool, pool as inParallel, processCpuUs } from './lib.mjs';

/**
 * @typedef {import('../src/postgres.js').PostgresStore} PostgresStore
 * @typedef {import('../src/store.js').Counter} Counter
 * @typedef {import('../src/store.js').SendPlan} SendPlan
 * @typedef {{ ins: number, upd: number, hot: number, del: number }} RowVersions of one table, from pg_stat_user_tables
 * @typedef {{ name: string, options: Partial<import('../src/postgres.js').PostgresStoreOptions>, dist: string, label: string }} Build
 *   `options`: parsed from --otp / --b-otp, checked by postgresStore() itself
 * @typedef {Build & { schema: string, store: PostgresStore, wal: number[], rows: Array<Record<string, RowVersions>>, pg: number[], node: number[], rate: number[] }} Run
 *   a build's store on a schema of its own, and its figures per round
 */

/**
 * @overload
 * @param {string} name
 * @returns {string | undefined}
 */
/**
 * @overload
 * @param {string} name
 * @param {string} fallback
 * @returns {string}
 */
const op = option('op', 'verify');
const rounds = Number(option('rounds', '8'));
const calls = Number(option('calls', '1500'));
if (op !== 'verify' && op !== 'send' && op !== 'send-hot') {
  console.error('usage: node bench/pg-cost.mjs [--op=verify|send|send-hot] [--rev=REV | --src=DIR] [--rounds=N] [--calls=N]');
  process.exit(2);
}

const aOptions = JSON.parse(option('otp', '{}'));
const bOptions = option('b-otp');
/** @type {Build} */
const worktree = { name: 'worktree', options: aOptions, ...buildDist({ worktree: true }) };
const builds = [worktree];
const rev = option('rev');
let src = option('src');
if (rev !== undefined) {
  src = path.join(os.tmpdir(), `blockid-otp-pg-cost-${rev}`);
  rmSync(src, { recursive: true, force: true });
  mkdirSync(src, { recursive: true });
  execFileSync('sh', ['-c', `git archive "${rev}" src | tar -x -C "${src}"`], { cwd: ROOT });
}
// The working tree's build goes first: buildDist reuses one folder for every experiment.
if (src !== undefined) builds.push({ name: rev ?? src, options: JSON.parse(bOptions ?? '{}'), ...buildDist({ srcRoot: src }) });
else if (bOptions !== undefined) builds.push({ ...worktree, name: `worktree ${bOptions}`, options: JSON.parse(bOptions) });
for (const build of builds) if (Object.keys(build.options).length > 0 && !build.name.includes('{')) build.name += ` ${JSON.stringify(build.options)}`;

const CONNECTIONS = 10;
const pool = await pgPool({ max: CONNECTIONS, idleTimeoutMillis: 0 });
const clients = await Promise.all(Array.from({ length: CONNECTIONS }, () => pool.connect()));
/** @type {number[]} */
const pids = await Promise.all(clients.map(async (client) => (await client.query('SELECT pg_backend_pid() AS p')).rows[0].p));
for (const client of clients) client.release();
const backendCpuUs = () => pids.reduce((sum, pid) => sum + processCpuUs(pid), 0);

/** Makes every connection of the Pool flush its table statistics (PostgreSQL 15 keeps them up to 10 s otherwise). */
async function flushStats() {
  const held = await Promise.all(Array.from({ length: CONNECTIONS }, () => pool.connect()));
  try {
    for (const client of held) {
      await client.query('SELECT pg_stat_force_next_flush()');
      await client.query('SELECT 1');
    }
  } finally {
    for (const client of held) client.release();
  }
}
/**
 * Row versions written so far in `schema`, per table, and the server's WAL position.
 *
 * @param {string} schema
 * @returns {Promise<{ tables: Record<string, RowVersions>, lsn: string }>}
 */
async function writes(schema) {
  await flushStats();
  await pool.query('SELECT pg_stat_clear_snapshot()');
  const { rows } = await pool.query(
    `SELECT relname, n_tup_ins::float8 AS ins, n_tup_upd::float8 AS upd, n_tup_hot_upd::float8 AS hot, n_tup_del::float8 AS del
     FROM pg_stat_user_tables WHERE schemaname = $1`,
    [schema],
  );
  const lsn = (await pool.query('SELECT pg_current_wal_lsn() AS l')).rows[0].l;
  return {
    tables: Object.fromEntries(rows.map((/** @type {RowVersions & { relname: string }} */ row) => [row.relname.replace(/^blockid_otp_/, ''), row])),
    lsn,
  };
}
/** @param {string} from @param {string} to WAL positions */
const walBytes = async (from, to) => Number((await pool.query('SELECT pg_wal_lsn_diff($1, $2)::float8 AS d', [to, from])).rows[0].d);

/** @param {string} limit @param {string} key @returns {Counter} */
const window = (limit, key) => ({ limit, key, points: 1_000_000, windowMs: 3_600_000, mode: 'take' });
/** @type {import('../src/store.js').LockPolicy} */
const policy = { maxAttempts: 1_000_000, failedVerifications: 0, lockMs: 900_000, maxConsecutiveFailures: 1_000_000, failureMemoryMs: 86_400_000 };
const USERS = 4000;
let sent = 0;
/** @param {boolean} hot @returns {SendPlan} */
const plan = (hot) => {
  const i = sent++;
  return {
    user: `u${i}`,
    space: 'user',
    slot: `s${i}`,
    cooldownMs: 30_000,
    perUser: { points: 1_000_000, windowMs: 3_600_000 },
    request: [window('sendsPerIp', hot ? 'ip' : `ip:${i}`)],
    targets: [
      [window('sendsPerDestination', `sms:${i}`), window('smsPerPrefix', hot ? 'prefix' : `prefix:${i}`)],
      [window('sendsPerDestination', `email:${i}`)],
    ],
    code: { hash: `h${i}`, ttlMs: 600_000, issuedAtMs: Date.now() },
  };
};

const schemas = [];
/** @type {Run[]} */
const runs = [];
try {
  for (const build of builds) {
    const schema = `blockid_pg_cost_${process.pid}_${builds.indexOf(build)}`;
    schemas.push(schema);
    await pool.query(`CREATE SCHEMA ${schema}`);
    /** @type {typeof import('../src/postgres.js')} the build's own blockid-otp/postgres */
    const { postgresStore } = await import(pathToFileURL(path.join(path.dirname(build.dist), 'postgres.js')).href);
    const run = {
      ...build,
      schema,
      store: postgresStore({ pool, schema, sweepIntervalMs: 0, ...build.options }),
      wal: [],
      rows: [],
      pg: [],
      node: [],
      rate: [],
    };
    runs.push(run);
    await run.store.ready();
    // Users with a pending code, for the verifies (the sends' own rows come from `plan` as well).
    if (op === 'verify') {
      await inParallel(USERS, CONNECTIONS, async (i) => {
        const decision = await run.store.send({ ...plan(false), user: `v${i}`, slot: `s${i}` });
        if (!decision.ok) throw new Error('set-up send refused');
      });
    }
  }
  /** @type {Record<typeof op, (store: PostgresStore, i: number) => Promise<void>>} */
  const callsByOp = {
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
  };
  const call = callsByOp[op];

  console.log(`${op}: ${builds.map((b) => b.label).join(' vs ')}; ${rounds} rounds of ${calls} calls on 10 connections`);
  for (let round = 0; round < rounds; round++) {
    for (const build of round % 2 === 0 ? runs : [...runs].reverse()) {
      const before = await writes(build.schema);
      const backend = backendCpuUs();
      const cpu = process.cpuUsage();
      const start = performance.now();
      await inParallel(calls, CONNECTIONS, (i) => call(build.store, i));
      const ms = performance.now() - start;
      const node = process.cpuUsage(cpu);
      const backendUs = backendCpuUs() - backend;
      const after = await writes(build.schema);
      build.wal.push((await walBytes(before.lsn, after.lsn)) / calls);
      /** @type {Record<string, RowVersions>} */
      const rows = {};
      for (const [table, now] of Object.entries(after.tables)) {
        const was = before.tables[table] ?? { ins: 0, upd: 0, hot: 0, del: 0 };
        /** @type {Array<keyof RowVersions>} */
        const kinds = ['ins', 'upd', 'hot', 'del'];
        rows[table] = /** @type {RowVersions} */ (Object.fromEntries(kinds.map((k) => [k, (now[k] - was[k]) / calls])));
      }
      build.rows.push(rows);
      build.pg.push(backendUs / calls);
      build.node.push((node.user + node.system) / calls);
      build.rate.push((calls / ms) * 1000);
    }
  }
  for (const build of runs) {
    console.log(
      `${build.name}: PostgreSQL ${median(build.pg).toFixed(0)} µs, Node ${median(build.node).toFixed(0)} µs per call, ${median(build.rate).toFixed(0)} calls/s` +
        ` (medians; PostgreSQL per round ${build.pg.map((x) => x.toFixed(0)).join(' ')})`,
    );
    const last = build.rows[build.rows.length - 1];
    if (last === undefined) throw new Error('no round was measured (--rounds must be at least 1)');
    const versions = Object.values(last).reduce((sum, t) => sum + t.ins + t.upd + t.del, 0);
    const hot = Object.values(last).reduce((sum, t) => sum + t.hot, 0);
    const perTable = Object.entries(last)
      .filter(([, t]) => t.ins + t.upd + t.del > 0)
      .map(
        ([table, t]) => `${table} ${t.ins.toFixed(2)} ins + ${t.upd.toFixed(2)} upd (${t.hot.toFixed(2)} HOT)${t.del > 0 ? ` + ${t.del.toFixed(2)} del` : ''}`,
      )
      .join(', ');
    console.log(`  row versions per call (last round): ${versions.toFixed(2)}, of which ${hot.toFixed(2)} HOT updates: ${perTable}`);
    console.log(`  WAL bytes per call (whole server): lowest round ${Math.min(...build.wal).toFixed(0)}, median ${median(build.wal).toFixed(0)}`);
    const size = Number(
      (
        await pool.query(
          `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::float8 AS b FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1 AND c.relkind = 'r'`,
          [build.schema],
        )
      ).rows[0].b,
    );
    const written = op === 'verify' ? USERS : rounds * calls;
    console.log(
      `  tables + indexes on disk: ${(size / 2 ** 20).toFixed(1)} MiB, ${(size / written).toFixed(0)} B per ${op === 'verify' ? 'pending code set up' : 'send'} (${written} of them)`,
    );
  }
} finally {
  for (const run of runs) await run.store.close();
  for (const schema of schemas) await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await pool.end();
}
