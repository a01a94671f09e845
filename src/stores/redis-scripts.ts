/**
 * The Lua behind `redisStore`: one script per hash slot and step, so each check-and-update
 * runs atomically inside Redis, and no script touches keys of two slots (Redis Cluster).
 *
 * Key layout, for a store prefix `otp:`, a username key `U`, a space `s` (`u` user, `d`
 * decoy) and a slot `S` (a session binding's hash, `-` for unbound codes):
 * - `otp:{U}:s:c:S` — the code: hash `{ hash, attempts, issuedAt, tag?, link? }` (`link`: the
 *   sign-in link token's keyed hash); lives the code's TTL.
 * - `otp:{U}:s:cd:S` — the slot's resend cooldown (a token); lives `cooldownMs`.
 * - `otp:{U}:s:n` — sends per username in the window; lives the window.
 * - `otp:{U}:s:f` — wrong guesses in a row; lives `failureMemoryMs` from the last one.
 * - `otp:{U}:s:lk` — a timed lock; lives `lockMs`.
 * - `otp:{U}:u:t` — the last accepted TOTP step; `otp:{U}:u:r:ID` — a used recovery code.
 * - `otp:{q:KEY}` — a quota counter (its own slot); `otp:{kv:KEY}` — a cached value.
 *
 * Every key has a TTL. Time is Redis's own (TTLs), so app instances' clocks do not matter.
 */
import { createHash } from 'node:crypto';

export interface RedisScript {
  /** Lua source, sent with `EVAL` when Redis answers `NOSCRIPT` to `EVALSHA`. */
  readonly lua: string;
  /** SHA-1 of `lua`, for `EVALSHA`. */
  readonly sha1: string;
}

const script = (lua: string): RedisScript => ({ lua, sha1: createHash('sha1').update(lua).digest('hex') });

/** Shared Lua: counts one wrong guess for a space (KEYS f, lk) and returns the lock it starts. */
const countFailure = `
local function count_failure(f, lk, failed_verifications, lock_ms, max_failures, memory_ms)
  local fails = redis.call('INCR', f)
  redis.call('PEXPIRE', f, memory_ms)
  if fails >= max_failures then return 'permanent' end
  if fails % failed_verifications == 0 then
    redis.call('SET', lk, '1', 'PX', lock_ms)
    return 'timed'
  end
  return ''
end
local function lock_of(f, lk, max_failures)
  local fails = tonumber(redis.call('GET', f) or '0')
  if fails >= max_failures then return {'permanent', math.max(redis.call('PTTL', f), 1)} end
  local left = redis.call('PTTL', lk)
  if left > 0 then return {'timed', left} end
  return nil
end
`;

/**
 * Round 1 of a send, in the username's slot. KEYS: cooldown, perUser.
 * ARGV: cooldownMs, perUser points (-1 = off), perUser windowMs, token.
 * Returns {0} when both admit (and then starts the cooldown and counts the send), or
 * {1, ms} (cooldown) / {2, ms} (sendsPerUsername) when refused, changing nothing.
 */
export const reserveUserScript = script(`
local left = redis.call('PTTL', KEYS[1])
if left > 0 then return {1, left} end
local points = tonumber(ARGV[2])
if points >= 0 then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used + 1 > points then return {2, math.max(redis.call('PTTL', KEYS[2]), 1)} end
end
if tonumber(ARGV[1]) > 0 then redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[1]) end
if points >= 0 then
  if redis.call('INCR', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
end
return {0}
`);

/**
 * Takes back round 1 of a refused send. KEYS: cooldown, perUser. ARGV: token, perUser on (1/0).
 * The cooldown goes only if it is still this send's own.
 */
export const releaseUserScript = script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if ARGV[2] == '1' and tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
return 0
`);

/**
 * A quota counter. KEYS: counter. ARGV: points, windowMs, mode (`take` | `peek`).
 * Returns {1} when admitted (a `take` counts one), or {0, ms} when over, changing nothing.
 */
export const counterScript = script(`
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used + 1 > tonumber(ARGV[1]) then return {0, math.max(redis.call('PTTL', KEYS[1]), 1)} end
if ARGV[3] == 'take' then
  if redis.call('INCR', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
end
return {1}
`);

/** Takes back one `take`. KEYS: counter. */
export const releaseCounterScript = script(`
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
return 0
`);

/** Round 2 of an admitted send: the slot's code. KEYS: code. ARGV: hash, ttlMs, issuedAtMs, tag, link hash ('' for none). */
export const storeCodeScript = script(`
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'hash', ARGV[1], 'attempts', 0, 'issuedAt', ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'tag', ARGV[4]) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'link', ARGV[5]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 0
`);

/**
 * Verifies a candidate. KEYS: user f, user lk, decoy f, decoy lk, then a (user code, decoy
 * code) pair per slot. ARGV: hash, maxAttempts, failedVerifications, lockMs,
 * maxConsecutiveFailures, failureMemoryMs, the field compared (`hash`, or `link` for a sign-in link).
 * Returns {'missing'} | {'locked', space, kind, ms} | {'burned', space} | {'ok', issuedAt} |
 * {'mismatch', space, lockStarted}; 'ok' carries issuedAt and the tag. Lock and budget are checked before comparing; the values
 * compared are keyed hashes the caller cannot choose, so Lua's string equality leaks nothing.
 */
export const verifyScript = script(`${countFailure}
local code, space
for i = 5, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    code = KEYS[i]
    space = (i % 2 == 1) and 'user' or 'decoy'
    break
  end
