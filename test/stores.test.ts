/**
 * The store contract against memory, Redis on 127.0.0.1:6379 and a three-master Redis Cluster
 * started here, plus what only Redis can show: TTLs on every key, no plaintext at rest, cross-instance
 * single use, NOSCRIPT recovery, and failing closed (then recovering) when Redis dies or stalls.
 */
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { createClient, createCluster, type RedisClientType, type RedisClusterType } from 'redis';
import { hashCode } from '../src/core/codes.js';
import { OtpError } from '../src/core/errors.js';
import { memoryStore } from '../src/stores/memory.js';
import { redisStore } from '../src/stores/redis.js';
import { issueScript, verifyScript } from '../src/stores/redis-scripts.js';
import type { OtpStore } from '../src/stores/types.js';
import { freePort, keysUnder, kill, reconnectStrategy, startRedis, waitForRedis } from './helpers/redis-server.js';
import { describeStoreContract, randomKey } from './helpers/store-contract.js';

const runPrefix = `otp-test:${randomBytes(6).toString('hex')}:`;
let storeCount = 0;
const nextPrefix = (): string => `${runPrefix}${(storeCount += 1)}:`;

const run = promisify(execFile);

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
      const keys = codes.map(() => randomKey());
      for (const [i, code] of codes.entries()) {
        const key = keys[i]!;
        const binding = i % 2 === 0 ? null : hashCode(secret, 'binding', randomKey());
        assert.deepEqual(await store.issue(key, { hash: hashCode(secret, key, code), binding }, { ttlMs: 60_000, cooldownMs: i * 10_000 }), { ok: true });
        assert.equal(await store.verify(key, { hash: hashCode(secret, key, '000000'), binding }, { maxAttempts: 5 }), 'mismatch');
      }
      assert.equal((await store.issue(keys[1]!, { hash: hashCode(secret, keys[1]!, '123456'), binding: null }, { ttlMs: 60_000, cooldownMs: 0 })).ok, false);
      const limiter = store.limiter({ name: 'sends', points: 2, durationSeconds: 60, blockSeconds: 120 });
      for (let i = 0; i < 3; i += 1) await limiter.consume(keys[0]!);
      await store.limiter({ name: 'verifies', points: 10, durationSeconds: 30 }).consume(keys[1]!);

      const stored = await keysUnder(client, prefix);
      assert.equal(stored.length, 4 + 3 + 2, stored.join('\n')); // 4 records, 3 cooldowns, 2 limiter counters
      for (const key of stored) {
        const ttl = await client.pTTL(key);
        assert.ok(ttl > 0, `${key} has PTTL ${ttl}`);
        const type = await client.type(key);
        const values = type === 'hash' ? Object.values(await client.hGetAll(key)) : [String(await client.get(key))];
        for (const code of codes) {
          assert.ok(!key.includes(code), `key ${key} contains a code`);
          for (const value of values) assert.ok(!value.includes(code), `${key} holds a code`);
        }
      }
      for (const key of stored) await client.del(key);
    });

    it('stores the record as a hash with typed fields, and a mismatch keeps its remaining TTL', async () => {
      const prefix = nextPrefix();
      const store = redisStore({ client, prefix });
      const key = randomKey();
      const hash = hashCode(secret, key, '246810');
      await store.issue(key, { hash, binding: null }, { ttlMs: 10_000, cooldownMs: 0 });
      const recordKey = `${prefix}{${key}}:code`;
      const before = await client.pTTL(recordKey);
      await sleep(150);
      assert.equal(await store.verify(key, { hash: hashCode(secret, key, '135790'), binding: null }, { maxAttempts: 5 }), 'mismatch');
      assert.deepEqual({ ...(await client.hGetAll(recordKey)) }, { hash, binding: '', attempts: '1' });
      const afterMismatch = await client.pTTL(recordKey);
      assert.ok(afterMismatch > 0 && afterMismatch <= before - 100, `PTTL ${before} -> ${afterMismatch}`);
      await client.del(recordKey);
    });

    it('lets exactly one of two app instances (two clients) use a code', async () => {
      const prefix = nextPrefix();
      const other = createClient({ url: 'redis://127.0.0.1:6379' });
      other.on('error', () => {});
      await other.connect();
      try {
        const [a, b] = [redisStore({ client, prefix }), redisStore({ client: other, prefix })];
        const key = randomKey();
        const code = { hash: hashCode(secret, key, '555123'), binding: null };
        await a.issue(key, code, { ttlMs: 60_000, cooldownMs: 30_000 });
        assert.equal((await b.issue(key, code, { ttlMs: 60_000, cooldownMs: 30_000 })).ok, false, 'the cooldown is shared');
        const outcomes = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).verify(key, code, { maxAttempts: 5 })));
        assert.equal(outcomes.filter((o) => o === 'ok').length, 1);
        const keys = await keysUnder(client, prefix);
        if (keys.length > 0) await client.del(keys);
      } finally {
        other.destroy();
      }
    });

    it('recovers from a flushed script cache (NOSCRIPT) by sending the script again', async () => {
      const prefix = nextPrefix();
      const store = redisStore({ client, prefix });
      const key = randomKey();
      const code = { hash: hashCode(secret, key, '864209'), binding: null };
      await client.scriptFlush();
      assert.deepEqual(await client.scriptExists([issueScript.sha1, verifyScript.sha1]), [0, 0]);
      assert.deepEqual(await store.issue(key, code, { ttlMs: 60_000, cooldownMs: 0 }), { ok: true });
      assert.equal(await store.verify(key, code, { maxAttempts: 5 }), 'ok');
      assert.deepEqual(await client.scriptExists([issueScript.sha1, verifyScript.sha1]), [1, 1]);
    });

    it('leaves the caller’s client open on close()', async () => {
      const store = redisStore({ client, prefix: nextPrefix() });
      await store.close?.();
      assert.equal(client.isOpen, true);
      assert.equal(await client.ping(), 'PONG');
    });

    it('rejects bad options with a TypeError that names the option', async () => {
      const bad = (options: unknown) => () => redisStore(options as Parameters<typeof redisStore>[0]);
      assert.throws(bad({}), { name: 'TypeError', message: /`client` must be a node-redis v5 client/ });
      assert.throws(bad({ client: { get: () => {} } }), { name: 'TypeError', message: /`client` must be a node-redis v5 client/ });
      assert.throws(bad({ client: createClient() }), { name: 'TypeError', message: /`client` is not connected.*client\.connect\(\)/ });
      assert.throws(bad({ client, prefix: 'app:{otp}:' }), { name: 'TypeError', message: /`prefix`/ });
      assert.throws(bad({ client, commandTimeoutMs: 0 }), { name: 'TypeError', message: /`commandTimeoutMs`/ });
      assert.throws(bad({ client, timeoutMs: 500 }), { name: 'TypeError', message: /unknown option `timeoutMs`/ });
      const store = redisStore({ client, prefix: nextPrefix() });
      assert.throws(() => store.limiter({ name: 'x', points: 1, durationSeconds: 0 }), { name: 'TypeError', message: /durationSeconds/ });
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

  it('rejects issue, verify and limiter calls with STORE_UNAVAILABLE within 1 s when Redis dies, then works again once it is back', async () => {
    const store = redisStore({ client, prefix: nextPrefix() });
    const limiter = store.limiter({ name: 'sends', points: 100, durationSeconds: 60 });
    const key = randomKey();
    const code = { hash: hashCode(secret, key, '112233'), binding: null };
    assert.deepEqual(await store.issue(key, code, { ttlMs: 60_000, cooldownMs: 0 }), { ok: true });
    assert.equal((await limiter.consume(key)).ok, true);

    await kill(server, 'SIGKILL');
    const calls: Record<string, () => Promise<unknown>> = {
      issue: () => store.issue(key, code, { ttlMs: 60_000, cooldownMs: 0 }),
      verify: () => store.verify(key, code, { maxAttempts: 5 }),
      'limiter.consume': () => limiter.consume(key),
      'limiter.peek': () => limiter.peek(key),
      'limiter.reset': () => limiter.reset(key),
    };
    const timings: Record<string, number> = {};
    for (const [name, call] of Object.entries(calls)) {
      const { ms, result } = await timed(call);
      timings[name] = Math.round(ms);
      assert.equal(result.status, 'rejected', `${name} must not succeed without Redis`);
      assert.ok(result.status === 'rejected' && isUnavailable(result.reason), `${name}: ${String(result.status === 'rejected' && result.reason)}`);
      assert.match((result as PromiseRejectedResult).reason.message, /The OTP store \(Redis\) cannot be reached/);
      assert.ok(ms < 1000, `${name} took ${ms} ms`);
    }
    // Many calls at once while it is down: none hangs.
    const burst = await timed(() => Promise.allSettled(Array.from({ length: 50 }, () => store.verify(key, code, { maxAttempts: 5 }))));
    assert.ok(burst.ms < 1000, `burst took ${burst.ms} ms`);
    assert.ok(burst.result.status === 'fulfilled' && burst.result.value.every((r) => r.status === 'rejected' && isUnavailable(r.reason)));
    console.log(`# fail-closed timings (ms): ${JSON.stringify(timings)}, 50 parallel verifies ${Math.round(burst.ms)}`);

    server = startRedis(port, dir);
    const restarted = performance.now();
    let recovered = false;
    while (!recovered && performance.now() - restarted < 5_000) {
      recovered = (await timed(() => store.issue(key, code, { ttlMs: 60_000, cooldownMs: 0 }))).result.status === 'fulfilled';
      if (!recovered) await sleep(100);
    }
    assert.ok(recovered, 'the store works again within 5 s of Redis coming back');
    console.log(`# recovered ${Math.round(performance.now() - restarted)} ms after restarting redis-server`);
    assert.equal(await store.verify(key, code, { maxAttempts: 5 }), 'ok');
    assert.deepEqual(await limiter.consume(key), { ok: true, remaining: 99 }); // a fresh Redis: the counter started over
  });

  it('rejects within commandTimeoutMs when Redis stops answering (SIGSTOP), and works again after SIGCONT', async () => {
    await waitForRedis(port);
    const store = redisStore({ client, prefix: nextPrefix(), commandTimeoutMs: 300 });
    const limiter = store.limiter({ name: 'verifies', points: 10, durationSeconds: 60 });
    const key = randomKey();
    const code = { hash: hashCode(secret, key, '445566'), binding: null };
    assert.deepEqual(await store.issue(key, code, { ttlMs: 60_000, cooldownMs: 0 }), { ok: true });

    server.kill('SIGSTOP');
    try {
      for (const call of [(): Promise<unknown> => store.verify(key, code, { maxAttempts: 5 }), () => limiter.consume(key)]) {
        const { ms, result } = await timed(call);
        assert.ok(result.status === 'rejected' && isUnavailable(result.reason), String(result.status === 'rejected' && result.reason));
        assert.ok(ms >= 250 && ms < 800, `took ${ms} ms with commandTimeoutMs 300`);
      }
      assert.equal(client.isReady, true, 'the connection stayed up: this was the timer, not a socket error');
    } finally {
      server.kill('SIGCONT');
    }
    // The verify sent while Redis was stopped sat in the socket and runs after SIGCONT (using the code);
    // the caller was told STORE_UNAVAILABLE, which fails closed. A fresh code works end to end again.
    const fresh = { hash: hashCode(secret, key, '778899'), binding: null };
    assert.deepEqual(await store.issue(key, fresh, { ttlMs: 60_000, cooldownMs: 0 }), { ok: true });
    assert.equal(await store.verify(key, fresh, { maxAttempts: 5 }), 'ok');
  });
});

