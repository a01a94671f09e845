/**
 * Scaling out on PostgreSQL: three Express app instances on one database, each with its own
 * `pg` Pool serving both postgresStore and connect-pg-simple sessions (so a client need not come
 * back to the same instance), hit in parallel round-robin as a load balancer would. Then what is
 * left in the tables: every row with an expiry, no code and no personal data. The run uses a
 * schema of its own on the shared server (127.0.0.1:5432, database `test`) and drops it after.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import connectPgSimple from 'connect-pg-simple';
import express from 'express';
import session from 'express-session';
import pg from 'pg';
import { blockidOtp, requireOtp, type Destinations, type OtpEventMap } from '../../src/index.js';
import { postgresStore, type PostgresStore } from '../../src/postgres.js';
import { closeServer, listen, SECRET } from '../helpers/apps.js';
import { captureSenders } from '../helpers/capture.js';
import { assertNoCodeLeaked, Client, type Reply } from '../helpers/client.js';
import { assertPostgresReachable, testDatabaseUrl } from '../helpers/postgres-server.js';

const schema = `otp_instances_${process.pid}_${randomBytes(3).toString('hex')}`;
const sessionTable = 'session';
const maxAttempts = 5;
const PgSession = connectPgSimple(session);

/** The people of this test, with every form their personal data could take in a column. */
const people = {
  'john.smith': {
    destinations: { smsTo: '4155550100', smsISDCode: '1', emailTo: 'john.smith@example.com' },
    phoneForms: ['4155550100', '+14155550100', '14155550100'],
  },
  'alan.turing': {
    destinations: { smsTo: '312-555-0177', smsISDCode: '+1', emailTo: 'alan.turing@example.com' },
    phoneForms: ['3125550177', '+13125550177', '13125550177', '312-555-0177'],
  },
  'ada.lovelace': {
    destinations: { smsTo: '(212) 555-0142', emailTo: 'ada@example.org' },
    phoneForms: ['2125550142', '+12125550142', '12125550142', '(212) 555-0142'],
  },
  'grace.hopper': {
    destinations: { smsTo: '+1 613 555 0199', emailTo: 'grace.hopper@example.net' },
    phoneForms: ['6135550199', '+16135550199', '16135550199', '+1 613 555 0199'],
  },
} satisfies Record<string, { destinations: Destinations; phoneForms: string[] }>;
type Username = keyof typeof people;
const resolveUser = (username: string): Destinations | null => people[username as Username]?.destinations ?? null;
const contactData = [...Object.values(people).flatMap((p) => [p.destinations.emailTo, ...p.phoneForms]), '127.0.0.1'];
const personalData = [...Object.keys(people), ...contactData];

/** One sender shared by every instance, as one Twilio account and one SMTP relay would be. */
const capture = captureSenders();

type Events = { [E in keyof OtpEventMap]?: Array<OtpEventMap[E] & { instance: number }> };

interface Instance {
  url: string;
  server: Server;
  pool: pg.Pool;
  otpStore: PostgresStore;
  sessionStore: InstanceType<typeof PgSession>;
}

/** One app instance: its own express(), its own blockidOtp, and its own Pool for the OTP store and the sessions. */
async function startInstance(index: number, events: Events): Promise<Instance> {
  // Small pools: the server is shared (max_connections 100).
  const pool = new pg.Pool({ connectionString: testDatabaseUrl, max: 5, idleTimeoutMillis: 1000 });
  pool.on('error', () => {}); // see README: a Pool without an 'error' listener crashes on a database restart
  const otpStore = postgresStore({ pool, schema, commandTimeoutMs: 15_000 }); // contention, not latency, is under test here
  await otpStore.ready(); // creates the schema and the OTP tables (under an advisory lock)
  const sessionStore = new PgSession({ pool, schemaName: schema, tableName: sessionTable, createTableIfMissing: true });
  // connect-pg-simple creates its table on first use without a lock: let each instance find it in turn.
  await new Promise<void>((resolve, reject) => sessionStore.get('none', (error) => (error ? reject(error) : resolve())));

  const app = express();
  app.use(session({ secret: 'session-secret-shared-by-instances', resave: false, saveUninitialized: false, name: 'sid', store: sessionStore }));
  const plugin = blockidOtp({
    secret: SECRET,
    resolveUser,
    sms: capture.sms,
    email: capture.email,
    store: otpStore,
    maxAttempts,
    // Every request comes from 127.0.0.1: lift the per-IP send quota so only the cooldown counts.
    limits: { sendsPerIp: { points: 10_000, windowSeconds: 600 } },
  });
  for (const name of ['sent', 'verified', 'failed'] as const) {
    plugin.on(name, (event) => ((events[name] ??= []) as Array<typeof event & { instance: number }>).push({ ...event, instance: index }));
  }
  app.use(plugin);
  app.get('/account', requireOtp(), (_req, res) => {
    res.json({ account: true });
  });
  app.use((error: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(500).json({ error: 'internal_error', message: error.message });
  });
  const server = createServer(app);
  return { url: await listen(server), server, pool, otpStore, sessionStore };
}

