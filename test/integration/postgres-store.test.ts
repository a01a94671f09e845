/**
 * postgresStore against the PostgreSQL 15 server of this machine (127.0.0.1:5432, database
 * `test`): the OtpStore semantics of src/stores/types.ts (the shared contract, on logged and on
 * unlogged tables), expiry and the sweep, what the columns hold, unlogged tables and HOT updates,
 * opening tables created by 0.1.0, concurrency across pools, concurrent table creation, and the
 * server-side bound of a statement that is held up by a row lock. Each run uses its own schema.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { OtpError } from '../../src/core/errors.js';
import { postgresSchemaSql, postgresStore, type PostgresStore, type PostgresStoreOptions } from '../../src/postgres.js';
import type { Counter, LockPolicy, SendPlan } from '../../src/stores/types.js';
import { describeStoreContract } from '../helpers/store-contract.js';

const connectionString = process.env.PG_TEST_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `otp_test_${process.pid}_${randomBytes(3).toString('hex')}`;
const pools: pg.Pool[] = [];
const stores: PostgresStore[] = [];

function newPool(config: pg.PoolConfig = {}): pg.Pool {
  // Small pools that let idle connections go soon: the server is shared, max_connections 100.
  const pool = new pg.Pool({ connectionString, max: 5, idleTimeoutMillis: 300, ...config });
  pool.on('error', () => {}); // see README: a Pool without an 'error' listener crashes on a database restart
  pools.push(pool);
  return pool;
}

let pool: pg.Pool;
let admin: pg.Pool;
/** `count` stores on their own pools (as separate app instances would be), ended after `body`. */
async function withInstances(count: number, body: (instances: PostgresStore[]) => Promise<void>, config: pg.PoolConfig = {}): Promise<void> {
  const own = Array.from({ length: count }, () => new pg.Pool({ connectionString, max: 5, ...config }));
  for (const p of own) p.on('error', () => {});
  // These tests are about correctness under contention, not latency: a generous call timeout, so a
  // busy machine's slow lock queue does not fail a call closed (the timeout has tests of its own).
  const instances = own.map((p) => postgresStore({ pool: p, schema, sweepIntervalMs: 0, commandTimeoutMs: 15_000 }));
  try {
    await body(instances);
  } finally {
    for (const store of instances) await store.close();
    await Promise.all(own.map((p) => p.end()));
  }
}

function makeStore(options: Partial<PostgresStoreOptions> = {}): PostgresStore {
  const store = postgresStore({ pool, schema, sweepIntervalMs: 0, ...options });
  stores.push(store);
  return store;
}

const randomKey = (): string => randomBytes(16).toString('base64url');
const policy: LockPolicy = { maxAttempts: 5, failedVerifications: 100, lockMs: 60_000, maxConsecutiveFailures: 100, failureMemoryMs: 3_600_000 };
const counter = (limit: string, points: number, extra: Partial<Counter> = {}): Counter => ({
  limit,
  key: `${limit}:${randomKey()}`,
  points,
  windowMs: 60_000,
  mode: 'take',
  ...extra,
});
function plan(user: string, extra: Partial<SendPlan> = {}): SendPlan & { code: { hash: string } } {
  return {
    user,
    space: 'user',
    slot: 'session-a',
    cooldownMs: 0,
    perUser: null,
    request: [],
    targets: [],
    code: { hash: randomKey(), ttlMs: 60_000, issuedAtMs: Date.now() },
    ...extra,
  };
}
const verifyReq = (user: string, hash: string, slots = ['session-a', ''], p: LockPolicy = policy) => ({ user, slots, hash, policy: p });

async function rejectsUnavailable(promise: Promise<unknown>): Promise<OtpError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof OtpError, `expected an OtpError, got ${String(error)}`);
    assert.equal(error.code, 'STORE_UNAVAILABLE');
    assert.equal(error.status, 503);
    return error;
  }
  assert.fail('expected STORE_UNAVAILABLE');
}

before(async () => {
  pool = newPool();
  admin = newPool({ max: 4 });
  await makeStore().ready();
});

after(async () => {
  for (const store of stores) await store.close();
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await Promise.all(pools.map((p) => p.end()));
});

// The shared contract, as memory and Redis run it (test/contract/stores.test.ts), on logged and on unlogged tables.
describeStoreContract('postgres', async () => ({ store: makeStore(), cleanup: async () => {} }));
describeStoreContract('postgres unlogged', async () => ({ store: makeStore({ unlogged: true, tablePrefix: 'unlogged_' }), cleanup: async () => {} }));

