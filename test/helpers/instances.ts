/**
 * Scaling out: three Express app instances on one OTP store and one session store, hit in
 * parallel round-robin as a load balancer would. `startInstance()` starts one instance;
 * `sharedInstanceTests()` defines the tests every shared store passes: a session read on any
 * instance, one verify per code, the attempt budget and the send limits held across instances.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { it } from 'node:test';
import express from 'express';
import session from 'express-session';
import { blockidOtp, requireOtp, type Destinations, type OtpEventMap } from '../../src/index.js';
import type { OtpStore } from '../../src/store.js';
import { listen, SECRET } from './apps.js';
import type { CaptureSenders } from './capture.js';
import { Client, expressSessionId } from './client.js';
import { tally } from './util.js';

const maxAttempts = 5;

/** The people of these tests, with every form their personal data could take in a stored value or key name. */
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
/** Every email address and phone number form of the people, and the IP every request comes from. */
export const contactData = [...Object.values(people).flatMap((p) => [p.destinations.emailTo, ...p.phoneForms]), '127.0.0.1'];
/** `contactData` and the usernames. */
export const personalData = [...Object.keys(people), ...contactData];

/** The events of every instance, each with the index of the instance that emitted it. */
export type Events = { [E in keyof OtpEventMap]?: Array<OtpEventMap[E] & { instance: number }> };

export interface Instance {
  url: string;
  server: Server;
}

/** What an instance is made of; all but `store` (a client of the shared store) are the same object for every instance. */
interface InstanceParts {
  store: OtpStore;
  sessionStore: session.Store;
  /** One sender for every instance, as one Twilio account and one SMTP relay would be. */
  capture: CaptureSenders;
  events: Events;
}

