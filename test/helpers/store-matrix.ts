/**
 * The stores a security test runs on: memory, the shared Redis (a prefix of the run's own),
 * a private Redis Cluster (started only when a test asks for it) and the shared PostgreSQL
 * (a schema of the run's own). `openStores()` connects them once per file; every `make()`
 * hands out a store on keys no other test uses, and `close()` removes what the file left.
 * `storeBackends()` is the lenient variant the abuse and pipeline suites repeat their tests
 * over: memory, Redis and a private Cluster, each left out with a note when it cannot start.
 * `describeOnStores()` repeats a suite's tests on Express and Koa over the four stores of
 * `openStores()`; `sharedRedis()` is one client of the shared Redis for a suite.
 */
import { randomBytes } from 'node:crypto';
import { after, before, describe } from 'node:test';
import pg from 'pg';
import { createClient, type RedisClientType, type RedisClusterType } from 'redis';
import { memoryStore, redisStore } from '../../src/index.js';
import type { OtpStore } from '../../src/store.js';
import { postgresStore, type PostgresStore } from '../../src/postgres.js';
import { frameworks, type AppFactory } from './apps.js';
import { assertPostgresReachable, testDatabaseUrl } from './postgres-server.js';
import { startCluster, type TestCluster } from './redis-cluster.js';
import { keysUnder, reconnectStrategy } from './redis-server.js';

export type StoreName = 'memory' | 'redis' | 'redis cluster' | 'postgres';

export interface StoreMatrix {
  names: StoreName[];
  /** A fresh store (fresh keys) of that kind. */
  make(name: StoreName): OtpStore;
  close(): Promise<void>;
}

/**
 * The stores' call time limit in these suites: they are not about timeouts, and on a loaded
 * machine a PostgreSQL store's first call (which creates its tables) must not turn into a 503.
 */
const commandTimeoutMs = 5000;

/** Connects the stores named (default: memory, Redis and PostgreSQL). */
export async function openStores(names: StoreName[] = ['memory', 'redis', 'postgres']): Promise<StoreMatrix> {
  const runId = `${process.pid}_${randomBytes(3).toString('hex')}`;
  const prefix = `otp-sec:${runId}:`;
  let redis: RedisClientType | undefined;
  let cluster: TestCluster | undefined;
  let clusterClient: RedisClusterType | undefined;
  let pool: pg.Pool | undefined;
  const schemas: string[] = [];
  const postgresStores: PostgresStore[] = [];
  let serial = 0;

  if (names.includes('redis')) {
    redis = createClient({ url: 'redis://127.0.0.1:6379', socket: { reconnectStrategy } }) as RedisClientType;
    redis.on('error', () => {});
    await redis.connect();
  }
  if (names.includes('redis cluster')) {
    cluster = await startCluster();
    clusterClient = await cluster.connect();
  }
  if (names.includes('postgres')) {
    await assertPostgresReachable();
    pool = new pg.Pool({ connectionString: testDatabaseUrl, max: 4, idleTimeoutMillis: 1000 });
    pool.on('error', () => {});
  }

  return {
    names,
    make(name) {
      serial += 1;
      switch (name) {
        case 'memory':
          return memoryStore();
        case 'redis':
          return redisStore({ client: redis as RedisClientType, prefix: `${prefix}${serial}:`, commandTimeoutMs });
        case 'redis cluster':
          return redisStore({ client: clusterClient as RedisClusterType, prefix: `${prefix}${serial}:`, commandTimeoutMs } as Parameters<typeof redisStore>[0]);
        case 'postgres': {
          const schema = `otp_sec_${runId}_${serial}`;
          schemas.push(schema);
          const store = postgresStore({ pool: pool as pg.Pool, schema, sweepIntervalMs: 0, commandTimeoutMs });
          postgresStores.push(store);
          return store;
        }
      }
    },
    async close() {
      for (const store of postgresStores) await store.close().catch(() => {});
      for (const schema of schemas) await pool?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
      await pool?.end();
      if (redis?.isOpen) {
        const left = await keysUnder(redis, prefix);
        if (left.length > 0) await redis.del(left);
        redis.destroy();
      }
      if (clusterClient !== undefined && cluster !== undefined) {
        await cluster.deleteUnder(clusterClient, prefix).catch(() => 0);
        await clusterClient.close().catch(() => {});
      }
      await cluster?.stop();
    },
  };
}

const allStores: StoreName[] = ['memory', 'redis', 'redis cluster', 'postgres'];

/** One framework on one kind of store; `store()` is a fresh store of that kind (fresh keys). */
export interface StoreCase {
  framework: string;
  makeApp: AppFactory;
  storeName: StoreName;
  store(): OtpStore;
}