/** `relpersistence` of each of the store's tables: `p` logged, `u` unlogged. */
async function persistence(tablePrefix: string): Promise<Record<string, string>> {
  const { rows } = await admin.query(
    `SELECT substr(c.relname, length($2) + 1) AS name, c.relpersistence AS p FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relkind = 'r' AND starts_with(c.relname, $2) ORDER BY 1`,
    [schema, tablePrefix],
  );
  return Object.fromEntries(rows.map((row) => [row.name, row.p]));
}

describe('postgresStore options', () => {
  it('rejects bad options with a TypeError that names the option', () => {
    const p = newPool();
    assert.throws(() => postgresStore({} as PostgresStoreOptions), /option "pool" must be a pg Pool/);
    assert.throws(() => postgresStore({ pool: p, schema: 'Public' }), /option "schema" must be a lowercase SQL identifier/);
    assert.throws(() => postgresStore({ pool: p, schema: 'x"; DROP TABLE y; --' }), /option "schema"/);
    assert.throws(() => postgresStore({ pool: p, tablePrefix: '1abc' }), /option "tablePrefix"/);
    assert.throws(() => postgresStore({ pool: p, tablePrefix: 'a'.repeat(41) }), /option "tablePrefix".*at most 40/);
    assert.throws(() => postgresStore({ pool: p, commandTimeoutMs: 0 }), /option "commandTimeoutMs" must be a whole number/);
    assert.throws(() => postgresStore({ pool: p, sweepIntervalMs: -1 }), /option "sweepIntervalMs"/);
    assert.throws(() => postgresStore({ pool: p, sweepBatchSize: 1.5 }), /option "sweepBatchSize"/);
    assert.throws(() => postgresStore({ pool: p, createTables: 'yes' as unknown as boolean }), /option "createTables"/);
    assert.throws(() => postgresStore({ pool: p, synchronousCommit: 'off' as unknown as boolean }), /option "synchronousCommit" must be true or false/);
    assert.throws(
      () => postgresStore({ pool: p, unlogged: 'yes' as unknown as boolean }),
      (error: unknown) => {
        assert.ok(error instanceof TypeError, 'a TypeError, as every bad option');
        assert.equal(
          error.message,
          'postgresStore: option "unlogged" must be true or false (got the string "yes"). (see docs/errors.md#invalid-store-options)',
        );
        return true;
      },
    );
    assert.throws(() => postgresStore({ pool: p, unlogged: 1 as unknown as boolean }), /option "unlogged" must be true or false/);
    assert.throws(() => postgresSchemaSql({ unlogged: 'true' as unknown as boolean }), /option "unlogged" must be true or false/);
    assert.throws(() => postgresStore({ pool: p, unLogged: true } as unknown as PostgresStoreOptions), /unknown option "unLogged": did you mean "unlogged"\?/);
    assert.throws(
      () => postgresStore({ pool: p, commandTimeout: 5 } as unknown as PostgresStoreOptions),
      /unknown option "commandTimeout": did you mean "commandTimeoutMs"\?/,
    );
  });

  it("synchronousCommit: false turns the WAL flush wait off for the store's own transactions only; the default keeps it", async () => {
    // What the server ran, read from the real pg client's query texts (the store's round trips, the pool unchanged).
    const texts: string[] = [];
    const watched = newPool({ max: 1 }); // one connection: the SHOW below runs on the one the store used
    watched.on('connect', (client) => {
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
        if (typeof args[0] === 'string') texts.push(args[0]);
        return query(...args);
      };
    });
    const runs = async (options: Partial<PostgresStoreOptions>) => {
      texts.length = 0;
      const store = postgresStore({ pool: watched, schema, sweepIntervalMs: 0, ...options });
      stores.push(store);
      const user = randomKey();
      const sent = plan(user);
      assert.equal((await store.send(sent)).ok, true);
      assert.equal((await store.verify(verifyReq(user, sent.code.hash))).result, 'ok');
      return texts.filter((text) => /_(send|verify)"\(E'/.test(text)); // the calls, not the DDL of ready()
    };
    const durable = await runs({});
    assert.equal(durable.length, 2);
    for (const text of durable) assert.doesNotMatch(text, /synchronous_commit/);
    const fast = await runs({ synchronousCommit: false });
    assert.equal(fast.length, 2);
    for (const text of fast) assert.match(text, /SET LOCAL synchronous_commit = off/);
    // SET LOCAL: the connection goes back to the pool with the server's own setting.
    const { rows } = await watched.query('SHOW synchronous_commit');
    assert.equal(rows[0].synchronous_commit, 'on');
  });

  it('unlogged: true makes the code, counter and cache tables UNLOGGED, never the failure counts nor the used codes; false makes them logged again', async () => {
    const prefix = `ul${randomBytes(3).toString('hex')}_`;
    const logged = { cache: 'p', counters: 'p', slots: 'p', users: 'p', uses: 'p' };
    await makeStore({ tablePrefix: prefix }).ready();
    assert.deepEqual(await persistence(prefix), logged);

    // The same tables, with some state in them, opened by a store with unlogged: true.
    const user = randomKey();
    const failing = makeStore({ tablePrefix: prefix });
    const sent = plan(user, { perUser: { points: 2, windowMs: 60_000 } });
    await failing.send(sent);
    assert.equal((await failing.verify(verifyReq(user, randomKey()))).result, 'mismatch');
    const store = makeStore({ tablePrefix: prefix, unlogged: true });
    await store.ready();
    assert.deepEqual(await persistence(prefix), { cache: 'u', counters: 'u', slots: 'u', users: 'p', uses: 'p' });
    // What was there is still there: the code with one attempt spent, the failure, the quota's count.
    assert.equal((await store.verify(verifyReq(user, randomKey()))).result, 'mismatch');
    const failures = await admin.query(`SELECT failures FROM "${schema}"."${prefix}users" WHERE user_key = $1`, [user]);
    assert.equal(failures.rows[0].failures, 2);
    assert.equal((await store.send(plan(user, { slot: 'session-b', perUser: { points: 2, windowMs: 60_000 } }))).ok, true);
    const third = await store.send(plan(user, { slot: 'session-c', perUser: { points: 2, windowMs: 60_000 } }));
    assert.equal(third.ok, false);
    assert.equal(!third.ok && third.refusal.limit, 'sendsPerUsername');
    assert.equal((await store.verify(verifyReq(user, sent.code.hash))).result, 'ok');

    // createTables: false checks the tables match the option instead of changing them.
    const mismatch = makeStore({ tablePrefix: prefix, createTables: false });
    const error = await rejectsUnavailable(mismatch.ready());
    assert.match(error.message, /3 of its tables .* unlogged, but unlogged: false.*postgresSchemaSql\(\{ unlogged: false \}\)/);
    await makeStore({ tablePrefix: prefix, createTables: false, unlogged: true }).ready();

    await makeStore({ tablePrefix: prefix, unlogged: false }).ready();
    assert.deepEqual(await persistence(prefix), logged);
    assert.match(postgresSchemaSql({ unlogged: true }), /SET UNLOGGED/);
  });

  it('updates rows in place (HOT): a fillfactor on the updated tables, and a wrong guess moves no indexed column', async () => {
    const prefix = `hot${randomBytes(3).toString('hex')}_`;
    const store = makeStore({ tablePrefix: prefix });
    await store.ready();
    const { rows } = await admin.query(
      `SELECT substr(c.relname, length($2) + 1) AS name, c.reloptions AS o FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1 AND c.relkind = 'r' AND starts_with(c.relname, $2) ORDER BY 1`,
      [schema, prefix],
    );
    assert.deepEqual(Object.fromEntries(rows.map((row) => [row.name, row.o])), {
      cache: null,
      counters: ['fillfactor=80'],
      slots: ['fillfactor=80'],
      users: ['fillfactor=80'],
      uses: null,
    });
    const user = randomKey();
    await store.send(plan(user));
    const expiry = async () =>
      (
        await admin.query(
          `SELECT (SELECT expires_at FROM "${schema}"."${prefix}users" WHERE user_key = $1) AS u, (SELECT expires_at FROM "${schema}"."${prefix}slots" WHERE user_key = $1) AS s`,
          [user],
        )
      ).rows[0];
    assert.equal((await store.verify(verifyReq(user, randomKey()))).result, 'mismatch');
    const first = await expiry();
    // The sweep time is rounded up to whole ten minutes: at or after the row's end, at most ten minutes later.
    const slotEnd = Date.now() + 60_000;
    assert.equal(first.s.getTime() % 600_000, 0);
    assert.ok(first.s.getTime() >= slotEnd - 5000 && first.s.getTime() <= slotEnd + 600_000, String(first.s));
    assert.equal(first.u.getTime() % 600_000, 0);
    assert.equal((await store.verify(verifyReq(user, randomKey()))).result, 'mismatch');
    const second = await expiry();
    // A second wrong guess seconds later lands in the same ten minutes (or, rarely, the next one): no index entry moves.
    assert.ok(second.u.getTime() - first.u.getTime() <= 600_000);
    assert.equal(second.s.getTime(), first.s.getTime());
  });

  it('opens tables created by blockid-otp 0.1.0: the live per-username quotas move to counters, codes and failures carry on', async () => {
    const prefix = `v01${randomBytes(3).toString('hex')}_`;
    const oldSql = readFileSync(new URL('../fixtures/postgres-schema-0.1.0.sql', import.meta.url), 'utf8')
      .replaceAll('old_schema_placeholder', schema)
      .replaceAll('old_prefix_placeholder_', prefix);
    await admin.query(oldSql);
    const call = async (fn: string, argument: unknown) =>
      JSON.parse((await admin.query(`SELECT "${schema}"."${prefix}${fn}"($1::jsonb)::text AS r`, [JSON.stringify(argument)])).rows[0].r);
    // State made by the old functions: a code with a quota of 2 sends (one used), a wrong guess, a locked user.
    const user = randomKey();
    const locked = randomKey();
    const sent = plan(user, { perUser: { points: 2, windowMs: 600_000 } });
    assert.equal((await call('send', sent)).ok, true);
    assert.equal((await call('verify', verifyReq(user, randomKey()))).result, 'mismatch');
    await call('send', plan(locked));
    const lockPolicy = { ...policy, maxConsecutiveFailures: 1 };
    assert.equal((await call('verify', verifyReq(locked, randomKey(), ['session-a', ''], lockPolicy))).lock, 'permanent');
    const oldUsers = await admin.query(`SELECT count(*)::int AS n FROM "${schema}"."${prefix}users" WHERE sends > 0`);
    assert.equal(oldUsers.rows[0].n, 1);

    const store = makeStore({ tablePrefix: prefix });
    await store.ready();
    const columns = await admin.query(`SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY 1`, [
      schema,
      `${prefix}users`,
    ]);
    assert.deepEqual(
      columns.rows.map((row) => row.column_name),
      ['expires_at', 'failures', 'failures_until', 'lock_until', 'space', 'user_key'],
    );
    // The quota: one send of two was used before the upgrade, so one more is admitted, then sendsPerUsername.
    assert.equal((await store.send(plan(user, { slot: 'session-b', perUser: { points: 2, windowMs: 600_000 } }))).ok, true);
    const over = await store.send(plan(user, { slot: 'session-c', perUser: { points: 2, windowMs: 600_000 } }));
    assert.equal(!over.ok && over.refusal.limit, 'sendsPerUsername');
    assert.ok(!over.ok && over.refusal.retryAfterMs > 500_000 && over.refusal.retryAfterMs <= 600_000, 'the window the old row started');
    // The old code works, with its spent attempt; the locked user stays locked until unlock().
    const stillLocked = await store.verify(verifyReq(locked, randomKey(), ['session-a', ''], lockPolicy));
    assert.equal(stillLocked.result === 'locked' && stillLocked.permanent, true, JSON.stringify(stillLocked));
    assert.equal((await store.verify(verifyReq(user, sent.code.hash))).result, 'ok');
    await store.unlock(locked);
    assert.equal((await store.verify(verifyReq(locked, randomKey(), ['session-a', ''], lockPolicy))).result, 'mismatch');
    // Opening them again changes nothing more.
    await makeStore({ tablePrefix: prefix }).ready();
    const quota = await admin.query(`SELECT hits FROM "${schema}"."${prefix}counters" WHERE key = $1`, [`\u0001user:${user}`]);
    assert.equal(quota.rows[0].hits, 2);
  });

  it('exports its DDL with quoted, schema-qualified names', () => {
    const sql = postgresSchemaSql({ schema: 'auth', tablePrefix: 'otp_' });
    assert.match(sql, /CREATE SCHEMA IF NOT EXISTS "auth";/);
    for (const table of ['slots', 'users', 'counters', 'uses', 'cache']) assert.match(sql, new RegExp(`CREATE TABLE IF NOT EXISTS "auth"\\."otp_${table}"`));
    assert.match(sql, /CREATE OR REPLACE FUNCTION "auth"\."otp_send"\(p jsonb\)/);
    assert.doesNotMatch(postgresSchemaSql(), /CREATE SCHEMA/);
    assert.throws(() => postgresSchemaSql({ schema: 'a-b' }), /option "schema"/);
  });

  it('createTables: false finds missing tables in ready() and ops fail closed; the exported SQL makes it work', async () => {
    const prefix = `m${randomBytes(3).toString('hex')}_`;
    const store = makeStore({ createTables: false, tablePrefix: prefix });
    const error = await rejectsUnavailable(store.ready());
    assert.match(error.message, /postgresSchemaSql\(\)/);
    await rejectsUnavailable(store.verify(verifyReq(randomKey(), randomKey())));
    await admin.query(postgresSchemaSql({ schema, tablePrefix: prefix }));
    await store.ready();
    assert.deepEqual(await store.verify(verifyReq(randomKey(), randomKey())), { result: 'missing' });
  });
});

