import type { RedisClientType, RedisClusterType } from 'redis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { OtpError } from '../core/errors.js';
import { wrapLimiter } from './rate-limiter.js';
import { codeKeys, issueScript, verifyScript, type RedisScript } from './redis-scripts.js';
import type { IssueResult, Limiter, LimiterOptions, OtpStore, VerifyOutcome } from './types.js';

/* eslint-disable @typescript-eslint/no-explicit-any -- any modules, functions, scripts, RESP version and type mapping */
type AnyRedisClient = RedisClientType<any, any, any, any, any>;
type AnyRedisCluster = RedisClusterType<any, any, any, any, any>;
/**
 * A connected node-redis v5 client or cluster (`createClient()` / `createCluster()` from `redis`),
 * with any modules, RESP version and type mapping. Typed by the members the store uses: node-redis's
 * own `RedisClusterType<any, ...>` does not accept what `createCluster()` returns.
 */
export interface RedisStoreClient {
  readonly isOpen: boolean;
  sendCommand(...args: any[]): Promise<unknown>;
  withCommandOptions(options: any): unknown;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

export interface RedisStoreOptions {
  /** A node-redis v5 client or cluster, already connected (`await client.connect()`). Not closed by the store. */
  client: RedisStoreClient;
  /** Prepended to every key. Default `'otp:'`. Must not contain `{` or `}` (they would break Cluster hash tags). */
  prefix?: string;
  /** Upper bound on every store call; beyond it the call fails with `STORE_UNAVAILABLE`. Default 1000. */
  commandTimeoutMs?: number;
}

const defaults = { prefix: 'otp:', commandTimeoutMs: 1000 } as const;
const knownOptions = ['client', 'prefix', 'commandTimeoutMs'];

/** The two shapes of `sendCommand`: a client's and a cluster's (which routes by a key). */
type Send = (firstKey: string, args: string[], options: { abortSignal?: AbortSignal }) => Promise<unknown>;

/**
 * An `OtpStore` on Redis for many app instances. Each operation is one Lua script (see
 * `redis-scripts.ts`), run with `EVALSHA` and, on `NOSCRIPT`, `EVAL` (which caches it again).
 *
 * Fails closed: every call, limiters included, settles within `commandTimeoutMs`; any Redis
 * error, a timeout, or a client that is reconnecting rejects with
 * `OtpError('STORE_UNAVAILABLE')`. A client that is not ready is refused before anything is
 * queued (so no command waits in node-redis's offline queue to run later); one timer bounds
 * each call. node-redis keeps reconnecting on its own, and calls succeed again as soon as it
 * is back.
 */
export function redisStore(options: RedisStoreOptions): OtpStore {
  const { client, prefix, commandTimeoutMs } = resolveOptions(options);
  const isCluster = typeof (client as { nodeClient?: unknown }).nodeClient === 'function';

  const send: Send = isCluster
    ? (firstKey, args, commandOptions) => (client as AnyRedisCluster).sendCommand(firstKey, false, args, commandOptions)
    : (_firstKey, args, commandOptions) => (client as AnyRedisClient).sendCommand(args, commandOptions);

  /** Runs `operation` within `commandTimeoutMs`, turning every failure into STORE_UNAVAILABLE. */
  async function bounded<T>(what: string, operation: (abortSignal?: AbortSignal) => Promise<T>): Promise<T> {
    // A reconnecting single client would only queue the command: refuse at once instead.
    if (!isCluster && (client as AnyRedisClient).isReady === false) throw unavailable(what, 'the client is not connected');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(unavailable(what, `no answer within ${commandTimeoutMs} ms`)), commandTimeoutMs);
      timer.unref();
    });
    try {
      return await Promise.race([operation(), timeout]);
    } catch (error) {
      if (error instanceof OtpError || error instanceof RateLimiterRes) throw error; // RateLimiterRes: over the limit, not a fault
      throw unavailable(what, error instanceof Error ? error.message : String(error), error);
    } finally {
      clearTimeout(timer);
    }
  }

  async function run(script: RedisScript, keys: string[], args: string[], abortSignal?: AbortSignal): Promise<unknown> {
    const firstKey = keys[0] ?? '';
    const tail = [String(script.numberOfKeys), ...keys, ...args];
    try {
      return await send(firstKey, ['EVALSHA', script.sha1, ...tail], { abortSignal });
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return send(firstKey, ['EVAL', script.lua, ...tail], { abortSignal });
    }
  }

  return {
    async issue(key, record, { ttlMs, cooldownMs }): Promise<IssueResult> {
      checkKey(key);
      const keys = codeKeys(prefix, key);
      const args = [record.hash, record.binding ?? '', String(wholeMs('ttlMs', ttlMs, 1)), String(wholeMs('cooldownMs', cooldownMs, 0))];
      const reply = await bounded('issue', (signal) => run(issueScript, [keys.code, keys.cooldown], args, signal));
      const retryAfterMs = Number(reply);
      if (!Number.isInteger(retryAfterMs) || retryAfterMs < 0) throw unavailable('issue', 'unexpected script reply');
      return retryAfterMs === 0 ? { ok: true } : { ok: false, retryAfterMs };
    },

    async verify(key, candidate, { maxAttempts }): Promise<VerifyOutcome> {
      checkKey(key);
      if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw new TypeError(`maxAttempts must be a positive integer, got ${String(maxAttempts)}`);
      const args = [candidate.hash, candidate.binding ?? '', String(maxAttempts)];
      const reply = String(await bounded('verify', (signal) => run(verifyScript, [codeKeys(prefix, key).code], args, signal)));
      if (reply === 'ok' || reply === 'missing' || reply === 'mismatch' || reply === 'burned') return reply;
      throw unavailable('verify', 'unexpected script reply');
    },

    limiter(limiterOptions: LimiterOptions): Limiter {
      const { name, points, durationSeconds, blockSeconds } = limiterOptions;
      if (typeof name !== 'string' || name === '' || /[{}]/.test(name)) throw new TypeError('limiter name must be a non-empty string without `{` or `}`');
      if (!Number.isInteger(durationSeconds) || durationSeconds < 1) {
        throw new TypeError(`limiter durationSeconds must be a whole number of seconds >= 1 (every Redis key needs a TTL), got ${String(durationSeconds)}`);
      }
      const limiter = new RateLimiterRedis({
        // Replies in default types whatever the caller's typeMapping; bounded() times every call.
        storeClient: client.withCommandOptions({}),
        useRedisPackage: true,
        keyPrefix: `${prefix}rl:${name}`,
        points,
        duration: durationSeconds,
        blockDuration: blockSeconds ?? 0,
      });
      return wrapLimiter({
        points,
        consume: (key, count) => bounded('limiter.consume', () => limiter.consume(key, count)),
        get: (key) => bounded('limiter.peek', () => limiter.get(key)),
        delete: (key) => bounded('limiter.reset', () => limiter.delete(key)),
      });
    },

    /** Nothing to release: the client belongs to the caller, who closes it. */
    async close() {},
  };
}

