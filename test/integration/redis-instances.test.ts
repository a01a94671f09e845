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
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { RedisStore } from 'connect-redis';
import session from 'express-session';
import { createClient, createCluster, type RedisClientType } from 'redis';
import { redisStore } from '../../src/index.js';
import { closeServer } from '../helpers/apps.js';
import { captureSenders } from '../helpers/capture.js';
import { assertNoCodeLeaked, Client, holdsCode, type Reply } from '../helpers/client.js';
import { personalData, sendAndRead, sharedInstanceTests, startInstance, type Events, type Instance } from '../helpers/instances.js';
import { freePort, keysUnder, kill, reconnectStrategy, startRedis, waitForRedis } from '../helpers/redis-server.js';

const runId = randomBytes(6).toString('hex');
const otpPrefix = `otp-instances:${runId}:`;
const sessionPrefix = `sess-instances:${runId}:`;

/** Never called: `npm run typecheck` fails if `redisStore` stops accepting what `createCluster()` returns (README, "Scaling out"). */
export const typeCheckOnly = async () => {
  const cluster = createCluster({ rootNodes: [{ url: 'redis://127.0.0.1:6379' }] });
  await cluster.connect();
  return redisStore({ client: cluster });
};

/** One sender shared by every instance, as one Twilio account and one SMTP relay would be. */
const capture = captureSenders();

/** One app instance on `client` (a connection of its own to the shared Redis) and the session store given. */
const startRedisInstance = (index: number, client: RedisClientType, sessionStore: session.Store, events: Events): Promise<Instance> =>
  startInstance(index, { store: redisStore({ client, prefix: otpPrefix }), sessionStore, capture, events });

/** Default client options but a quick reconnect: the store must fail closed without `disableOfflineQueue`'s help. */
async function connect(url: string): Promise<RedisClientType> {
  const client = createClient({ url, socket: { reconnectStrategy } }) as RedisClientType;
  client.on('error', () => {}); // reconnects are expected here; the store reports failures itself
  await client.connect();
  return client;
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
      instances.push(await startRedisInstance(i, client, new RedisStore({ client, prefix: sessionPrefix }), events));
    }
  });

  after(async () => {
    for (const instance of instances) await closeServer(instance.server);
    const leftovers = [...(await keysUnder(admin, otpPrefix)), ...(await keysUnder(admin, sessionPrefix))];
    if (leftovers.length > 0) await admin.del(leftovers);
    for (const client of [...clients, admin]) await client.close();
  });

  sharedInstanceTests({
    where: 'Redis',
    capture,
    events,
    url,
    sessionExists: async (sid) => (await admin.exists(sessionPrefix + sid)) === 1,
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
        for (const value of values) assert.ok(!holdsCode(value, code), `${key} holds a sent code`);
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
      instances.push(await startRedisInstance(i, client, sessions, events));
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
    const code = await sendAndRead(capture, browser, 'john.smith');

    await kill(redis, 'SIGKILL');
    const deliveredBefore = capture.messages.length;
    const timings: number[] = [];
    for (let i = 0; i < 3; i += 1) {
      for (const [path, body] of [
        ['/otp/send', { username: 'john.smith' }],
        ['/otp/verify', { username: 'john.smith', code }],
      ] as const) {
        const started = performance.now();
        const reply = await browser.at(url(i)).post(path, body);
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
      const reply = await browser.at(url(attempt)).post('/otp/send', { username: 'john.smith' });
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
    const verified = await browser.at(url(2)).post('/otp/verify', { username: 'john.smith', code: fresh });
    assert.equal(verified.status, 200, verified.text);
    assert.equal(events.verified?.at(-1)?.username, 'john.smith');
  });
});