describe('postgresStore send and verify', () => {
  it('looks in the slots in order: the session slot before the unbound one', async () => {
    const store = makeStore();
    const user = randomKey();
    const unbound = plan(user, { slot: '' });
    const bound = plan(user, { slot: 'session-a' });
    await store.send(unbound);
    await store.send(bound);
    assert.equal((await store.verify(verifyReq(user, unbound.code.hash))).result, 'mismatch'); // checked against session-a's code
    assert.equal((await store.verify(verifyReq(user, bound.code.hash))).result, 'ok');
    assert.equal((await store.verify(verifyReq(user, unbound.code.hash))).result, 'ok'); // now '' is the first holding a code
  });
});

describe('postgresStore send plans: quotas and targets', () => {
  it('admits the targets that pass; counters of refused targets do not count', async () => {
    const store = makeStore();
    const smsFull = counter('smsPerDay', 0);
    const smsPrefix = counter('smsPerPrefix', 5);
    const email = counter('sendsPerDestination', 1);
    const decision = await store.send(plan(randomKey(), { targets: [[smsPrefix, smsFull], [email]] }));
    assert.deepEqual(decision, { ok: true, targets: [{ limit: 'smsPerDay', retryAfterMs: 60_000 }, null] });
    // smsPrefix was in the refused group: still 5 left. email counted: full now.
    for (let i = 0; i < 5; i += 1) assert.equal(await store.consume(smsPrefix), null);
    assert.equal((await store.consume(smsPrefix))?.limit, 'smsPerPrefix');
    const emailAgain = await store.consume(email);
    assert.ok(emailAgain !== null && emailAgain.limit === 'sendsPerDestination' && emailAgain.retryAfterMs <= 60_000);
  });

  it('refuses the plan when every target is refused, with the first reason, and counts nothing', async () => {
    const store = makeStore();
    const user = randomKey();
    const ip = counter('sendsPerIp', 3);
    const a = counter('sendsPerDestination', 0);
    const b = counter('smsPerHour', 0);
    const decision = await store.send(plan(user, { request: [ip], targets: [[a], [b]], cooldownMs: 30_000 }));
    assert.equal(decision.ok, false);
    assert.deepEqual(decision, {
      ok: false,
      refusal: { limit: 'sendsPerDestination', retryAfterMs: 60_000 },
      targets: [
        { limit: 'sendsPerDestination', retryAfterMs: 60_000 },
        { limit: 'smsPerHour', retryAfterMs: 60_000 },
      ],
    });
    for (let i = 0; i < 3; i += 1) assert.equal(await store.consume(ip), null, 'the request counter did not count');
    assert.equal((await store.send(plan(user, { cooldownMs: 30_000 }))).ok, true, 'no cooldown started');
  });

  it('counts a counter once per take within one plan (the same key in the request and a target)', async () => {
    const store = makeStore();
    const c = counter('sendsPerIp', 1);
    const decision = await store.send(plan(randomKey(), { request: [c], targets: [[c]] }));
    assert.deepEqual(decision, { ok: false, refusal: { limit: 'sendsPerIp', retryAfterMs: 60_000 }, targets: [{ limit: 'sendsPerIp', retryAfterMs: 60_000 }] });
    assert.equal(await store.consume(c), null);
  });
});

