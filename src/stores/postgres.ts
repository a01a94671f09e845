import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { safeEqual } from '../core/codes.js';
import { OtpError } from '../core/errors.js';
import { withTimeout } from '../core/timeout.js';
import { checkTag } from './tag.js';
import { booleanOption, checkOptions, optionError, wholeNumber } from '../core/validate.js';
import {
  cacheGetSql,
  cacheSetSql,
  callSql,
  clockSql,
  createTablesSql,
  deadlinePassed,
  functionsSql,
  peekLinkSql,
  identifierPattern,
  maxPrefixLength,
  schemaSql,
  sqlNames,
  sweepSql,
  tableNames,
} from './postgres-sql.js';
import type {
  AttemptRequest,
  AttemptStart,
  Counter,
  LockPolicy,
  OtpStore,
  Refusal,
  SendDecision,
  SendPlan,
  SettleRequest,
  VerifyOutcome,
  VerifyRequest,
} from './types.js';

/**
 * The part of a `pg` PoolClient the store uses. Written out here rather than imported from
 * `pg`, so that an app that never uses PostgreSQL compiles without `pg`'s types.
 */
export interface PostgresClientLike {
  query(text: string): Promise<unknown>;
  on(event: 'error', listener: (error: Error) => void): unknown;
  off(event: 'error', listener: (error: Error) => void): unknown;
  release(destroy?: Error | boolean): void;
}

/** The part of a `pg` Pool the store uses; `new Pool(...)` from `pg` fits it. */
export interface PostgresPoolLike {
  connect(): Promise<PostgresClientLike>;
  query(text: string): Promise<unknown>;
}

export interface PostgresStoreOptions {
  /** A `pg` Pool. The store borrows connections and never ends it; give it an `'error'` listener (see README). */
  pool: PostgresPoolLike;
  /** Schema of the tables and functions. Default `'public'`. Lowercase letters, digits and `_`. */
  schema?: string | undefined;
  /** Prepended to every table and function name. Default `'blockid_otp_'`. Lowercase letters, digits and `_`. */
  tablePrefix?: string | undefined;
  /** Create (or update) the tables and functions on first use. Default `true`; `false` if your migrations run `postgresSchemaSql()`. */
  createTables?: boolean | undefined;
  /** How often expired rows are deleted, in milliseconds; `0` turns the timer off. Default 60 000. */
  sweepIntervalMs?: number | undefined;
  /** Rows deleted per table per sweep statement; a run repeats it at most 100 times per table. Default 1000. */
  sweepBatchSize?: number | undefined;
  /**
   * Upper bound on every store call, connection wait included; beyond it the call fails with
   * `STORE_UNAVAILABLE`, and the statement is cancelled on the server too. Default 1000.
   */
  commandTimeoutMs?: number | undefined;
  /**
   * Wait for each store write to reach the disk before answering (PostgreSQL's
   * `synchronous_commit`, set for the store's own transactions only). Default `true`.
   * `false` answers before the WAL flush: faster where the flush is slow, but a database
   * crash (not a restart) can lose the last ~0.6 s of store writes, as Redis without AOF can.
   */
  synchronousCommit?: boolean | undefined;
  /**
   * Keep the codes (`slots`), the quota counters (`counters`) and the lookup cache (`cache`) in
   * UNLOGGED tables: no WAL for them, so a send writes almost none (its commit record), but PostgreSQL
   * empties them after a crash (not after a clean restart) and does not copy them to replicas.
   * Such a loss costs a re-sent code or a reset quota; the failure count and locks (`users`) and
   * used TOTP steps and recovery codes (`uses`) stay in logged tables whatever this says.
   * Default `false`. The store switches existing tables either way on start-up (`ALTER TABLE …
   * SET UNLOGGED / LOGGED` rewrites a table under an exclusive lock): give every instance the same value.
   */
  unlogged?: boolean | undefined;
}

