import type { RedisClientType, RedisClusterType } from 'redis';
import { randomToken, safeEqual } from '../core/codes.js';
import { OtpError, configError } from '../core/errors.js';
import { checkTag } from './tag.js';
import { checkOptions, optionError, wholeNumber } from '../core/validate.js';
import {
  attemptScript,
  counterScript,
  releaseCounterScript,
  releaseUserScript,
  reserveUserScript,
  sendPlanScript,
  settleScript,
  storeCodeScript,
  verifyScript,
  type RedisScript,
} from './redis-scripts.js';
import type { AttemptStart, Counter, LockPolicy, LockStarted, OtpStore, Refusal, SendDecision, SendPlan, Space, VerifyOutcome } from './types.js';
import { withTimeout } from '../core/timeout.js';

// biome-ignore lint/suspicious/noExplicitAny: any modules, functions, scripts, RESP version and type mapping
type AnyRedisClient = RedisClientType<any, any, any, any, any>;
// biome-ignore lint/suspicious/noExplicitAny: as above
type AnyRedisCluster = RedisClusterType<any, any, any, any, any>;
/**
 * A connected node-redis v5 client or cluster (`createClient()` / `createCluster()` from `redis`),
 * with any modules, RESP version and type mapping. Typed by the members the store uses: node-redis's
 * own `RedisClusterType<any, ...>` does not accept what `createCluster()` returns.
 */
export interface RedisStoreClient {
  readonly isOpen: boolean;
  // biome-ignore lint/suspicious/noExplicitAny: a client's and a cluster's sendCommand differ in their arguments
  sendCommand(...args: any[]): Promise<unknown>;
  // biome-ignore lint/suspicious/noExplicitAny: node-redis's command options are generic over the client's type mapping
  withCommandOptions(options: any): unknown;
}

export interface RedisStoreOptions {
  /** A node-redis v5 client or cluster, already connected (`await client.connect()`). Not closed by the store. */
  client: RedisStoreClient;
  /** Prepended to every key. Default `'otp:'`. Must not contain `{` or `}` (they would break Cluster hash tags). */
  prefix?: string | undefined;
  /** Upper bound on every store call; beyond it the call fails with `STORE_UNAVAILABLE`. Default 1000. */
  commandTimeoutMs?: number | undefined;
}

const defaults = { prefix: 'otp:', commandTimeoutMs: 1000 } as const;
const knownOptions = ['client', 'prefix', 'commandTimeoutMs'];

/** The two shapes of `sendCommand`: a client's and a cluster's (which routes by a key). */
type Send = (firstKey: string, args: string[], options: object) => Promise<unknown>;

