/**
 * The Lua behind `redisStore`: one script per store operation, so each check-and-update runs
 * atomically inside Redis. All keys of one operation carry the same hash tag (`{key}`), so the
 * scripts also run on Redis Cluster.
 *
 * Key layout, for a store prefix `otp:` and an (already hashed) key `K`:
 * - `otp:{K}:code` — hash `{ hash, binding, attempts }`; `binding` is `''` for "any caller".
 *   Lives `ttlMs`; a mismatch never extends it.
 * - `otp:{K}:cooldown` — the string `'1'`; lives `cooldownMs` (absent when `cooldownMs` is 0).
 */
import { createHash } from 'node:crypto';

export interface RedisScript {
  /** Lua source, sent with `EVAL` when Redis answers `NOSCRIPT` to `EVALSHA`. */
  readonly lua: string;
  /** SHA-1 of `lua`, for `EVALSHA`. */
  readonly sha1: string;
  readonly numberOfKeys: number;
}

const script = (lua: string, numberOfKeys: number): RedisScript => ({
  lua,
  sha1: createHash('sha1').update(lua).digest('hex'),
  numberOfKeys,
});

/** The keys of one store key; they share the hash tag `{key}`, hence one Cluster slot. */
export function codeKeys(prefix: string, key: string): { code: string; cooldown: string } {
  return { code: `${prefix}{${key}}:code`, cooldown: `${prefix}{${key}}:cooldown` };
}

/**
 * KEYS: code, cooldown. ARGV: hash, binding (`''` = any), ttlMs, cooldownMs.
 * Returns 0 when issued, or the cooldown's remaining milliseconds (> 0) when refused.
 * A cooldown marker without a TTL (never written by this script) is treated as absent.
 */
export const issueScript = script(
  `
local cooldownLeftMs = redis.call('PTTL', KEYS[2])
if cooldownLeftMs > 0 then
  return cooldownLeftMs
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'hash', ARGV[1], 'binding', ARGV[2], 'attempts', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[4])
else
  redis.call('DEL', KEYS[2])
end
return 0
`,
  2,
);

/**
 * KEYS: code. ARGV: hash, binding (`''` = none), maxAttempts.
 * Returns 'missing' | 'burned' | 'ok' | 'mismatch'. The budget is checked before comparing.
 * The values compared are keyed hashes the caller cannot choose, so Lua's ordinary string
 * equality leaks nothing useful about the code.
 */
export const verifyScript = script(
  `
local record = redis.call('HMGET', KEYS[1], 'hash', 'binding', 'attempts')
if not record[1] then
  return 'missing'
end
if (tonumber(record[3]) or 0) >= tonumber(ARGV[3]) then
  return 'burned'
end
local binding = record[2] or ''
if record[1] == ARGV[1] and (binding == '' or binding == ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return 'ok'
end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return 'mismatch'
`,
  1,
);
