/**
 * One benchmark server, run as its own child process by bench/run.mjs (child_process.fork).
 * Configured by the BENCH_SERVER environment variable (JSON); reports { port } over IPC
 * when listening and exits on the 'stop' message (so a `--cpu-prof` run can write its profile).
 *
 * Stores (`store`): `memory` (express-session's MemoryStore for sessions), `redis` (sessions in
 * Redis with connect-redis), `postgres` (postgresStore from blockid-otp/postgres, sessions in
 * PostgreSQL with connect-pg-simple, one `pg` Pool for both, tables in `pgSchema` under
 * `tablePrefix`). `metrics: true` passes prometheusMetrics({ registry: new Registry() }).
 *
 * Kinds:
 * - `otp`          express-session + blockidOtp + GET /data (guarded by requireOtp() when `guard`).
 * - `baseline`     express-session + POST /write: express.json() and one session write.
 * - `passwordless` express-session + the `passwordless` package's requestToken / acceptToken.
 * - `flood`        blockidOtp behind a stub session (no session store to grow), for the memory bench.
 * - `minimal`      express-session + POST /otp/send written inline with the least work a send must do
 *                  (bench/minimal-send.mjs): what any design could reach on memory, for comparison.
 *
 * Bench-only routes under /__bench read what the capture sender saw; they do not exist in
 * the package.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { createHmac, timingSafeEqual } from 'node:crypto';
import path from 'node:path';
import express from 'express';
import session from 'express-session';
import { PG, PG_APP } from './lib.mjs';
import { minimalSend } from './minimal-send.mjs';

/**
 * @typedef {typeof import('../src/index.js')} Dist the package's main entry, built from src/
 * @typedef {import('../src/store.js').OtpStore} OtpStore
 * @typedef {import('../src/index.js').BlockidOtpOptions} BlockidOtpOptions
 * @typedef {{
 *   kind?: string, name?: string, store?: string, prefix?: string, guard?: boolean, dist?: string,
 *   pgSchema?: string, tablePrefix?: string, metrics?: boolean, defaultOptions?: boolean, storeProbe?: string,
 *   sweepIntervalMs?: number, sweepBatchSize?: number, synchronousCommit?: boolean, unlogged?: boolean,
 *   memoryStore?: import('../src/index.js').MemoryStoreOptions, tokenStore?: string, trustProxy?: boolean, otp?: Partial<BlockidOtpOptions>
 * }} ServerConfig the BENCH_SERVER configuration, as the runners write it (lib.mjs startServer)
 */

const require = createRequire(import.meta.url);
/** @type {ServerConfig} */
const config = JSON.parse(process.env.BENCH_SERVER ?? '{}');
const { kind, store: storeKind = 'memory', prefix = 'blockid-bench:', guard = false } = config;

const OTP_SECRET = 'bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz';
const SESSION_SECRET = 'bench-session-secret-0123456789';

/**
 * Valid US numbers (415-555-xxxx parse as valid fixed-line-or-mobile) and one address per user.
 *
 * @param {string} username
 */
function destinationsFor(username) {
  let n = 0;
  for (let i = 0; i < username.length; i++) n = (n * 31 + username.charCodeAt(i)) % 10_000;
  return { smsTo: `415555${String(n).padStart(4, '0')}`, smsISDCode: '1', emailTo: `${username}@example.com` };
}

/** The package's built main entry (`dist`), which kinds otp and flood load. */
function distPath() {
  if (config.dist === undefined) throw new Error(`bench/server.mjs: kind ${String(kind)} needs dist`);
  return config.dist;
}

/** @type {ReturnType<typeof import('redis').createClient> | undefined} */
let redisClient;
async function redis() {
  if (redisClient === undefined) {
    const { createClient } = await import('redis');
    redisClient = createClient({ url: 'redis://127.0.0.1:6379' });
    redisClient.on('error', (error) => console.error('[bench server] redis:', error.message));
    await redisClient.connect();
  }
  return redisClient;
}