/** An `OtpStore` on PostgreSQL, with its set-up and sweep exposed. */
export interface PostgresStore extends OtpStore {
  /** Resolves once the tables and functions exist (creating them unless `createTables: false`). */
  ready(): Promise<void>;
  /** Runs one bounded sweep now; resolves with the number of expired rows deleted. */
  sweep(): Promise<number>;
  /** Stops the sweep timer and waits for a running sweep. Does not end the caller's pool. */
  close(): Promise<void>;
}

const defaults = {
  schema: 'public',
  tablePrefix: 'blockid_otp_',
  createTables: true,
  sweepIntervalMs: 60_000,
  sweepBatchSize: 1000,
  commandTimeoutMs: 1000,
  synchronousCommit: true,
  unlogged: false,
} as const;
type Resolved = Required<PostgresStoreOptions>;
const knownOptions = ['pool', ...Object.keys(defaults)];
const sweepBatchesPerRun = 100;
/** How long the best clock sample is trusted before a newer (possibly lower) one replaces it. */
const clockSampleMs = 60_000;

/**
 * An `OtpStore` for many app instances on one PostgreSQL database. Each operation is one
 * round trip that runs one PL/pgSQL function (see `postgres-sql.ts`) in its own transaction.
 *
 * Fails closed, bounded on both ends: the connection is taken from the pool and the answer
 * awaited within `commandTimeoutMs` (a client that timed out is destroyed, not returned to
 * the pool), and the same round trip sets `statement_timeout` and `lock_timeout` for its own
 * transaction only (`SET LOCAL`), slightly below the time left, so the server gives up
 * before the caller does. A server that stalls before it even reads the statement (SIGSTOP, a
 * frozen VM) would run it on waking, so the round trip also carries the deadline on the
 * database's own clock and fails if it starts later (the `deadline` function): a call answered
 * `STORE_UNAVAILABLE` changes nothing later, short of a reply lost after the commit.
 * Every failure rejects with `OtpError('STORE_UNAVAILABLE')`; the pool reconnects by itself.
 */
