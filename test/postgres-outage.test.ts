/**
 * postgresStore when the database goes away: a throwaway cluster of its own (initdb/pg_ctl on
 * a free port) is stopped mid-run, stalled with SIGSTOP, and started again. Every call
 * answers within commandTimeoutMs (plus a little slack): a success, or STORE_UNAVAILABLE;
 * the store recovers by itself; a statement held up on the server is cancelled there and
 * applies nothing later.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { OtpError } from '../src/core/errors.js';
import { postgresStore, type PostgresStore } from '../src/postgres.js';
import type { LockPolicy, SendPlan } from '../src/stores/types.js';
import { createPostgresCluster, postgresClusterUnavailable, type PostgresCluster } from './helpers/postgres-server.js';

const commandTimeoutMs = 500;
const slackMs = 150;
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
async function timed(operation: () => Promise<unknown>): Promise<{ ms: number; ok: boolean }> {
  const started = performance.now();
  try {
    await operation();
    return { ms: performance.now() - started, ok: true };
  } catch (error) {
    assert.ok(error instanceof OtpError && error.code === 'STORE_UNAVAILABLE', `expected STORE_UNAVAILABLE, got ${String(error)}`);
    return { ms: performance.now() - started, ok: false };
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
    assert.ok(answers.some((a) => a.ok) && answers.some((a) => !a.ok), `answers: ${answers.filter((a) => a.ok).length} ok, ${answers.filter((a) => !a.ok).length} unavailable`);
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
      assert.ok(answer.ms < commandTimeoutMs, `the server gave up first: ${Math.round(answer.ms)} ms`);
      await sleep(commandTimeoutMs + 200);
      const active = await blocker.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE '%blockid_otp_verify%' AND pid <> pg_backend_pid() AND state = 'active'`);
      assert.equal(active.rows[0].n, 0, 'nothing left waiting on the server');
    } finally {
      await blocker.query('COMMIT');
      await blocker.end();
    }
    assert.equal((await store.verify({ user, slots: ['session-a'], hash: p.code.hash, policy })).result, 'ok', 'the code was not consumed by the refused verify');
  });
});