describe('postgresStore decoys', () => {
  it('prefers the user space when both spaces hold a code in the same slot', async () => {
    const store = makeStore();
    const user = randomKey();
    const decoy = plan(user, { space: 'decoy' });
    const real = plan(user);
    await store.send(decoy);
    await store.send(real);
    assert.equal((await store.verify(verifyReq(user, real.code.hash))).result, 'ok');
    assert.deepEqual(await store.verify(verifyReq(user, randomKey())), { result: 'mismatch', space: 'decoy', lock: null });
  });
});

describe('postgresStore locks', () => {
  it('attempts and code failures share one count per space; decoy attempts lock only the decoy space', async () => {
    const store = makeStore();
    const user = randomKey();
    const q: LockPolicy = { maxAttempts: 10, failedVerifications: 2, lockMs: 60_000, maxConsecutiveFailures: 7, failureMemoryMs: 60_000 };
    await store.send(plan(user));
    assert.equal((await store.verify(verifyReq(user, randomKey(), ['session-a'], q))).result, 'mismatch');
    assert.deepEqual(await store.attempt({ user, space: 'user', policy: q }), { ok: true, lock: 'timed' });
    assert.equal((await store.verify(verifyReq(user, randomKey(), ['session-a'], q))).result, 'locked');
    const other = randomKey();
    await store.attempt({ user: other, space: 'decoy', policy: q });
    await store.attempt({ user: other, space: 'decoy', policy: q });
    assert.equal((await store.attempt({ user: other, space: 'decoy', policy: q })).ok, false);
    assert.equal((await store.attempt({ user: other, space: 'user', policy: q })).ok, true);
  });
});