export function postgresStore(options: PostgresStoreOptions): PostgresStore {
  const { pool, schema, tablePrefix, createTables, sweepIntervalMs, sweepBatchSize, commandTimeoutMs, synchronousCommit, unlogged } = resolveOptions(options);
  const names = sqlNames(schema, tablePrefix);
  const setupTimeoutMs = Math.max(commandTimeoutMs, 10_000);
  const sweepTimeoutMs = Math.max(commandTimeoutMs, 5000);

  /**
   * The database's clock minus `performance.now()`, in ms, for the deadline guard. Every reply
   * gives a lower bound (the server's time at the end of the round trip, minus ours once the
   * reply is in); the largest recent one is kept, so a reply that was slow to come back moves
   * the deadline earlier only until the next one. Unknown until the first reply; the set-up
   * round trips (which create or check the guard itself, and change nothing when repeated)
   * go without the guard.
   */
  let clock: { offsetMs: number; atMs: number } | undefined;
  function sampleClock(databaseMs: unknown): void {
    const now = performance.now();
    const offsetMs = Number(databaseMs) - now;
    if (!Number.isFinite(offsetMs)) return;
    if (clock === undefined || offsetMs > clock.offsetMs || now - clock.atMs > clockSampleMs) clock = { offsetMs, atMs: now };
  }

  /** Runs `sql` in one round trip within `deadline` (a `performance.now()` time); the value of column `r` of its last row. */
  async function exec(what: string, sql: string, deadline: number, guarded = true): Promise<{ value: string | null; rowCount: number }> {
    const noAnswer = () => unavailable(what, `no answer within ${commandTimeoutMs} ms`);
    const connecting = pool.connect();
    let client: PostgresClientLike;
    try {
      client = await withTimeout(connecting, deadline - performance.now(), noAnswer);
    } catch (error) {
      // A connection that arrives after the deadline goes straight back to the pool.
      connecting.then(
        (late) => late.release(),
        () => {},
      );
      throw error instanceof OtpError ? error : unavailable(what, describe(error), error);
    }
    // While checked out, the pool no longer listens for the client's errors: without a listener
    // here a connection lost mid-query would crash the process.
    const onClientError = (): void => {};
    client.on('error', onClientError);
    let destroy: Error | undefined;
    try {
      // A guard refusal that reaches us in time can only mean a clock estimate that was too low:
      // it applied nothing and corrected the estimate, so the round trip is tried once more.
      for (let attempt = 0; ; attempt += 1) {
        const leftMs = deadline - performance.now();
        if (leftMs < 2) throw noAnswer();
        // The server stops first, so its error (not our timer) is the usual answer, and then nothing was applied.
        const serverMs = Math.max(1, Math.floor(leftMs - Math.min(100, Math.max(5, leftMs / 10))));
        const statements = [
          'SET TRANSACTION ISOLATION LEVEL READ COMMITTED',
          `SET LOCAL statement_timeout = ${serverMs}`,
          `SET LOCAL lock_timeout = ${serverMs}`,
        ];
        if (!synchronousCommit) statements.push('SET LOCAL synchronous_commit = off');
        if (guarded && clock !== undefined) statements.push(clockSql(names, performance.now() + clock.offsetMs + serverMs));
        // The clock is read last, so a slow statement does not make the sample loose.
        statements.push(sql.replace(/[\s;]+$/, ''), clockSql(names));
        // withTimeout keeps a late settling (after a destroy, already answered by then) from going unhandled.
        const querying = client.query(statements.join(';\n')) as Promise<unknown>;
        try {
          const results = (await withTimeout(querying, deadline - performance.now(), noAnswer)) as Array<{
            rows?: Array<{ r?: unknown; t?: unknown }>;
            rowCount?: number | null;
          }>;
          sampleClock(results[results.length - 1]?.rows?.[0]?.t);
          const last = results[results.length - 2];
          const value = last?.rows?.[0]?.r;
          return { value: value === undefined || value === null ? null : String(value), rowCount: last?.rowCount ?? 0 };
        } catch (error) {
          const serverClock =
            error instanceof Error && error.message.startsWith(deadlinePassed) ? Number(error.message.slice(deadlinePassed.length)) : undefined;
          if (serverClock === undefined) throw error;
          sampleClock(serverClock); // a lower bound like any other
          if (attempt > 0) throw error;
        }
      }
    } catch (error) {
      // A server ERROR leaves the connection usable; anything else (a timeout, a lost or FATAL connection) destroys it.
      if ((error as { severity?: unknown } | null)?.severity !== 'ERROR') destroy = error instanceof Error ? error : new Error(String(error));
      throw error instanceof OtpError ? error : unavailable(what, describe(error), error);
    } finally {
      client.off('error', onClientError);
      client.release(destroy);
    }
  }

  let readyPromise: Promise<void> | undefined;
  let isReady = false;
  function ready(): Promise<void> {
    readyPromise ??= (async () => {
      const deadline = performance.now() + setupTimeoutMs;
      if (createTables) {
        await exec('create tables', createTablesSql({ schema, tablePrefix, unlogged }), deadline, false);
      } else {
        const [missing, persistence] = JSON.parse((await exec('check tables', functionsSql(names, unlogged), deadline, false)).value ?? '[1, 0]') as [
          number,
          number,
        ];
        if (missing > 0) {
          throw new OtpError(
            'STORE_UNAVAILABLE',
            `The OTP store (PostgreSQL) finds ${missing} of its functions missing in schema "${schema}" with prefix "${tablePrefix}": run the SQL of postgresSchemaSql() in a migration, or pass createTables: true.`,
          );
        }
        if (persistence > 0) {
          throw new OtpError(
            'STORE_UNAVAILABLE',
            `The OTP store (PostgreSQL) finds ${persistence} of its tables in schema "${schema}" with prefix "${tablePrefix}" ${unlogged ? 'logged, but unlogged: true' : 'unlogged, but unlogged: false'}: run the SQL of postgresSchemaSql({ unlogged: ${unlogged} }) in a migration, or pass the option that matches the tables.`,
          );
        }
      }
      isReady = true;
    })().catch((error: unknown) => {
      readyPromise = undefined; // the next call tries again
      throw error;
    });
    return readyPromise;
  }

  /** One store operation: the tables exist (or are created), then one statement, all within `commandTimeoutMs`. */
  async function run(what: string, sql: string): Promise<string | null> {
    const deadline = performance.now() + commandTimeoutMs;
    if (!isReady) await beforeDeadline(what, ready(), deadline);
    return (await exec(what, sql, deadline)).value;
  }

  async function call<T>(operation: Parameters<typeof callSql>[1], argument: unknown): Promise<T> {
    const reply = await run(operation, callSql(names, operation, argument));
    if (reply === null) throw unavailable(operation, 'no reply');
    return JSON.parse(reply) as T;
  }

  let sweeping: Promise<number> | undefined;
  let closed = false;
  function sweep(): Promise<number> {
    sweeping ??= (async () => {
      let deleted = 0;
      try {
        await ready();
        for (const table of tableNames) {
          for (let batch = 0; batch < sweepBatchesPerRun && !closed; batch += 1) {
            const { rowCount } = await exec(`sweep ${table}`, sweepSql(names, table, sweepBatchSize), performance.now() + sweepTimeoutMs);
            deleted += rowCount;
            if (rowCount < sweepBatchSize) break;
            await yieldToEventLoop(); // let requests in between batches
          }
        }
      } finally {
        sweeping = undefined;
      }
      return deleted;
    })();
    return sweeping;
  }
  const timer =
    sweepIntervalMs > 0
      ? setInterval(() => {
          // A failed sweep (database down) is retried at the next tick; requests report the outage.
          sweep().catch(() => {});
        }, sweepIntervalMs)
      : undefined;
  timer?.unref();

  return {
    ready,
    sweep,

    send: (plan: SendPlan) => call<SendDecision>('send', checkPlan(plan)),
    verify: (request: VerifyRequest) => call<VerifyOutcome>('verify', checkVerify(request)),
    /** A plain SELECT: a read cannot change the record. */
    async peekLink({ user, slot, hash, maxAttempts }) {
      if (typeof slot !== 'string') throw new TypeError('peekLink slot must be a string');
      const reply = await run('peekLink', peekLinkSql(names, key('user', user), slot));
      if (reply === null) return false;
      const [stored, attempts] = JSON.parse(reply) as [string, number];
      return attempts < maxAttempts && safeEqual(stored, hash);
    },
    attempt: (request: AttemptRequest) => call<AttemptStart>('attempt', checkAttempt(request)),
    settle: (request: SettleRequest) => call<boolean>('settle', checkSettle(request)),
    unlock: async (user: string) => {
      await call<null>('unlock', { user: key('user', user) });
    },
    consume: (counter: Counter) => call<Refusal | null>('consume', checkCounter(counter)),

    get: (cacheKey: string) => run('get', cacheGetSql(names, key('key', cacheKey))),
    async set(cacheKey: string, value: string, ttlMs: number) {
      if (typeof value !== 'string') throw new TypeError('cache value must be a string');
      await run('set', cacheSetSql(names, key('key', cacheKey), value, ms('ttlMs', ttlMs, 1)));
    },

    async close() {
      closed = true;
      if (timer) clearInterval(timer);
      await sweeping?.catch(() => {});
    },
  };
}

