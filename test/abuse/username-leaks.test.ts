/**
 * What a username gives away to someone who knows only the username, with an ungated
 * `resolveUser` (it answers for any username, as the README's Quick start writes it): one
 * state space per username, chosen only by whether `resolveUser` returned a user, so a known
 * user's send on a channel they lack stays in the user's own space (cooldown, per-username
 * quota, attempt budget, lock), delivers nothing, and reads the shared SMS breakers as a decoy
 * does. The same scripted series of sends and verifies then gets the same answers (statuses,
 * bodies, header names, `Retry-After`) for an unknown username, a user with both channels, a
 * user with only email and a user with only a phone. Over real HTTP on Express and Koa, on
 * memory, Redis, Redis Cluster and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Destinations, OtpOptions } from '../../src/index.js';
import { DELIVERY_PAUSE_MS } from '../../src/core/send/after-reply.js';
import { frameworks, type AppFactory } from '../helpers/apps.js';
import { Client, type Reply } from '../helpers/client.js';
import { openStores, type StoreMatrix, type StoreName } from '../helpers/store-matrix.js';

/** The four kinds of username; each script runs once per kind, in an app and a store of its own. */
const kinds: Record<string, Destinations | null> = {
  unknown: null,
  'both channels': { smsTo: '4155550142', emailTo: 'target@example.com' },
  'email only': { emailTo: 'target@example.com' },
  'phone only': { smsTo: '4155550142' },
};
const TARGET = 'target.user';
/** A user who spends the SMS breaker before the second script. */
const FILLER = 'filler.user';

/** What a client can compare between two answers: everything but the date and the cookie's value. */
function shape(reply: Reply): string {
  const names = [...reply.headers.keys()].filter((name) => name !== 'date' && name !== 'etag').sort();
  const retryAfter = reply.headers.get('retry-after');
  return JSON.stringify({ status: reply.status, body: reply.body, headers: names, retryAfter, type: reply.headers.get('content-type') });
}

type Script = (url: string) => Promise<string[]>;

/** Cooldown, per-username quota, code guesses, the timed lock, then a TOTP and a recovery guess. */
const quotasAndLocks: Script = async (url) => {
  const answers: string[] = [];
  const record = async (label: string, reply: Promise<Reply>) => void answers.push(`${label} ${shape(await reply)}`);
  const sessions = Array.from({ length: 8 }, () => new Client(url));
  const [s1, s2, s3, s4, s5, s6, s7, s8] = sessions as [Client, Client, Client, Client, Client, Client, Client, Client];
  const send = (client: Client, channel?: string) => client.post('/otp/send', channel === undefined ? { username: TARGET } : { username: TARGET, channel });
  const guess = (client: Client, code = '000000', method?: string) =>
    client.post('/otp/verify', method === undefined ? { username: TARGET, code } : { username: TARGET, code, method });
  await record('s1 sms', send(s1, 'sms'));
  await record('s1 email', send(s1, 'email'));
  await record('s1 both', send(s1));
  await record('s2 email', send(s2, 'email'));
  await record('s3 sms', send(s3, 'sms'));
  await record('s4 both', send(s4));
  await record('s5 sms (over sendsPerUsername)', send(s5, 'sms'));
  for (let i = 0; i < 4; i++) await record(`s2 guess ${i}`, guess(s2, `00000${i}`));
  for (let i = 0; i < 3; i++) await record(`s3 guess ${i}`, guess(s3, `11111${i}`));
  await record('s6 guess without a code', guess(s6));
  await record('s7 totp', guess(s7, '123456', 'totp'));
  await record('s8 recovery', guess(s8, 'ABCD-EFGH-JKMN', 'recovery'));
  await record('s4 guess after the lock', guess(s4));
  return answers;
};

/** With the app's SMS breaker spent: `both` still answers, `sms` is refused, for every kind. */
const breakerSpent: Script = async (url) => {
  const answers: string[] = [];
  const record = async (label: string, reply: Promise<Reply>) => void answers.push(`${label} ${shape(await reply)}`);
  const filler = new Client(url);
  assert.equal((await filler.post('/otp/send', { username: FILLER, channel: 'sms' })).status, 202, 'the filler spends the one SMS of the hour');
  const [a, b, c] = [new Client(url), new Client(url), new Client(url)];
  await record('a both', a.post('/otp/send', { username: TARGET }));
  await record('b sms', b.post('/otp/send', { username: TARGET, channel: 'sms' }));
  await record('c email', c.post('/otp/send', { username: TARGET, channel: 'email' }));
  await record('a sms (cooldown)', a.post('/otp/send', { username: TARGET, channel: 'sms' }));
  return answers;
};