describe('postgresStore counters, cache, expiry and columns', () => {
  it('treats expired codes as absent and overwrites them; the sweep deletes only expired rows, in batches', async () => {
    const store = makeStore({ sweepBatchSize: 7 });
    const user = randomKey();
    const short = plan(user, { code: { hash: randomKey(), ttlMs: 200, issuedAtMs: Date.now() } });
    await store.send(short);
    await sleep(250);
    assert.deepEqual(await store.verify(verifyReq(user, short.code.hash)), { result: 'missing' });
    const live = plan(user);
    await store.send(live);
    // 50 expired rows in every table, next to live ones.
    for (const table of ['slots', 'users', 'counters', 'uses', 'cache']) {
      const columns: Record<string, string> = {
        slots: "(user_key, space, slot, expires_at) SELECT 'expired' || i, 'user', '', now() - interval '1 second'",
        users: "(user_key, space, expires_at) SELECT 'expired' || i, 'user', now() - interval '1 second'",
        counters: "(key, hits, expires_at) SELECT 'expired' || i, 1, now() - interval '1 second'",
        uses: "(user_key, kind, id, expires_at) SELECT 'expired' || i, 'recovery', 'x', now() - interval '1 second'",
        cache: "(key, value, expires_at) SELECT 'expired' || i, 'v', now() - interval '1 second'",
      };
      await admin.query(`INSERT INTO "${schema}"."blockid_otp_${table}" ${columns[table]} FROM generate_series(1, 50) i`);
    }
    const expiredLeft = async () =>
      Number(
        (
          await admin.query(`SELECT (SELECT count(*) FROM "${schema}".blockid_otp_slots WHERE expires_at < now()) + (SELECT count(*) FROM "${schema}".blockid_otp_users WHERE expires_at < now())
        + (SELECT count(*) FROM "${schema}".blockid_otp_counters WHERE expires_at < now()) + (SELECT count(*) FROM "${schema}".blockid_otp_uses WHERE expires_at < now())
        + (SELECT count(*) FROM "${schema}".blockid_otp_cache WHERE expires_at < now()) AS n`)
        ).rows[0].n,
      );
    assert.ok((await expiredLeft()) >= 250);
    const deleted = await store.sweep();
    assert.ok(deleted >= 250, `deleted ${deleted}`);
    assert.equal(await expiredLeft(), 0);
    assert.equal((await store.verify(verifyReq(user, live.code.hash))).result, 'ok', 'live rows stay');
  });

  it('the sweep timer runs on its own and does not hold the process open', async () => {
    const store = makeStore({ sweepIntervalMs: 100 });
    await admin.query(`INSERT INTO "${schema}".blockid_otp_cache (key, value, expires_at) VALUES ('timer-test', 'v', now() - interval '1 second')`);
    const gone = async () => (await admin.query(`SELECT 1 FROM "${schema}".blockid_otp_cache WHERE key = 'timer-test'`)).rowCount === 0;
    for (const deadline = Date.now() + 5_000; !(await gone()) && Date.now() < deadline; ) await sleep(100);
    assert.ok(await gone(), 'the sweep timer deleted the expired row');
    await store.close();
  });

  it('holds no plaintext: only the opaque keys and hashes it was given, numbers and times', async () => {
    const store = makeStore();
    const prefix = `np${randomBytes(3).toString('hex')}_`;
    const own = makeStore({ tablePrefix: prefix });
    await own.ready();
    const user = randomKey();
    const given = new Set<string>([user]);
    const c = counter('sendsPerIp', 5);
    const p = plan(user, { slot: randomKey(), request: [c], perUser: { points: 5, windowMs: 60_000 }, cooldownMs: 30_000 });
    for (const value of [p.slot, c.key, p.code.hash]) given.add(value);
    await own.send(p);
    await own.verify(verifyReq(user, randomKey(), [p.slot]));
    await own.settle({ user, use: { kind: 'recovery', id: 'recovery-hash-1', ttlMs: 60_000 } });
    await own.set('cache-key-1', 'mobile', 60_000);
    for (const value of ['recovery-hash-1', 'cache-key-1', 'mobile', 'user', 'decoy', 'recovery']) given.add(value);
    given.add(`\u0001user:${user}`); // the per-username quota's counter: the username key it was given, in a reserved key form
    const columns = await admin.query(
      `SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name LIKE $2 ORDER BY 1, 2`,
      [schema, `${prefix}%`],
    );
    const byTable = new Map<string, string[]>();
    for (const row of columns.rows) byTable.set(row.table_name, [...(byTable.get(row.table_name) ?? []), row.column_name]);
    assert.deepEqual(Object.fromEntries(byTable), {
      [`${prefix}cache`]: ['expires_at', 'key', 'value'],
      [`${prefix}counters`]: ['expires_at', 'hits', 'key'],
      [`${prefix}slots`]: [
        'attempts',
        'code_hash',
        'code_tag',
        'code_until',
        'cooldown_until',
        'expires_at',
        'issued_at_ms',
        'link_hash',
        'slot',
        'space',
        'user_key',
      ],
      [`${prefix}users`]: ['expires_at', 'failures', 'failures_until', 'lock_until', 'space', 'user_key'],
      [`${prefix}uses`]: ['expires_at', 'id', 'kind', 'step', 'user_key'],
    });
    for (const row of columns.rows) {
      if (row.data_type !== 'text') continue;
      const values = await admin.query(`SELECT DISTINCT "${row.column_name}" AS v FROM "${schema}"."${row.table_name}" WHERE "${row.column_name}" IS NOT NULL`);
      for (const { v } of values.rows) assert.ok(given.has(v), `${row.table_name}.${row.column_name} holds ${v}, which the store was not given`);
    }
    const rows = await admin.query(`SELECT count(*)::int AS n FROM "${schema}"."${prefix}slots" WHERE expires_at IS NULL`);
    assert.equal(rows.rows[0].n, 0);
    void store;
  });
});

