/**
 * Scaling out: three Express app instances sharing one Redis (OTP store and connect-redis
 * sessions), hit in parallel round-robin, as a load balancer would. Then what is left in Redis
 * (TTLs, no codes, no personal data in key names), and the instances failing closed while their
 * Redis is killed and recovering once it is back.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { RedisStore } from 'connect-redis';
import express from 'express';
import session from 'express-session';
import { createClient, createCluster, type RedisClientType } from 'redis';
import { blockidOtp, redisStore, requireOtp, type Destinations, type OtpEventMap, type OtpOptions } from '../../src/index.js';
import { closeServer, listen, SECRET } from '../helpers/apps.js';
import { captureSenders } from '../helpers/capture.js';
import { assertNoCodeLeaked, Client, type Reply } from '../helpers/client.js';
import { freePort, keysUnder, kill, reconnectStrategy, startRedis, waitForRedis } from '../helpers/redis-server.js';

const runId = randomBytes(6).toString('hex');
const otpPrefix = `otp-instances:${runId}:`;
const sessionPrefix = `sess-instances:${runId}:`;
const maxAttempts = 5;

/** The people of this test, with every form their personal data could take in a key name. */
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
const personalData = [...Object.entries(people).flatMap(([username, p]) => [username, p.destinations.emailTo, ...p.phoneForms]), '127.0.0.1'];

/** Never called: `npm run typecheck` fails if `redisStore` stops accepting what `createCluster()` returns (README, "Scaling out"). */
export const typeCheckOnly = async () => {
  const cluster = createCluster({ rootNodes: [{ url: 'redis://127.0.0.1:6379' }] });
  await cluster.connect();
  return redisStore({ client: cluster });
};

/** One sender shared by every instance, as one Twilio account and one SMTP relay would be. */
const capture = captureSenders();

type Events = { [E in keyof OtpEventMap]?: Array<OtpEventMap[E] & { instance: number }> };

interface Instance {
  url: string;
  server: Server;
}

