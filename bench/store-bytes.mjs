#!/usr/bin/env node
/**
 * What each store keeps per pending code, for a send of a fresh username from a fresh session
 * to a fresh phone number and email address from a fresh IP, with every quota on: the code
 * record, the resend cooldown, the per-username quota, and the per-IP, per-destination (SMS
 * and email) and per-number-block counters. Sessions are not included (they live in the
 * app's session store).
 *
 *   node --expose-gc bench/store-bytes.mjs [--count=20000] [--stores=memory,redis,postgres] [--no-write]
 *
 * Prints the figures as JSON; a run of all three stores with at least 20,000 sends also writes
 * them, against the 450 B target and the floors below, to its section of bench/RESULTS.md.
 *
 * - memory: heap used after `gc()`, before and after `count` sends, ÷ count; once with keys
 *   made as the core makes them (a slice of a longer hash, a template string: V8 keeps those as
 *   sliced and cons strings, which hold more than their characters), once with flat copies; and a
 *   floor: the flat key strings alone, and those strings in the fewest structures a store could
 *   use (one small object per username in one Map, one number per counter in another).
 * - redis: `MEMORY USAGE key SAMPLES 0` of every key the sends left, summed, ÷ count (the
 *   server's own bookkeeping per key, the expiry entry included); also keys per send, and the
 *   bytes of the keys no layout can merge on Cluster (each counter has its own hash slot), and
 *   a floor: those counters plus one hash per username holding code, cooldown and quota under
 *   one-letter fields (written here by hand, measured, deleted).
 * - postgres: `pg_total_relation_size` of the store's tables (heap, indexes, free space left
 *   by `fillfactor`) after `count` sends on fresh tables, ÷ count; logged and `unlogged: true`.
 *
 * Also, per username that guessed wrong once (`attempt()`, a failure counted with no code): what
 * stays for `failureMemorySeconds` (30 days by default), longer than anything else.
 *
 * Keys have the core's shapes and lengths: 27-character keyed hashes for the username and the
 * session binding, a 43-character code hash, counter keys `ip:…`, `dest:…`, `prefix:…`.
 * Builds the working tree's src/. Redis keys go under a prefix of the run's own and tables to a
 * schema of its own; both are removed at the end.
 */
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import { buildDist, option, pgPool, writeResultsSection } from './lib.mjs';

/**
 * @typedef {import('../src/store.js').OtpStore} OtpStore
 * @typedef {import('../src/store.js').SendPlan} SendPlan
 * @typedef {{ perCode: number, rowsPerCode: number, perFailedUser: number }} PostgresBytes
 */

const COUNT = Number(option('count', '20000'));
/** The bytes per pending code asked of memory and Redis. */
const TARGET_BYTES = 450;
const STORES = option('stores', 'memory,redis,postgres').split(',');
if (typeof globalThis.gc !== 'function') throw new Error('run with --expose-gc');

const { dist, label } = buildDist({ worktree: true });
/** @type {typeof import('../src/index.js')} the package's main entry, built from src/ */
const pkg = await import(pathToFileURL(dist).href);
/** As the core makes a key: the first `length` characters of a longer base64url hash (a sliced string). */
const token = (/** @type {number} */ length) => randomBytes(32).toString('base64url').slice(0, length);
/** A flat copy of a string (one sequential string of its characters). */
const flat = (/** @type {string} */ text) => Buffer.from(text, 'latin1').toString('latin1');
/** @param {string} limit @param {string} key @returns {import('../src/store.js').Counter} */
const window = (limit, key) => ({ limit, key, points: 1_000_000, windowMs: 86_400_000, mode: 'take' });

/**
 * A first send of a fresh username, session, number, address and IP, every quota on.
 *
 * @param {(text: string) => string} [shape] what is done to each key string
 * @returns {SendPlan}
 */
function freshPlan(shape = (text) => text) {
  return {
    user: shape(token(27)),
    space: 'user',
    slot: shape(token(27)),
    cooldownMs: 30_000,
    perUser: { points: 1_000_000, windowMs: 3_600_000 },
    request: [window('sendsPerIp', shape(`ip:${token(27)}`))],
    targets: [
      [window('sendsPerDestination', shape(`dest:${token(27)}`)), window('smsPerPrefix', shape(`prefix:${token(27)}`))],
      [window('sendsPerDestination', shape(`dest:${token(27)}`))],
    ],
    code: { hash: shape(token(43)), ttlMs: 300_000, issuedAtMs: Date.now() },
  };
}

