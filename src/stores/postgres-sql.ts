/**
 * The SQL behind `postgresStore`: five tables and one PL/pgSQL function per store operation,
 * so each check-and-update is one statement that runs atomically inside PostgreSQL.
 *
 * Tables (for the default prefix `blockid_otp_`; every row has `expires_at`, and a row past
 * it counts as absent and is overwritten or swept):
 * - `blockid_otp_slots` — one row per (username key, space, slot): the code's keyed hash, its
 *   attempts, when it was issued, `code_until`, the slot's resend `cooldown_until`, and
 *   `link_hash`, the sign-in link token's keyed hash (NULL without the link).
 * - `blockid_otp_users` — one row per (username key, space) that has failed: the failures in a
 *   row (`failures`, `failures_until`) and the timed lock (`lock_until`). The permanent lock is
 *   `failures >= maxConsecutiveFailures`. A success deletes the row. Always a logged table.
 * - `blockid_otp_counters` — fixed-window quota counters (`hits` until `expires_at`), the
 *   per-username send quota among them, under the key `chr(1) || space || ':' || username key`
 *   (a plan's counter keys never start with chr(1)).
 * - `blockid_otp_uses` — accepted TOTP time steps and used recovery codes (single use). Always logged.
 * - `blockid_otp_cache` — the small key/value cache.
 * Keys, slots and ids are the keyed hashes the core passes in: no personal data.
 *
 * What a write costs: a send of a new username from a new session inserts the slot and one
 * counter row per quota; a wrong guess updates the slot's attempts and the space's failures.
 * Those updates change no indexed column (`expires_at` of `slots` and `users` is only when the
 * sweep may delete the row, rounded up to a whole ten minutes, so it rarely moves), and the
 * tables whose rows are updated leave room on each page (`fillfactor`), so they are HOT updates:
 * a new row version on the same page and no index entry. With `unlogged`, `slots`, `counters`
 * and `cache` are UNLOGGED tables: no WAL at all, emptied by a database crash (see docs).
 *
 * Locking: every function first takes a transaction-scoped advisory lock on its username key
 * (all operations of one username run one at a time, across every instance), then the locks
 * of the quota counters it reads, in ascending lock-id order. No operation takes a username
 * lock after a counter lock, so concurrent plans cannot deadlock. The locks are released
 * at commit, after the writes are visible. Time is the database's `clock_timestamp()` read
 * once the locks are held, so every instance shares one clock.
 */

/** Schema and table prefix: lowercase SQL identifiers, so quoting changes nothing but safety. */
export const identifierPattern = /^[a-z_][a-z0-9_]*$/;
/** The longest table-derived name is `<prefix>counters_expires_at_idx`; PostgreSQL keeps 63 bytes. */
export const maxPrefixLength = 40;

/** The deadline guard's message, without the clock (no quote or percent sign to escape). */
const deadlinePassedSql = 'blockid-otp: deadline passed at ';

/** Advisory lock classes (two-key form, so they never meet single-key locks of migration tools). */
const lockClass = { ddl: 1651076980, user: 1651076981, counter: 1651076982 } as const;

export const tableNames = ['slots', 'users', 'counters', 'uses', 'cache'] as const;
export type TableName = (typeof tableNames)[number];
/** The tables `unlogged: true` makes UNLOGGED: a crash that empties them costs a re-sent code, a reset quota or a repeated lookup. */
const unloggedTables: readonly TableName[] = ['slots', 'counters', 'cache'];
/** Room left on each page for HOT updates, in the tables whose rows are updated in place. */
const fillfactor: Partial<Record<TableName, number>> = { slots: 80, users: 80, counters: 80 };
/** `expires_at` of `slots` and `users` (when the sweep may delete the row) is rounded up to a multiple of this. */
const sweepRoundingSeconds = 600;

export interface SchemaOptions {
  schema: string;
  tablePrefix: string;
  /** `slots`, `counters` and `cache` as UNLOGGED tables (`users` and `uses` stay logged in any case). */
  unlogged: boolean;
}

export interface SqlNames {
  /** `"schema"."prefix_name"` for a table or function. */
  q(name: string): string;
  /** The advisory-lock namespace mixed into every lock id, so stores with other prefixes do not contend. */
  namespace: string;
}

