/**
 * Authenticator apps (TOTP) and recovery codes over real HTTP, on every framework
 * and on the memory and Redis stores. TOTP codes are computed with otplib from the enrolled
 * `otpauth://` URI, as an authenticator app would: an implementation independent of the one
 * blockid-otp runs (@oslojs/otp).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { generateSync, ScureBase32Plugin } from 'otplib';
import { createClient, type RedisClientType } from 'redis';
import { memoryStore, redisStore, type OtpEventMap, type OtpOptions, type ResolvedUser } from '../../src/index.js';
import type { OtpStore } from '../../src/store.js';
import { frameworks, type AppFactory, type TestApp } from '../helpers/apps.js';
import { assertNoCodeLeaked, Client, type Reply } from '../helpers/client.js';
import { keysUnder } from '../helpers/redis-server.js';

const PERIOD_SECONDS = 30;
const runId = randomBytes(6).toString('hex');
const redisPrefix = `otp-totp-http:${runId}:`;
const base32 = new ScureBase32Plugin();
const failedVerifications = 3;
/** Every TOTP and recovery code this file typed, checked against every reply at the end. */
const typedCodes = new Set<string>();

let redis: RedisClientType | null = null;
let redisDown: string | undefined;
/** Second connections, one per second app instance: a second machine has its own. */
const extraClients: RedisClientType[] = [];

async function connectRedis(): Promise<RedisClientType> {
  const client = createClient({ url: 'redis://127.0.0.1:6379', socket: { connectTimeout: 2000, reconnectStrategy: false } }) as RedisClientType;
  client.on('error', () => {});
  await client.connect();
  return client;
}

before(async () => {
  try {
    redis = await connectRedis();
  } catch (error) {
    redisDown = `Redis on 127.0.0.1:6379 is not reachable (${(error as Error).message})`;
  }
});

after(async () => {
  if (redis !== null) {
    const leftovers = await keysUnder(redis, redisPrefix);
    if (leftovers.length > 0) await redis.del(leftovers);
    for (const client of [...extraClients, redis]) await client.close();
  }
  const seen = assertNoCodeLeaked(typedCodes);
  console.log(`# ${seen} replies, none holding one of ${typedCodes.size} TOTP or recovery codes`);
});

interface StoreKind {
  name: string;
  skip(): string | undefined;
  /** The store of one app, and a way to reach the same data as another machine would. */
  make(): { store: OtpStore; sameData(): Promise<OtpStore> };
}

let prefixes = 0;
const storeKinds: StoreKind[] = [
  {
    name: 'memory',
    skip: () => undefined,
    make() {
      const store = memoryStore();
      // Two instances in one process share one memory store: the nearest a memory store comes to "the same data".
      return { store, sameData: async () => store };
    },
  },
  {
    name: 'Redis',
    skip: () => redisDown,
    make() {
      const prefix = `${redisPrefix}${prefixes++}:`;
      return {
        store: redisStore({ client: redis!, prefix }),
        async sameData() {
          const second = await connectRedis();
          extraClients.push(second);
          return redisStore({ client: second, prefix });
        },
      };
    },
  },
];

/** Codes of an enrolled key, read from its otpauth URI the way an authenticator app reads the QR code. */
function authenticatorFor(uri: string) {
  const url = new URL(uri);
  assert.equal(url.protocol, 'otpauth:');
  assert.equal(url.host, 'totp');
  const params = url.searchParams;
  assert.equal(params.get('algorithm'), 'SHA1');
  assert.equal(params.get('digits'), '6');
  assert.equal(params.get('period'), String(PERIOD_SECONDS));
  const secret = params.get('secret') as string;
  /** The code `steps` steps away from now (0: the current one). */
  const code = (steps = 0): string => {
    const value = generateSync({ secret, algorithm: 'sha1', digits: 6, period: PERIOD_SECONDS, epoch: Math.floor(Date.now() / 1000) + steps * PERIOD_SECONDS });
    typedCodes.add(value);
    return value;
  };
  /** Six digits that are the code of no step from two before now to two after. */
  const wrong = (): string => {
    const near = new Set([-2, -1, 0, 1, 2].map(code));
    for (let n = 0; ; n++) {
      const candidate = String((123_456 + n * 7_919) % 1_000_000).padStart(6, '0');
      if (!near.has(candidate)) return candidate;
    }
  };
  return { secret, code, wrong };
}