describe('postgresStore under concurrency', () => {
  it('60 concurrent verifies of one code over 3 pools: exactly one ok', async () => {
    await withInstances(3, async (instances) => {
      const user = randomKey();
      const p = plan(user);
      await instances[0]!.send(p);
      const outcomes = await Promise.all(Array.from({ length: 60 }, (_, i) => instances[i % 3]!.verify(verifyReq(user, p.code.hash))));
      assert.equal(outcomes.filter((o) => o.result === 'ok').length, 1);
      assert.equal(outcomes.filter((o) => o.result === 'missing').length, 59);
    });
  });

  it('90 concurrent wrong guesses over 3 pools: exactly maxAttempts mismatches, the rest burned', async () => {
    await withInstances(3, async (instances) => {
      const user = randomKey();
      const p = plan(user);
      await instances[0]!.send(p);
      const outcomes = await Promise.all(Array.from({ length: 90 }, (_, i) => instances[i % 3]!.verify(verifyReq(user, randomKey()))));
      assert.equal(outcomes.filter((o) => o.result === 'mismatch').length, policy.maxAttempts);
      assert.equal(outcomes.filter((o) => o.result === 'burned').length, 90 - policy.maxAttempts);
      assert.equal((await instances[1]!.verify(verifyReq(user, p.code.hash))).result, 'burned');
    });
  });

  it('30 concurrent sends from one slot over 3 pools: one admitted', async () => {
    await withInstances(3, async (instances) => {
      const user = randomKey();
      const sends = Array.from({ length: 30 }, () => plan(user, { cooldownMs: 30_000 }));
      const decisions = await Promise.all(sends.map((p, i) => instances[i % 3]!.send(p)));
      const admitted = decisions.flatMap((d, i) => (d.ok ? [i] : []));
      assert.equal(admitted.length, 1);
      assert.ok(decisions.every((d) => d.ok || d.refusal.limit === 'resendCooldownSeconds'));
      assert.equal((await instances[2]!.verify(verifyReq(user, sends[admitted[0]!]!.code.hash))).result, 'ok', 'the admitted code is the stored one');
    });
  });

  it('concurrent plans sharing counters in different orders: no deadlock, exact counts', async () => {
    const store = makeStore();
    const keys = Array.from({ length: 4 }, (_, i) => counter(`c${i}`, 25));
    const decisions = await Promise.all(
      Array.from({ length: 80 }, (_, i) => {
        const order = i % 2 === 0 ? keys : [...keys].reverse();
        return store.send(plan(randomKey(), { request: [order[0]!], targets: [[order[1]!, order[2]!], [order[3]!]] }));
      }),
    );
    assert.equal(decisions.filter((d) => d.ok).length, 25, 'the request counter admits 25');
  });

  it('stays correct on a pool whose sessions default to SERIALIZABLE', async () => {
    await withInstances(
      1,
      async ([serial]) => {
        const user = randomKey();
        const p = plan(user);
        await serial!.send(p);
        const outcomes = await Promise.all(Array.from({ length: 20 }, () => serial!.verify(verifyReq(user, p.code.hash))));
        assert.equal(outcomes.filter((o) => o.result === 'ok').length, 1);
      },
      { options: '-c default_transaction_isolation=serializable' },
    );
  });

  it('5 stores creating the same tables at once all succeed', async () => {
    const fresh = `otp_test_create_${process.pid}_${randomBytes(3).toString('hex')}`;
    try {
      const created = Array.from({ length: 5 }, () => postgresStore({ pool: newPool({ max: 2 }), schema: fresh, sweepIntervalMs: 0 }));
      stores.push(...created);
      const before = await admin.query('SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = $1', [fresh]);
      assert.equal(before.rows[0].n, 0);
      await Promise.all(created.map((s) => s.ready()));
      const user = randomKey();
      const p = plan(user);
      const results = await Promise.all(created.map((s, i) => (i === 0 ? s.send(p) : s.verify(verifyReq(randomKey(), randomKey())))));
      assert.equal(results.length, 5);
      assert.equal((await created[4]!.verify(verifyReq(user, p.code.hash))).result, 'ok');
    } finally {
      await admin.query(`DROP SCHEMA IF EXISTS "${fresh}" CASCADE`);
    }
  });
});