/** @type {import('pg').Pool | undefined} */
let pgPool;
/** One Pool for the OTP store and the sessions, as an app would have; its backends are named PG_APP. */
async function postgres() {
  if (pgPool === undefined) {
    const { default: pg } = await import('pg');
    pgPool = new pg.Pool({ ...PG, application_name: PG_APP, max: 20, idleTimeoutMillis: 0 });
    pgPool.on('error', (error) => console.error('[bench server] pg:', error.message));
  }
  return pgPool;
}

async function sessionMiddleware() {
  /** @type {import('express-session').SessionOptions} */
  const options = { secret: SESSION_SECRET, resave: false, saveUninitialized: false, name: 'sid' };
  if (storeKind === 'redis') {
    const { RedisStore } = await import('connect-redis');
    options.store = new RedisStore({ client: await redis(), prefix: `${prefix}sess:` });
  } else if (storeKind === 'postgres') {
    const { default: connectPgSimple } = await import('connect-pg-simple');
    const PgSession = connectPgSimple(session);
    // connect-pg-simple's own table.sql names its constraint `session_pkey`, which would clash
    // between the servers' tables in the one schema: the same table, with names of its own.
    const table = `${config.tablePrefix}session`;
    await (await postgres()).query(`CREATE TABLE IF NOT EXISTS ${config.pgSchema}.${table} (
      sid varchar NOT NULL COLLATE "default", sess json NOT NULL, expire timestamp(6) NOT NULL,
      CONSTRAINT ${table}_pkey PRIMARY KEY (sid) NOT DEFERRABLE INITIALLY IMMEDIATE);
      CREATE INDEX IF NOT EXISTS ${table}_expire_idx ON ${config.pgSchema}.${table} (expire);`);
    options.store = new PgSession({ pool: await postgres(), schemaName: config.pgSchema, tableName: table, pruneSessionInterval: false });
  }
  return session(options);
}

const app = express();
app.disable('x-powered-by');
/** Codes the capture sender saw, by username (not for the unique-username send flood). */
/** @type {Map<string, string>} */
const codes = new Map();
/** @type {{ failed: Record<string, number>, verified: number, sent: number, rate_limited: number }} */
const stats = { failed: {}, verified: 0, sent: 0, rate_limited: 0 };

app.get('/__bench/heap', (_req, res) => {
  globalThis.gc?.();
  globalThis.gc?.();
  const usage = process.memoryUsage();
  res.json({ heapUsed: usage.heapUsed, rss: usage.rss, external: usage.external, gc: typeof globalThis.gc === 'function' });
});
app.get('/__bench/code', (req, res) => res.json({ code: codes.get(String(req.query.u)) ?? null }));
app.get('/__bench/codes', (_req, res) => res.json({ count: codes.size, codes: Object.fromEntries(codes) }));
app.get('/__bench/stats', (_req, res) => res.json({ ...stats, errors: Object.fromEntries(errors) }));
app.post('/__bench/stats/reset', (_req, res) => {
  stats.failed = {};
  stats.verified = 0;
  stats.sent = 0;
  stats.rate_limited = 0;
  errors.clear();
  res.json(stats);
});

/**
 * @param {Dist} dist
 * @param {Partial<BlockidOtpOptions>} [overrides]
 * @returns {Promise<BlockidOtpOptions>}
 */
async function otpOptions(dist, overrides = {}) {
  const capture = {
    /** @param {import('../src/index.js').SmsMessage | import('../src/index.js').EmailMessage} message */
    async send(message) {
      if (!message.username.startsWith('s-')) codes.set(message.username, message.code);
    },
  };
  otpStore = await makeStore(dist);
  const high = { points: 1_000_000, windowSeconds: 3600 };
  /** @type {BlockidOtpOptions} */
  const base = { secret: OTP_SECRET, resolveUser: (username) => destinationsFor(username), sms: capture, email: capture, store: otpStore };
  if (config.metrics) {
    // blockid-otp/metrics on a registry of its own, as the README shows.
    /** @type {typeof import('../src/metrics.js')} */
    const { prometheusMetrics } = await import(pathToFileURL(path.join(path.dirname(distPath()), 'metrics.js')).href);
    const { Registry } = await import('prom-client');
    base.metrics = prometheusMetrics({ registry: new Registry() });
  }
  // `defaultOptions`: the package's own defaults for ttl, attempts and every quota.
  if (config.defaultOptions) return { ...base, ...overrides };
  return {
    ...base,
    ttlSeconds: 600,
    maxAttempts: 10,
    limits: {
      sendsPerUsername: high,
      sendsPerDestination: high,
      sendsPerIp: high,
      smsPerPrefix: high,
      smsPerHour: 0,
      smsPerDay: 0,
      // No lock may be hit: a code burns after maxAttempts (10) wrong guesses, long before either
      // limit, and the verify scenario spreads its guesses over thousands of users.
      failedVerifications: 91, // the most the package allows with maxAttempts 10 (failedVerifications + maxAttempts - 1 <= 100)
      lockSeconds: 900,
      maxConsecutiveFailures: 100, // the most the package allows (NIST SP 800-63B)
    },
    ...overrides,
  };
}