end
if not code then return {'missing'} end
local f, lk = KEYS[1], KEYS[2]
if space == 'decoy' then f, lk = KEYS[3], KEYS[4] end
local max_failures = tonumber(ARGV[5])
local lock = lock_of(f, lk, max_failures)
if lock then return {'locked', space, lock[1], lock[2]} end
local record = redis.call('HMGET', code, ARGV[7], 'attempts', 'issuedAt', 'tag')
if (tonumber(record[2]) or 0) >= tonumber(ARGV[2]) then return {'burned', space} end
if space == 'user' and record[1] and record[1] == ARGV[1] then
  redis.call('DEL', code, KEYS[1], KEYS[2])
  return {'ok', record[3] or '0', record[4] or ''}
end
redis.call('HINCRBY', code, 'attempts', 1)
return {'mismatch', space, count_failure(f, lk, tonumber(ARGV[3]), ARGV[4], max_failures, ARGV[6])}
`);

/**
 * Starts a TOTP or recovery-code attempt. KEYS: f, lk of the space. ARGV: failedVerifications,
 * lockMs, maxConsecutiveFailures, failureMemoryMs. Returns {'locked', kind, ms} or {'ok', lockStarted}.
 */
export const attemptScript = script(`${countFailure}
local max_failures = tonumber(ARGV[3])
local lock = lock_of(KEYS[1], KEYS[2], max_failures)
if lock then return {'locked', lock[1], lock[2]} end
return {'ok', count_failure(KEYS[1], KEYS[2], tonumber(ARGV[1]), ARGV[2], max_failures, ARGV[4])}
`);

/**
 * Settles a matching TOTP or recovery code. KEYS: use marker (`t` or `r:ID`), user f, user lk.
 * ARGV: kind (`totp` | `recovery`), step, ttlMs. Returns 1 when accepted, 0 for a reuse.
 */
export const settleScript = script(`
if ARGV[1] == 'totp' then
  local last = tonumber(redis.call('GET', KEYS[1]) or '-1')
  if last >= tonumber(ARGV[2]) then return 0 end
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[3]) == false then return 0 end
end
redis.call('DEL', KEYS[2], KEYS[3])
return 1
`);

/**
 * A whole send on a single Redis node (not Cluster), decided and applied in one script: the
 * same checks, order and writes as reserveUser + counters + storeCode, in one round trip.
 * KEYS: cooldown, perUser, code, then every counter (the request's, then each target's).
 * ARGV: cooldownMs, perUser points (-1 = off), perUser windowMs, hash, ttlMs, issuedAtMs, tag,
 * the number of request counters, the number of targets, the link hash ('' for none), each target's counter count, then
 * (points, windowMs, mode) per counter in KEYS order.
 * Returns {0 | 1 | 2 | 3, ms, limitIndex, t1, ms1, t2, ms2, ...}: 0 admitted; 1 cooldown;
 * 2 sendsPerUsername; 3 a counter (limitIndex: its 1-based position) refused the whole send.
 * Per target: 0 admitted, else the refusing counter's 1-based position, and its ms.
 */
export const sendPlanScript = script(`
local requests = tonumber(ARGV[8])
local groups = tonumber(ARGV[9])
local sizes = {}
for g = 1, groups do sizes[g] = tonumber(ARGV[10 + g]) end
local base = 10 + groups
local function spec(i) return tonumber(ARGV[base + 3 * i - 2]), ARGV[base + 3 * i - 1], ARGV[base + 3 * i] end
local function over(i)
  local points = spec(i)
  local key = KEYS[3 + i]
  local used = tonumber(redis.call('GET', key) or '0')
  if used + 1 > points then return math.max(redis.call('PTTL', key), 1) end
  return nil
end
local verdict, ms, at = 0, 0, 0
local left = redis.call('PTTL', KEYS[1])
if left > 0 then verdict, ms = 1, left end
local per_user = tonumber(ARGV[2])
if verdict == 0 and per_user >= 0 then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used + 1 > per_user then verdict, ms = 2, math.max(redis.call('PTTL', KEYS[2]), 1) end
end
for i = 1, requests do
  if verdict == 0 then
    local refused = over(i)
    if refused then verdict, ms, at = 3, refused, i end
  end
end
local targets = {}
local admitted = 0
local i = requests
for g = 1, groups do
  local refused_at, refused_ms = 0, 0
  for _ = 1, sizes[g] do
    i = i + 1
    if refused_at == 0 then
      local refused = over(i)
      if refused then refused_at, refused_ms = i, refused end
    end
  end
  targets[g] = { refused_at, refused_ms }
  if refused_at == 0 then admitted = admitted + 1 end
end
if verdict == 0 and groups > 0 and admitted == 0 then verdict, ms, at = 3, targets[1][2], targets[1][1] end
local reply = { verdict, ms, at }
for g = 1, groups do reply[#reply + 1] = targets[g][1]; reply[#reply + 1] = targets[g][2] end
if verdict ~= 0 then return reply end
local function take(i)
  local _, window, mode = spec(i)
  if mode == 'take' then
    if redis.call('INCR', KEYS[3 + i]) == 1 then redis.call('PEXPIRE', KEYS[3 + i], window) end
  end
end
if tonumber(ARGV[1]) > 0 then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end
if per_user >= 0 then
  if redis.call('INCR', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
end
for r = 1, requests do take(r) end
i = requests
for g = 1, groups do
  for _ = 1, sizes[g] do
    i = i + 1
    if targets[g][1] == 0 then take(i) end
  end
end
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 'hash', ARGV[4], 'attempts', 0, 'issuedAt', ARGV[6])
if ARGV[7] ~= '' then redis.call('HSET', KEYS[3], 'tag', ARGV[7]) end
if ARGV[10] ~= '' then redis.call('HSET', KEYS[3], 'link', ARGV[10]) end
redis.call('PEXPIRE', KEYS[3], ARGV[5])
return reply
`);