const options = (destinations: Destinations | null, store: OtpOptions['store'], smsPerHour: number): Partial<OtpOptions> => ({
  store,
  resolveUser: (username) => (username === TARGET ? destinations : username === FILLER ? { smsTo: '6135550100' } : null),
  resendCooldownSeconds: 30,
  maxAttempts: 3,
  limits: {
    sendsPerUsername: { points: 4, windowSeconds: 3600 },
    sendsPerIp: { points: 0, windowSeconds: 3600 },
    failedVerifications: 6,
    lockSeconds: 60,
    smsPerHour,
  },
});

async function runFor(makeApp: AppFactory, stores: StoreMatrix, storeName: StoreName, kind: string, script: Script, smsPerHour: number) {
  const app = await makeApp({ otp: options(kinds[kind] ?? null, stores.make(storeName), smsPerHour) });
  try {
    const answers = await script(app.url);
    await new Promise((resolve) => setTimeout(resolve, DELIVERY_PAUSE_MS.max + 100)); // deliveries start after a random pause
    const delivered = app.capture.outbox.filter((m) => m.username === TARGET).map((m) => m.channel);
    return { answers, delivered };
  } finally {
    await app.close();
  }
}

describe('one space per username: the same answers for every kind of user', () => {
  let stores: StoreMatrix;
  before(async () => {
    stores = await openStores(['memory', 'redis', 'redis cluster', 'postgres']);
  });
  after(async () => {
    await stores?.close();
  });

  for (const [framework, makeApp] of frameworks.slice(0, 2)) {
    for (const storeName of ['memory', 'redis', 'redis cluster', 'postgres'] as const) {
      it(`cooldown, quota, guesses and locks on ${framework} with ${storeName}`, async () => {
        const runs: Record<string, Awaited<ReturnType<typeof runFor>>> = {};
        for (const kind of Object.keys(kinds)) runs[kind] = await runFor(makeApp, stores, storeName, kind, quotasAndLocks, 1000);
        const reference = runs.unknown?.answers ?? [];
        // The script's answers that matter most, spelled out: the cooldown, the quota, the lock.
        assert.match(reference[1] ?? '', /"status":429/, 'a second channel from one session is in the cooldown');
        assert.match(reference[6] ?? '', /"status":429/, 'the fifth send is over sendsPerUsername');
        assert.match(reference.at(-3) ?? '', /"status":429/, 'a TOTP guess after the lock is refused');
        for (const kind of Object.keys(kinds)) assert.deepEqual(runs[kind]?.answers, reference, `${kind} answers as an unknown username does`);
        // Nothing goes to a channel a user lacks.
        assert.deepEqual(runs.unknown?.delivered, []);
        assert.ok(runs['email only']?.delivered.every((channel) => channel === 'email'));
        assert.ok(runs['phone only']?.delivered.every((channel) => channel === 'sms'));
        assert.ok((runs['email only']?.delivered.length ?? 0) > 0 && (runs['phone only']?.delivered.length ?? 0) > 0);
      });

      it(`with the SMS breaker spent on ${framework} with ${storeName}`, async () => {
        const runs: Record<string, Awaited<ReturnType<typeof runFor>>> = {};
        for (const kind of Object.keys(kinds)) runs[kind] = await runFor(makeApp, stores, storeName, kind, breakerSpent, 1);
        const reference = runs.unknown?.answers ?? [];
        assert.match(reference[0] ?? '', /"status":202/, '"both" answers 202 while the breaker is spent');
        assert.match(reference[1] ?? '', /"status":429.*"retryAfter"/, '"sms" is refused by the breaker');
        for (const kind of Object.keys(kinds)) assert.deepEqual(runs[kind]?.answers, reference, `${kind} answers as an unknown username does`);
        assert.deepEqual(runs['phone only']?.delivered, [], 'the phone-only user got nothing: the breaker held');
      });
    }
  }
});