/** @type {OtpStore | undefined} */
let otpStore;
/**
 * @param {Dist} dist
 * @returns {Promise<OtpStore>}
 */
async function makeStore(dist) {
  if (config.storeProbe !== undefined) return probeStore(dist, config.storeProbe);
  if (storeKind === 'redis') return dist.redisStore({ client: await redis(), prefix: `${prefix}otp:` });
  if (storeKind === 'postgres') {
    /** @type {typeof import('../src/postgres.js')} */
    const { postgresStore } = await import(pathToFileURL(path.join(path.dirname(distPath()), 'postgres.js')).href);
    const store = postgresStore({
      pool: await postgres(),
      schema: config.pgSchema,
      tablePrefix: config.tablePrefix,
      ...(config.sweepIntervalMs !== undefined && { sweepIntervalMs: config.sweepIntervalMs }),
      ...(config.sweepBatchSize !== undefined && { sweepBatchSize: config.sweepBatchSize }),
      ...(config.synchronousCommit !== undefined && { synchronousCommit: config.synchronousCommit }),
      ...(config.unlogged !== undefined && { unlogged: config.unlogged }),
    });
    await store.ready(); // the tables exist before the first request (and before the bench writes into them)
    return store;
  }
  return dist.memoryStore(config.memoryStore ?? {});
}

/**
 * A ceiling, not a store: memoryStore() keeps the state, and every send and verify first makes
 * one round trip to the bench's database on the app's own connection: `storeProbe: 'read'`
 * (PostgreSQL `SELECT 1`, Redis `GET`) or `'write'` (PostgreSQL: an upsert of one row of the
 * request's own, in its own transaction; Redis: `INCR` of one key of its own). A store that
 * keeps codes and quotas in that database, in a round trip of its own beside the session's,
 * can at best match `'write'`. `'rows'` (PostgreSQL only) writes, in one statement and one
 * round trip, as many rows as the store's call must: for a send, one row under the username
 * and one per distinct quota counter of its plan (per-username, IP, destinations, number
 * block); for a verify, the code's row and the username's failure row; each an upsert of one
 * counter column. It keeps no decision in the database: what a design that keeps each of those
 * as a row can reach at best. `'tables'` (PostgreSQL only) writes the same rows into the store's
 * own tables (created by `postgresStore` under a prefix of their own: the same columns, indexes
 * and `fillfactor`), in one statement and one round trip: for a send, the code's row in `slots`
 * (inserted, or replaced when the session asks again) and one upsert per quota counter in
 * `counters`; for a verify, the slot's attempts and the username's failure row in `users`. No
 * decision, no advisory lock: what the data a send and a verify must write costs by itself.
 *
 * @param {Dist} dist
 * @param {string} probe
 * @returns {Promise<OtpStore>}
 */