/**
 * An `OtpStore` on Redis for many app instances. Each operation is one Lua script per hash
 * slot (see `redis-scripts.ts`), run with `EVALSHA` and, on `NOSCRIPT`, `EVAL` (which caches
 * it again). On a single node a send is one script (`sendPlanScript`, one round trip); on
 * Cluster it takes two (every check at once, a script per hash slot, then the code or the
 * take-backs). A verify is one, whatever the channels, quotas or user.
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
  async function bounded<T>(what: string, operation: () => Promise<T>): Promise<T> {
    // A reconnecting single client would only queue the command: refuse at once instead.
    if (!isCluster && (client as AnyRedisClient).isReady === false) throw unavailable(what, 'the client is not connected');
    try {
      return await withTimeout(operation(), commandTimeoutMs, () => unavailable(what, `no answer within ${commandTimeoutMs} ms`));
    } catch (error) {
      if (error instanceof OtpError) throw error;
      throw unavailable(what, error instanceof Error ? error.message : String(error), error);
    }
  }

  /**
   * Runs one script. Called for every script of a round before the first `await`, so
   * node-redis writes them together: one round trip per round, whatever the number of scripts.
   */
  async function run(script: RedisScript, keys: string[], args: Array<string | number>): Promise<unknown> {
    const firstKey = keys[0] ?? '';
    const tail = [String(keys.length), ...keys, ...args.map(String)];
    try {
      return await send(firstKey, ['EVALSHA', script.sha1, ...tail], {});
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return send(firstKey, ['EVAL', script.lua, ...tail], {});
    }
  }

  const userKey = (user: string, space: Space, part: string) => `${prefix}{${user}}:${space === 'user' ? 'u' : 'd'}:${part}`;
  const slotName = (slot: string) => (slot === '' ? '-' : slot);
  const counterKey = (counter: Counter) => `${prefix}{q:${counter.key}}`;
  const runCounter = (counter: Counter) => run(counterScript, [counterKey(counter)], [counter.points, Math.ceil(counter.windowMs), counter.mode]);
  const counterReply = (reply: unknown, counter: Counter): Refusal | null => {
    const [admitted, ms] = reply as [number, number?];
    return Number(admitted) === 1 ? null : { limit: counter.limit, retryAfterMs: Math.max(Number(ms ?? 1), 1) };
  };
  const policyArgs = (policy: LockPolicy) => [
    policy.failedVerifications,
    Math.ceil(policy.lockMs),
    policy.maxConsecutiveFailures,
    Math.ceil(policy.failureMemoryMs),
  ];

  /** The keys of a send's own state: the slot's cooldown and code, the space's per-username count. */
  const sendKeys = (plan: SendPlan) => {
    const slot = slotName(plan.slot);
    return {
      cooldown: userKey(plan.user, plan.space, `cd:${slot}`),
      perUser: userKey(plan.user, plan.space, 'n'),
      code: userKey(plan.user, plan.space, `c:${slot}`),
    };
  };

  /** A single node holds every key: the whole plan is one script, one round trip. */
  async function sendOnOneNode(plan: SendPlan): Promise<SendDecision> {
    const counters = [...plan.request, ...plan.targets.flat()];
    const { cooldown, perUser, code } = sendKeys(plan);
    const keys = [cooldown, perUser, code, ...counters.map(counterKey)];
    const args: Array<string | number> = [
      Math.ceil(plan.cooldownMs),
      plan.perUser?.points ?? -1,
      Math.ceil(plan.perUser?.windowMs ?? 1),
      plan.code.hash,
      Math.ceil(plan.code.ttlMs),
      plan.code.issuedAtMs,
      checkTag(plan.code.tag),
      plan.request.length,
      plan.targets.length,
      plan.code.linkHash ?? '',
      ...plan.targets.map((group) => group.length),
      ...counters.flatMap((counter) => [counter.points, Math.ceil(counter.windowMs), counter.mode]),
    ];
    const reply = ((await run(sendPlanScript, keys, args)) as unknown[]).map(Number);
    const refusalAt = (position: number, ms: number): Refusal => ({ limit: counters[position - 1]?.limit ?? 'unknown', retryAfterMs: Math.max(ms, 1) });
    const targets = plan.targets.map((_, g) => {
      const at = reply[3 + 2 * g] ?? 0;
      return at === 0 ? null : refusalAt(at, reply[4 + 2 * g] ?? 1);
    });
    const [verdict = 0, ms = 1, at = 0] = reply;
    if (verdict === 0) return { ok: true, targets };
    const refusal: Refusal =
      verdict === 1
        ? { limit: 'resendCooldownSeconds', retryAfterMs: Math.max(ms, 1) }
        : verdict === 2
          ? { limit: 'sendsPerUsername', retryAfterMs: Math.max(ms, 1) }
          : refusalAt(at, ms);
    return { ok: false, refusal, targets };
  }

  return {
    send: (plan) =>
      bounded('send', async (): Promise<SendDecision> => {
        checkKey(plan.user);
        checkKey(plan.slot, true);
        if (!isCluster) return sendOnOneNode(plan);
        const { cooldown, perUser, code } = sendKeys(plan);
        const token = reservationToken();
        // Round 1: every check at once, each in its own slot; what admits is counted.
        const userReply = run(
          reserveUserScript,
          [cooldown, perUser],
          [Math.ceil(plan.cooldownMs), plan.perUser?.points ?? -1, Math.ceil(plan.perUser?.windowMs ?? 1), token],
        );
        const requestReplies = plan.request.map(runCounter);
        const targetReplies = plan.targets.map((group) => group.map(runCounter));
        const [userState, ...requestStates] = await Promise.all([userReply, ...requestReplies]);
        const targetStates = await Promise.all(targetReplies.map((group) => Promise.all(group)));

        const [userCode, userMs] = userState as [number, number?];
        let refusal: Refusal | null =
          Number(userCode) === 0
            ? null
            : { limit: Number(userCode) === 1 ? 'resendCooldownSeconds' : 'sendsPerUsername', retryAfterMs: Math.max(Number(userMs ?? 1), 1) };
        for (const [i, counter] of plan.request.entries()) refusal ??= counterReply(requestStates[i], counter);
        const targets = plan.targets.map((group, g) => {
          for (const [i, counter] of group.entries()) {
            const refused = counterReply(targetStates[g]?.[i], counter);
            if (refused !== null) return refused;
          }
          return null;
        });
        if (refusal === null && targets.length > 0 && targets.every((t) => t !== null)) refusal = targets[0] ?? null;

        // Round 2: store the code, and take back whatever round 1 counted for a refused part.
        const round2: Array<Promise<unknown>> = [];
        const release = (counter: Counter, reply: unknown) => {
          if (counter.mode === 'take' && counterReply(reply, counter) === null) round2.push(run(releaseCounterScript, [counterKey(counter)], []));
        };
        for (const [g, group] of plan.targets.entries()) {
          if (refusal === null && targets[g] === null) continue;
          for (const [i, counter] of group.entries()) release(counter, targetStates[g]?.[i]);
        }
        if (refusal === null) {
          round2.push(
            run(storeCodeScript, [code], [plan.code.hash, Math.ceil(plan.code.ttlMs), plan.code.issuedAtMs, checkTag(plan.code.tag), plan.code.linkHash ?? '']),
          );
        } else {
          for (const [i, counter] of plan.request.entries()) release(counter, requestStates[i]);
          if (Number(userCode) === 0) round2.push(run(releaseUserScript, [cooldown, perUser], [token, plan.perUser === null ? 0 : 1]));
        }
        await Promise.all(round2);
        return refusal === null ? { ok: true, targets } : { ok: false, refusal, targets };
      }),

    verify: ({ user, slots, hash, link, policy }) =>
      bounded('verify', async (): Promise<VerifyOutcome> => {
        checkKey(user);
        for (const slot of slots) checkKey(slot, true);
        const keys = [userKey(user, 'user', 'f'), userKey(user, 'user', 'lk'), userKey(user, 'decoy', 'f'), userKey(user, 'decoy', 'lk')];
        for (const slot of slots) keys.push(userKey(user, 'user', `c:${slotName(slot)}`), userKey(user, 'decoy', `c:${slotName(slot)}`));
        const reply = (await run(verifyScript, keys, [hash, policy.maxAttempts, ...policyArgs(policy), link === true ? 'link' : 'hash'])) as unknown[];
        const [result, a, b, c] = reply.map(String);
        const space = a === 'decoy' ? 'decoy' : 'user';
        switch (result) {
          case 'missing':
            return { result: 'missing' };
          case 'ok':
            return { result: 'ok', space: 'user', issuedAtMs: Number(a), ...(b !== undefined && b !== '' && { tag: b }) };
          case 'burned':
            return { result: 'burned', space };
          case 'locked':
            return { result: 'locked', space, permanent: b === 'permanent', retryAfterMs: Math.max(Number(c), 1) };
          case 'mismatch':
            return { result: 'mismatch', space, lock: lockStarted(b) };
          default:
            throw unavailable('verify', 'unexpected script reply');
        }
      }),

    /** One HMGET, no script and no write: a read cannot change the record. */
    peekLink: ({ user, slot, hash, maxAttempts }) =>
      bounded('peekLink', async () => {
        checkKey(user);
        checkKey(slot, true);
        const key = userKey(user, 'user', `c:${slotName(slot)}`);
        const [stored, attempts] = (await send(key, ['HMGET', key, 'link', 'attempts'], {})) as [unknown, unknown];
        return stored !== null && stored !== undefined && Number(attempts ?? 0) < maxAttempts && safeEqual(String(stored), hash);
      }),

    attempt: ({ user, space, policy }) =>
      bounded('attempt', async (): Promise<AttemptStart> => {
        checkKey(user);
        const reply = ((await run(attemptScript, [userKey(user, space, 'f'), userKey(user, space, 'lk')], policyArgs(policy))) as unknown[]).map(String);
        if (reply[0] === 'locked') return { ok: false, permanent: reply[1] === 'permanent', retryAfterMs: Math.max(Number(reply[2]), 1) };
        return { ok: true, lock: lockStarted(reply[1]) };
      }),

    settle: ({ user, use }) =>
      bounded('settle', async () => {
        checkKey(user);
        const marker = use.kind === 'totp' ? userKey(user, 'user', 't') : userKey(user, 'user', `r:${use.id}`);
        if (use.kind === 'recovery') checkKey(use.id);
        const step = use.kind === 'totp' ? use.step : 0;
        const reply = await run(settleScript, [marker, userKey(user, 'user', 'f'), userKey(user, 'user', 'lk')], [use.kind, step, Math.ceil(use.ttlMs)]);
        return Number(reply) === 1;
      }),

    unlock: (user) =>
      bounded('unlock', async () => {
        checkKey(user);
        const keys = (['user', 'decoy'] as const).flatMap((space) => [userKey(user, space, 'f'), userKey(user, space, 'lk')]);
        await send(keys[0] ?? '', ['DEL', ...keys], {});
      }),

    consume: (counter) => bounded('consume', async () => counterReply(await runCounter(counter), counter)),

    get: (key) =>
      bounded('get', async () => {
        const value = await send(`${prefix}{kv:${key}}`, ['GET', `${prefix}{kv:${key}}`], {});
        return value === null || value === undefined ? null : String(value);
      }),

    set: (key, value, ttlMs) =>
      bounded('set', async () => {
        await send(`${prefix}{kv:${key}}`, ['SET', `${prefix}{kv:${key}}`, value, 'PX', String(Math.max(Math.ceil(ttlMs), 1))], {});
      }),

    /** Nothing to release: the client belongs to the caller, who closes it. */
    async close() {},
  };
}

