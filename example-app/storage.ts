// Where the Express example keeps codes and sessions: PostgreSQL when DATABASE_URL is set
// (postgresStore + connect-pg-simple), Redis when REDIS_URL is set (redisStore +
// connect-redis), this process's memory otherwise. One connection (pool or client) serves both.
import session, { type Store } from 'express-session';
import connectPgSimple from 'connect-pg-simple';
import { RedisStore } from 'connect-redis';
import pg from 'pg';
import { createClient } from 'redis';
import { memoryStore, postgresStore, redisStore } from '../src/index.js';
import type { OtpStore } from '../src/store.js';
import type { ExampleConfig } from './config.js';

export interface Storage {
  otpStore: OtpStore;
  /** For express-session; `undefined` means its MemoryStore. */
  sessionStore: Store | undefined;
  /** Settles when both can serve (connected, tables created). */
  ready: Promise<void>;
  /** `memory`, `Redis` or `PostgreSQL`, for the start-up banner. */
  kind: string;
  close(): Promise<void>;
}

/** The sessions table (in DATABASE_SCHEMA), next to blockid-otp's `blockid_otp_*` tables. */
export const SESSION_TABLE = 'blockid_example_sessions';
/** Serializes the session-table creation of instances that start together (pg_advisory_lock key). */
const SESSION_TABLE_LOCK = 0x6b1d_0e5a;

export function createStorage(config: ExampleConfig): Storage {
  if (config.databaseUrl) return postgresStorage(config.databaseUrl, config.databaseSchema);
  if (config.redisUrl) return redisStorage(config.redisUrl, config.redisPrefix);
  const otpStore = memoryStore();
  return { otpStore, sessionStore: undefined, ready: Promise.resolve(), kind: 'memory', close: async () => otpStore.close?.() };
}

function postgresStorage(url: string, schema: string): Storage {
  const pool = new pg.Pool({ connectionString: url, connectionTimeoutMillis: 5_000, max: 10 });
  // Without an 'error' listener, an idle connection that the server drops (a restart, a
  // failover) crashes the process. Log once per distinct message; the pool reconnects.
  let lastError = '';
  pool.on('error', (error: Error) => {
    if (error.message !== lastError) console.error(`[example-app] PostgreSQL (${redactUrl(url)}): ${error.message}`);
    lastError = error.message;
  });
  const otpStore = postgresStore({ pool, schema });
  const PgSession = connectPgSimple(session);
  const sessionStore = new PgSession({
    pool,
    schemaName: schema,
    tableName: SESSION_TABLE,
    createTableIfMissing: true,
    errorLog: (...args: unknown[]) => console.error('[example-app] sessions:', ...args),
  });
  const ready = withTimeout(
    (async () => {
      await otpStore.ready(); // creates the schema too, when it is not `public`
      await createSessionTable(pool, sessionStore);
    })(),
    15_000,
    `PostgreSQL at ${redactUrl(url)} did not answer within 15 s`,
  );
  ready.catch(() => {}); // callers await `ready` themselves
  return {
    otpStore,
    sessionStore,
    ready,
    kind: 'PostgreSQL',
    async close() {
      await otpStore.close();
      await sessionStore.close();
      await pool.end();
    },
  };
}

/**
 * connect-pg-simple creates its table on first use (`createTableIfMissing`), but two
 * instances starting at once can both try, and one then fails for good. A session-level
 * advisory lock on a connection of its own makes them take turns; the second finds the table.
 */
async function createSessionTable(pool: pg.Pool, store: Store): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [SESSION_TABLE_LOCK]);
    try {
      await new Promise<void>((resolve, reject) => store.get('', (error: unknown) => (error ? reject(error) : resolve())));
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [SESSION_TABLE_LOCK]);
    }
  } finally {
    client.release();
  }
}

function redisStorage(url: string, prefix: string): Storage {
  const redis = createClient({ url });
  let lastError = '';
  redis.on('error', (error: Error) => {
    if (error.message !== lastError) console.error(`[example-app] Redis (${redactUrl(url)}): ${error.message}`);
    lastError = error.message;
  });
  redis.on('ready', () => {
    lastError = '';
  });
  const ready = withTimeout(
    redis.connect().then(() => undefined),
    10_000,
    `Redis at ${redactUrl(url)} did not answer within 10 s`,
  );
  ready.catch(() => {});
  const otpStore = redisStore({ client: redis, prefix: `${prefix}otp:` });
  return {
    otpStore,
    sessionStore: new RedisStore({ client: redis, prefix: `${prefix}sess:` }),
    ready,
    kind: 'Redis',
    async close() {
      await otpStore.close?.();
      if (redis.isReady) await redis.close();
      else if (redis.isOpen) redis.destroy(); // still trying to connect
    },
  };
}

/** `promise`, or a rejection with `message` when it takes longer than `timeoutMs`. */
function withTimeout<T>(promise: Promise<T>, timeoutMs: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(message)), timeoutMs);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The URL without its password, for messages. */
function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'the configured URL';
  }
}