/** Waits, when the clock is in the last `marginMs` of a step, for the next one: a code one step old must stay one step old. */
async function awayFromStepEdge(marginMs = 2500): Promise<void> {
  const intoStep = Date.now() % (PERIOD_SECONDS * 1000);
  if (intoStep > PERIOD_SECONDS * 1000 - marginMs) await sleep(PERIOD_SECONDS * 1000 - intoStep + 50);
}

/** What a client can observe of a refusal, less what changes from one second to the next. */
function shapeOf(reply: Reply) {
  const headers = [...reply.headers.keys()].filter((name) => !['date', 'etag'].includes(name)).sort();
  return {
    status: reply.status,
    body: { ...reply.body, ...(reply.body?.retryAfter !== undefined && { retryAfter: 'n' }) },
    headers,
    retryAfter: reply.headers.get('retry-after') === null ? null : 'n',
    cacheControl: reply.headers.get('cache-control'),
  };
}

const wrongSmsCode = (right: string) => (right === '000000' ? '111111' : '000000');

for (const [framework, makeApp] of frameworks as Array<[string, AppFactory]>) {
  for (const kind of storeKinds) {
    describe(`TOTP and recovery codes over HTTP on ${framework}, ${kind.name} store`, () => {
      const people = new Map<string, ResolvedUser>();
      const used: Array<[string, string]> = [];
      const events: { [E in keyof OtpEventMap]?: OtpEventMap[E][] } = {};
      const apps: TestApp[] = [];
      let app: TestApp;
      let stores: ReturnType<StoreKind['make']>;
      let serial = 0;

      const otp = (): Partial<OtpOptions> => ({
        store: stores.store,
        resolveUser: (username) => people.get(username) ?? null,
        onRecoveryCodeUsed: (username, hash) => void used.push([username, hash]),
        limits: {
          failedVerifications,
          lockSeconds: 60,
          // Every request comes from 127.0.0.1 and every user shares one number: only the lock should count here.
          sendsPerIp: { points: 10_000, windowSeconds: 600 },
          sendsPerDestination: { points: 10_000, windowSeconds: 600 },
          smsPerPrefix: { points: 10_000, windowSeconds: 600 },
        },
      });

      before(async () => {
        if (kind.skip()) return;
        stores = kind.make();
        app = await makeApp({ otp: otp() });
        apps.push(app);
        for (const name of ['locked', 'failed', 'verified'] as const) {
          app.service.on(name, (event) => void ((events[name] ??= []) as unknown[]).push(event));
        }
      });
      after(async () => {
        for (const started of apps) await started.close();
      });

      /** A fresh user of this suite with a phone, an authenticator app and recovery codes (each optional). */
      const enroll = async (having: { totp?: boolean; recovery?: boolean; phone?: boolean } = {}) => {
        const username = `user-${serial++}`;
        const { totp = true, recovery = true, phone = true } = having;
        const enrollment = await app.service.totp.enroll(username, { issuer: 'Acme' });
        const set = await app.service.recoveryCodes.generate();
        for (const code of set.codes) typedCodes.add(code);
        people.set(username, {
          ...(phone && { smsTo: '4155550100' }),
          ...(totp && { totp: enrollment.sealed }),
          ...(recovery && { recoveryCodes: set.hashes }),
        });
        return { username, enrollment, recovery: set, authenticator: authenticatorFor(enrollment.uri) };
      };

      const client = () => new Client(app.url);
      const verify = (c: Client, username: string, code: string, method?: string) =>
        c.post('/otp/verify', method === undefined ? { username, code } : { username, code, method });
      /** Sends an SMS code to `username` from `c` (which starts a session) and reads it. */
      const smsCode = async (c: Client, username: string) => {
        const before = app.capture.messagesTo(username).length;
        const reply = await c.post('/otp/send', { username, channel: 'sms' });
        assert.equal(reply.status, 202, reply.text);
        for (let i = 0; app.capture.messagesTo(username).length === before; i++) {
          assert.ok(i < 200, 'the SMS code arrived');
          await sleep(10);
        }
        return app.capture.lastCode(username);
      };

      it('enroll gives a 160-bit key, an otpauth URI for SHA-1, 6 digits, 30 s, and a sealed key', async (t) => {
        if (kind.skip()) return t.skip(kind.skip());
        const { enrollment, username } = await enroll();
        assert.equal(base32.decode(enrollment.secret).length, 20);
        const uri = new URL(enrollment.uri);
        assert.equal(decodeURIComponent(uri.pathname), `/Acme:${username}`);
        assert.equal(uri.searchParams.get('secret'), enrollment.secret);
        assert.equal(uri.searchParams.get('issuer'), 'Acme');
        assert.match(enrollment.sealed, /^v1\.[A-Za-z0-9_-]+$/);
      });

      it('a current code verifies with method "totp": 200, a new session, and /otp/status says "totp"', async (t) => {
        if (kind.skip()) return t.skip(kind.skip());
        const { username, authenticator } = await enroll();
        const browser = client();
        await smsCode(browser, username); // any request that starts a session, so there is an id to replace
        const before = browser.cookie;
        assert.ok(before, 'a session before verify');
        const reply = await verify(browser, username, authenticator.code(), 'totp');
        assert.equal(reply.status, 200, reply.text);
        assert.deepEqual(reply.body, { status: 'verified', username });
        assert.notEqual(browser.cookie, before, 'the session was regenerated');
        const status = await browser.get('/otp/status');
        assert.equal(status.body.verified, true);
        assert.equal(status.body.username, username);
        assert.equal(status.body.method, 'totp');
        const old = client();
        old.cookie = before;
        assert.deepEqual((await old.get('/otp/status')).body, { verified: false }, 'the old session is not verified');
        assert.equal((await browser.get('/account')).status, 200);
      });

      it('the same code is refused a second time, also by a second app instance on the same store', async (t) => {
        if (kind.skip()) return t.skip(kind.skip());
        const second = await makeApp({ otp: { ...otp(), store: await stores.sameData() }, instanceOf: app });
        apps.push(second);
        const { username, authenticator } = await enroll();
        const code = authenticator.code();
        assert.equal((await verify(client(), username, code, 'totp')).status, 200);
        const here = await verify(client(), username, code, 'totp');
        assert.equal(here.status, 401);
        assert.equal(here.body.error, 'invalid_code');
        const there = await verify(new Client(second.url), username, code, 'totp');
        assert.equal(there.status, 401, 'the second instance knows the step is used');
        assert.equal(there.body.error, 'invalid_code');

        // And under a race: of 20 parallel verifies of one fresh code, spread over both instances, one wins.
        // Each replay is a failure, so past failedVerifications of them the rest meet the lock (429).
        const racer = await enroll();
        const fresh = racer.authenticator.code();
        const replies = await Promise.all(
          Array.from({ length: 20 }, (_, i) => verify(new Client(i % 2 === 0 ? app.url : second.url), racer.username, fresh, 'totp')),
        );
        const outcomes = replies.map((r) => `${r.status} ${r.body.error ?? r.body.status}`);
        assert.equal(outcomes.filter((o) => o === '200 verified').length, 1, outcomes.join(', '));
        assert.ok(
          outcomes.every((o) => ['200 verified', '401 invalid_code', '429 too_many_attempts'].includes(o)),
          outcomes.join(', '),
        );
      });

      it('codes two steps old are refused; one step either side is accepted, each step once', async (t) => {
        if (kind.skip()) return t.skip(kind.skip());
        await awayFromStepEdge();
        const old = await enroll();
        for (const steps of [-2, -3]) {
          const reply = await verify(client(), old.username, old.authenticator.code(steps), 'totp');
          assert.equal(reply.status, 401, `a code ${-steps} steps old`);
        }
        const earlier = await enroll();
        assert.equal((await verify(client(), earlier.username, earlier.authenticator.code(-1), 'totp')).status, 200, 'one step old');
        const later = await enroll();
        assert.equal((await verify(client(), later.username, later.authenticator.code(1), 'totp')).status, 200, 'one step ahead');
        // Steps only move forward: once step + 1 was accepted, the current and the previous steps are spent too.
        for (const steps of [1, 0, -1]) {
          assert.equal((await verify(client(), later.username, later.authenticator.code(steps), 'totp')).status, 401, `step ${steps} after step 1`);
        }
      });

      it(`TOTP and SMS-code failures add up to one lock (failedVerifications ${failedVerifications}): then 429 for every method`, async (t) => {
        if (kind.skip()) return t.skip(kind.skip());
        const { username, authenticator, recovery } = await enroll();
        const browser = client();
        const sms = await smsCode(browser, username);
        const lockedBefore = events.locked?.length ?? 0;
        assert.equal((await verify(browser, username, authenticator.wrong(), 'totp')).status, 401);
        assert.equal((await verify(browser, username, authenticator.wrong(), 'totp')).status, 401);
        assert.equal((await verify(browser, username, wrongSmsCode(sms))).status, 401, 'the third failure, by SMS code, still answers 401');
        assert.deepEqual(events.locked?.slice(lockedBefore), [{ username, lockSeconds: 60, ip: '127.0.0.1' }]);
        for (const [method, code] of [
          ['totp', authenticator.code()],
          ['code', sms],
          ['recovery', recovery.codes[0]!],
        ] as const) {
          const reply = await verify(browser, username, code, method);
          assert.equal(reply.status, 429, `${method}: ${reply.text}`);
          assert.equal(reply.body.error, 'too_many_attempts');
          assert.ok(Number(reply.headers.get('retry-after')) > 0, 'Retry-After');
        }
        // Nothing got through while locked: the session is still not verified.
        assert.deepEqual((await browser.get('/otp/status')).body, { verified: false });
      });

      it('a recovery code works once; onRecoveryCodeUsed gets its hash; refused again though the app kept it', async (t) => {
        if (kind.skip()) return t.skip(kind.skip());
        const { username, recovery } = await enroll();
        const browser = client();
        const usedBefore = used.length;
        const reply = await verify(browser, username, recovery.codes[3]!, 'recovery');
        assert.equal(reply.status, 200, reply.text);
        assert.equal((await browser.get('/otp/status')).body.method, 'recovery');
        assert.deepEqual(used.slice(usedBefore), [[username, recovery.hashes[3]]]);
        // The app did not delete the hash: resolveUser still returns it, and the store refuses it.
        assert.ok(people.get(username)?.recoveryCodes?.includes(recovery.hashes[3]!));
        const again = await verify(client(), username, recovery.codes[3]!, 'recovery');
        assert.equal(again.status, 401);
        assert.equal(again.body.error, 'invalid_code');
        // Typed the way people type it: lower case, no dashes. Another code of the set still works.
        const typed = recovery.codes[4]!.toLowerCase().replace(/-/g, '');
        assert.equal((await verify(client(), username, typed, 'recovery')).status, 200);
        assert.deepEqual(used.slice(usedBefore), [
          [username, recovery.hashes[3]],
          [username, recovery.hashes[4]],
        ]);
      });

      for (const method of ['totp', 'recovery'] as const) {
        it(`${method}: unknown users and users without it answer exactly as a wrong code does, and lock the same way`, async (t) => {
          if (kind.skip()) return t.skip(kind.skip());
          const known = await enroll();
          const without = await enroll(method === 'totp' ? { totp: false } : { recovery: false });
          const wrongFor = { totp: known.authenticator.wrong(), recovery: 'ABCD-EFGH-JKMN' }[method];
          const subjects = {
            'a known user, wrong code': { username: known.username, code: wrongFor },
            'an unknown user': { username: `nobody-${serial++}`, code: method === 'totp' ? known.authenticator.code() : known.recovery.codes[0]! },
            [`a user without ${method}`]: { username: without.username, code: method === 'totp' ? known.authenticator.code() : known.recovery.codes[0]! },
          };
          const shapes: Record<string, unknown[]> = {};
          for (const [who, { username, code }] of Object.entries(subjects)) {
            const replies: unknown[] = [];
            for (let i = 0; i <= failedVerifications; i++) replies.push(shapeOf(await verify(client(), username, code, method)));
            shapes[who] = replies;
          }
          const [first, ...others] = Object.values(shapes);
          for (const [who, shape] of Object.entries(shapes)) assert.deepEqual(shape, first, `${who} answers like a known user's wrong code`);
          assert.equal(others.length, 2);
          const statuses = (first as Array<{ status: number; body: { error: string } }>).map((s) => `${s.status} ${s.body.error}`);
          assert.deepEqual(statuses, [...Array(failedVerifications).fill('401 invalid_code'), '429 too_many_attempts']);
          // The decoys really are locked, not merely refused once: the known user's right code is refused too.
          const right = method === 'totp' ? known.authenticator.code() : known.recovery.codes[1]!;
          assert.equal((await verify(client(), known.username, right, method)).status, 429);
        });
      }

      for (const method of ['totp', 'recovery'] as const) {
        it(`${method}: a lock started by one method answers alike for users with ${method}, without it, and unknown ones`, async (t) => {
          if (kind.skip()) return t.skip(kind.skip());
          const known = await enroll();
          const anyCode = method === 'totp' ? known.authenticator.code() : known.recovery.codes[0]!;
          const subjects = async () => ({
            [`a user with ${method}`]: (await enroll()).username,
            [`a user without ${method}`]: (await enroll(method === 'totp' ? { totp: false } : { recovery: false })).username,
            'an unknown user': `nobody-${serial++}`,
          });
          // SMS-code guesses first (from a session that asked for a code: a decoy's for the unknown user), then this method.
          const bySms: Record<string, string[]> = {};
          for (const [who, username] of Object.entries(await subjects())) {
            const attacker = client();
            assert.equal((await attacker.post('/otp/send', { username, channel: 'sms' })).status, 202);
            const outcomes: string[] = [];
            for (let i = 0; i < failedVerifications; i++) outcomes.push(String((await verify(attacker, username, '000000')).status));
            outcomes.push(String((await verify(attacker, username, anyCode, method)).status));
            bySms[who] = outcomes;
          }
          // This method's guesses first, then an SMS code.
          const byMethod: Record<string, string[]> = {};
          for (const [who, username] of Object.entries(await subjects())) {
            const attacker = client();
            assert.equal((await attacker.post('/otp/send', { username, channel: 'sms' })).status, 202);
            const outcomes: string[] = [];
            for (let i = 0; i < failedVerifications; i++) outcomes.push(String((await verify(attacker, username, anyCode, method)).status));
            outcomes.push(String((await verify(attacker, username, '000000')).status));
            byMethod[who] = outcomes;
          }
          const locked = [...Array(failedVerifications).fill('401'), '429'];
          assert.deepEqual(bySms, Object.fromEntries(Object.keys(bySms).map((who) => [who, locked])), 'SMS-code guesses, then this method');
          assert.deepEqual(byMethod, Object.fromEntries(Object.keys(byMethod).map((who) => [who, locked])), "this method's guesses, then an SMS code");
        });
      }

      it('requireOtp({ methods: ["totp"] }) refuses a session verified by an SMS code (or a recovery code) and admits one verified by TOTP', async (t) => {
        if (kind.skip()) return t.skip(kind.skip());
        const { username, authenticator, recovery } = await enroll();
        const browser = client();
        assert.equal((await browser.get('/totp-only')).status, 401, 'not verified at all');
        const sms = await smsCode(browser, username);
        assert.equal((await verify(browser, username, sms)).status, 200);
        assert.equal((await browser.get('/otp/status')).body.method, 'code');
        assert.equal((await browser.get('/account')).status, 200, 'the plain guard admits an SMS code');
        const refused = await browser.get('/totp-only');
        assert.equal(refused.status, 401);
        assert.equal(refused.body.error, 'otp_required');

        const byRecovery = client();
        assert.equal((await verify(byRecovery, username, recovery.codes[0]!, 'recovery')).status, 200);
        assert.equal((await byRecovery.get('/totp-only')).status, 401, 'a recovery code is not an authenticator app');

        // Step up in the same browser: now the session was verified by TOTP.
        assert.equal((await verify(browser, username, authenticator.code(), 'totp')).status, 200);
        assert.equal((await browser.get('/otp/status')).body.method, 'totp');
        const admitted = await browser.get('/totp-only');
        assert.equal(admitted.status, 200, admitted.text);
        assert.deepEqual(admitted.body, { totpOnly: true });
      });

      it("the sealed key holds the key in no encoding, and one user's sealed key does not verify for another", async (t) => {
        if (kind.skip()) return t.skip(kind.skip());
        const alice = await enroll();
        const key = Buffer.from(base32.decode(alice.enrollment.secret));
        const sealed = alice.enrollment.sealed;
        const forms = [
          alice.enrollment.secret,
          alice.enrollment.secret.toLowerCase(),
          base32.encode(key, { padding: true }),
          key.toString('hex'),
          key.toString('hex').toUpperCase(),
          key.toString('base64'),
          key.toString('base64').replace(/=+$/, ''),
          key.toString('base64url'),
          key.toString('latin1'),
        ];
        for (const form of forms) assert.ok(!sealed.includes(form), `the key appears in sealed as ${form}`);
        const opened = Buffer.from(sealed.slice(3), 'base64url');
        assert.ok(!opened.includes(key), 'nor as raw bytes inside the sealed blob');
        for (let at = 0; at + 8 <= key.length; at++) assert.ok(!opened.includes(key.subarray(at, at + 8)), 'nor any 8 bytes of it');

        // Bob's row carries Alice's sealed key (a copied column, a tampered row): Alice's codes do not work for Bob.
        const bob = await enroll();
        people.set(bob.username, { ...people.get(bob.username), totp: sealed });
        const code = alice.authenticator.code();
        const refused = await verify(client(), bob.username, code, 'totp');
        assert.equal(refused.status, 401);
        assert.equal(refused.body.error, 'invalid_code');
        assert.equal(await app.service.totp.confirm(bob.username, sealed, alice.authenticator.code()), false);
        // Bob's failed try did not spend Alice's step: the code still works for her.
        assert.equal((await verify(client(), alice.username, code, 'totp')).status, 200);
      });

      it('otp.totp.confirm is true once per step and false for a wrong code; its step is then spent over HTTP', async (t) => {
        if (kind.skip()) return t.skip(kind.skip());
        const username = `user-${serial++}`;
        const enrollment = await app.service.totp.enroll(username);
        const authenticator = authenticatorFor(enrollment.uri);
        assert.equal(await app.service.totp.confirm(username, enrollment.sealed, authenticator.wrong()), false, 'a wrong code');
        assert.equal(await app.service.totp.confirm(username, enrollment.sealed, 'abcdef'), false, 'not digits');
        const code = authenticator.code();
        assert.equal(await app.service.totp.confirm(username, enrollment.sealed, code), true, 'the first code from the app');
        assert.equal(await app.service.totp.confirm(username, enrollment.sealed, code), false, 'the same step again');
        // The app saves `sealed` once confirmed; the code it confirmed with is spent.
        people.set(username, { totp: enrollment.sealed });
        assert.equal((await verify(client(), username, code, 'totp')).status, 401);
        assert.equal((await verify(client(), username, authenticator.code(1), 'totp')).status, 200, 'the next step works');
      });

      it('an unknown method, or one written otherwise, is 400 invalid_request', async (t) => {
        if (kind.skip()) return t.skip(kind.skip());
        const { username, authenticator } = await enroll();
        for (const method of ['sms', 'TOTP', 'Recovery', 'email', '', 42, true, ['totp'], { kind: 'totp' }]) {
          const reply = await client().post('/otp/verify', { username, code: authenticator.code(), method });
          assert.equal(reply.status, 400, `method ${JSON.stringify(method)}: ${reply.text}`);
          assert.equal(reply.body.error, 'invalid_request');
        }
        const noCode = await client().post('/otp/verify', { username, method: 'totp' });
        assert.equal(noCode.status, 400);
        // None of those spent the step or a failure: the code still verifies.
        assert.equal((await verify(client(), username, authenticator.code(), 'totp')).status, 200);
      });
    });
  }
}