async function probeStore(dist, probe) {
  if (probe !== 'read' && probe !== 'write' && probe !== 'rows' && probe !== 'tables') {
    throw new Error(`storeProbe must be 'read', 'write', 'rows' or 'tables', got ${String(probe)}`);
  }
  if (probe === 'tables') return tablesProbe(dist);
  /** @type {(key: string, rows: string[]) => Promise<unknown>} */
  let roundTrip;
  if (storeKind === 'postgres') {
    const pool = await postgres();
    const table = `${config.pgSchema}.${config.tablePrefix}probe`;
    await pool.query(`CREATE TABLE IF NOT EXISTS ${table} (k text PRIMARY KEY, n integer NOT NULL)`);
    const upsert = `INSERT INTO ${table} (k, n) VALUES ($1, 1) ON CONFLICT (k) DO UPDATE SET n = ${table}.n + 1`;
    // Sorted keys: concurrent statements take the row locks in one order.
    const upsertRows = `INSERT INTO ${table} (k, n) SELECT k, 1 FROM unnest($1::text[]) AS k ORDER BY k ON CONFLICT (k) DO UPDATE SET n = ${table}.n + 1`;
    roundTrip = (key, rows) => (probe === 'read' ? pool.query('SELECT 1') : probe === 'rows' ? pool.query(upsertRows, [rows]) : pool.query(upsert, [key]));
  } else if (probe === 'rows') {
    throw new Error("storeProbe 'rows' needs store: postgres");
  } else if (storeKind === 'redis') {
    const client = await redis();
    roundTrip = (key) => (probe === 'read' ? client.get(`${prefix}probe:${key}`) : client.incr(`${prefix}probe:${key}`));
  } else {
    throw new Error('storeProbe needs store: postgres or redis');
  }
  const memory = dist.memoryStore(config.memoryStore ?? {});
  /** @param {import('../src/store.js').SendPlan} plan */
  const sendRows = (plan) => [
    ...new Set([
      `${plan.user}:code`,
      ...(plan.perUser ? [`${plan.user}:sends`] : []),
      ...[...plan.request, ...plan.targets.flat()].map((counter) => counter.key),
    ]),
  ];
  return Object.assign(Object.create(memory), {
    send: async (/** @type {import('../src/store.js').SendPlan} */ plan) => (await roundTrip(plan.user, sendRows(plan)), memory.send(plan)),
    verify: async (/** @type {import('../src/store.js').VerifyRequest} */ request) => (
      await roundTrip(request.user, [`${request.user}:code`, `${request.user}:failures`]), memory.verify(request)
    ),
  });
}

/**
 * `storeProbe: 'tables'` (see probeStore): memoryStore() decides; before each call one statement
 * writes the rows the PostgreSQL store's call writes, into tables made by postgresStore itself.
 *
 * @param {Dist} dist
 * @returns {Promise<OtpStore>}
 */
async function tablesProbe(dist) {
  if (storeKind !== 'postgres') throw new Error("storeProbe 'tables' needs store: postgres");
  const pool = await postgres();
  /** @type {typeof import('../src/postgres.js')} */
  const { postgresStore } = await import(pathToFileURL(path.join(path.dirname(distPath()), 'postgres.js')).href);
  const tablePrefix = `${config.tablePrefix}tables_`;
  const tables = postgresStore({
    pool,
    schema: config.pgSchema,
    tablePrefix,
    sweepIntervalMs: 0,
    ...(config.unlogged !== undefined && { unlogged: config.unlogged }),
  });
  await tables.ready();
  const q = (/** @type {string} */ name) => `"${config.pgSchema}"."${tablePrefix}${name}"`;
  const sweepAt = (/** @type {string} */ until) => `${q('sweep_at')}(${until})`;
  // One statement per call; the counters in key order, so concurrent statements take their row
  // locks in one order. (The store's own way, advisory locks then a plain UPDATE and an INSERT of
  // the missing rows, several statements in one round trip, measured slower: 0.51× against 0.59×
  // of the ceiling for the send, 0.76× against 0.80× for the verify, 12 pairs each.)
  const writeSend = `WITH slot AS (
  INSERT INTO ${q('slots')} AS s (user_key, space, slot, code_hash, attempts, issued_at_ms, code_until, cooldown_until, expires_at)
  VALUES ($1, 'user', $2, $3, 0, $4, now() + interval '5 minutes', now() + interval '30 seconds', ${sweepAt("now() + interval '5 minutes'")})
  ON CONFLICT (user_key, space, slot) DO UPDATE SET code_hash = EXCLUDED.code_hash, attempts = 0, issued_at_ms = EXCLUDED.issued_at_ms,
    code_until = EXCLUDED.code_until, cooldown_until = EXCLUDED.cooldown_until, expires_at = EXCLUDED.expires_at
)
INSERT INTO ${q('counters')} AS c (key, hits, expires_at) SELECT k, 1, now() + interval '1 hour' FROM unnest($5::text[]) AS k ORDER BY k
ON CONFLICT (key) DO UPDATE SET hits = c.hits + 1`;
  const writeVerify = `WITH slot AS (
  UPDATE ${q('slots')} SET attempts = attempts + 1 WHERE user_key = $1 AND space = 'user' AND slot = $2
)
INSERT INTO ${q('users')} AS u (user_key, space, failures, failures_until, expires_at)
VALUES ($1, 'user', 1, now() + interval '30 days', ${sweepAt("now() + interval '30 days'")})
ON CONFLICT (user_key, space) DO UPDATE SET failures = u.failures + 1, failures_until = EXCLUDED.failures_until`;
  const memory = dist.memoryStore(config.memoryStore ?? {});
  return Object.assign(Object.create(memory), {
    send: async (/** @type {import('../src/store.js').SendPlan} */ plan) => {
      const counters = [
        ...new Set([...(plan.perUser ? [`\u0001${plan.space}:${plan.user}`] : []), ...[...plan.request, ...plan.targets.flat()].map((counter) => counter.key)]),
      ];
      await pool.query(writeSend, [plan.user, plan.slot, plan.code.hash, plan.code.issuedAtMs, counters]);
      return memory.send(plan);
    },
    verify: async (/** @type {import('../src/store.js').VerifyRequest} */ request) => {
      await pool.query(writeVerify, [request.user, request.slots[0] ?? '']);
      return memory.verify(request);
    },
  });
}