describe('postgresStore fails closed', () => {
  it('a verify held up by a row lock answers STORE_UNAVAILABLE in time and never consumes the code later', async () => {
    const store = makeStore({ commandTimeoutMs: 300 });
    await store.ready(); // the set-up (the DDL) within its own bound, not the tight one under test
    const user = randomKey();
    const p = plan(user);
    await store.send(p);
    const blocker = await admin.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query(`SELECT * FROM "${schema}".blockid_otp_slots WHERE user_key = $1 FOR UPDATE`, [user]);
      const started = performance.now();
      const error = await rejectsUnavailable(store.verify(verifyReq(user, p.code.hash)));
      const elapsed = performance.now() - started;
      assert.ok(elapsed < 300 + 700, `answered after ${Math.round(elapsed)} ms, with the lock still held`); // slack for a loaded machine
      assert.match(error.message, /lock timeout|statement timeout|no answer/);
      assert.ok(!error.message.includes(user) && !error.message.includes(p.code.hash), 'no keys or hashes in the message');
      // Nothing of that verify is still waiting on the server...
      const waiting = await admin.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE '%blockid_otp_verify%' AND state = 'active' AND pid <> pg_backend_pid()`,
      );
      assert.equal(waiting.rows[0].n, 0);
      await sleep(500); // past the timeout, with the lock still held
    } finally {
      await blocker.query('COMMIT');
      blocker.release();
    }
    // ...so the lock's release lets nothing through: the code is still there, unspent.
    assert.deepEqual(await store.verify(verifyReq(user, p.code.hash)), { result: 'ok', space: 'user', issuedAtMs: p.code.issuedAtMs });
  });

  it('a send held up by a counter row lock is refused in time and starts no cooldown later', async () => {
    const store = makeStore({ commandTimeoutMs: 250 });
    await store.ready(); // the set-up (the DDL) within its own bound, not the tight one under test
    const user = randomKey();
    const c = counter('sendsPerIp', 10);
    await store.consume(c); // the counter row exists
    const blocker = await admin.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query(`SELECT * FROM "${schema}".blockid_otp_counters WHERE key = $1 FOR UPDATE`, [c.key]);
      await rejectsUnavailable(store.send(plan(user, { request: [c], cooldownMs: 30_000 })));
      await sleep(400);
    } finally {
      await blocker.query('COMMIT');
      blocker.release();
    }
    assert.equal((await store.send(plan(user, { cooldownMs: 30_000 }))).ok, true, 'no cooldown from the refused send');
    for (let i = 0; i < 9; i += 1) assert.equal(await store.consume(c), null, 'the refused send did not count');
    assert.notEqual(await store.consume(c), null);
  });

  it('an exhausted pool answers STORE_UNAVAILABLE within commandTimeoutMs, then works again', async () => {
    const small = newPool({ max: 1 });
    const store = postgresStore({ pool: small, schema, sweepIntervalMs: 0, commandTimeoutMs: 200 });
    stores.push(store);
    await store.ready();
    const held = await small.connect();
    const started = performance.now();
    await rejectsUnavailable(store.get(randomKey()));
    assert.ok(performance.now() - started < 200 + 700, 'answered with the connection still held'); // slack for a loaded machine
    held.release();
    assert.equal(await store.get(randomKey()), null);
  });

  it('a statement slower than commandTimeoutMs is cancelled on the server, and the connection reused', async () => {
    const store = makeStore({ commandTimeoutMs: 200 });
    await store.ready(); // the set-up (the DDL) within its own bound, not the tight one under test
    const user = randomKey();
    // Hold the username's advisory lock through the store's own operation from another connection.
    const blocker = await admin.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query(`SELECT "${schema}".blockid_otp_attempt($1::jsonb)`, [JSON.stringify({ user, space: 'user', policy })]);
      const started = performance.now();
      await rejectsUnavailable(store.attempt({ user, space: 'user', policy }));
      assert.ok(performance.now() - started < 200 + 700, 'answered with the lock still held'); // slack for a loaded machine
    } finally {
      await blocker.query('ROLLBACK');
      blocker.release();
    }
    assert.deepEqual(await store.attempt({ user, space: 'user', policy }), { ok: true, lock: null });
  });
});