/**
 * The DDL of `postgresStore` (tables, indexes, functions, storage settings), for teams that run
 * `createTables: false`; give it the `unlogged` the stores will be given.
 */
export function postgresSchemaSql(options: { schema?: string | undefined; tablePrefix?: string | undefined; unlogged?: boolean | undefined } = {}): string {
  const unlogged = options.unlogged ?? defaults.unlogged;
  booleanOption('postgresSchemaSql', 'unlogged', unlogged);
  return schemaSql({
    schema: identifier('schema', options.schema ?? defaults.schema, 63),
    tablePrefix: identifier('tablePrefix', options.tablePrefix ?? defaults.tablePrefix, maxPrefixLength),
    unlogged,
  });
}

async function beforeDeadline<T>(what: string, promise: Promise<T>, deadline: number): Promise<T> {
  try {
    return await withTimeout(promise, deadline - performance.now(), () => unavailable(what, 'the tables are not ready in time'));
  } catch (error) {
    throw error instanceof OtpError ? error : unavailable(what, describe(error), error);
  }
}

function unavailable(what: string, reason: string, cause?: unknown): OtpError {
  return new OtpError(
    'STORE_UNAVAILABLE',
    `The OTP store (PostgreSQL) cannot be reached (${what}: ${reason}); requests fail closed until it answers again.`,
    cause === undefined ? {} : { cause },
  );
}