/** @param {import('../src/index.js').BlockidOtpMiddleware} otp */
function countEvents(otp) {
  otp.on('failed', (event) => {
    stats.failed[event.reason] = (stats.failed[event.reason] ?? 0) + 1;
  });
  otp.on('verified', () => {
    stats.verified += 1;
  });
  otp.on('sent', () => {
    stats.sent += 1;
  });
  otp.on('rate_limited', () => {
    stats.rate_limited += 1;
  });
}

if (kind === 'otp') {
  /** @type {Dist} */
  const dist = await import(pathToFileURL(distPath()).href);
  app.use(await sessionMiddleware());
  const otp = dist.blockidOtp(await otpOptions(dist));
  countEvents(otp);
  app.use(otp);
  /** @type {import('express').RequestHandler} */
  const data = (_req, res) => res.json({ data: 'account', ok: true });
  if (guard) app.get('/data', dist.requireOtp(), data);
  else app.get('/data', data);
} else if (kind === 'baseline') {
  app.use(await sessionMiddleware());
  app.post('/write', express.json(), (req, res) => {
    Object.assign(req.session, { bench: { username: req.body?.username, at: Date.now() } });
    res.status(202).json({ status: 'sent', expiresIn: 600, resendIn: 30 });
  });
} else if (kind === 'minimal') {
  app.use(await sessionMiddleware());
  minimalSend(app, { secret: OTP_SECRET, destinationsFor });
} else if (kind === 'passwordless') {
  const passwordless = require('passwordless');
  let tokenStore;
  if (config.tokenStore === 'hmac') {
    tokenStore = hmacTokenStore();
  } else {
    const MemoryStore = require('passwordless-memorystore');
    tokenStore = new MemoryStore();
  }
  passwordless.init(tokenStore);
  passwordless.addDelivery(
    (token, uid, _recipient, callback) => {
      if (!String(uid).startsWith('s-')) codes.set(String(uid), token);
      callback();
    },
    { numberToken: { max: 1_000_000 }, ttl: 600_000 },
  );
  app.use(await sessionMiddleware());
  app.use(express.json());
  app.use(passwordless.sessionSupport());
  app.post(
    '/pl/send',
    passwordless.requestToken((user, _delivery, callback) => callback(null, user), { userField: 'username' }),
    (_req, res) => {
      res.status(202).json({ status: 'sent' });
    },
  );
  app.post('/pl/verify', passwordless.acceptToken({ allowPost: true, tokenField: 'code', uidField: 'username' }), (req, res) => {
    const { user } = /** @type {{ user?: string }} */ (req); // set by passwordless.acceptToken
    if (user) res.json({ status: 'verified', username: user });
    else res.status(401).json({ error: 'invalid_code' });
  });
} else if (kind === 'flood') {
  /** @type {Dist} */
  const dist = await import(pathToFileURL(distPath()).href);
  if (config.trustProxy) app.set('trust proxy', 1);
  // A stub session: the plugin needs regenerate(); nothing is stored, so the heap is the plugin's.
  app.use((req, _res, next) => {
    req.session = /** @type {import('express-session').Session & Partial<import('express-session').SessionData>} */ ({
      regenerate: (/** @type {() => void} */ callback) => callback(),
    });
    next();
  });
  const overrides = { resolveUser: () => null, ...(config.otp ?? {}) };
  const otp = dist.blockidOtp(await otpOptions(dist, overrides));
  countEvents(otp);
  app.use(otp);
} else {
  throw new Error(`bench/server.mjs: unknown kind ${String(kind)}`);
}