/** One app instance: its own express(), its own blockidOtp, on the OTP store and session store given. */
export async function startInstance(index: number, { store, sessionStore, capture, events }: InstanceParts): Promise<Instance> {
  const app = express();
  app.use(session({ secret: 'session-secret-shared-by-instances', resave: false, saveUninitialized: false, name: 'sid', store: sessionStore }));
  const plugin = blockidOtp({
    secret: SECRET,
    resolveUser,
    sms: capture.sms,
    email: capture.email,
    store,
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
  return { url: await listen(server), server };
}

/** Sends `username` a code through `client` (202) and returns the code `capture` received. */
export async function sendAndRead(capture: CaptureSenders, client: Client, username: Username): Promise<string> {
  const before = capture.messages.length;
  const reply = await client.post('/otp/send', { username });
  assert.equal(reply.status, 202, reply.text);
  await capture.waitFor(before + 1);
  return capture.messages.filter((m) => m.username === username).at(-1)!.code;
}

interface SharedInstances {
  /** Where the sessions live, for messages ('PostgreSQL', 'Redis'). */
  where: string;
  capture: CaptureSenders;
  events: Events;
  /** The URL of instance `i` modulo the number of instances (started in the suite's `before`). */
  url(i: number): string;
  /** Whether the session store holds the session `sid`. */
  sessionExists(sid: string): Promise<boolean>;
}

/** The tests every shared store passes, defined in the `describe` that calls this. */
export function sharedInstanceTests({ where, capture, events, url, sessionExists }: SharedInstances): void {
  it("accepts a client's cookie on every instance; verify gives a new session id and the old one is verified nowhere", async () => {
    const browser = new Client(url(0));
    const code = await sendAndRead(capture, browser, 'john.smith');
    const before = expressSessionId(browser);
    assert.ok(await sessionExists(before), `the session lives in ${where}`);

    for (let i = 0; i < 3; i += 1) {
      const status = await browser.at(url(i)).get('/otp/status');
      assert.deepEqual(status.body, { verified: false }, `instance ${i} before verify`);
    }
    // The code is bound to the session made on instance 0: instance 1 accepts it only by reading that session from the shared store.
    const verifier = browser.at(url(1));
    const verified = await verifier.post('/otp/verify', { username: 'john.smith', code });
    assert.equal(verified.status, 200, verified.text);
    assert.deepEqual(verified.body, { status: 'verified', username: 'john.smith' });
    const afterVerify = expressSessionId(verifier);
    assert.notEqual(afterVerify, before, 'a new session id at verify');
    assert.equal(await sessionExists(before), false, `the old session is gone from ${where}`);
    assert.ok(await sessionExists(afterVerify), `the new session is in ${where}`);

    const old = browser.at(url(0));
    for (let i = 0; i < 3; i += 1) {
      const fresh = await verifier.at(url(i)).get('/otp/status');
      assert.equal(fresh.body?.verified, true, `instance ${i} sees the new session verified`);
      assert.equal(fresh.body?.username, 'john.smith');
      assert.equal((await verifier.at(url(i)).get('/account')).status, 200);
      assert.deepEqual((await old.at(url(i)).get('/otp/status')).body, { verified: false }, `instance ${i}: the old cookie is not verified`);
      const guarded = await old.at(url(i)).get('/account');
      assert.equal(guarded.status, 401);
      assert.equal(guarded.body?.error, 'otp_required');
    }
  });

  it('lets exactly one of 60 parallel verifies of one code succeed, spread over the three instances', async () => {
    const browser = new Client(url(2));
    const code = await sendAndRead(capture, browser, 'alan.turing');
    const verifiedBefore = events.verified?.length ?? 0;
    const started = performance.now();
    const replies = await Promise.all(Array.from({ length: 60 }, (_, i) => browser.at(url(i)).post('/otp/verify', { username: 'alan.turing', code })));
    const counts = tally(replies);
    console.log(`# 60 parallel verifies of one code over 3 instances: ${JSON.stringify(counts)} in ${Math.round(performance.now() - started)} ms`);
    assert.deepEqual(counts, { 200: 1, '401 invalid_code': 59 });
    assert.equal((events.verified?.length ?? 0) - verifiedBefore, 1, 'one verified event across the instances');
  });

  it(`evaluates exactly maxAttempts (${maxAttempts}) of 90 parallel wrong guesses, the rest 429, then refuses the right code (429)`, async () => {
    const browser = new Client(url(1));
    const code = await sendAndRead(capture, browser, 'ada.lovelace');
    const wrong = Array.from({ length: 90 }, (_, i) => String((Number(code) + 1 + i) % 1_000_000).padStart(6, '0'));
    assert.ok(!wrong.includes(code));
    const replies = await Promise.all(wrong.map((guess, i) => browser.at(url(i)).post('/otp/verify', { username: 'ada.lovelace', code: guess })));
    const counts = tally(replies);
    const wrongCodeEvents = (events.failed ?? []).filter((e) => e.username === 'ada.lovelace' && e.reason === 'wrong_code');
    const perInstance = [0, 1, 2].map((i) => wrongCodeEvents.filter((e) => e.instance === i).length);
    console.log(`# 90 parallel wrong guesses over 3 instances: ${JSON.stringify(counts)}; wrong_code events per instance ${perInstance.join('/')}`);
    assert.equal(counts['401 invalid_code'], maxAttempts, 'exactly maxAttempts guesses were compared');
    assert.equal(counts['429 too_many_attempts'], 90 - maxAttempts);
    assert.equal(wrongCodeEvents.length, maxAttempts);
    for (let i = 0; i < 3; i += 1) {
      const right = await browser.at(url(i)).post('/otp/verify', { username: 'ada.lovelace', code });
      assert.equal(right.status, 429, `instance ${i}: ${right.text}`);
      assert.equal(right.body?.error, 'too_many_attempts');
    }
  });

  it('30 parallel sends for one user from one session: one delivery per channel; from 30 sessions: sendsPerUsername (10)', async () => {
    const browser = new Client(url(0));
    const deliveredBefore = capture.messages.length;
    // The first send gives the session its cookie (and the binding its code is kept under).
    assert.equal((await browser.post('/otp/send', { username: 'grace.hopper' })).status, 202);
    const replies = await Promise.all(Array.from({ length: 30 }, (_, i) => browser.at(url(i)).post('/otp/send', { username: 'grace.hopper' })));
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
    const verified = await browser.at(url(1)).post('/otp/verify', { username: 'grace.hopper', code: delivered[0]!.code });
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
}
