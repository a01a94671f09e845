/**
 * The HTTP contract suite once more on Express, fetch, Hono and Fastify, on the shared stores instead of memory:
 * postgresStore on the PostgreSQL server of this machine (a schema of this run's own) and
 * redisStore on 127.0.0.1:6379 (a prefix of this run's own).
 *
 * One store serves every app of a suite, as one database serves many apps. Each app gets its
 * own `secret`, so every key it writes (username, session slot, per-IP and per-destination
 * quotas) is its own, as with the fresh memory store of http-contract.test.ts; only the
 * app-wide SMS spend breakers are shared, far below their limits.
 */
import { randomBytes } from 'node:crypto';
import { after, before, describe } from 'node:test';
import pg from 'pg';
import { redisStore } from '../../src/index.js';
import type { OtpStore } from '../../src/store.js';
import { postgresStore, type PostgresStore } from '../../src/postgres.js';
import { expressApp, fastifyApp, fetchApp, honoApp, type AppFactory } from '../helpers/apps.js';
import { describeHttpContract, describeNoCodeInResponses } from '../helpers/http-contract.js';
import { assertPostgresReachable, testDatabaseUrl } from '../helpers/postgres-server.js';
import { sharedRedis } from '../helpers/store-matrix.js';

const runId = `${process.pid}_${randomBytes(3).toString('hex')}`;

/** The app of `makeApp` with `store()`, and a secret of the app's own. */
const on =
  (makeApp: AppFactory, store: () => OtpStore): AppFactory =>
  (options = {}) =>
    makeApp({ ...options, otp: { store: store(), secret: randomBytes(24).toString('base64url'), ...options.otp } });

/** Every framework on one store: Express with its session middleware, the others with their own cookie session. */
function describeContractOn(storeName: string, store: () => OtpStore): void {
  describeHttpContract(`express with ${storeName}`, on(expressApp, store));
  describeHttpContract(`fetch with ${storeName}`, on(fetchApp, store), { cookieSession: true });
  describeHttpContract(`hono with ${storeName}`, on(honoApp, store), { cookieSession: true });
  describeHttpContract(
    `fastify with ${storeName}`,
    on((options) => fastifyApp(options), store),
    { cookieSession: true },
  );
}

describe('on PostgreSQL', () => {
  const schema = `otp_http_${runId}`;
  let pool: pg.Pool;
  let store: PostgresStore;

  before(async () => {
    await assertPostgresReachable();
    pool = new pg.Pool({ connectionString: testDatabaseUrl, max: 5, idleTimeoutMillis: 1000 });
    pool.on('error', () => {}); // see README: a Pool without an 'error' listener crashes on a database restart
    store = postgresStore({ pool, schema, sweepIntervalMs: 0, commandTimeoutMs: 5000 }); // not a timeout test: parallel requests queue for the pool
    await store.ready();
  });

  after(async () => {
    await store?.close();
    await pool?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    await pool?.end();
  });

  describeContractOn('postgresStore', () => store);
});

describe('on Redis', () => {
  const prefix = `otp-http:${runId}:`;
  const client = sharedRedis(prefix);

  describeContractOn('redisStore', () => redisStore({ client: client(), prefix, commandTimeoutMs: 5000 }));
});

describeNoCodeInResponses();