/** A passwordless TokenStore that keeps HMAC-SHA256 hashes in a Map: the same hashing cost as blockid-otp. */
function hmacTokenStore() {
  const TokenStore = require('passwordless-tokenstore');
  const util = require('node:util');
  const hash = (/** @type {string} */ token) => createHmac('sha256', OTP_SECRET).update(String(token)).digest();
  /** @typedef {import('passwordless-tokenstore')} PasswordlessTokenStore */
  function HmacStore() {
    TokenStore.call(this);
    /** @type {Map<string, { hash: Buffer, expiresAt: number, originUrl: string | undefined }>} */
    this.items = new Map();
  }
  util.inherits(HmacStore, TokenStore);
  /** @type {PasswordlessTokenStore['authenticate']} */
  HmacStore.prototype.authenticate = function (token, uid, callback) {
    const item = this.items.get(uid);
    if (!item || item.expiresAt <= Date.now()) return callback(null, false, null);
    const ok = timingSafeEqual(item.hash, hash(token));
    return callback(null, ok, ok ? item.originUrl : null);
  };
  /** @type {PasswordlessTokenStore['storeOrUpdate']} */
  HmacStore.prototype.storeOrUpdate = function (token, uid, msToLive, originUrl, callback) {
    this.items.set(uid, { hash: hash(token), expiresAt: Date.now() + msToLive, originUrl });
    callback();
  };
  /** @type {PasswordlessTokenStore['invalidateUser']} */
  HmacStore.prototype.invalidateUser = function (uid, callback) {
    this.items.delete(uid);
    callback();
  };
  /** @type {PasswordlessTokenStore['clear']} */
  HmacStore.prototype.clear = function (callback) {
    this.items.clear();
    callback();
  };
  /** @type {PasswordlessTokenStore['length']} */
  HmacStore.prototype.length = function (callback) {
    callback(null, this.items.size);
  };
  return new HmacStore();
}

/**
 * Errors by message; a client that hangs up mid-request at the end of a run lands here too.
 *
 * @type {Map<string, number>}
 */
const errors = new Map();
// eslint-disable-next-line no-unused-vars
app.use(
  /** @type {import('express').ErrorRequestHandler} */ (
    (error, req, res, _next) => {
      const key = `${req.method} ${req.path}: ${error?.message ?? String(error)}`;
      errors.set(key, (errors.get(key) ?? 0) + 1);
      if (!res.headersSent && !req.destroyed) res.status(500).json({ error: 'internal_error' });
    }
  ),
);

const server = app.listen(0, '127.0.0.1', () => {
  process.send?.({ type: 'ready', port: /** @type {import('node:net').AddressInfo} */ (server.address()).port });
});

async function stop() {
  const unexpected = [...errors].filter(([key]) => !/aborted|ECONNRESET/.test(key));
  if (unexpected.length > 0) console.error(`[bench server] errors: ${JSON.stringify(Object.fromEntries(unexpected))}`);
  server.closeAllConnections?.();
  server.close();
  await otpStore?.close?.().catch(() => undefined);
  if (redisClient?.isOpen) await redisClient.quit().catch(() => undefined);
  await pgPool?.end().catch(() => undefined);
  process.exit(0);
}
process.on('message', (message) => {
  if (message === 'stop') void stop();
});
process.on('disconnect', () => void stop());
process.on('SIGTERM', () => void stop());
