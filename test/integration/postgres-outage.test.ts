/**
 * postgresStore when the database goes away: a throwaway cluster of its own (initdb/pg_ctl on
 * a free port) is stopped mid-run, stalled with SIGSTOP, and started again. Every call
 * answers within commandTimeoutMs (plus a little slack): a success, or STORE_UNAVAILABLE;
 * the store recovers by itself; a statement held up on the server is cancelled there and
 * applies nothing later. Then the same over HTTP: Express instances answer send and verify
 * 503 within commandTimeoutMs, deliver nothing, and recover.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { createServer, type Server } from 'node:http';
import express from 'express';
import session from 'express-session';
import pg from 'pg';
import { OtpError } from '../../src/core/errors.js';
import { blockidOtp } from '../../src/index.js';
import { postgresStore, type PostgresStore } from '../../src/postgres.js';
import type { LockPolicy, SendPlan } from '../../src/stores/types.js';
import { baseOptions, closeServer, listen } from '../helpers/apps.js';
import { captureSenders } from '../helpers/capture.js';
import { assertNoCodeLeaked, Client, type Reply } from '../helpers/client.js';
import { createPostgresCluster, postgresClusterUnavailable, type PostgresCluster } from '../helpers/postgres-server.js';

const commandTimeoutMs = 500;
const slackMs = 1_000; // a loaded 2-core machine
const policy: LockPolicy = { maxAttempts: 5, failedVerifications: 100, lockMs: 60_000, maxConsecutiveFailures: 100, failureMemoryMs: 3_600_000 };
const randomKey = (): string => randomBytes(16).toString('base64url');
const plan = (user: string): SendPlan => ({
  user,
  space: 'user',
  slot: 'session-a',
  cooldownMs: 0,
  perUser: { points: 1000, windowMs: 60_000 },
  request: [{ limit: 'sendsPerIp', key: 'ip:outage', points: 100_000, windowMs: 60_000, mode: 'take' }],
  targets: [[{ limit: 'smsPerDay', key: 'sms:outage', points: 100_000, windowMs: 60_000, mode: 'take' }]],
  code: { hash: randomKey(), ttlMs: 60_000, issuedAtMs: Date.now() },
});

/** Runs `operation`, timing it; a failure must be STORE_UNAVAILABLE. */
async function timed(operation: () => Promise<unknown>): Promise<{ ms: number; ok: boolean; message?: string }> {
  const started = performance.now();
  try {
    await operation();
    return { ms: performance.now() - started, ok: true };
  } catch (error) {
    assert.ok(error instanceof OtpError && error.code === 'STORE_UNAVAILABLE', `expected STORE_UNAVAILABLE, got ${String(error)}`);
    return { ms: performance.now() - started, ok: false, message: error.message };
  }
}