// ---- Redis Cluster -------------------------------------------------------------------------------

describe('redis cluster (3 masters, started by this test)', () => {
  let dir: string;
  let ports: number[] = [];
  let nodes: ChildProcess[] = [];
  let cluster: RedisClusterType;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'blockid-otp-cluster-'));
    for (let i = 0; i < 3; i += 1) {
      let port = await freePort(true);
      while (ports.includes(port)) port = await freePort(true);
      ports.push(port);
    }
    nodes = ports.map((port) =>
      startRedis(port, dir, ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', '5000']),
    );
    await Promise.all(ports.map(waitForRedis));
    await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes']);
    for (const port of ports) {
      for (let i = 0; ; i += 1) {
        const { stdout } = await run('redis-cli', ['-p', String(port), 'cluster', 'info']);
        if (stdout.includes('cluster_state:ok')) break;
        if (i > 100) throw new Error(`cluster node ${port} never reached cluster_state:ok`);
        await sleep(100);
      }
    }
    cluster = createCluster({ rootNodes: [{ url: `redis://127.0.0.1:${ports[0]}` }], defaults: { socket: { reconnectStrategy } } });
    cluster.on('error', () => {});
    await cluster.connect();
  });

  after(async () => {
    await cluster?.close().catch(() => {});
    for (const node of nodes) await kill(node);
    await rm(dir, { recursive: true, force: true });
  });

  const cleanupPrefix = async (prefix: string): Promise<void> => {
    for (const master of cluster.masters) {
      const node = (await cluster.nodeClient(master)) as unknown as RedisClientType;
      for (const key of await keysUnder(node, prefix)) await cluster.del(key);
    }
  };

  describeStoreContract('redis cluster', async () => {
    const prefix = nextPrefix();
    return { store: redisStore({ client: cluster, prefix }), cleanup: () => cleanupPrefix(prefix) };
  });

  it('spreads keys over all three masters (so the contract above really crossed slots)', async () => {
    const prefix = nextPrefix();
    const store = redisStore({ client: cluster, prefix });
    const limiter = store.limiter({ name: 'sends', points: 5, durationSeconds: 60 });
    for (let i = 0; i < 30; i += 1) {
      const key = randomKey();
      assert.deepEqual(await store.issue(key, { hash: randomKey(), binding: null }, { ttlMs: 60_000, cooldownMs: 10_000 }), { ok: true });
      assert.equal((await limiter.consume(key)).ok, true);
    }
    const perMaster: number[] = [];
    for (const master of cluster.masters) {
      const node = (await cluster.nodeClient(master)) as unknown as RedisClientType;
      const keys = await keysUnder(node, prefix);
      perMaster.push(keys.length);
      for (const key of keys) assert.ok((await node.pTTL(key)) > 0, `${key} has a TTL`);
    }
    assert.equal(perMaster.reduce((a, b) => a + b, 0), 90);
    assert.ok(perMaster.every((n) => n > 0), `keys per master: ${perMaster.join(', ')}`);
    await cleanupPrefix(prefix);
  });

  it('fails closed within commandTimeoutMs for keys on a master that stops answering', async () => {
    const store = redisStore({ client: cluster, prefix: nextPrefix(), commandTimeoutMs: 300 });
    const limiter = store.limiter({ name: 'verifies', points: 10, durationSeconds: 60 });
    const stalled = nodes[0]!;
    stalled.kill('SIGSTOP');
    try {
      const keys = Array.from({ length: 12 }, () => randomKey());
      const results = await Promise.all(
        keys.flatMap((key) => [timed(() => store.verify(key, { hash: 'x', binding: null }, { maxAttempts: 5 })), timed(() => limiter.consume(key))]),
      );
      const failed = results.filter((r) => r.result.status === 'rejected');
      assert.ok(failed.length > 0, 'some keys live on the stalled master');
      assert.ok(failed.every((r) => r.result.status === 'rejected' && isUnavailable(r.result.reason)));
      assert.ok(results.every((r) => r.ms < 800), `slowest ${Math.max(...results.map((r) => r.ms))} ms`);
      assert.ok(results.some((r) => r.result.status === 'fulfilled'), 'keys on the other masters still work');
    } finally {
      stalled.kill('SIGCONT');
    }
  });
});