export function sqlNames(schema: string, tablePrefix: string): SqlNames {
  return {
    q: (name) => `${quoteIdent(schema)}.${quoteIdent(tablePrefix + name)}`,
    namespace: `${schema}.${tablePrefix}:`,
  };
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * A string literal that means the same whatever `standard_conforming_strings` says (the
 * `E'…'` form with backslashes doubled). Operations are sent as one simple-protocol query
 * (see `postgres.ts`), which cannot carry bind parameters, so their one argument is quoted here.
 */
function quoteLiteral(value: string): string {
  if (value.includes('\u0000')) throw new TypeError('PostgreSQL text cannot hold NUL characters');
  return `E'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/**
 * The DDL: `CREATE … IF NOT EXISTS` for the tables and indexes, `CREATE OR REPLACE` for the
 * functions. Safe to run again (also after an upgrade of blockid-otp, which may replace the
 * functions). `postgresStore` runs it under an advisory lock in one transaction; teams that
 * use `createTables: false` run it from their migrations.
 */
export function schemaSql({ schema, tablePrefix, unlogged }: SchemaOptions): string {
  const { q, namespace } = sqlNames(schema, tablePrefix);
  const ns = quoteLiteral(namespace);
  const lockUser = (user: string) => `PERFORM pg_advisory_xact_lock(${lockClass.user}, hashtext(${ns} || (${user})));`;
  const index = (table: TableName) => `CREATE INDEX IF NOT EXISTS ${quoteIdent(`${tablePrefix}${table}_expires_at_idx`)} ON ${q(table)} (expires_at);`;
  const ms = (value: string) => `(${value})::bigint * interval '1 millisecond'`;
  const perUserKey = (user: string, space: string) => `chr(1) || ${space} || ':' || ${user}`;
  // Each table's storage settings, changed only where they differ (ALTER TABLE … SET LOGGED or
  // UNLOGGED rewrites the table under an exclusive lock): the fillfactor, and the persistence.
  const storage = tableNames
    .map((table) => {
      const name = quoteLiteral(q(table));
      const persistence = unlogged && unloggedTables.includes(table) ? 'u' : 'p';
      const factor = fillfactor[table];
      return [
        factor === undefined
          ? ''
          : `  IF NOT coalesce((SELECT reloptions FROM pg_class WHERE oid = ${name}::regclass) @> ARRAY['fillfactor=${factor}'], false) THEN
    ALTER TABLE ${q(table)} SET (fillfactor = ${factor});
  END IF;`,
        `  IF (SELECT relpersistence FROM pg_class WHERE oid = ${name}::regclass) <> '${persistence}' THEN
    ALTER TABLE ${q(table)} SET ${persistence === 'u' ? 'UNLOGGED' : 'LOGGED'};
  END IF;`,
      ]
        .filter(Boolean)
        .join('\n');
    })
    .join('\n');

  return `${schema === 'public' ? '' : `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)};\n`}
CREATE TABLE IF NOT EXISTS ${q('slots')} (
  user_key text NOT NULL,
  space text NOT NULL CHECK (space IN ('user', 'decoy')),
  slot text NOT NULL,
  code_hash text,
  attempts integer NOT NULL DEFAULT 0,
  issued_at_ms bigint,
  code_tag text,
  code_until timestamptz,
  cooldown_until timestamptz,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (user_key, space, slot)
);
-- Columns added after the first release. ALTER TABLE takes an exclusive lock on the table even
-- when the column is there (it would wait for, and then hold up, other instances' calls), so
-- only where one is missing.
DO $do$
BEGIN
  IF (SELECT count(*) FROM pg_attribute WHERE attrelid = ${quoteLiteral(q('slots'))}::regclass AND attname IN ('code_tag', 'link_hash') AND NOT attisdropped) < 2 THEN
    ALTER TABLE ${q('slots')} ADD COLUMN IF NOT EXISTS code_tag text;
    ALTER TABLE ${q('slots')} ADD COLUMN IF NOT EXISTS link_hash text;
  END IF;
END
$do$;
${index('slots')}
CREATE TABLE IF NOT EXISTS ${q('users')} (
  user_key text NOT NULL,
  space text NOT NULL CHECK (space IN ('user', 'decoy')),
  failures integer NOT NULL DEFAULT 0,
  failures_until timestamptz,
  lock_until timestamptz,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (user_key, space)
);
${index('users')}
CREATE TABLE IF NOT EXISTS ${q('counters')} (
  key text PRIMARY KEY,
  hits integer NOT NULL,
  expires_at timestamptz NOT NULL
);
${index('counters')}
CREATE TABLE IF NOT EXISTS ${q('uses')} (
  user_key text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('totp', 'recovery')),
  id text NOT NULL,
  step bigint,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (user_key, kind, id)
);
${index('uses')}
CREATE TABLE IF NOT EXISTS ${q('cache')} (
  key text PRIMARY KEY,
  value text NOT NULL,
  expires_at timestamptz NOT NULL
);
${index('cache')}

-- Tables created by blockid-otp 0.1 kept the per-username send quota in users (sends,
-- sends_until): the live quotas move to counters, and the columns go.
DO $do$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = ${quoteLiteral(q('users'))}::regclass AND attname = 'sends_until' AND NOT attisdropped) THEN
    EXECUTE $m$
      INSERT INTO ${q('counters')} (key, hits, expires_at)
      SELECT ${perUserKey('user_key', 'space')}, sends, sends_until FROM ${q('users')}
      WHERE sends > 0 AND sends_until > clock_timestamp()
      ON CONFLICT (key) DO NOTHING
    $m$;
    ALTER TABLE ${q('users')} DROP COLUMN sends, DROP COLUMN sends_until;
  END IF;
END
$do$;

DO $do$
BEGIN
${storage}
END
$do$;

-- The deadline guard: this server's clock (epoch ms), or query_canceled (57014) once it is past
-- p_deadline_ms. statement_timeout counts only from when the server starts on a statement; a
-- server stalled before it read one (SIGSTOP, a frozen VM, a failover pause) would run it on
-- waking, after its caller gave up and answered 503. Run first in each round trip, the guard
-- makes such a late transaction apply nothing. Its message carries the clock, for the caller.
CREATE OR REPLACE FUNCTION ${q('deadline')}(p_deadline_ms double precision) RETURNS double precision
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
  v_now double precision := extract(epoch FROM clock_timestamp()) * 1000;
BEGIN
  IF v_now > p_deadline_ms THEN
    RAISE EXCEPTION '${deadlinePassedSql}%', round(v_now)::bigint USING ERRCODE = '57014';
  END IF;
  RETURN v_now;
END
$fn$;

-- The small SQL helpers below are written so that the planner inlines them into the calling
-- statement (no STRICT over a non-strict body, no IMMUTABLE over a STABLE call such as
-- jsonb_build_object); a helper that is not inlined is parsed and planned again in every
-- transaction, which cost a send about a third of its database CPU. \`reset\`, an UPDATE, is
-- PL/pgSQL so that its plan is cached for the session.

-- Milliseconds from p_now until p_until, at least 1 (NULL for NULL).
CREATE OR REPLACE FUNCTION ${q('ms_until')}(p_until timestamptz, p_now timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT CASE WHEN p_until IS NOT NULL AND p_now IS NOT NULL
    THEN greatest(1, ceil(extract(epoch FROM (p_until - p_now)) * 1000))::bigint END
$fn$;

-- When the sweep may delete a slots or users row that lives until p_until: rounded up to a whole
-- ${sweepRoundingSeconds / 60} minutes, so that most updates leave expires_at, an indexed column, as it was (HOT).
-- (The epoch of an interval, not of a timestamptz: that extract is STABLE, and would keep this from being inlined.)
CREATE OR REPLACE FUNCTION ${q('sweep_at')}(p_until timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT to_timestamp(ceil(extract(epoch FROM (p_until - timestamptz '1970-01-01 00:00:00+00')) / ${sweepRoundingSeconds}) * ${sweepRoundingSeconds})
$fn$;

-- The lock of one space, or NULL: {"permanent": bool, "retryAfterMs": n}.
CREATE OR REPLACE FUNCTION ${q('locked')}(p_user text, p_space text, p_now timestamptz, p_policy jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $fn$
DECLARE
  r record;
BEGIN
  SELECT failures, failures_until, lock_until INTO r FROM ${q('users')} WHERE user_key = p_user AND space = p_space;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF r.failures_until > p_now AND r.failures >= (p_policy->>'maxConsecutiveFailures')::int THEN
    RETURN jsonb_build_object('permanent', true, 'retryAfterMs', ${q('ms_until')}(r.failures_until, p_now));
  END IF;
  IF r.lock_until > p_now THEN
    RETURN jsonb_build_object('permanent', false, 'retryAfterMs', ${q('ms_until')}(r.lock_until, p_now));
  END IF;
  RETURN NULL;
END
$fn$;

-- Counts one failure in a row for a space that is not locked; returns the lock it starts (NULL, 'timed', 'permanent').
CREATE OR REPLACE FUNCTION ${q('fail')}(p_user text, p_space text, p_now timestamptz, p_policy jsonb) RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
  v_failures int;
  v_every int := (p_policy->>'failedVerifications')::int;
  v_memory timestamptz := p_now + ${ms("p_policy->>'failureMemoryMs'")};
  v_lock text := NULL;
  v_lock_until timestamptz := NULL;
  v_found boolean;
BEGIN
  SELECT CASE WHEN failures_until > p_now THEN failures ELSE 0 END INTO v_failures
    FROM ${q('users')} WHERE user_key = p_user AND space = p_space;
  v_found := FOUND;
  v_failures := coalesce(v_failures, 0) + 1;
  IF v_every > 0 AND v_failures % v_every = 0 THEN
    v_lock := 'timed';
    v_lock_until := p_now + ${ms("p_policy->>'lockMs'")};
  END IF;
  IF v_failures >= (p_policy->>'maxConsecutiveFailures')::int THEN
    v_lock := 'permanent';
  END IF;
  -- UPDATE or INSERT, not ON CONFLICT (see send); the caller holds the username lock.
  IF v_found THEN
    UPDATE ${q('users')} SET failures = v_failures, failures_until = v_memory, lock_until = v_lock_until,
      expires_at = ${q('sweep_at')}(greatest(v_memory, v_lock_until))
    WHERE user_key = p_user AND space = p_space;
    v_found := FOUND;
  END IF;
  IF NOT v_found THEN
    INSERT INTO ${q('users')} (user_key, space, failures, failures_until, lock_until, expires_at)
    VALUES (p_user, p_space, v_failures, v_memory, v_lock_until, ${q('sweep_at')}(greatest(v_memory, v_lock_until)));
  END IF;
  RETURN v_lock;
END
$fn$;

-- Forgets the failures and locks of one space (p_space NULL: both); the send quota is a counter and stays.
CREATE OR REPLACE FUNCTION ${q('reset')}(p_user text, p_space text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
  DELETE FROM ${q('users')} WHERE user_key = p_user AND (p_space IS NULL OR space = p_space);
END
$fn$;
DROP FUNCTION IF EXISTS ${q('reset')}(text, text, timestamptz);

-- A counter's refusal, or NULL: live hits plus those this plan has already taken, against its points.
CREATE OR REPLACE FUNCTION ${q('check')}(c jsonb, p_hits jsonb, p_ends jsonb, p_taken jsonb) RETURNS jsonb
LANGUAGE sql STABLE AS $fn$
  SELECT CASE
    WHEN coalesce((p_hits->>(c->>'key'))::int, 0) + coalesce((p_taken->>(c->>'key'))::int, 0) >= (c->>'points')::int
    THEN jsonb_build_object('limit', c->>'limit',
      'retryAfterMs', coalesce((p_ends->>(c->>'key'))::bigint, greatest(1, (c->>'windowMs')::bigint)))
  END
$fn$;

CREATE OR REPLACE FUNCTION ${q('take')}(c jsonb, p_taken jsonb) RETURNS jsonb
LANGUAGE sql STABLE AS $fn$
  SELECT CASE WHEN c->>'mode' = 'take'
    THEN p_taken || jsonb_build_object(c->>'key', coalesce((p_taken->>(c->>'key'))::int, 0) + 1)
    ELSE p_taken END
$fn$;

-- OtpStore.send: decides the whole plan; writes only when it is admitted.
CREATE OR REPLACE FUNCTION ${q('send')}(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $fn$
DECLARE
  v_user text := p->>'user';
  v_space text := p->>'space';
  v_slot text := p->>'slot';
  v_cooldown_ms bigint := (p->>'cooldownMs')::bigint;
  v_per_user jsonb := CASE WHEN jsonb_typeof(p->'perUser') = 'object' THEN p->'perUser' END;
  v_per_user_key text := ${perUserKey('v_user', 'v_space')};
  v_counters jsonb;
  v_keys text[];
  v_read text[];
  v_lock int;
  v_now timestamptz;
  v_hits jsonb := '{}';
  v_ends jsonb := '{}';
  v_windows jsonb := '{}';
  v_taken jsonb := '{}';
  v_trial jsonb;
  v_refusal jsonb := NULL;
  v_group_refusal jsonb;
  v_first_target jsonb := NULL;
  v_targets jsonb := '[]';
  v_admitted boolean := false;
  v_c jsonb;
  v_g jsonb;
  v_r record;
  v_until timestamptz;
  v_code_until timestamptz;
  v_cooldown_until timestamptz;
  v_slot_found boolean;
BEGIN
  ${lockUser('v_user')}
  SELECT coalesce(jsonb_agg(c), '[]') INTO v_counters FROM (
    SELECT c FROM jsonb_array_elements(p->'request') c
    UNION ALL SELECT c FROM jsonb_array_elements(p->'targets') g, jsonb_array_elements(g) c
  ) all_counters;
  SELECT coalesce(array_agg(DISTINCT c->>'key'), '{}') INTO v_keys FROM jsonb_array_elements(v_counters) c;
  FOR v_lock IN SELECT DISTINCT hashtext(${ns} || k) FROM unnest(v_keys) k ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(${lockClass.counter}, v_lock);
  END LOOP;
  v_now := clock_timestamp();

  -- The per-username quota is read with the plan's counters; the username lock guards it.
  v_read := CASE WHEN v_per_user IS NULL THEN v_keys ELSE v_keys || v_per_user_key END;
  FOR v_r IN SELECT key, hits, expires_at FROM ${q('counters')} WHERE key = ANY (v_read) AND expires_at > v_now LOOP
    v_hits := v_hits || jsonb_build_object(v_r.key, v_r.hits);
    v_ends := v_ends || jsonb_build_object(v_r.key, ${q('ms_until')}(v_r.expires_at, v_now));
  END LOOP;
  FOR v_c IN SELECT * FROM jsonb_array_elements(v_counters) LOOP
    IF NOT v_windows ? (v_c->>'key') THEN
      v_windows := v_windows || jsonb_build_object(v_c->>'key', (v_c->>'windowMs')::bigint);
    END IF;
  END LOOP;

  SELECT cooldown_until INTO v_until FROM ${q('slots')}
    WHERE user_key = v_user AND space = v_space AND slot = v_slot;
  v_slot_found := FOUND;
  IF v_until > v_now THEN
    v_refusal := jsonb_build_object('limit', 'resendCooldownSeconds', 'retryAfterMs', ${q('ms_until')}(v_until, v_now));
  END IF;

  IF v_per_user IS NOT NULL THEN
    IF v_refusal IS NULL AND coalesce((v_hits->>v_per_user_key)::int, 0) >= (v_per_user->>'points')::int THEN
      v_refusal := jsonb_build_object('limit', 'sendsPerUsername', 'retryAfterMs',
        coalesce((v_ends->>v_per_user_key)::bigint, greatest(1, (v_per_user->>'windowMs')::bigint)));
    END IF;
    v_windows := v_windows || jsonb_build_object(v_per_user_key, (v_per_user->>'windowMs')::bigint);
  END IF;

  FOR v_c IN SELECT * FROM jsonb_array_elements(p->'request') LOOP
    v_group_refusal := ${q('check')}(v_c, v_hits, v_ends, v_taken);
    IF v_group_refusal IS NULL THEN
      v_taken := ${q('take')}(v_c, v_taken);
    ELSIF v_refusal IS NULL THEN
      v_refusal := v_group_refusal;
    END IF;
  END LOOP;

  FOR v_g IN SELECT * FROM jsonb_array_elements(p->'targets') LOOP
    v_trial := v_taken;
    v_group_refusal := NULL;
    FOR v_c IN SELECT * FROM jsonb_array_elements(v_g) LOOP
      v_group_refusal := ${q('check')}(v_c, v_hits, v_ends, v_trial);
      EXIT WHEN v_group_refusal IS NOT NULL;
      v_trial := ${q('take')}(v_c, v_trial);
    END LOOP;
    IF v_group_refusal IS NULL THEN
      v_taken := v_trial;
      v_admitted := true;
    ELSIF v_first_target IS NULL THEN
      v_first_target := v_group_refusal;
    END IF;
    v_targets := v_targets || jsonb_build_array(v_group_refusal);
  END LOOP;
  IF v_refusal IS NULL AND jsonb_array_length(v_targets) > 0 AND NOT v_admitted THEN
    v_refusal := v_first_target;
  END IF;
  IF v_refusal IS NOT NULL THEN
    RETURN jsonb_build_object('ok', false, 'refusal', v_refusal, 'targets', v_targets);
  END IF;

  -- Admitted: the code replaces the slot's, the cooldown starts, the quotas count one.
  v_code_until := v_now + ${ms("p->'code'->>'ttlMs'")};
  v_cooldown_until := CASE WHEN v_cooldown_ms > 0 THEN v_now + ${ms('v_cooldown_ms')} END;
  -- A plain UPDATE or INSERT rather than INSERT … ON CONFLICT, which writes two more WAL records
  -- per row (the speculative insertion's confirmation, the conflicting row's lock). Only holders
  -- of the username lock write this row; the sweep may have deleted it since the read (then the
  -- UPDATE finds nothing and the INSERT follows).
  IF v_slot_found THEN
    UPDATE ${q('slots')} SET
      code_hash = p->'code'->>'hash', link_hash = p->'code'->>'linkHash', attempts = 0, issued_at_ms = (p->'code'->>'issuedAtMs')::bigint,
      code_tag = p->'code'->>'tag', code_until = v_code_until, cooldown_until = v_cooldown_until,
      expires_at = ${q('sweep_at')}(greatest(v_code_until, v_cooldown_until))
    WHERE user_key = v_user AND space = v_space AND slot = v_slot;
    v_slot_found := FOUND;
  END IF;
  IF NOT v_slot_found THEN
    INSERT INTO ${q('slots')} (user_key, space, slot, code_hash, link_hash, attempts, issued_at_ms, code_tag, code_until, cooldown_until, expires_at)
    VALUES (v_user, v_space, v_slot, p->'code'->>'hash', p->'code'->>'linkHash', 0, (p->'code'->>'issuedAtMs')::bigint, p->'code'->>'tag',
      v_code_until, v_cooldown_until, ${q('sweep_at')}(greatest(v_code_until, v_cooldown_until)));
  END IF;

  IF v_per_user IS NOT NULL THEN
    v_taken := v_taken || jsonb_build_object(v_per_user_key, 1);
  END IF;

  -- One statement for every counter taken, the per-username quota's included (each key once:
  -- they are the keys of v_taken): the rows that exist are updated, the others inserted. Only
  -- holders of a counter's lock (or of the username lock, for the per-username quota) write it.
  -- (key = ANY keeps the UPDATE on the primary key's index whatever the planner guesses for the join.)
  v_read := ARRAY(SELECT jsonb_object_keys(v_taken));
  WITH taken AS (
    SELECT t.key, t.value::int AS hits, v_now + ${ms('v_windows->>t.key')} AS until FROM jsonb_each_text(v_taken) t
  ), updated AS (
    UPDATE ${q('counters')} c SET
      hits = CASE WHEN c.expires_at > v_now THEN c.hits + taken.hits ELSE taken.hits END,
      expires_at = CASE WHEN c.expires_at > v_now THEN c.expires_at ELSE taken.until END
    FROM taken WHERE c.key = ANY (v_read) AND c.key = taken.key
    RETURNING c.key
  )
  INSERT INTO ${q('counters')} (key, hits, expires_at)
  SELECT key, hits, until FROM taken WHERE key NOT IN (SELECT key FROM updated);
  RETURN jsonb_build_object('ok', true, 'targets', v_targets);
END
$fn$;

-- OtpStore.verify: find the code; locked, then burned, before comparing; single use.
CREATE OR REPLACE FUNCTION ${q('verify')}(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $fn$
DECLARE
  v_user text := p->>'user';
  v_policy jsonb := p->'policy';
  v_now timestamptz;
  v_code record;
  v_locked jsonb;
BEGIN
  ${lockUser('v_user')}
  v_now := clock_timestamp();
  SELECT s.space, s.slot, CASE WHEN p->>'link' = 'true' THEN s.link_hash ELSE s.code_hash END AS code_hash, s.attempts, s.issued_at_ms, s.code_tag, s.cooldown_until INTO v_code
    FROM jsonb_array_elements_text(p->'slots') WITH ORDINALITY AS wanted(slot, n)
    JOIN ${q('slots')} s ON s.user_key = v_user AND s.slot = wanted.slot
    WHERE s.code_hash IS NOT NULL AND s.code_until > v_now
    ORDER BY wanted.n, s.space = 'user' DESC
    LIMIT 1;
  IF NOT FOUND THEN
    RETURN '{"result": "missing"}';
  END IF;
  v_locked := ${q('locked')}(v_user, v_code.space, v_now, v_policy);
  IF v_locked IS NOT NULL THEN
    RETURN jsonb_build_object('result', 'locked', 'space', v_code.space) || v_locked;
  END IF;
  IF v_code.attempts >= (v_policy->>'maxAttempts')::int THEN
    RETURN jsonb_build_object('result', 'burned', 'space', v_code.space);
  END IF;
  -- Keyed hashes the caller cannot choose: plain equality leaks nothing useful about the code.
  IF v_code.space = 'user' AND v_code.code_hash = p->>'hash' THEN
    IF v_code.cooldown_until > v_now THEN
      -- The row stays for its cooldown; expires_at (>= cooldown_until) is left as it is.
      UPDATE ${q('slots')} SET code_hash = NULL, link_hash = NULL, attempts = 0, issued_at_ms = NULL, code_tag = NULL, code_until = NULL
        WHERE user_key = v_user AND space = 'user' AND slot = v_code.slot;
    ELSE
      DELETE FROM ${q('slots')} WHERE user_key = v_user AND space = 'user' AND slot = v_code.slot;
    END IF;
    PERFORM ${q('reset')}(v_user, 'user');
    RETURN jsonb_strip_nulls(jsonb_build_object('result', 'ok', 'space', 'user', 'issuedAtMs', v_code.issued_at_ms, 'tag', v_code.code_tag));
  END IF;
  UPDATE ${q('slots')} SET attempts = attempts + 1
    WHERE user_key = v_user AND space = v_code.space AND slot = v_code.slot;
  RETURN jsonb_build_object('result', 'mismatch', 'space', v_code.space,
    'lock', ${q('fail')}(v_user, v_code.space, v_now, v_policy));
END
$fn$;

-- OtpStore.attempt: refuse while locked, else count one failure in advance.
CREATE OR REPLACE FUNCTION ${q('attempt')}(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $fn$
DECLARE
  v_user text := p->>'user';
  v_space text := p->>'space';
  v_now timestamptz;
  v_locked jsonb;
BEGIN
  ${lockUser('v_user')}
  v_now := clock_timestamp();
  v_locked := ${q('locked')}(v_user, v_space, v_now, p->'policy');
  IF v_locked IS NOT NULL THEN
    RETURN jsonb_build_object('ok', false) || v_locked;
  END IF;
  RETURN jsonb_build_object('ok', true, 'lock', ${q('fail')}(v_user, v_space, v_now, p->'policy'));
END
$fn$;

-- OtpStore.settle: single use of a TOTP step or a recovery code, then reset the user space.
CREATE OR REPLACE FUNCTION ${q('settle')}(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $fn$
DECLARE
  v_user text := p->>'user';
  v_use jsonb := p->'use';
  v_kind text := p->'use'->>'kind';
  v_id text := CASE WHEN p->'use'->>'kind' = 'totp' THEN '' ELSE p->'use'->>'id' END;
  v_step bigint := (p->'use'->>'step')::bigint;
  v_now timestamptz;
  v_last record;
BEGIN
  ${lockUser('v_user')}
  v_now := clock_timestamp();
  SELECT step INTO v_last FROM ${q('uses')} WHERE user_key = v_user AND kind = v_kind AND id = v_id AND expires_at > v_now;
  IF FOUND AND (v_kind = 'recovery' OR v_last.step >= v_step) THEN
    RETURN 'false';
  END IF;
  INSERT INTO ${q('uses')} (user_key, kind, id, step, expires_at)
  VALUES (v_user, v_kind, v_id, v_step, v_now + ${ms("v_use->>'ttlMs'")})
  ON CONFLICT (user_key, kind, id) DO UPDATE SET step = EXCLUDED.step, expires_at = EXCLUDED.expires_at;
  PERFORM ${q('reset')}(v_user, 'user');
  RETURN 'true';
END
$fn$;

-- OtpStore.unlock: both spaces.
CREATE OR REPLACE FUNCTION ${q('unlock')}(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $fn$
BEGIN
  ${lockUser("p->>'user'")}
  PERFORM ${q('reset')}(p->>'user', NULL);
  RETURN 'null';
END
$fn$;

-- OtpStore.consume: one counter outside a send plan; its refusal, or JSON null when admitted.
CREATE OR REPLACE FUNCTION ${q('consume')}(c jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $fn$
DECLARE
  v_key text := c->>'key';
  v_now timestamptz;
  v_r record;
  v_hits jsonb := '{}';
  v_ends jsonb := '{}';
  v_refusal jsonb;
BEGIN
  PERFORM pg_advisory_xact_lock(${lockClass.counter}, hashtext(${ns} || v_key));
  v_now := clock_timestamp();
  SELECT hits, expires_at INTO v_r FROM ${q('counters')} WHERE key = v_key AND expires_at > v_now;
  IF FOUND THEN
    v_hits := jsonb_build_object(v_key, v_r.hits);
    v_ends := jsonb_build_object(v_key, ${q('ms_until')}(v_r.expires_at, v_now));
  END IF;
  v_refusal := ${q('check')}(c, v_hits, v_ends, '{}');
  IF v_refusal IS NOT NULL THEN
    RETURN v_refusal;
  END IF;
  IF c->>'mode' = 'take' THEN
    INSERT INTO ${q('counters')} AS t (key, hits, expires_at)
    VALUES (v_key, 1, v_now + ${ms("c->>'windowMs'")})
    ON CONFLICT (key) DO UPDATE SET
      hits = CASE WHEN t.expires_at > v_now THEN t.hits + 1 ELSE 1 END,
      expires_at = CASE WHEN t.expires_at > v_now THEN t.expires_at ELSE EXCLUDED.expires_at END;
  END IF;
  RETURN 'null';
END
$fn$;
`;
}