function unavailable(what: string, reason: string, cause?: unknown): OtpError {
  return new OtpError(
    'STORE_UNAVAILABLE',
    `The OTP store (Redis) cannot be reached (${what}: ${reason}); requests fail closed until it answers again.`,
    cause === undefined ? {} : { cause },
  );
}

function resolveOptions(options: RedisStoreOptions): Required<RedisStoreOptions> {
  if (typeof options !== 'object' || options === null) throw new TypeError('redisStore(options) needs an options object: redisStore({ client })');
  for (const name of Object.keys(options)) {
    if (!knownOptions.includes(name)) throw new TypeError(`redisStore: unknown option \`${name}\`; the options are ${knownOptions.join(', ')}`);
  }
  const client = options.client as unknown as Record<string, unknown> | null | undefined;
  if (
    typeof client !== 'object' ||
    client === null ||
    typeof client.sendCommand !== 'function' ||
    typeof client.withCommandOptions !== 'function' ||
    typeof client.isOpen !== 'boolean'
  ) {
    throw new TypeError('redisStore: `client` must be a node-redis v5 client or cluster (createClient() / createCluster() from the `redis` package)');
  }
  if (client.isOpen !== true) throw new TypeError('redisStore: `client` is not connected; call `await client.connect()` before redisStore({ client })');
  const prefix = options.prefix ?? defaults.prefix;
  if (typeof prefix !== 'string' || /[{}]/.test(prefix)) throw new TypeError('redisStore: `prefix` must be a string without `{` or `}` (they would break Redis Cluster hash tags)');
  const commandTimeoutMs = options.commandTimeoutMs ?? defaults.commandTimeoutMs;
  if (!Number.isInteger(commandTimeoutMs) || commandTimeoutMs < 1) throw new TypeError(`redisStore: \`commandTimeoutMs\` must be a positive whole number of milliseconds, got ${String(commandTimeoutMs)}`);
  return { client: options.client, prefix, commandTimeoutMs };
}

/** Keys come hashed from the core (base64url); braces would move them out of their hash slot. */
function checkKey(key: string): void {
  if (typeof key !== 'string' || key === '' || /[{}]/.test(key)) throw new TypeError('store key must be a non-empty string without `{` or `}`');
}

function wholeMs(name: string, value: number, min: number): number {
  if (!Number.isFinite(value) || value < min) throw new TypeError(`${name} must be a number >= ${min}, got ${String(value)}`);
  return Math.ceil(value);
}