/**
 * The suite `title`: opens every store in `before` (closes them in `after`) and calls `body`
 * for Express and Koa on each of memory, Redis, Redis Cluster and PostgreSQL, to define its tests.
 */
export function describeOnStores(title: string, body: (on: StoreCase) => void): void {
  describe(title, () => {
    let stores: StoreMatrix;
    before(async () => {
      stores = await openStores(allStores);
    });
    after(async () => {
      await stores.close();
    });

    for (const [framework, makeApp] of frameworks.slice(0, 2)) {
      for (const storeName of allStores) body({ framework, makeApp, storeName, store: () => stores.make(storeName) });
    }
  });
}

/**
 * A client of the shared Redis for the enclosing suite: connected in `before`; in `after`, the
 * keys under `prefix` are deleted and it is closed. A missing Redis fails the suite within about 2 s.
 */
export function sharedRedis(prefix: string): () => RedisClientType {
  const url = 'redis://127.0.0.1:6379';
  let client: RedisClientType | undefined;
  before(async () => {
    client = createClient({
      url,
      socket: {
        connectTimeout: 2000,
        reconnectStrategy: (retries, cause) => (retries >= 10 ? new Error(`Redis is not reachable at ${url} (${cause.message}); .ci/run starts it`) : 200),
      },
    }) as RedisClientType;
    client.on('error', () => {});
    await client.connect();
  });
  after(async () => {
    if (!client?.isOpen) return;
    const left = await keysUnder(client, prefix);
    if (left.length > 0) await client.del(left);
    await client.close();
  });
  return () => {
    if (client === undefined) throw new Error("sharedRedis(): the client connects in the suite's before hook; ask for it in a test");
    return client;
  };
}

// ---- backends that skip what is not there ---------------------------------------------------

/** One kind of store a suite repeats its tests on; every `make()` is a store on keys of its own. */
export interface Backend {
  name: 'memory' | 'redis' | 'cluster';
  make(options?: { commandTimeoutMs?: number }): OtpStore;
}

const backendRun = `otp-backend-${process.pid}-${randomBytes(4).toString('hex')}`;
let backendPrefixes = 0;
/** A Redis key prefix no other store of this run uses. */
export const nextPrefix = () => `${backendRun}-${(backendPrefixes += 1)}:`;

/** Deletes every key under `prefix` on a single Redis. */
export async function deleteUnder(client: RedisClientType, prefix: string): Promise<number> {
  let deleted = 0;
  for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) {
    if (keys.length > 0) deleted += await client.del(keys);
  }
  return deleted;
}

/**
 * Memory, Redis (`REDIS_URL`, default 127.0.0.1:6379) and, unless `cluster: false`, a private
 * Redis Cluster; an `after` hook deletes every key this file wrote and stops the Cluster. Redis
 * and Cluster are left out (with a note) only when they cannot be started at all.
 */
export async function storeBackends({ cluster: withCluster = true } = {}): Promise<Backend[]> {
  const backends: Backend[] = [{ name: 'memory', make: () => memoryStore() }];
  const client = createClient({
    url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    socket: { reconnectStrategy: false, connectTimeout: 2000 },
  }) as RedisClientType;
  client.on('error', () => undefined);
  let redisUp = false;
  try {
    await client.connect();
    redisUp = true;
  } catch {
    console.log('# Redis is not reachable: the redis cases are skipped');
  }
  let cluster: TestCluster | undefined;
  let clusterClient: RedisClusterType | undefined;
  if (withCluster) {
    try {
      cluster = await startCluster();
      clusterClient = await cluster.connect();
    } catch (error) {
      console.log(`# could not start a Redis Cluster (${(error as Error).message}): the cluster cases are skipped`);
    }
  }
  const prefixes: string[] = [];
  const prefixed = (make: (prefix: string) => OtpStore) => {
    const prefix = nextPrefix();
    prefixes.push(prefix);
    return make(prefix);
  };
  // commandTimeoutMs 5000: these suites are not about timeouts, and a loaded machine must not turn into 503s.
  if (redisUp) backends.push({ name: 'redis', make: (o = {}) => prefixed((prefix) => redisStore({ client, prefix, commandTimeoutMs: 5000, ...o })) });
  if (clusterClient) {
    const connected = clusterClient;
    backends.push({ name: 'cluster', make: (o = {}) => prefixed((prefix) => redisStore({ client: connected, prefix, commandTimeoutMs: 5000, ...o })) });
  }
  after(async () => {
    if (redisUp) {
      for (const prefix of prefixes) await deleteUnder(client, prefix);
      await client.quit();
    }
    await cluster?.stop();
  });
  return backends;
}