/** @param {OtpStore} store @param {SendPlan[]} plans */
async function sendAll(store, plans) {
  for (const plan of plans) {
    const decision = await store.send(plan);
    if (!decision.ok) throw new Error(`send refused: ${JSON.stringify(decision)}`);
  }
}

/**
 * Bytes per pending code (and per username that failed once), by store.
 *
 * @type {{ label: string, count: number,
 *   memory?: { coreKeys?: number, flatKeys?: number, perFailedUser?: number, floorStrings?: number, floorStructures?: number },
 *   redisFailedUser?: number,
 *   redis?: { floorUserHash: number, perCode: number, keysPerCode: number, usedMemoryPerCode: number,
 *     byKind: Record<string, { keysPerCode: number, bytesPerKey: number }>, countersPerCode: number },
 *   postgres?: { logged?: PostgresBytes, unlogged?: PostgresBytes } }}
 */
const report = { label, count: COUNT };
const policy = { maxAttempts: 5, failedVerifications: 10, lockMs: 900_000, maxConsecutiveFailures: 100, failureMemoryMs: 2_592_000_000 };
/** @param {OtpStore} store @param {string[]} users */
async function failAll(store, users) {
  for (const user of users) {
    const started = await store.attempt({ user, space: 'user', policy });
    if (!started.ok) throw new Error('attempt refused');
  }
}

if (STORES.includes('memory')) {
  const heap = async () => {
    await new Promise((resolve) => setTimeout(resolve, 0));
    const gc = /** @type {() => void} */ (globalThis.gc);
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };
  report.memory = {};
  /** @type {Array<['coreKeys' | 'flatKeys', ((text: string) => string) | undefined]>} */
  const shapes = [
    ['coreKeys', undefined],
    ['flatKeys', flat],
  ];
  for (const [name, shape] of shapes) {
    const store = pkg.memoryStore();
    const before = await heap();
    // Plans are made one at a time, so what stays is what the store keeps (its key strings included).
    for (let i = 0; i < COUNT; i++) await store.send(freshPlan(shape));
    const after = await heap();
    report.memory[name] = (after - before) / COUNT;
    await store.close?.();
  }
  {
    const store = pkg.memoryStore();
    const before = await heap();
    for (let i = 0; i < COUNT; i++) await failAll(store, [token(27)]);
    report.memory.perFailedUser = ((await heap()) - before) / COUNT;
    await store.close?.();
  }
  // The floor: the flat strings alone, then in the fewest structures.
  let kept = [];
  let before = await heap();
  for (let i = 0; i < COUNT; i++) {
    const plan = freshPlan(flat);
    kept.push(plan.user, plan.slot, plan.code.hash, ...[...plan.request, ...plan.targets.flat()].map((c) => c.key));
  }
  report.memory.floorStrings = ((await heap()) - before) / COUNT;
  if (kept.length !== 7 * COUNT) throw new Error('the floor lost strings');
  kept = [];
  const users = new Map();
  const counters = new Map();
  before = await heap();
  for (let i = 0; i < COUNT; i++) {
    const plan = freshPlan(flat);
    const now = Date.now();
    users.set(plan.user, {
      slot: plan.slot,
      hash: plan.code.hash,
      attempts: 0,
      codeUntil: now + 300_000,
      cooldownUntil: now + 30_000,
      sends: 1,
      sendsUntil: now + 3_600_000,
    });
    for (const counter of [...plan.request, ...plan.targets.flat()]) counters.set(counter.key, now + counter.windowMs + 1 / 1024); // window end and count packed in one number
  }
  report.memory.floorStructures = ((await heap()) - before) / COUNT;
  if (users.size + counters.size !== 5 * COUNT) throw new Error('the floor lost entries'); // (also keeps both Maps alive up to here)
}

