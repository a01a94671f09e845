/**
 * What listeners and dashboards are told about an attacker's requests, over real HTTP on
 * Express and Koa, on memory, Redis, Redis Cluster and PostgreSQL:
 * - events about a decoy's state (`failed`, `locked`, `rate_limited` for a username that
 *   `resolveUser` did not resolve) say `decoy: true`, so a support alert never fires for a
 *   lock that only an attacker's decoy is under; a real user's events never say it;
 * - `username` in events is the normalized username;
 * - one refused send is one `blockid_otp_rate_limited_total`, for the limit in its answer.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import type { OtpEventMap, OtpOptions, ResolvedUser } from '../../src/index.js';
import { prometheusMetrics } from '../../src/metrics.js';
import { Client } from '../helpers/client.js';
import { parseScrape, series } from '../helpers/prom-scrape.js';
import { describeOnStores } from '../helpers/store-matrix.js';

const PASSWORD = 'correct horse battery staple';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describeOnStores('events say decoy; one refusal is counted once', ({ framework, makeApp, storeName, store }) => {
  describe(`on ${framework} with ${storeName}`, () => {
    it('a decoy lock is marked decoy: true while the real user signs in; the real user’s own events are not', async () => {
      // The recommended set-up: resolveUser answers only after a first factor (a password header here).
      const resolveUser = (username: string, req: any): ResolvedUser | null => {
        const header = req?.headers?.['x-password'] ?? req?.header?.['x-password'] ?? req?.get?.('x-password');
        return username === 'john.smith' && header === PASSWORD ? { emailTo: 'john.smith@example.com' } : null;
      };
      const app = await makeApp({
        otp: {
          store: store(),
          resolveUser,
          resendCooldownSeconds: 30,
          limits: { failedVerifications: 2, lockSeconds: 1, maxConsecutiveFailures: 3 },
        } as Partial<OtpOptions>,
      });
      const seen: Array<[string, Record<string, unknown>]> = [];
      for (const name of ['failed', 'locked', 'rate_limited'] as const) {
        app.service.on(name, (event: OtpEventMap[typeof name]) => void seen.push([name, { ...event }]));
      }
      try {
        // The attacker knows only the username: TOTP guesses and sends without the password.
        const attacker = new Client(app.url);
        const guess = () => attacker.post('/otp/verify', { username: ' John.SMITH ', code: '000000', method: 'totp' });
        for (let i = 0; i < 3; i++) await guess(); // two failures start the timed lock; the third is refused by it
        await sleep(1_100);
        assert.equal((await guess()).status, 401); // the third failure in a row: the cap
        assert.equal((await guess()).status, 429);
        assert.equal((await attacker.post('/otp/send', { username: 'JOHN.smith' })).status, 202);
        assert.equal((await attacker.post('/otp/send', { username: 'john.smith' })).status, 429);
        const decoyEvents = seen.splice(0);
        assert.ok(
          decoyEvents.some(([name, e]) => name === 'locked' && e.permanent === true),
          'the decoy reached the cap',
        );
        assert.ok(
          decoyEvents.some(([name, e]) => name === 'locked' && e.lockSeconds === 1),
          'and a timed lock before it',
        );
        assert.ok(decoyEvents.some(([name]) => name === 'rate_limited'));
        for (const [name, event] of decoyEvents) {
          assert.equal(event.decoy, true, `${name} about the decoy says decoy: true`);
          assert.equal(event.username, 'john.smith', 'the normalized username');
        }

        // John, with his password: the decoy's lock is not his.
        const john = new Client(app.url);
        const headers = { 'x-password': PASSWORD };
        assert.equal((await john.post('/otp/send', { username: 'john.smith' }, { headers })).status, 202);
        const code = await app.capture.waitForCode('john.smith');
        assert.equal((await john.post('/otp/verify', { username: 'john.smith', code: code === '000000' ? '111111' : '000000' }, { headers })).status, 401);
        assert.equal((await john.post('/otp/send', { username: 'john.smith' }, { headers })).status, 429);
        assert.equal((await john.post('/otp/verify', { username: 'john.smith', code }, { headers })).status, 200);
        const realEvents = seen.splice(0);
        assert.deepEqual(realEvents.map(([name]) => name).sort(), ['failed', 'rate_limited']);
        for (const [name, event] of realEvents) assert.equal(event.decoy, undefined, `${name} about the real user has no decoy flag`);
      } finally {
        await app.close();
      }
    });

    it('a send refused as a whole adds one to blockid_otp_rate_limited_total, for the limit it answered with', async () => {
      const registry = new Registry();
      const directory: Record<string, ResolvedUser> = {
        'x.user': { smsTo: '4155550101', emailTo: 'x@example.com' },
        'y.user': { smsTo: '4155550101', emailTo: 'y@example.com' },
      };
      const app = await makeApp({
        otp: {
          store: store(),
          resolveUser: (username) => directory[username] ?? null,
          metrics: prometheusMetrics({ registry }),
          limits: { sendsPerDestination: { points: 1, windowSeconds: 3600 } },
        },
      });
      const limited: Array<OtpEventMap['rate_limited']> = [];
      app.service.on('rate_limited', (event) => void limited.push(event));
      try {
        const a = new Client(app.url);
        assert.equal((await a.post('/otp/send', { username: 'x.user' })).status, 202);
        // Inside the cooldown, and both destinations are over their quota too: one refusal, the cooldown's.
        const cooldown = await a.post('/otp/send', { username: 'x.user' });
        assert.equal(cooldown.status, 429);
        // From another session: both targets over sendsPerDestination, refused as a whole: one refusal.
        assert.equal((await new Client(app.url).post('/otp/send', { username: 'x.user' })).status, 429);
        // y shares x's number: the SMS is refused, the email goes: one refusal, the SMS's own.
        assert.equal((await new Client(app.url).post('/otp/send', { username: 'y.user' })).status, 202);
        const counted = series(parseScrape(await registry.metrics()), 'blockid_otp_rate_limited_total');
        assert.equal(counted['{"limit":"resendCooldownSeconds"}'], 1);
        assert.equal(counted['{"limit":"sendsPerDestination"}'], 2, 'the whole refusal once, the SMS target once');
        assert.deepEqual(
          limited.map((e) => `${e.limit} ${e.channel ?? '-'}`),
          ['resendCooldownSeconds -', 'sendsPerDestination sms', 'sendsPerDestination sms'],
        );
      } finally {
        await app.close();
      }
    });
  });
});