/** The DDL under an advisory lock, as one implicit transaction (concurrent `CREATE … IF NOT EXISTS` fails otherwise). */
export function createTablesSql(options: SchemaOptions): string {
  return `SELECT pg_advisory_xact_lock(${lockClass.ddl}, 0);\n${schemaSql(options)}`;
}

/** The marker of the deadline guard's error message, which ends with the database's clock in epoch milliseconds. */
export const deadlinePassed = deadlinePassedSql;

/**
 * `SELECT … AS t`, the database's clock in epoch milliseconds, read on every round trip. With a
 * deadline (epoch ms on the database's clock) it is the guard `prefix_deadline`, which fails the
 * transaction instead when it starts later (see the function in `schemaSql`).
 */
export function clockSql(names: SqlNames, deadlineEpochMs?: number): string {
  return deadlineEpochMs === undefined
    ? 'SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS t'
    : `SELECT ${names.q('deadline')}(${Math.floor(deadlineEpochMs)}) AS t`;
}

/** `SELECT schema.prefix_<operation>(<json>)::text AS r`, the one statement of a store operation. */
export function callSql(names: SqlNames, operation: 'send' | 'verify' | 'attempt' | 'settle' | 'unlock' | 'consume', argument: unknown): string {
  return `SELECT ${names.q(operation)}(${quoteLiteral(JSON.stringify(argument))}::jsonb)::text AS r`;
}