/** A client of `url` that presents `like`'s cookie (a fresh object per request, so parallel replies cannot swap it). */
function as(like: Client, url: string): Client {
  const client = new Client(url);
  client.cookie = like.cookie;
  return client;
}

/** express-session's id inside a signed cookie `sid=s%3A<id>.<signature>`. */
function sessionIdOf(client: Client): string {
  const value = decodeURIComponent(client.sessionId ?? '');
  assert.match(value, /^s:.+\..+$/, `a signed session cookie, got ${value}`);
  return value.slice(2, value.lastIndexOf('.'));
}

const tally = (replies: Reply[]): Record<string, number> => {
  const counts: Record<string, number> = {};
  for (const reply of replies) {
    const label = `${reply.status}${reply.body?.error ? ` ${reply.body.error}` : ''}`;
    counts[label] = (counts[label] ?? 0) + 1;
  }
  return counts;
};

async function sendAndRead(client: Client, username: Username): Promise<string> {
  const before = capture.messages.length;
  const reply = await client.post('/otp/send', { username });
  assert.equal(reply.status, 202, reply.text);
  await capture.waitFor(before + 1);
  return capture.messages.filter((m) => m.username === username).at(-1)!.code;
}

/** `code` as a number of its own in `text` (not a run of digits inside a longer one, such as a timestamp). */
const holdsCode = (text: string, code: string): boolean => new RegExp(`(?<![0-9])${code}(?![0-9])`).test(text);

