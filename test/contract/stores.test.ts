/**
 * The store contract against memory, Redis on 127.0.0.1:6379 and a three-master Redis Cluster
 * started here, plus what only Redis can show: TTLs on every key, no plaintext at rest, cross-instance
 * single use, NOSCRIPT recovery, and failing closed (then recovering) when Redis dies or stalls.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { createClient, type RedisClientType, type RedisClusterType } from 'redis';
import { hashCode, hashKey } from '../../src/core/codes.js';
import { OtpError } from '../../src/core/errors.js';
import { memoryStore } from '../../src/stores/memory.js';
import { redisStore } from '../../src/stores/redis.js';
import { sendPlanScript, verifyScript } from '../../src/stores/redis-scripts.js';
import { holdsCode } from '../helpers/client.js';
import { freePort, keysUnder, kill, reconnectStrategy, startRedis, waitForRedis } from '../helpers/redis-server.js';
import { counter, describeStoreContract, plan, policy, randomKey } from '../helpers/store-contract.js';
import { startCluster, type TestCluster } from '../helpers/redis-cluster.js';

const runPrefix = `otp-test:${randomBytes(6).toString('hex')}:`;
let storeCount = 0;
const nextPrefix = (): string => `${runPrefix}${(storeCount += 1)}:`;

const isUnavailable = (error: unknown): boolean => error instanceof OtpError && error.code === 'STORE_UNAVAILABLE' && error.status === 503;

async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; result: PromiseSettledResult<T> }> {
  const started = performance.now();
  const [result] = await Promise.allSettled([work()]);
  return { ms: performance.now() - started, result: result! };
}

// ---- the contract ---------------------------------------------------------------------------

describeStoreContract('memory', async () => ({ store: memoryStore(), cleanup: async () => {} }));

describe('redis on 127.0.0.1:6379', () => {
  let client: RedisClientType;

  before(async () => {
    client = createClient({ url: 'redis://127.0.0.1:6379', socket: { reconnectStrategy } });
    client.on('error', () => {});
    await client.connect();
  });

  after(async () => {
    const leftovers = await keysUnder(client, runPrefix);
    if (leftovers.length > 0) await client.del(leftovers);
    client.destroy();
    assert.deepEqual(leftovers, [], 'every test cleans up its keys');
  });

  describeStoreContract('redis', async () => {
    const prefix = nextPrefix();
    return {
      store: redisStore({ client, prefix }),
      async cleanup() {
        const keys = await keysUnder(client, prefix);
        if (keys.length > 0) await client.del(keys);
      },
    };
  });

  describe('redis only', () => {
    const secret = 'test-secret-that-is-at-least-32-characters-long';

    it('puts a TTL on every key and keeps codes out of keys and values', async () => {
      const prefix = nextPrefix();
      const store = redisStore({ client, prefix });
      const codes = ['482913', '9076513', '31415926', '7700512349'];
      for (const [i, code] of codes.entries()) {
        const user = randomKey();
        const slot = i % 2 === 0 ? '' : hashKey(secret, 'binding', randomKey());
        const sent = plan(user, {
          slot,
          space: i === 3 ? 'decoy' : 'user',
          cooldownMs: 10_000,
          perUser: { points: 10, windowMs: 60_000 },
          request: [counter('sendsPerIp', 5)],
          targets: [[counter('sendsPerDestination', 5)]],
          code: { hash: hashCode(secret, user, code), ttlMs: 60_000, issuedAtMs: Date.now() },
        });
        assert.equal((await store.send(sent)).ok, true);
        assert.equal(
          (await store.verify({ user, slots: [slot], hash: hashCode(secret, user, '000000'), policy: { ...policy, failedVerifications: 1 } })).result,
          'mismatch',
        );
        await store.attempt({ user, space: 'user', policy });
        await store.settle({ user, use: { kind: 'totp', step: 1, ttlMs: 60_000 } });
        await store.settle({ user, use: { kind: 'recovery', id: randomKey(), ttlMs: 60_000 } });
      }
      await store.set(randomKey(), 'mobile', 60_000);

      const stored = await keysUnder(client, prefix);
      // per send: code, cooldown, per-user count, two counters, failures, timed lock (failedVerifications 1); TOTP step, recovery marker; one cached value
      assert.ok(stored.length >= 4 * 7 + 1, stored.join('\n'));
      for (const key of stored) {
        const ttl = await client.pTTL(key);
        assert.ok(ttl > 0, `${key} has PTTL ${ttl}`);
        const type = await client.type(key);
        const values = type === 'hash' ? Object.values(await client.hGetAll(key)) : [String(await client.get(key))];
        for (const code of codes) {
          assert.ok(!holdsCode(key, code), `key ${key} contains a code`);
          for (const value of values) assert.ok(!holdsCode(value, code), `${key} holds a code`);
        }
      }
      for (const key of stored) await client.del(key);
    });

    it('stores a code as a hash with typed fields, and a mismatch keeps its remaining TTL', async () => {
      const prefix = nextPrefix();
      const store = redisStore({ client, prefix });
      const user = randomKey();
      const hash = hashCode(secret, user, '246810');
      await store.send(plan(user, { code: { hash, ttlMs: 10_000, issuedAtMs: 1234 } }));
      const codeKey = `${prefix}{${user}}:u:c:-`;
      const before = await client.pTTL(codeKey);
      await sleep(150);
      assert.equal((await store.verify({ user, slots: [''], hash: hashCode(secret, user, '135790'), policy })).result, 'mismatch');
      assert.deepEqual({ ...(await client.hGetAll(codeKey)) }, { hash, attempts: '1', issuedAt: '1234' });
      const afterMismatch = await client.pTTL(codeKey);
      assert.ok(afterMismatch > 0 && afterMismatch <= before - 100, `PTTL ${before} -> ${afterMismatch}`);
      const keys = await keysUnder(client, prefix);
      if (keys.length > 0) await client.del(keys);
    });

    it('lets exactly one of two app instances (two clients) use a code, and shares the cooldown', async () => {
      const prefix = nextPrefix();
      const other = createClient({ url: 'redis://127.0.0.1:6379' });
      other.on('error', () => {});
      await other.connect();
      try {
        const [a, b] = [redisStore({ client, prefix }), redisStore({ client: other, prefix })];
        const user = randomKey();
        const sent = plan(user, { cooldownMs: 30_000 });
        await a.send(sent);
        assert.equal((await b.send(plan(user, { cooldownMs: 30_000 }))).ok, false, 'the cooldown is shared');
        const outcomes = await Promise.all(
          Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).verify({ user, slots: [''], hash: sent.code.hash, policy })),
        );
        assert.equal(outcomes.filter((o) => o.result === 'ok').length, 1);
        const keys = await keysUnder(client, prefix);
        if (keys.length > 0) await client.del(keys);
      } finally {
        other.destroy();
      }
    });

    it('recovers from a flushed script cache (NOSCRIPT) by sending the script again', async () => {
      const prefix = nextPrefix();
      const store = redisStore({ client, prefix });
      const sent = plan(randomKey());
      await client.scriptFlush();
      assert.deepEqual(await client.scriptExists([sendPlanScript.sha1, verifyScript.sha1]), [0, 0]);
      assert.equal((await store.send(sent)).ok, true);
      assert.equal((await store.verify({ user: sent.user, slots: [''], hash: sent.code.hash, policy })).result, 'ok');
      assert.deepEqual(await client.scriptExists([sendPlanScript.sha1, verifyScript.sha1]), [1, 1]);
      const keys = await keysUnder(client, prefix);
      if (keys.length > 0) await client.del(keys);
    });

    it('leaves the caller’s client open on close()', async () => {
      const store = redisStore({ client, prefix: nextPrefix() });
      await store.close?.();
      assert.equal(client.isOpen, true);
      assert.equal(await client.ping(), 'PONG');
    });

    it('rejects bad options with a TypeError that names the option', async () => {
      const bad = (options: unknown) => () => redisStore(options as Parameters<typeof redisStore>[0]);
      assert.throws(bad({}), { name: 'TypeError', message: /option "client" must be a node-redis v5 client/ });
      assert.throws(bad({ client: { get: () => {} } }), { name: 'TypeError', message: /option "client" must be a node-redis v5 client/ });
      assert.throws(bad({ client: createClient() }), { name: 'TypeError', message: /option "client" is not connected.*client\.connect\(\)/ });
      assert.throws(bad({ client, prefix: 'app:{otp}:' }), {
        name: 'TypeError',
        message: /option "prefix" must be a string without.*\(got the string "app:\{otp\}:"\)/,
      });
      assert.throws(bad({ client, commandTimeoutMs: 0 }), {
        name: 'TypeError',
        message: /option "commandTimeoutMs" must be a whole number from 1 to 600000 \(got the number 0\)/,
      });
      assert.throws(bad({ client, timeoutMs: 500 }), { name: 'TypeError', message: /unknown option "timeoutMs": did you mean "commandTimeoutMs"\?/ });
    });
  });
});

// ---- failing closed ----------------------------------------------------------------------------

describe('redis store fails closed and recovers', () => {
  let dir: string;
  let port: number;
  let server: ChildProcess;
  let client: RedisClientType;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'blockid-otp-redis-'));
    port = await freePort();
    server = startRedis(port, dir);
    await waitForRedis(port);
    client = createClient({ url: `redis://127.0.0.1:${port}`, socket: { reconnectStrategy } });
    client.on('error', () => {});
    await client.connect();
  });

  after(async () => {
    client.destroy();
    await kill(server);
    await rm(dir, { recursive: true, force: true });
  });

  const secret = 'test-secret-that-is-at-least-32-characters-long';

  it('rejects every store call with STORE_UNAVAILABLE within 1 s when Redis dies, then works again once it is back', async () => {
    const store = redisStore({ client, prefix: nextPrefix() });
    const quota = counter('sendsPerIp', 100);
    const key = randomKey();
    const sent = plan(key, { code: { hash: hashCode(secret, key, '112233'), ttlMs: 60_000, issuedAtMs: Date.now() } });
    assert.equal((await store.send(sent)).ok, true);
    assert.equal(await store.consume(quota), null);
    const verifyCall = () => store.verify({ user: key, slots: [''], hash: sent.code.hash, policy });

    await kill(server, 'SIGKILL');
    const calls: Record<string, () => Promise<unknown>> = {
      send: () => store.send(sent),
      verify: verifyCall,
      attempt: () => store.attempt({ user: key, space: 'user', policy }),
      settle: () => store.settle({ user: key, use: { kind: 'totp', step: 1, ttlMs: 1000 } }),
      unlock: () => store.unlock(key),
      consume: () => store.consume(quota),
      get: () => store.get(key),
      set: () => store.set(key, 'x', 1000),
    };
    const timings: Record<string, number> = {};
    for (const [name, call] of Object.entries(calls)) {
      const { ms, result } = await timed(call);
      timings[name] = Math.round(ms);
      assert.equal(result.status, 'rejected', `${name} must not succeed without Redis`);
      assert.ok(result.status === 'rejected' && isUnavailable(result.reason), `${name}: ${String(result.status === 'rejected' && result.reason)}`);
      assert.match((result as PromiseRejectedResult).reason.message, /The OTP store \(Redis\) cannot be reached/);
      assert.ok(ms < 2500, `${name} took ${ms} ms`); // fails fast, with slack for a loaded machine
    }
    // Many calls at once while it is down: none hangs.
    const burst = await timed(() => Promise.allSettled(Array.from({ length: 50 }, verifyCall)));
    assert.ok(burst.ms < 2500, `burst took ${burst.ms} ms`);
    assert.ok(burst.result.status === 'fulfilled' && burst.result.value.every((r) => r.status === 'rejected' && isUnavailable(r.reason)));
    console.log(`# fail-closed timings (ms): ${JSON.stringify(timings)}, 50 parallel verifies ${Math.round(burst.ms)}`);

    server = startRedis(port, dir);
    const restarted = performance.now();
    let recovered = false;
    while (!recovered && performance.now() - restarted < 5_000) {
      recovered = (await timed(() => store.send(sent))).result.status === 'fulfilled';
      if (!recovered) await sleep(100);
    }
    assert.ok(recovered, 'the store works again within 5 s of Redis coming back');
    console.log(`# recovered ${Math.round(performance.now() - restarted)} ms after restarting redis-server`);
    assert.equal((await verifyCall()).result, 'ok');
    assert.equal(await store.consume({ ...quota, points: 1 }), null); // a fresh Redis: the counter started over
  });

  it('rejects within commandTimeoutMs when Redis stops answering (SIGSTOP), and works again after SIGCONT', async () => {
    await waitForRedis(port);
    const store = redisStore({ client, prefix: nextPrefix(), commandTimeoutMs: 300 });
    const key = randomKey();
    const sent = plan(key, { code: { hash: hashCode(secret, key, '445566'), ttlMs: 60_000, issuedAtMs: Date.now() } });
    assert.equal((await store.send(sent)).ok, true);

    server.kill('SIGSTOP');
    try {
      for (const call of [(): Promise<unknown> => store.verify({ user: key, slots: [''], hash: sent.code.hash, policy }), () => store.send(plan(key))]) {
        const { ms, result } = await timed(call);
        assert.ok(result.status === 'rejected' && isUnavailable(result.reason), String(result.status === 'rejected' && result.reason));
        assert.ok(ms >= 250 && ms < 2000, `took ${ms} ms with commandTimeoutMs 300`); // the timer, with slack for a loaded machine
      }
      assert.equal(client.isReady, true, 'the connection stayed up: this was the timer, not a socket error');
    } finally {
      server.kill('SIGCONT');
    }
    // The verify sent while Redis was stopped sat in the socket and runs after SIGCONT (using the code);
    // the caller was told STORE_UNAVAILABLE, which fails closed. A fresh code works end to end again.
    const fresh = plan(key, { code: { hash: hashCode(secret, key, '778899'), ttlMs: 60_000, issuedAtMs: Date.now() } });
    assert.equal((await store.send(fresh)).ok, true);
    assert.equal((await store.verify({ user: key, slots: [''], hash: fresh.code.hash, policy })).result, 'ok');
  });
});

// ---- Redis Cluster -------------------------------------------------------------------------------

describe('redis cluster (3 masters, started by this test)', () => {
  let testCluster: TestCluster;
  let nodes: ChildProcess[] = [];
  let cluster: RedisClusterType;

  before(async () => {
    testCluster = await startCluster();
    nodes = testCluster.nodes;
    cluster = await testCluster.connect();
  });

  after(async () => {
    await testCluster?.stop();
  });

  const cleanupPrefix = async (prefix: string): Promise<void> => {
    await testCluster.deleteUnder(cluster, prefix);
  };

  describeStoreContract('redis cluster', async () => {
    const prefix = nextPrefix();
    return { store: redisStore({ client: cluster, prefix }), cleanup: () => cleanupPrefix(prefix) };
  });

  it('spreads keys over all three masters (so the contract above really crossed slots)', async () => {
    const prefix = nextPrefix();
    const store = redisStore({ client: cluster, prefix });
    for (let i = 0; i < 30; i += 1) {
      const decision = await store.send(
        plan(randomKey(), { cooldownMs: 10_000, request: [counter('sendsPerIp', 5)], targets: [[counter('sendsPerDestination', 5)]] }),
      );
      assert.equal(decision.ok, true);
    }
    const perMaster: number[] = [];
    for (const master of cluster.masters) {
      const node = (await cluster.nodeClient(master)) as unknown as RedisClientType;
      const keys = await keysUnder(node, prefix);
      perMaster.push(keys.length);
      for (const key of keys) assert.ok((await node.pTTL(key)) > 0, `${key} has a TTL`);
    }
    assert.equal(
      perMaster.reduce((a, b) => a + b, 0),
      120,
    ); // per send: code, cooldown, two counters
    assert.ok(
      perMaster.every((n) => n > 0),
      `keys per master: ${perMaster.join(', ')}`,
    );
    await cleanupPrefix(prefix);
  });

  it('fails closed within commandTimeoutMs for keys on a master that stops answering', async () => {
    const store = redisStore({ client: cluster, prefix: nextPrefix(), commandTimeoutMs: 300 });
    const stalled = nodes[0]!;
    stalled.kill('SIGSTOP');
    try {
      const keys = Array.from({ length: 12 }, () => randomKey());
      const results = await Promise.all(
        keys.flatMap((key) => [timed(() => store.verify({ user: key, slots: [''], hash: 'x', policy })), timed(() => store.consume(counter('sendsPerIp', 5)))]),
      );
      const failed = results.filter((r) => r.result.status === 'rejected');
      assert.ok(failed.length > 0, 'some keys live on the stalled master');
      assert.ok(failed.every((r) => r.result.status === 'rejected' && isUnavailable(r.result.reason)));
      assert.ok(
        results.every((r) => r.ms < 2000),
        `slowest ${Math.max(...results.map((r) => r.ms))} ms`,
      );
      assert.ok(
        results.some((r) => r.result.status === 'fulfilled'),
        'keys on the other masters still work',
      );
    } finally {
      stalled.kill('SIGCONT');
    }
  });
});