/** A reason without the server's message text (which can quote values): the SQLSTATE or the socket error code. */
function describe(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  const known: Record<string, string> = {
    '57014': 'statement timeout',
    '55P03': 'lock timeout',
    '57P01': 'server shutting down',
    '57P03': 'server starting up',
    '53300': 'too many connections',
    '42883': 'function missing (run postgresSchemaSql())',
    '42P01': 'table missing (run postgresSchemaSql())',
    ECONNREFUSED: 'connection refused',
    ECONNRESET: 'connection reset',
  };
  if (code === '57014' && error instanceof Error && error.message.startsWith(deadlinePassed)) return 'reached the server after its deadline, 57014';
  if (typeof code === 'string') return known[code] ? `${known[code]}, ${code}` : `error ${code}`;
  if (error instanceof Error && /Connection terminated/.test(error.message)) return 'connection lost';
  return 'database error';
}

function resolveOptions(options: PostgresStoreOptions): Resolved {
  checkOptions('postgresStore', options, knownOptions, 'postgresStore({ pool })');
  const pool = options.pool as unknown as { connect?: unknown; query?: unknown } | null | undefined;
  if (typeof pool !== 'object' || pool === null || typeof pool.connect !== 'function' || typeof pool.query !== 'function') {
    throw optionError('postgresStore', 'pool', 'a pg Pool (new Pool({ connectionString }) from the `pg` package)', pool);
  }
  const createTables = options.createTables ?? defaults.createTables;
  booleanOption('postgresStore', 'createTables', createTables);
  const synchronousCommit = options.synchronousCommit ?? defaults.synchronousCommit;
  booleanOption('postgresStore', 'synchronousCommit', synchronousCommit);
  const unlogged = options.unlogged ?? defaults.unlogged;
  booleanOption('postgresStore', 'unlogged', unlogged);
  return {
    pool: options.pool,
    schema: identifier('schema', options.schema ?? defaults.schema, 63),
    tablePrefix: identifier('tablePrefix', options.tablePrefix ?? defaults.tablePrefix, maxPrefixLength),
    createTables,
    sweepIntervalMs: whole('sweepIntervalMs', options.sweepIntervalMs ?? defaults.sweepIntervalMs, 0, 2_147_483_647, '0 turns the sweep off'),
    sweepBatchSize: whole('sweepBatchSize', options.sweepBatchSize ?? defaults.sweepBatchSize, 1, 1_000_000),
    commandTimeoutMs: whole('commandTimeoutMs', options.commandTimeoutMs ?? defaults.commandTimeoutMs, 10, 600_000),
    synchronousCommit,
    unlogged,
  };
}

function identifier(option: string, value: unknown, maxLength: number): string {
  if (typeof value !== 'string' || !identifierPattern.test(value) || value.length > maxLength) {
    throw optionError('postgresStore', option, `a lowercase SQL identifier (a-z, 0-9, _; not starting with a digit; at most ${maxLength} characters)`, value);
  }
  return value;
}

function whole(option: string, value: unknown, min: number, max: number, note?: string): number {
  return wholeNumber('postgresStore', option, value, min, max, note);
}

// Requests come from the core; these checks keep a programming error from reaching SQL as a confusing failure.

function key(name: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') throw new TypeError(`store ${name} must be a non-empty string`);
  return value;
}