describe('three Express instances sharing PostgreSQL on 127.0.0.1:5432', () => {
  const events: Events = {};
  const instances: Instance[] = [];
  let admin: pg.Pool;
  const url = (i: number): string => instances[i % instances.length]!.url;
  const sessionExists = async (sid: string): Promise<boolean> =>
    ((await admin.query(`SELECT 1 FROM "${schema}"."${sessionTable}" WHERE sid = $1`, [sid])).rowCount ?? 0) > 0;

  before(async () => {
    await assertPostgresReachable();
    admin = new pg.Pool({ connectionString: testDatabaseUrl, max: 2 });
    admin.on('error', () => {});
    for (let i = 0; i < 3; i += 1) instances.push(await startInstance(i, events));
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

  it("accepts a client's cookie on every instance; verify gives a new session id and the old one is verified nowhere", async () => {
    const browser = new Client(url(0));
    const code = await sendAndRead(browser, 'john.smith');
    const before = sessionIdOf(browser);
    assert.ok(await sessionExists(before), 'the session lives in PostgreSQL');

    for (let i = 0; i < 3; i += 1) {
      const status = await as(browser, url(i)).get('/otp/status');
      assert.deepEqual(status.body, { verified: false }, `instance ${i} before verify`);
    }
    // The code is bound to the session made on instance 0: instance 1 accepts it only by reading that session from the database.
    const verifier = as(browser, url(1));
    const verified = await verifier.post('/otp/verify', { username: 'john.smith', code });
    assert.equal(verified.status, 200, verified.text);
    assert.deepEqual(verified.body, { status: 'verified', username: 'john.smith' });
    const afterVerify = sessionIdOf(verifier);
    assert.notEqual(afterVerify, before, 'a new session id at verify');
    assert.equal(await sessionExists(before), false, 'the old session row is gone');
    assert.ok(await sessionExists(afterVerify));

    const old = new Client(url(0));
    old.cookie = browser.cookie;
    for (let i = 0; i < 3; i += 1) {
      const fresh = await as(verifier, url(i)).get('/otp/status');
      assert.equal(fresh.body?.verified, true, `instance ${i} sees the new session verified`);
      assert.equal(fresh.body?.username, 'john.smith');
      assert.equal((await as(verifier, url(i)).get('/account')).status, 200);
      assert.deepEqual((await as(old, url(i)).get('/otp/status')).body, { verified: false }, `instance ${i}: the old cookie is not verified`);
      const guarded = await as(old, url(i)).get('/account');
      assert.equal(guarded.status, 401);
      assert.equal(guarded.body?.error, 'otp_required');
    }
  });

  it('lets exactly one of 60 parallel verifies of one code succeed, spread over the three instances', async () => {
    const browser = new Client(url(2));
    const code = await sendAndRead(browser, 'alan.turing');
    const verifiedBefore = events.verified?.length ?? 0;
    const started = performance.now();
    const replies = await Promise.all(Array.from({ length: 60 }, (_, i) => as(browser, url(i)).post('/otp/verify', { username: 'alan.turing', code })));
    const counts = tally(replies);
    console.log(`# 60 parallel verifies of one code over 3 instances: ${JSON.stringify(counts)} in ${Math.round(performance.now() - started)} ms`);
    assert.deepEqual(counts, { 200: 1, '401 invalid_code': 59 });
    assert.equal((events.verified?.length ?? 0) - verifiedBefore, 1, 'one verified event across the instances');
  });

  it(`evaluates exactly maxAttempts (${maxAttempts}) of 90 parallel wrong guesses, the rest 429, then refuses the right code (429)`, async () => {
    const browser = new Client(url(1));
    const code = await sendAndRead(browser, 'ada.lovelace');
    const wrong = Array.from({ length: 90 }, (_, i) => String((Number(code) + 1 + i) % 1_000_000).padStart(6, '0'));
    assert.ok(!wrong.includes(code));
    const replies = await Promise.all(wrong.map((guess, i) => as(browser, url(i)).post('/otp/verify', { username: 'ada.lovelace', code: guess })));
    const counts = tally(replies);
    const wrongCodeEvents = (events.failed ?? []).filter((e) => e.username === 'ada.lovelace' && e.reason === 'wrong_code');
    const perInstance = [0, 1, 2].map((i) => wrongCodeEvents.filter((e) => e.instance === i).length);
    console.log(`# 90 parallel wrong guesses over 3 instances: ${JSON.stringify(counts)}; wrong_code events per instance ${perInstance.join('/')}`);
    assert.equal(counts['401 invalid_code'], maxAttempts, 'exactly maxAttempts guesses were compared');
    assert.equal(counts['429 too_many_attempts'], 90 - maxAttempts);
    assert.equal(wrongCodeEvents.length, maxAttempts);
    for (let i = 0; i < 3; i += 1) {
      const right = await as(browser, url(i)).post('/otp/verify', { username: 'ada.lovelace', code });
      assert.equal(right.status, 429, `instance ${i}: ${right.text}`);
      assert.equal(right.body?.error, 'too_many_attempts');
    }
  });

  it('30 parallel sends for one user from one session: one delivery per channel; from 30 sessions: sendsPerUsername (10)', async () => {
    const browser = new Client(url(0));
    const deliveredBefore = capture.messages.length;
    // The first send gives the session its cookie (and the binding its code is kept under).
    assert.equal((await browser.post('/otp/send', { username: 'grace.hopper' })).status, 202);
    const replies = await Promise.all(Array.from({ length: 30 }, (_, i) => as(browser, url(i)).post('/otp/send', { username: 'grace.hopper' })));
    const counts = tally(replies);
    console.log(`# 1 + 30 parallel sends for one user from one session over 3 instances: ${JSON.stringify(counts)}`);
    assert.deepEqual(counts, { '429 rate_limited': 30 });
    for (const reply of replies) {
      assert.ok(Number(reply.headers.get('retry-after')) > 0 && reply.body.retryAfter === Number(reply.headers.get('retry-after')), reply.text);
    }
    await capture.waitFor(deliveredBefore + 2);
    await sleep(600); // let any stray delivery show up (past the pause before deliveries start)
    const delivered = capture.messages.slice(deliveredBefore).filter((m) => m.username === 'grace.hopper');
    console.log(
      `# deliveries for those 31 sends: ${delivered
        .map((m) => m.channel)
        .sort()
        .join(', ')}`,
    );
    assert.deepEqual(delivered.map((m) => m.channel).sort(), ['email', 'sms'], 'once on each channel the user has');
    const verified = await as(browser, url(1)).post('/otp/verify', { username: 'grace.hopper', code: delivered[0]!.code });
    assert.equal(verified.status, 200, verified.text);

    // 30 sessions at once: each has its own cooldown, and sendsPerUsername (10 per hour) caps them all together.
    const sessions = Array.from({ length: 30 }, (_, i) => new Client(url(i)));
    const before = capture.messages.length;
    const spread = tally(await Promise.all(sessions.map((s) => s.post('/otp/send', { username: 'grace.hopper' }))));
    console.log(`# 30 parallel sends for one user from 30 sessions over 3 instances: ${JSON.stringify(spread)}`);
    assert.deepEqual(spread, { 202: 9, '429 rate_limited': 21 }, 'the first send above counted too');
    await capture.waitFor(before + 18);
    await sleep(200);
    assert.equal(capture.messages.length - before, 18, '9 codes, each on both channels');
  });

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
