/**
 * Scaling out on PostgreSQL: three Express app instances on one database, each with its own
 * `pg` Pool serving both postgresStore and connect-pg-simple sessions (so a client need not come
 * back to the same instance), hit in parallel round-robin as a load balancer would. Then what is
 * left in the tables: every row with an expiry, no code and no personal data. The run uses a
 * schema of its own on the shared server (127.0.0.1:5432, database `test`) and drops it after.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import connectPgSimple from 'connect-pg-simple';
import session from 'express-session';
import pg from 'pg';
import { postgresStore, type PostgresStore } from '../../src/postgres.js';
import { closeServer } from '../helpers/apps.js';
import { captureSenders } from '../helpers/capture.js';
import { assertNoCodeLeaked, holdsCode } from '../helpers/client.js';
import { contactData, personalData, sharedInstanceTests, startInstance, type Events, type Instance } from '../helpers/instances.js';
import { assertPostgresReachable, testDatabaseUrl } from '../helpers/postgres-server.js';

const schema = `otp_instances_${process.pid}_${randomBytes(3).toString('hex')}`;
const sessionTable = 'session';
const PgSession = connectPgSimple(session);

/** One sender shared by every instance, as one Twilio account and one SMTP relay would be. */
const capture = captureSenders();

interface PgInstance extends Instance {
  pool: pg.Pool;
  otpStore: PostgresStore;
  sessionStore: InstanceType<typeof PgSession>;
}

/** One app instance with its own Pool for the OTP store and the sessions. */
async function startPgInstance(index: number, events: Events): Promise<PgInstance> {
  // Small pools: the server is shared (max_connections 100).
  const pool = new pg.Pool({ connectionString: testDatabaseUrl, max: 5, idleTimeoutMillis: 1000 });
  pool.on('error', () => {}); // see README: a Pool without an 'error' listener crashes on a database restart
  const otpStore = postgresStore({ pool, schema, commandTimeoutMs: 15_000 }); // contention, not latency, is under test here
  await otpStore.ready(); // creates the schema and the OTP tables (under an advisory lock)
  const sessionStore = new PgSession({ pool, schemaName: schema, tableName: sessionTable, createTableIfMissing: true });
  // connect-pg-simple creates its table on first use without a lock: let each instance find it in turn.
  await new Promise<void>((resolve, reject) => sessionStore.get('none', (error) => (error ? reject(error) : resolve())));
  const instance = await startInstance(index, { store: otpStore, sessionStore, capture, events });
  return { ...instance, pool, otpStore, sessionStore };
}

describe('three Express instances sharing PostgreSQL on 127.0.0.1:5432', () => {
  const events: Events = {};
  const instances: PgInstance[] = [];
  let admin: pg.Pool;
  const url = (i: number): string => instances[i % instances.length]!.url;
  const sessionExists = async (sid: string): Promise<boolean> =>
    ((await admin.query(`SELECT 1 FROM "${schema}"."${sessionTable}" WHERE sid = $1`, [sid])).rowCount ?? 0) > 0;

  before(async () => {
    await assertPostgresReachable();
    admin = new pg.Pool({ connectionString: testDatabaseUrl, max: 2 });
    admin.on('error', () => {});
    for (let i = 0; i < 3; i += 1) instances.push(await startPgInstance(i, events));
  });

  after(async () => {
    for (const instance of instances) {
      await closeServer(instance.server);
      await instance.otpStore.close();
      instance.sessionStore.close();
    }
    await admin?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    await Promise.all([...instances.map((instance) => instance.pool.end()), admin?.end()]);
  });

  sharedInstanceTests({ where: 'PostgreSQL', capture, events, url, sessionExists });

  it('leaves rows that all expire, without codes, and without personal data in the OTP tables', async () => {
    const codes = [...new Set(capture.messages.map((m) => m.code))];
    assert.ok(codes.length >= 4);
    const columns = await admin.query<{ table_name: string; column_name: string }>(
      `SELECT table_name, column_name FROM information_schema.columns
       WHERE table_schema = $1 AND data_type IN ('text', 'character varying', 'json', 'jsonb') ORDER BY 1, 2`,
      [schema],
    );
    const tables = [...new Set(columns.rows.map((c) => c.table_name))];
    const otpTables = tables.filter((t) => t.startsWith('blockid_otp_'));
    assert.deepEqual(otpTables, ['blockid_otp_cache', 'blockid_otp_counters', 'blockid_otp_slots', 'blockid_otp_users', 'blockid_otp_uses']);
    assert.ok(tables.includes(sessionTable));

    const rowCounts: Record<string, number> = {};
    for (const table of tables) {
      const expiry = table === sessionTable ? 'expire' : 'expires_at';
      const { rows } = await admin.query<{ n: number; unbounded: number }>(
        `SELECT count(*)::int AS n, count(*) FILTER (WHERE ${expiry} IS NULL OR ${expiry} > now() + interval '31 days')::int AS unbounded FROM "${schema}"."${table}"`,
      );
      rowCounts[table] = rows[0]!.n;
      assert.equal(rows[0]!.unbounded, 0, `${table}: every row expires within 31 days`);
    }
    console.log(`# rows after the runs: ${JSON.stringify(rowCounts)}; ${codes.length} codes sent`);
    assert.ok(rowCounts.blockid_otp_slots! >= 5 && rowCounts[sessionTable]! >= 30, 'the runs left rows to inspect');

    let values = 0;
    for (const { table_name: table, column_name: column } of columns.rows) {
      const { rows } = await admin.query<{ v: string }>(`SELECT "${column}"::text AS v FROM "${schema}"."${table}" WHERE "${column}" IS NOT NULL`);
      for (const { v } of rows) {
        values += 1;
        for (const code of codes) assert.ok(!holdsCode(v, code), `${table}.${column} holds a sent code`);
        // Sessions carry the verified username (the session flag); the OTP tables hold keyed hashes only.
        const forbidden = table === sessionTable ? contactData : personalData;
        for (const data of forbidden) assert.ok(!v.toLowerCase().includes(data.toLowerCase()), `${table}.${column} holds ${data}`);
      }
    }
    console.log(`# checked ${values} text values in ${tables.length} tables: no code, no phone number, email address or IP; no username outside the sessions`);
    assert.ok(assertNoCodeLeaked(codes) > 0, 'no reply carried a code');
  });
});