if (STORES.includes('redis')) {
  const { createClient } = await import('redis');
  const client = createClient({ url: 'redis://127.0.0.1:6379' });
  await client.connect();
  const prefix = `blockid-bytes:${process.pid}:`;
  try {
    const store = pkg.redisStore({ client, prefix, commandTimeoutMs: 10_000 });
    const plans = Array.from({ length: COUNT }, freshPlan);
    const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await client.info('memory'))?.[1]);
    const usedBefore = await usedMemory();
    await sendAll(store, plans);
    const usedAfter = await usedMemory();
    /** @type {Record<string, { keys: number, bytes: number }>} */
    const byKind = {};
    let keys = 0;
    let bytes = 0;
    for await (const batch of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) {
      for (const key of batch) {
        const usage = Number(await client.sendCommand(['MEMORY', 'USAGE', key, 'SAMPLES', '0']));
        // The kind of key: a counter `{q:…}`, else the part after the space letter (`c`, `cd`, `n`).
        const kind = key.includes('{q:') ? `counter ${key.split('{q:')[1]?.split(':')[0]}` : String(key.split('}:')[1]?.split(':')[1]);
        byKind[kind] ??= { keys: 0, bytes: 0 };
        byKind[kind].keys += 1;
        byKind[kind].bytes += usage;
        keys += 1;
        bytes += usage;
      }
    }
    const failed = Array.from({ length: COUNT }, () => token(27));
    await failAll(store, failed);
    let failureBytes = 0;
    for (const user of failed.slice(0, 1000)) failureBytes += Number(await client.sendCommand(['MEMORY', 'USAGE', `${prefix}{${user}}:u:f`, 'SAMPLES', '0']));
    report.redisFailedUser = failureBytes / 1000;
    const counterBytes = Object.entries(byKind)
      .filter(([kind]) => kind.startsWith('counter'))
      .reduce((sum, [, v]) => sum + v.bytes, 0);
    // The floor: the four counters as they are, plus one hash per username with the code, cooldown and quota.
    const floorKey = `${prefix}{${token(27)}}:u`;
    await client.sendCommand([
      'HSET',
      floorKey,
      's',
      token(27),
      'h',
      token(43),
      'a',
      '0',
      'i',
      String(Date.now()),
      'e',
      String(Date.now() + 300_000),
      'c',
      String(Date.now() + 30_000),
      'n',
      '1',
      'w',
      String(Date.now() + 3_600_000),
    ]);
    await client.sendCommand(['PEXPIRE', floorKey, '3600000']);
    const floorHash = Number(await client.sendCommand(['MEMORY', 'USAGE', floorKey, 'SAMPLES', '0']));
    await client.unlink(floorKey);
    report.redis = {
      floorUserHash: floorHash,
      perCode: bytes / COUNT,
      keysPerCode: keys / COUNT,
      usedMemoryPerCode: (usedAfter - usedBefore) / COUNT,
      byKind: Object.fromEntries(Object.entries(byKind).map(([kind, v]) => [kind, { keysPerCode: v.keys / COUNT, bytesPerKey: v.bytes / v.keys }])),
      countersPerCode: counterBytes / COUNT,
    };
  } finally {
    for await (const batch of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) if (batch.length > 0) await client.unlink(batch);
    await client.quit();
  }
}

if (STORES.includes('postgres')) {
  const { postgresStore } = await import(pathToFileURL(path.join(path.dirname(dist), 'postgres.js')).href);
  const pool = await pgPool({ max: 4 });
  const schema = `blockid_bytes_${process.pid}`;
  report.postgres = {};
  try {
    for (const unlogged of [false, true]) {
      await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await pool.query(`CREATE SCHEMA ${schema}`);
      const store = postgresStore({ pool, schema, sweepIntervalMs: 0, unlogged, commandTimeoutMs: 10_000 });
      await store.ready();
      const size = async () =>
        Number(
          (
            await pool.query(
              `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::float8 AS b FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'`,
              [schema],
            )
          ).rows[0].b,
        );
      const before = await size();
      const plans = Array.from({ length: COUNT }, freshPlan);
      await Promise.all(
        Array.from({ length: 4 }, (_, lane) =>
          sendAll(
            store,
            plans.filter((_, i) => i % 4 === lane),
          ),
        ),
      );
      const rows = Number(
        (
          await pool.query(
            `SELECT (SELECT count(*) FROM ${schema}.blockid_otp_slots) + (SELECT count(*) FROM ${schema}.blockid_otp_counters) + (SELECT count(*) FROM ${schema}.blockid_otp_users) AS n`,
          )
        ).rows[0].n,
      );
      const beforeFailures = await size();
      const failed = Array.from({ length: COUNT }, () => token(27));
      await Promise.all(
        Array.from({ length: 4 }, (_, lane) =>
          failAll(
            store,
            failed.filter((_, i) => i % 4 === lane),
          ),
        ),
      );
      report.postgres[unlogged ? 'unlogged' : 'logged'] = {
        perCode: (beforeFailures - before) / COUNT,
        rowsPerCode: rows / COUNT,
        perFailedUser: ((await size()) - beforeFailures) / COUNT,
      };
      await store.close();
    }
  } finally {
    await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await pool.end();
  }
}