/** One app instance: its own express(), its own blockidOtp, the given OTP store client and session store. */
async function startInstance(
  index: number,
  otpClient: RedisClientType,
  sessionStore: session.Store,
  events: Events,
  otp: Partial<OtpOptions> = {},
): Promise<Instance> {
  const app = express();
  app.use(session({ secret: 'session-secret-shared-by-instances', resave: false, saveUninitialized: false, name: 'sid', store: sessionStore }));
  const plugin = blockidOtp({
    secret: SECRET,
    resolveUser,
    sms: capture.sms,
    email: capture.email,
    store: redisStore({ client: otpClient, prefix: otpPrefix }),
    maxAttempts,
    // Every request comes from 127.0.0.1: lift the per-IP send quota so only the cooldown counts.
    limits: { sendsPerIp: { points: 10_000, windowSeconds: 600 } },
    ...otp,
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
  return { url: await listen(server), server };
}

/** Default client options but a quick reconnect: the store must fail closed without `disableOfflineQueue`'s help. */
async function connect(url: string): Promise<RedisClientType> {
  const client = createClient({ url, socket: { reconnectStrategy } }) as RedisClientType;
  client.on('error', () => {}); // reconnects are expected here; the store reports failures itself
  await client.connect();
  return client;
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

// ---- three instances, one Redis ---------------------------------------------------------------

describe('three Express instances sharing Redis on 127.0.0.1:6379', () => {
  const events: Events = {};
  const clients: RedisClientType[] = [];
  const instances: Instance[] = [];
  let admin: RedisClientType;
  const url = (i: number): string => instances[i % instances.length]!.url;

  before(async () => {
    admin = await connect('redis://127.0.0.1:6379');
    for (let i = 0; i < 3; i += 1) {
      const client = await connect('redis://127.0.0.1:6379');
      clients.push(client);
      // The OTP store and the sessions on the same client, as the README's "Scaling out" recommends.
      instances.push(await startInstance(i, client, new RedisStore({ client, prefix: sessionPrefix }), events));
    }
  });

  after(async () => {
    for (const instance of instances) await closeServer(instance.server);
    const leftovers = [...(await keysUnder(admin, otpPrefix)), ...(await keysUnder(admin, sessionPrefix))];
    if (leftovers.length > 0) await admin.del(leftovers);
    for (const client of [...clients, admin]) await client.close();
  });

  it("accepts a client's cookie on every instance; verify gives a new session id and the old one is verified nowhere", async () => {
    const browser = new Client(url(0));
    const code = await sendAndRead(browser, 'john.smith');
    const before = sessionIdOf(browser);
    assert.ok((await admin.exists(sessionPrefix + before)) === 1, 'the session lives in Redis');

    for (let i = 0; i < 3; i += 1) {
      const status = await as(browser, url(i)).get('/otp/status');
      assert.deepEqual(status.body, { verified: false }, `instance ${i} before verify`);
    }
    // The code is bound to the session made on instance 0: instance 1 accepts it only by reading that session from Redis.
    const verifier = as(browser, url(1));
    const verified = await verifier.post('/otp/verify', { username: 'john.smith', code });
    assert.equal(verified.status, 200, verified.text);
    assert.deepEqual(verified.body, { status: 'verified', username: 'john.smith' });
    const afterVerify = sessionIdOf(verifier);
    assert.notEqual(afterVerify, before, 'a new session id at verify');
    assert.equal(await admin.exists(sessionPrefix + before), 0, 'the old session is gone from Redis');

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
    const replies = await Promise.all(Array.from({ length: 60 }, (_, i) => as(browser, url(i)).post('/otp/verify', { username: 'alan.turing', code })));
    const counts = tally(replies);
    console.log(`# 60 parallel verifies of one code: ${JSON.stringify(counts)}`);
    assert.deepEqual(counts, { 200: 1, '401 invalid_code': 59 });
    assert.equal((events.verified?.length ?? 0) - verifiedBefore, 1, 'one verified event across the instances');
  });

  it(`evaluates at most maxAttempts (${maxAttempts}) of 90 parallel wrong guesses, then refuses the right code (429)`, async () => {
    const browser = new Client(url(1));
    const code = await sendAndRead(browser, 'ada.lovelace');
    const wrong = Array.from({ length: 90 }, (_, i) => String((Number(code) + 1 + i) % 1_000_000).padStart(6, '0'));
    assert.ok(!wrong.includes(code));
    const replies = await Promise.all(wrong.map((guess, i) => as(browser, url(i)).post('/otp/verify', { username: 'ada.lovelace', code: guess })));
    const counts = tally(replies);
    const wrongCodeEvents = (events.failed ?? []).filter((e) => e.username === 'ada.lovelace' && e.reason === 'wrong_code');
    const perInstance = [0, 1, 2].map((i) => wrongCodeEvents.filter((e) => e.instance === i).length);
    console.log(`# 90 parallel wrong guesses: ${JSON.stringify(counts)}; wrong_code events per instance ${perInstance.join('/')}`);
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
    assert.equal((await browser.post('/otp/send', { username: 'grace.hopper' })).status, 202);
    const replies = await Promise.all(Array.from({ length: 30 }, (_, i) => as(browser, url(i)).post('/otp/send', { username: 'grace.hopper' })));
    const counts = tally(replies);
    console.log(`# 1 + 30 parallel sends for one user from one session: ${JSON.stringify(counts)}`);
    assert.deepEqual(counts, { '429 rate_limited': 30 });
    for (const reply of replies) {
      assert.ok(Number(reply.headers.get('retry-after')) > 0 && reply.body.retryAfter === Number(reply.headers.get('retry-after')), reply.text);
    }
    await capture.waitFor(deliveredBefore + 2);
    await sleep(600); // let any stray delivery show up (past the pause before deliveries start)
    const delivered = capture.messages.slice(deliveredBefore).filter((m) => m.username === 'grace.hopper');
    assert.deepEqual(delivered.map((m) => m.channel).sort(), ['email', 'sms'], 'once on each channel the user has');
    const verified = await as(browser, url(1)).post('/otp/verify', { username: 'grace.hopper', code: delivered[0]!.code });
    assert.equal(verified.status, 200, verified.text);

    // 30 sessions at once: each has its own cooldown, and sendsPerUsername (10 per hour) caps them all together.
    const sessions = Array.from({ length: 30 }, (_, i) => new Client(url(i)));
    const before = capture.messages.length;
    const spread = tally(await Promise.all(sessions.map((s) => s.post('/otp/send', { username: 'grace.hopper' }))));
    console.log(`# 30 parallel sends for one user from 30 sessions: ${JSON.stringify(spread)}`);
    assert.deepEqual(spread, { 202: 9, '429 rate_limited': 21 }, 'the first send above counted too');
    await capture.waitFor(before + 18);
    await sleep(200);
    assert.equal(capture.messages.length - before, 18, '9 codes, each on both channels');
  });

  it('leaves only keys with a TTL, without codes, and without personal data in key names', async () => {
    const otpKeys = await keysUnder(admin, otpPrefix);
    const sessionKeys = await keysUnder(admin, sessionPrefix);
    const codes = [...new Set(capture.messages.map((m) => m.code))];
    console.log(`# after the runs: ${otpKeys.length} OTP keys, ${sessionKeys.length} session keys, ${codes.length} codes sent`);
    assert.ok(otpKeys.length >= 5 && sessionKeys.length >= 30, 'the runs left keys to inspect');
    assert.ok(codes.length >= 4);
    for (const key of [...otpKeys, ...sessionKeys]) {
      const ttl = await admin.pTTL(key);
      assert.ok(ttl > 0 || ttl === -2, `${key} has PTTL ${ttl}`); // -2: expired while we looked
      const type = await admin.type(key);
      let values: string[];
      if (type === 'string') values = [String(await admin.get(key))];
      else if (type === 'hash') values = Object.entries(await admin.hGetAll(key)).flat();
      else if (type === 'none') values = [];
      else assert.fail(`${key} is a ${type}; only strings and hashes are expected`);
      for (const code of codes) {
        for (const value of values) assert.ok(!value.includes(code), `${key} holds a sent code`);
      }
      for (const data of personalData) assert.ok(!key.toLowerCase().includes(data.toLowerCase()), `key ${key} contains ${data}`);
      // The OTP store's values hold keyed hashes and counters only (sessions do carry the verified username).
      if (key.startsWith(otpPrefix)) for (const data of personalData) for (const value of values) assert.ok(!value.includes(data), `${key} holds ${data}`);
    }
    assert.ok(assertNoCodeLeaked(codes) > 0, 'no reply carried a code');
  });
});

// ---- Redis killed mid-run ---------------------------------------------------------------------

describe('instances whose Redis is killed mid-run', () => {
  const events: Events = {};
  const clients: RedisClientType[] = [];
  const instances: Instance[] = [];
  let dir: string;
  let port: number;
  let redis: ChildProcess;
  const url = (i: number): string => instances[i % instances.length]!.url;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'blockid-otp-instances-'));
    port = await freePort();
    redis = startRedis(port, dir);
    await waitForRedis(port);
    // Sessions in one in-process MemoryStore shared by the instances, so only the OTP store dies.
    const sessions = new session.MemoryStore();
    for (let i = 0; i < 3; i += 1) {
      const client = await connect(`redis://127.0.0.1:${port}`);
      clients.push(client);
      instances.push(await startInstance(i, client, sessions, events));
    }
  });

  after(async () => {
    for (const instance of instances) await closeServer(instance.server);
    for (const client of clients) client.destroy();
    await kill(redis);
    await rm(dir, { recursive: true, force: true });
  });

  it('answers send and verify 503 unavailable within 1 s and delivers nothing, then recovers once redis-server is back', async () => {
    const browser = new Client(url(0));
    const code = await sendAndRead(browser, 'john.smith');

    await kill(redis, 'SIGKILL');
    const deliveredBefore = capture.messages.length;
    const timings: number[] = [];
    for (let i = 0; i < 3; i += 1) {
      for (const [path, body] of [
        ['/otp/send', { username: 'john.smith' }],
        ['/otp/verify', { username: 'john.smith', code }],
      ] as const) {
        const started = performance.now();
        const reply = await as(browser, url(i)).post(path, body);
        const ms = performance.now() - started;
        timings.push(Math.round(ms));
        assert.equal(reply.status, 503, `instance ${i} ${path}: ${reply.text}`);
        assert.equal(reply.body?.error, 'unavailable');
        assert.equal(typeof reply.body?.message, 'string');
        assert.ok(ms < 2500, `instance ${i} ${path} took ${ms} ms`);
      }
    }
    console.log(`# with Redis killed, send/verify per instance answered 503 in (ms): ${timings.join(', ')}`);
    await sleep(200);
    assert.equal(capture.messages.length, deliveredBefore, 'nothing was delivered while Redis was down');

    redis = startRedis(port, dir);
    const restarted = performance.now();
    let sent: Reply | undefined;
    for (let attempt = 0; performance.now() - restarted < 10_000; attempt += 1) {
      const reply = await as(browser, url(attempt)).post('/otp/send', { username: 'john.smith' });
      if (reply.status === 202) {
        sent = reply;
        break;
      }
      assert.equal(reply.status, 503, reply.text);
      await sleep(100);
    }
    assert.ok(sent, 'a send answers 202 within 10 s of restarting redis-server');
    console.log(`# a send answered 202 again ${Math.round(performance.now() - restarted)} ms after restarting redis-server`);
    await capture.waitFor(deliveredBefore + 2);
    await sleep(100);
    const afterRestart = capture.messages.slice(deliveredBefore);
    assert.deepEqual(afterRestart.map((m) => m.channel).sort(), ['email', 'sms'], 'the one send that got 202 was delivered, once per channel');
    const fresh = afterRestart[0]!.code;
    assert.equal(afterRestart[1]!.code, fresh);
    const verified = await as(browser, url(2)).post('/otp/verify', { username: 'john.smith', code: fresh });
    assert.equal(verified.status, 200, verified.text);
    assert.equal(events.verified?.at(-1)?.username, 'john.smith');
  });
});
