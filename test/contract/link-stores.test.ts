/**
 * The sign-in link's HTTP contract on the shared stores: Express and fetch on postgresStore
 * (a schema of this run's own) and on redisStore (a prefix of this run's own), each app with a
 * secret of its own.
 */
import { randomBytes } from 'node:crypto';
import { after, before, describe } from 'node:test';
import pg from 'pg';
import { redisStore } from '../../src/index.js';
import type { OtpStore } from '../../src/store.js';
import { postgresStore, type PostgresStore } from '../../src/postgres.js';
import { expressApp, fetchApp, type AppFactory } from '../helpers/apps.js';
import { describeLinkContract } from '../helpers/link-contract.js';
import { assertPostgresReachable, testDatabaseUrl } from '../helpers/postgres-server.js';
import { sharedRedis } from '../helpers/store-matrix.js';

const runId = `${process.pid}_${randomBytes(3).toString('hex')}`;

const on =
  (makeApp: AppFactory, store: () => OtpStore): AppFactory =>
  (options = {}) =>
    makeApp({ ...options, otp: { store: store(), secret: randomBytes(24).toString('base64url'), ...options.otp } });

describe('on PostgreSQL', () => {
  const schema = `otp_link_${runId}`;
  let pool: pg.Pool;
  let store: PostgresStore;
  let unloggedStore: PostgresStore;

  before(async () => {
    await assertPostgresReachable();
    pool = new pg.Pool({ connectionString: testDatabaseUrl, max: 5, idleTimeoutMillis: 1000 });
    pool.on('error', () => {});
    store = postgresStore({ pool, schema, sweepIntervalMs: 0, commandTimeoutMs: 5000 }); // not a timeout test: parallel requests queue for the pool
    await store.ready();
    unloggedStore = postgresStore({ pool, schema, tablePrefix: 'unlogged_', sweepIntervalMs: 0, unlogged: true, commandTimeoutMs: 5000 });
    await unloggedStore.ready();
  });

  after(async () => {
    await store?.close();
    await unloggedStore?.close();
    await pool?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    await pool?.end();
  });

  describeLinkContract(
    'express with postgresStore',
    on(expressApp, () => store),
  );
  describeLinkContract(
    'fetch with postgresStore',
    on(fetchApp, () => store),
  );
  describeLinkContract(
    'express with postgresStore({ unlogged: true })',
    on(expressApp, () => unloggedStore),
  );
});

describe('on Redis', () => {
  const prefix = `otp-link:${runId}:`;
  const client = sharedRedis(prefix);

  describeLinkContract(
    'express with redisStore',
    on(expressApp, () => redisStore({ client: client(), prefix, commandTimeoutMs: 5000 })),
  );
  describeLinkContract(
    'fetch with redisStore',
    on(fetchApp, () => redisStore({ client: client(), prefix, commandTimeoutMs: 5000 })),
  );
});