/**
 * The section of bench/RESULTS.md: each store's bytes per pending code against the target, and
 * the floor that shows how far any layout of the same data could go.
 *
 * @param {typeof report} r
 */
function render(r) {
  const b = (/** @type {number | undefined} */ n) => (n === undefined ? '—' : `${Math.round(n).toLocaleString('en-US')} B`);
  const verdict = (/** @type {number | undefined} */ floor) =>
    floor === undefined ? '—' : floor > TARGET_BYTES ? '**no**: the floor is above it' : 'the floor is below it';
  const redisFloor = r.redis === undefined ? undefined : r.redis.floorUserHash + r.redis.countersPerCode;
  const rows = [
    r.memory &&
      `| memory (\`memoryStore()\`) | ${b(r.memory.coreKeys)} (${b(r.memory.flatKeys)} with flat key strings) | 1 entry + 4 counters | ${b(r.memory.floorStructures)} | ` +
        `the send's seven key strings, flat (${b(r.memory.floorStrings)} alone), in one small object per username in one Map and one number per counter in another | ${b(r.memory.perFailedUser)} | ${verdict(r.memory.floorStructures)} |`,
    r.redis &&
      `| Redis | ${b(r.redis.perCode)} (\`used_memory\`: ${b(r.redis.usedMemoryPerCode)}) | ${r.redis.keysPerCode} keys | ${b(redisFloor)} | ` +
        `one hash per username with the code, cooldown and quota under one-letter fields (${b(r.redis.floorUserHash)}), and the four counters as they are (${b(r.redis.countersPerCode)}: one key each, each its own hash slot on Cluster) | ${b(r.redisFailedUser)} | ${verdict(redisFloor)} |`,
    ...['logged', 'unlogged'].map((kind) => {
      const pg = r.postgres?.[/** @type {'logged' | 'unlogged'} */ (kind)];
      return (
        pg &&
        `| PostgreSQL, ${kind === 'logged' ? 'logged tables' : '`unlogged: true`'} | ${b(pg.perCode)} | ${pg.rowsPerCode} rows | — | heap, indexes and the free space fillfactor keeps | ${b(pg.perFailedUser)} | no target |`
      );
    }),
  ].filter(Boolean);
  return [
    '## Bytes per pending code',
    '',
    `Generated by \`node --expose-gc bench/store-bytes.mjs\` on ${new Date().toISOString()}: ${r.label}; ${r.count.toLocaleString('en-US')} sends of a fresh username from a fresh session to a fresh number and address from a fresh IP, every quota on; sessions apart (they live in the session store). Target: ≤ ${TARGET_BYTES} B per pending code in memory and in Redis. The *floor* is a yardstick: the same data in the fewest structures the store could use, measured the same way; a layout cannot go below it.`,
    '',
    '| store | bytes per pending code | keys or rows | floor | what the floor holds | per username with a failure | target ≤ 450 B |',
    '|---|--:|---|--:|---|--:|---|',
    ...rows,
  ].join('\n');
}

console.log(JSON.stringify(report, null, 2));
// The section holds every store's figures: a run of some stores only, or of fewer sends, prints them and leaves it.
const complete = ['memory', 'redis', 'postgres'].every((store) => STORES.includes(store)) && COUNT >= 20_000;
if (complete && !process.argv.includes('--no-write')) writeResultsSection('store-bytes', render(report));
process.exit(0);