/** A plan's counter key; chr(1) at the start is the per-username quota's (see postgres-sql.ts). */
function counterKey(value: unknown): string {
  const checked = key('counter key', value);
  if (checked.startsWith('\u0001')) throw new TypeError('store counter key must not start with U+0001');
  return checked;
}

function ms(name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min)
    throw new TypeError(`store ${name} must be a number >= ${min}, got ${String(value)}`);
  return Math.ceil(value);
}

function checkCounter(counter: Counter): Counter {
  if (counter.mode !== 'take' && counter.mode !== 'peek') throw new TypeError(`counter mode must be 'take' or 'peek', got ${String(counter.mode)}`);
  return {
    limit: key('counter limit', counter.limit),
    key: counterKey(counter.key),
    points: ms('counter points', counter.points, 0),
    windowMs: ms('counter windowMs', counter.windowMs, 1),
    mode: counter.mode,
  };
}

function checkSpace(space: unknown): 'user' | 'decoy' {
  if (space !== 'user' && space !== 'decoy') throw new TypeError(`store space must be 'user' or 'decoy', got ${String(space)}`);
  return space;
}

function checkPolicy(policy: LockPolicy): LockPolicy {
  return {
    maxAttempts: ms('maxAttempts', policy.maxAttempts, 1),
    failedVerifications: ms('failedVerifications', policy.failedVerifications, 0),
    lockMs: ms('lockMs', policy.lockMs, 0),
    maxConsecutiveFailures: ms('maxConsecutiveFailures', policy.maxConsecutiveFailures, 1),
    failureMemoryMs: ms('failureMemoryMs', policy.failureMemoryMs, 1),
  };
}

function checkPlan(plan: SendPlan): SendPlan {
  if (typeof plan.slot !== 'string') throw new TypeError('send plan slot must be a string');
  return {
    user: key('user', plan.user),
    space: checkSpace(plan.space),
    slot: plan.slot,
    cooldownMs: ms('cooldownMs', plan.cooldownMs, 0),
    perUser:
      plan.perUser === null ? null : { points: ms('perUser points', plan.perUser.points, 0), windowMs: ms('perUser windowMs', plan.perUser.windowMs, 1) },
    request: plan.request.map(checkCounter),
    targets: plan.targets.map((group) => group.map(checkCounter)),
    code: {
      hash: key('code hash', plan.code.hash),
      ttlMs: ms('code ttlMs', plan.code.ttlMs, 1),
      issuedAtMs: ms('issuedAtMs', plan.code.issuedAtMs, 0),
      ...(plan.code.tag !== undefined && { tag: checkTag(plan.code.tag) }),
      ...(plan.code.linkHash !== undefined && { linkHash: key('link hash', plan.code.linkHash) }),
    },
  };
}

function checkVerify(request: VerifyRequest): VerifyRequest {
  if (!Array.isArray(request.slots) || request.slots.some((slot) => typeof slot !== 'string')) throw new TypeError('verify slots must be an array of strings');
  return {
    user: key('user', request.user),
    slots: request.slots,
    hash: key('candidate hash', request.hash),
    policy: checkPolicy(request.policy),
    ...(request.link === true && { link: true }),
  };
}

function checkAttempt(request: AttemptRequest): AttemptRequest {
  return { user: key('user', request.user), space: checkSpace(request.space), policy: checkPolicy(request.policy) };
}

function checkSettle(request: SettleRequest): SettleRequest {
  const { use } = request;
  if (use?.kind === 'totp') {
    if (!Number.isSafeInteger(use.step)) throw new TypeError('settle step must be a whole number');
    return { user: key('user', request.user), use: { kind: 'totp', step: use.step, ttlMs: ms('settle ttlMs', use.ttlMs, 1) } };
  }
  if (use?.kind === 'recovery')
    return { user: key('user', request.user), use: { kind: 'recovery', id: key('recovery id', use.id), ttlMs: ms('settle ttlMs', use.ttlMs, 1) } };
  throw new TypeError("settle use.kind must be 'totp' or 'recovery'");
}