/** A random token that marks a send's cooldown reservation as its own (so a refused send takes back only what it set). */
const reservationToken = (): string => randomToken(9);

function lockStarted(reply: string | undefined): LockStarted {
  return reply === 'timed' || reply === 'permanent' ? reply : null;
}

function unavailable(what: string, reason: string, cause?: unknown): OtpError {
  return new OtpError(
    'STORE_UNAVAILABLE',
    `The OTP store (Redis) cannot be reached (${what}: ${reason}); requests fail closed until it answers again.`,
    cause === undefined ? {} : { cause },
  );
}

function resolveOptions(options: RedisStoreOptions): Required<RedisStoreOptions> {
  checkOptions('redisStore', options, knownOptions, 'redisStore({ client })');
  const client = options.client as unknown as Record<string, unknown> | null | undefined;
  if (
    typeof client !== 'object' ||
    client === null ||
    typeof client.sendCommand !== 'function' ||
    typeof client.withCommandOptions !== 'function' ||
    typeof client.isOpen !== 'boolean'
  ) {
    throw optionError('redisStore', 'client', 'a node-redis v5 client or cluster (createClient() / createCluster() from the `redis` package)', client);
  }
  if (client.isOpen !== true)
    throw configError('redisStore: option "client" is not connected; call `await client.connect()` before redisStore({ client }).', 'invalid-store-options');
  const prefix = options.prefix ?? defaults.prefix;
  if (typeof prefix !== 'string' || /[{}]/.test(prefix))
    throw optionError('redisStore', 'prefix', 'a string without "{" or "}" (they would break Redis Cluster hash tags)', prefix);
  const commandTimeoutMs = wholeNumber('redisStore', 'commandTimeoutMs', options.commandTimeoutMs ?? defaults.commandTimeoutMs, 1, 600_000);
  return { client: options.client, prefix, commandTimeoutMs };
}

/** Keys come hashed from the core (base64url); braces would move them out of their hash slot. */
function checkKey(key: string, allowEmpty = false): void {
  if (typeof key !== 'string' || (key === '' && !allowEmpty) || /[{}:\s]/.test(key))
    throw new TypeError('store key must be a non-empty string without `{`, `}`, `:` or spaces');
}