const skip = postgresClusterUnavailable();
describe('postgresStore outage (throwaway cluster)', { skip: skip ? `skipped: ${skip}` : false }, () => {
  let cluster: PostgresCluster;
  let pool: pg.Pool;
  let store: PostgresStore;
  const poolErrors: Error[] = [];
  const beforeOutage = { user: randomKey(), plan: undefined as SendPlan | undefined };

  before(async () => {
    cluster = await createPostgresCluster();
    pool = new pg.Pool({ connectionString: cluster.url, max: 10 });
    pool.on('error', (error) => poolErrors.push(error)); // without it, the restart below would crash the process
    store = postgresStore({ pool, commandTimeoutMs, sweepIntervalMs: 200 });
    await store.ready();
  });

  after(async () => {
    await store?.close();
    await pool?.end().catch(() => {});
    await cluster?.destroy();
  });

  it('works, then answers STORE_UNAVAILABLE within commandTimeoutMs once the server is stopped mid-run', async (t) => {
    const { user } = beforeOutage;
    const p = (beforeOutage.plan = plan(user));
    assert.equal((await store.send(p)).ok, true);

    // Ten loops of send + verify, with the server stopped (immediate, like a crash) under them.
    let running = true;
    const answers: Array<{ ms: number; ok: boolean }> = [];
    const loops = Array.from({ length: 10 }, async () => {
      while (running) {
        const u = randomKey();
        answers.push(await timed(() => store.send(plan(u))));
        answers.push(await timed(() => store.verify({ user: u, slots: ['session-a'], hash: randomKey(), policy })));
      }
    });
    await sleep(300);
    await cluster.stop();
    await sleep(700);
    running = false;
    await Promise.all(loops);
    assert.ok(
      answers.some((a) => a.ok) && answers.some((a) => !a.ok),
      `answers: ${answers.filter((a) => a.ok).length} ok, ${answers.filter((a) => !a.ok).length} unavailable`,
    );
    const slowest = Math.max(...answers.map((a) => a.ms));
    t.diagnostic(`${answers.filter((a) => a.ok).length} ok, ${answers.filter((a) => !a.ok).length} unavailable, slowest ${Math.round(slowest)} ms`);
    assert.ok(slowest <= commandTimeoutMs + slackMs, `slowest answer ${Math.round(slowest)} ms`);

    // Down: every operation fails closed, quickly.
    for (const operation of [
      () => store.send(plan(randomKey())),
      () => store.verify({ user, slots: ['session-a'], hash: p.code.hash, policy }),
      () => store.attempt({ user, space: 'user', policy }),
      () => store.settle({ user, use: { kind: 'totp', step: 1, ttlMs: 60_000 } }),
      () => store.unlock(user),
      () => store.consume({ limit: 'x', key: 'k', points: 1, windowMs: 1000, mode: 'take' }),
      () => store.get('k'),
      () => store.set('k', 'v', 1000),
    ]) {
      const answer = await timed(operation);
      assert.equal(answer.ok, false);
      assert.ok(answer.ms <= commandTimeoutMs + slackMs, `answered after ${Math.round(answer.ms)} ms`);
    }
    await assert.rejects(store.sweep(), { code: 'STORE_UNAVAILABLE' });
  });

  it('recovers by itself once the server is back: the code sent before the outage still verifies once', async () => {
    await cluster.start();
    const started = performance.now();
    let back = false;
    while (!back && performance.now() - started < 10_000) {
      back = (await timed(() => store.get('k'))).ok;
      if (!back) await sleep(100);
    }
    assert.ok(back, 'the store answers again');
    const { user, plan: sent } = beforeOutage;
    assert.equal((await store.verify({ user, slots: ['session-a'], hash: sent!.code.hash, policy })).result, 'ok');
    assert.equal((await store.verify({ user, slots: ['session-a'], hash: sent!.code.hash, policy })).result, 'missing');
    const fresh = randomKey();
    const p = plan(fresh);
    assert.equal((await store.send(p)).ok, true);
    assert.equal((await store.verify({ user: fresh, slots: ['session-a'], hash: p.code.hash, policy })).result, 'ok');
    for (let i = 0; i < 20; i += 1) assert.equal((await timed(() => store.get(randomKey()))).ok, true, 'no stale connection left in the pool');
  });

  it('a stalled server (SIGSTOP) is answered by the client-side deadline, and the store recovers on SIGCONT', async () => {
    const user = randomKey();
    const p = plan(user);
    await store.send(p);
    const pids = await cluster.pids();
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    try {
      const answer = await timed(() => store.verify({ user, slots: ['session-a'], hash: randomKey(), policy }));
      assert.equal(answer.ok, false);
      assert.ok(answer.ms >= commandTimeoutMs - 50 && answer.ms <= commandTimeoutMs + slackMs, `answered after ${Math.round(answer.ms)} ms`);
    } finally {
      for (const pid of pids) process.kill(pid, 'SIGCONT');
    }
    const started = performance.now();
    let outcome: Awaited<ReturnType<PostgresStore['verify']>> | undefined;
    while (outcome === undefined && performance.now() - started < 5000) {
      outcome = await store.verify({ user, slots: ['session-a'], hash: p.code.hash, policy }).catch(() => undefined);
    }
    assert.equal(outcome?.result, 'ok');
  });

  it('a statement held by a row lock times out on the server and does not apply later', async () => {
    const user = randomKey();
    const p = plan(user);
    await store.send(p);
    const blocker = new pg.Client({ connectionString: cluster.url });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('SELECT 1 FROM public.blockid_otp_slots WHERE user_key = $1 FOR UPDATE', [user]);
      const answer = await timed(() => store.verify({ user, slots: ['session-a'], hash: p.code.hash, policy }));
      assert.equal(answer.ok, false);
      assert.match(answer.message ?? '', /statement timeout|lock timeout/, 'the server gave up first');
      await sleep(commandTimeoutMs + 200);
      const active = await blocker.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE '%blockid_otp_verify%' AND pid <> pg_backend_pid() AND state = 'active'`,
      );
      assert.equal(active.rows[0].n, 0, 'nothing left waiting on the server');
    } finally {
      await blocker.query('COMMIT');
      await blocker.end();
    }
    assert.equal(
      (await store.verify({ user, slots: ['session-a'], hash: p.code.hash, policy })).result,
      'ok',
      'the code was not consumed by the refused verify',
    );
  });

  it('a verify written to a stalled server (SIGSTOP) applies nothing when the server wakes after the deadline', async () => {
    const user = randomKey();
    const p = plan(user);
    await store.send(p);
    await Promise.all([store.get('warm'), store.get('warm')]); // live connections, so the verify is written to the socket
    const pids = await cluster.pids();
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    try {
      const answer = await timed(() => store.verify({ user, slots: ['session-a'], hash: p.code.hash, policy }));
      assert.equal(answer.ok, false);
      await sleep(300); // the server reads the statement only now, past its deadline
    } finally {
      for (const pid of pids) process.kill(pid, 'SIGCONT');
    }
    let outcome: Awaited<ReturnType<PostgresStore['verify']>> | undefined;
    for (const started = performance.now(); outcome === undefined && performance.now() - started < 5000; ) {
      outcome = await store.verify({ user, slots: ['session-a'], hash: p.code.hash, policy }).catch(() => undefined);
    }
    assert.equal(outcome?.result, 'ok', 'the verify answered STORE_UNAVAILABLE did not use the code up later');
  });

  it('a reply slow to come back skews the clock estimate of the deadline guard without failing the next call', async () => {
    // A pool whose replies can be held back, as a busy event loop or a slow network would.
    const slow = new pg.Pool({ connectionString: cluster.url, max: 1 });
    slow.on('error', () => {});
    let holdNextMs = 0;
    let guarded = 0;
    const patched = new WeakSet<object>();
    const connect = slow.connect.bind(slow) as () => Promise<pg.PoolClient>;
    (slow as unknown as { connect: () => Promise<pg.PoolClient> }).connect = async () => {
      const client = await connect();
      if (!patched.has(client)) {
        patched.add(client);
        const query = client.query.bind(client) as (text: string) => Promise<unknown>;
        (client as unknown as { query: (text: string) => Promise<unknown> }).query = async (text: string) => {
          if (text.includes('blockid_otp_deadline"(')) guarded += 1;
          const hold = holdNextMs;
          holdNextMs = 0;
          const result = await query(text);
          if (hold > 0) await sleep(hold);
          return result;
        };
      }
      return client;
    };
    const skewed = postgresStore({ pool: slow, commandTimeoutMs, sweepIntervalMs: 0 });
    try {
      holdNextMs = commandTimeoutMs + 200; // the set-up round trip (allowed 10 s): its clock sample is 700 ms stale
      await skewed.ready();
      guarded = 0; // the set-up's DDL names the guard function too
      const answer = await timed(() => skewed.get(randomKey()));
      assert.equal(answer.ok, true, 'the guard refused on the stale estimate, then the call was tried again with the corrected one');
      assert.ok(answer.ms < commandTimeoutMs + slackMs, `answered after ${Math.round(answer.ms)} ms`);
      assert.equal(guarded, 2, 'one refusal by the guard, one retry');
      assert.equal((await timed(() => skewed.get(randomKey()))).ok, true);
      assert.equal(guarded, 3, 'the estimate stays corrected');
    } finally {
      await skewed.close();
      await slow.end();
    }
  });
});

describe('postgresStore({ unlogged: true }) across a database crash (throwaway cluster)', { skip: skip ? `skipped: ${skip}` : false }, () => {
  let cluster: PostgresCluster;
  let pool: pg.Pool;

  before(async () => {
    cluster = await createPostgresCluster();
    pool = new pg.Pool({ connectionString: cluster.url, max: 4 });
    pool.on('error', () => {}); // the crash below ends its connections
  });

  after(async () => {
    await pool?.end().catch(() => {});
    await cluster?.destroy();
  });

  it('loses the codes and quotas (unlogged tables), keeps the failure count and its lock (logged), and works on', async () => {
    const store = postgresStore({ pool, commandTimeoutMs: 2000, sweepIntervalMs: 0, unlogged: true });
    const lockPolicy: LockPolicy = { ...policy, maxConsecutiveFailures: 1 };
    const user = randomKey();
    const locked = randomKey();
    const quota = { points: 1, windowMs: 60_000 };
    const sent = { ...plan(user), perUser: quota };
    assert.equal((await store.send(sent)).ok, true);
    const again = await store.send({ ...plan(user), slot: 'session-b', perUser: quota });
    assert.equal(!again.ok && again.refusal.limit, 'sendsPerUsername', 'the quota counts before the crash');
    assert.equal((await store.send(plan(locked))).ok, true);
    const failed = await store.verify({ user: locked, slots: ['session-a'], hash: randomKey(), policy: lockPolicy });
    assert.equal(failed.result === 'mismatch' && failed.lock, 'permanent');

    await cluster.stop(); // immediate: a crash, not a clean shutdown
    await cluster.start();
    let back = false;
    for (const started = performance.now(); !back && performance.now() - started < 10_000; ) {
      back = (await timed(() => store.get('k'))).ok;
      if (!back) await sleep(100);
    }
    assert.ok(back, 'the store answers again');

    // The code is gone (the user asks for a new one) and the quota starts over...
    assert.deepEqual(await store.verify({ user, slots: ['session-a'], hash: sent.code.hash, policy }), { result: 'missing' });
    const resent = { ...plan(user), perUser: quota };
    assert.equal((await store.send(resent)).ok, true);
    assert.equal((await store.verify({ user, slots: ['session-a'], hash: resent.code.hash, policy })).result, 'ok');
    // ...but the lock after maxConsecutiveFailures survives the crash: its table is logged.
    assert.equal((await store.send(plan(locked))).ok, true);
    const after = await store.verify({ user: locked, slots: ['session-a'], hash: randomKey(), policy: lockPolicy });
    assert.equal(after.result === 'locked' && after.permanent, true, JSON.stringify(after));
    await store.close();
  });
});

describe('Express instances over postgresStore when the database goes away (throwaway cluster)', { skip: skip ? `skipped: ${skip}` : false }, () => {
  let cluster: PostgresCluster;
  const pools: pg.Pool[] = [];
  const stores: PostgresStore[] = [];
  const servers: Server[] = [];
  const urls: string[] = [];
  const capture = captureSenders();
  const url = (i: number): string => urls[i % urls.length]!;
  const as = (like: Client, i: number): Client => {
    const client = new Client(url(i));
    client.cookie = like.cookie;
    return client;
  };

  before(async () => {
    cluster = await createPostgresCluster();
    // Sessions in one in-process MemoryStore shared by the instances, so only the OTP store goes away.
    const sessions = new session.MemoryStore();
    for (let i = 0; i < 2; i += 1) {
      const pool = new pg.Pool({ connectionString: cluster.url, max: 5 });
      pool.on('error', () => {}); // without it, the stop below would crash the process
      const store = postgresStore({ pool, commandTimeoutMs });
      await store.ready();
      pools.push(pool);
      stores.push(store);
      const app = express();
      app.use(session({ secret: 'session-secret-shared-by-instances', resave: false, saveUninitialized: false, name: 'sid', store: sessions }));
      app.use(blockidOtp(baseOptions(capture, { store, limits: { sendsPerIp: { points: 10_000, windowSeconds: 600 } } })));
      const server = createServer(app);
      servers.push(server);
      urls.push(await listen(server));
    }
  });

  after(async () => {
    for (const server of servers) await closeServer(server);
    for (const store of stores) await store.close();
    await Promise.all(pools.map((pool) => pool.end().catch(() => {})));
    await cluster?.destroy();
  });

  /** Posts `body` to `path` on every instance, expecting 503 unavailable within commandTimeoutMs; the times in ms. */
  async function allUnavailable(requests: Array<[Client, string, unknown]>, atLeastMs = 0): Promise<number[]> {
    const timings: number[] = [];
    for (let i = 0; i < urls.length; i += 1) {
      for (const [client, path, body] of requests) {
        const started = performance.now();
        const reply: Reply = await as(client, i).post(path, body);
        const ms = performance.now() - started;
        timings.push(Math.round(ms));
        assert.equal(reply.status, 503, `instance ${i} ${path}: ${reply.text}`);
        assert.equal(reply.body?.error, 'unavailable');
        assert.equal(typeof reply.body?.message, 'string');
        assert.ok(ms >= atLeastMs && ms <= commandTimeoutMs + slackMs, `instance ${i} ${path} answered after ${Math.round(ms)} ms`);
      }
    }
    return timings;
  }

  it('answers send and verify 503 within commandTimeoutMs while the server is stopped, delivers nothing, then recovers', async () => {
    const browser = new Client(url(0));
    const first = await browser.post('/otp/send', { username: 'john.smith' });
    assert.equal(first.status, 202, first.text);
    await capture.waitFor(2);
    const code = capture.messages.at(-1)!.code;
    // A session with its binding already (a 503 saves no session): a send for another user gave it one.
    const stranger = new Client(url(0));
    assert.equal((await stranger.post('/otp/send', { username: 'grace.hopper' })).status, 202);
    await capture.waitFor(3);

    await cluster.stop();
    const deliveredBefore = capture.messages.length;
    const timings = await allUnavailable([
      [browser, '/otp/verify', { username: 'john.smith', code }],
      [stranger, '/otp/send', { username: 'ada.lovelace' }],
      [stranger, '/otp/send', { username: 'nobody.here' }], // an unknown user fails the same way
    ]);
    console.log(`# with PostgreSQL stopped, send/verify on 2 instances answered 503 in (ms): ${timings.join(', ')}`);
    await sleep(200);
    assert.equal(capture.messages.length, deliveredBefore, 'nothing was delivered while the database was down');

    await cluster.start();
    const restarted = performance.now();
    let verified: Reply | undefined;
    for (let attempt = 0; performance.now() - restarted < 10_000; attempt += 1) {
      // The code sent before the outage: none of the verifies answered 503 above used it up.
      const reply = await as(browser, attempt).post('/otp/verify', { username: 'john.smith', code });
      if (reply.status !== 503) {
        verified = reply;
        break;
      }
      await sleep(100);
    }
    assert.equal(verified?.status, 200, `the code sent before the outage verifies once the server is back: ${verified?.text}`);
    console.log(`# a verify answered 200 again ${Math.round(performance.now() - restarted)} ms after pg_ctl start returned`);
    // The session whose send answered 503 got no cooldown from it.
    const again = await as(stranger, 1).post('/otp/send', { username: 'ada.lovelace' });
    assert.equal(again.status, 202, again.text);
    await capture.waitFor(deliveredBefore + 1);
    await sleep(100);
    assert.deepEqual(
      capture.messages.slice(deliveredBefore).map((m) => m.username),
      ['ada.lovelace'],
      'one send, one delivery',
    );
  });

  it('answers 503 within commandTimeoutMs while the server is stalled (SIGSTOP), delivers nothing, and a verify answered 503 uses nothing up', async () => {
    const browser = new Client(url(1));
    const before = capture.messages.length;
    assert.equal((await browser.post('/otp/send', { username: 'john.smith' })).status, 202);
    await capture.waitFor(before + 2);
    const code = capture.messages.at(-1)!.code;
    // Connections in the pools, so the requests below are written to a live socket and wait for the answer.
    await Promise.all(stores.flatMap((store) => [store.get('warm'), store.get('warm')]));

    const pids = await cluster.pids();
    let deliveredBefore = capture.messages.length;
    // A session with its binding already (a 503 saves no session): a send for another user gave it one.
    const sender = new Client(url(0));
    assert.equal((await sender.post('/otp/send', { username: 'grace.hopper' })).status, 202);
    await capture.waitFor(deliveredBefore + 1);
    deliveredBefore = capture.messages.length;
    let timings: number[];
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    try {
      timings = await allUnavailable(
        [
          [browser, '/otp/verify', { username: 'john.smith', code }],
          [sender, '/otp/send', { username: 'ada.lovelace' }],
        ],
        commandTimeoutMs - 50,
      );
      await sleep(300); // stalled past the deadline of every request above
    } finally {
      for (const pid of pids) process.kill(pid, 'SIGCONT');
    }
    console.log(`# with PostgreSQL stalled, send/verify on 2 instances answered 503 in (ms): ${timings.join(', ')}`);

    const resumed = performance.now();
    let verified: Reply | undefined;
    while (performance.now() - resumed < 5000) {
      verified = await as(browser, 0).post('/otp/verify', { username: 'john.smith', code });
      if (verified.status !== 503) break;
      await sleep(50);
    }
    assert.equal(verified?.status, 200, `the verifies that answered 503 did not use the code up once the server woke: ${verified?.text}`);
    await sleep(200);
    assert.equal(capture.messages.length, deliveredBefore, 'nothing was delivered for the sends that answered 503');
    // Nor did those sends start a cooldown later: the same client's send is admitted now.
    const again = await sender.post('/otp/send', { username: 'ada.lovelace' });
    assert.equal(again.status, 202, `a send that answered 503 started no cooldown: ${again.text}`);
    await capture.waitFor(deliveredBefore + 1);
    const codes = capture.messages.map((m) => m.code);
    assert.ok(assertNoCodeLeaked(codes) > 0, 'no reply carried a code');
  });
});