/** The sign-in link's read-only peek: the live user-space code's link hash and attempts, or no row. */
export function peekLinkSql(names: SqlNames, user: string, slot: string): string {
  return `SELECT json_build_array(link_hash, attempts)::text AS r FROM ${names.q('slots')}
WHERE user_key = ${quoteLiteral(user)} AND space = 'user' AND slot = ${quoteLiteral(slot)}
  AND code_hash IS NOT NULL AND link_hash IS NOT NULL AND code_until > clock_timestamp()`;
}

export function cacheGetSql(names: SqlNames, key: string): string {
  return `SELECT value AS r FROM ${names.q('cache')} WHERE key = ${quoteLiteral(key)} AND expires_at > clock_timestamp()`;
}

export function cacheSetSql(names: SqlNames, key: string, value: string, ttlMs: number): string {
  return `INSERT INTO ${names.q('cache')} (key, value, expires_at)
VALUES (${quoteLiteral(key)}, ${quoteLiteral(value)}, clock_timestamp() + ${ttlMs}::bigint * interval '1 millisecond')
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at`;
}

/**
 * Deletes at most `batchSize` expired rows of one table. Rows in use by an operation are
 * skipped (SKIP LOCKED), so the sweep never waits for, nor holds up, a request for long.
 */
export function sweepSql(names: SqlNames, table: TableName, batchSize: number): string {
  return `DELETE FROM ${names.q(table)} WHERE ctid = ANY (ARRAY(
  SELECT ctid FROM ${names.q(table)} WHERE expires_at < now() LIMIT ${batchSize} FOR UPDATE SKIP LOCKED
)) AND expires_at < now()`;
}

/**
 * What `createTables: false` expects to find (the check made by `ready()`): `[functions missing,
 * tables whose persistence is not what `unlogged` says]`.
 */
export function functionsSql(names: SqlNames, unlogged: boolean): string {
  const fns = [
    ...['send', 'verify', 'attempt', 'settle', 'unlock', 'consume'].map((fn) => `${names.q(fn)}(jsonb)`),
    `${names.q('deadline')}(double precision)`,
  ];
  const persistence = tableNames.map((table) => `(${quoteLiteral(names.q(table))}, '${unlogged && unloggedTables.includes(table) ? 'u' : 'p'}')`);
  return `SELECT json_build_array(
  (SELECT count(*) FROM unnest(ARRAY[${fns.map((fn) => quoteLiteral(fn)).join(', ')}]) f WHERE to_regprocedure(f) IS NULL),
  (SELECT count(*) FROM (VALUES ${persistence.join(', ')}) t(name, want) JOIN pg_class c ON c.oid = to_regclass(t.name) WHERE c.relpersistence <> t.want)
)::text AS r`;
}
