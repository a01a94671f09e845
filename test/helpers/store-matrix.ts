/**
 * The stores a security test runs on: memory, the shared Redis (a prefix of the run's own),
 * a private Redis Cluster (started only when a test asks for it) and the shared PostgreSQL
 * (a schema of the run's own). `openStores()` connects them once per file; every `make()`
 * hands out a store on keys no other test uses, and `close()` removes what the file left.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createClient, type RedisClientType, type RedisClusterType } from 'redis';
import { memoryStore, redisStore } from '../../src/index.js';
import type { OtpStore } from '../../src/store.js';
import { postgresStore, type PostgresStore } from '../../src/postgres.js';
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
          return redisStore({ client: redis as RedisClientType, prefix: `${prefix}${serial}:` });
        case 'redis cluster':
          return redisStore({ client: clusterClient as RedisClusterType, prefix: `${prefix}${serial}:` } as Parameters<typeof redisStore>[0]);
        case 'postgres': {
          const schema = `otp_sec_${runId}_${serial}`;
          schemas.push(schema);
          const store = postgresStore({ pool: pool as pg.Pool, schema, sweepIntervalMs: 0 });
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
