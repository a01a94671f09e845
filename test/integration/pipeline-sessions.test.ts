/**
 * Codes per session, decoys apart, and admit-before-issue, each tried as an
 * attack from another session and IP over real HTTP, on Express and Koa, on memory, Redis
 * and Redis Cluster:
 * - session B's sends and wrong guesses, and a session C that holds no code, leave session
 *   A's code working and the username unlocked;
 * - a decoy session (resolveUser said nobody for that request) keeps the real user's code,
 *   per-username quota and lock untouched, even when it reaches the failure cap itself;
 * - a send refused by `sendsPerUsername` or by `sendsPerDestination` leaves the earlier code
 *   working and starts no cooldown.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { appOn, FRAMEWORKS, generousLimits, type TestApp } from '../helpers/apps.js';
import { browserClient, type Client, type Reply as Answer } from '../helpers/client.js';
import { storeBackends } from '../helpers/store-matrix.js';
import { sleep, tally, wrongFor } from '../helpers/util.js';
import { DELIVERY_PAUSE_MS } from '../../src/core/send/after-reply.js';

const backends = await storeBackends();
const USERNAME = 'victim.user';
const VICTIM = { smsTo: '4155550100', emailTo: 'victim@example.com' };

const from = (app: TestApp, ip: string, headers: Record<string, string> = {}) => browserClient(app.url, { 'x-forwarded-for': ip, ...headers });

async function sendAndRead(app: TestApp, browser: Client, username = USERNAME, channel?: string): Promise<string> {
  const mark = app.capture.calls.length;
  const sent = await browser.send(username, channel);
  assert.equal(sent.status, 202, sent.text);
  return app.capture.codeAfter(username, mark);
}

const compared = (app: TestApp) => app.events.failed.filter((e) => e.reason === 'wrong_code').length;

for (const backend of backends) {
  describe(`sessions, decoys and refused sends (${backend.name} store)`, { concurrency: true }, () => {
    for (const framework of FRAMEWORKS) {
      it(`${framework}: session B's sends and guesses, and 50 guesses from a session C without a code, leave session A's code and budget whole`, async () => {
        const app = await appOn(framework, {
          collectEvents: true,
          store: backend.make(),
          trustProxy: 1,
          otp: { resolveUser: (u) => (u === USERNAME ? VICTIM : null), resendCooldownSeconds: 0, limits: generousLimits },
        });
        const a = from(app, '203.0.113.10');
        const b = from(app, '198.51.100.20');
        const c = from(app, '198.51.100.30');
        const codeA = await sendAndRead(app, a);

        const bAnswers: Answer[] = [];
        for (let round = 0; round < 2; round += 1) {
          const codeB = await sendAndRead(app, b);
          assert.notEqual(codeB, codeA);
          for (let guess = 0; guess < 6; guess += 1) bAnswers.push(await b.verify(USERNAME, wrongFor(codeB)));
        }
        await sendAndRead(app, b); // a third code for B: replaces only B's
        const comparedAfterB = compared(app);

        // C has a session of its own (it asked a code for another username) but none for this one.
        assert.equal((await c.send('someone.else')).status, 202);
        const cAnswers: Answer[] = [];
        for (let guess = 0; guess < 50; guess += 1) cAnswers.push(await c.verify(USERNAME, String(100000 + guess)));
        const comparedAfterC = compared(app);

        // A still has its whole budget: four wrong guesses, then the right code.
        const aAnswers: Answer[] = [];
        for (let guess = 0; guess < 4; guess += 1) aAnswers.push(await a.verify(USERNAME, wrongFor(codeA)));
        const right = await a.verify(USERNAME, codeA);
        console.log(
          `# ${framework}/${backend.name}: B (3 sends, 12 wrong guesses) ${JSON.stringify(tally(bAnswers))}, compared ${comparedAfterB}; ` +
            `C (no code, 50 guesses) ${JSON.stringify(tally(cAnswers))}, compared ${comparedAfterC - comparedAfterB}; ` +
            `A after them: 4 wrong ${JSON.stringify(tally(aAnswers))}, then its code: ${right.status}; locks ${app.events.locked.length}`,
        );
        assert.deepEqual(tally(bAnswers), { '401 invalid_code': 10, '429 too_many_attempts': 2 }, "B's guesses burn B's own codes");
        assert.equal(comparedAfterB, 10);
        assert.deepEqual(tally(cAnswers), { '401 invalid_code': 50 });
        assert.equal(comparedAfterC, comparedAfterB, 'a session without a code spends nothing');
        assert.equal(app.events.failed.filter((e) => e.reason === 'no_code').length, 50);
        assert.deepEqual(tally(aAnswers), { '401 invalid_code': 4 });
        assert.equal(right.status, 200, right.text);
        assert.equal(app.events.locked.length, 0);
        await app.close();
      });

      it(`${framework}: a decoy session (no first factor) sends, is rate limited and reaches the cap, and the real user's code, quota and lock are untouched`, async () => {
        // Like the example app: resolveUser answers only for a request that passed the first factor.
        const app = await appOn(framework, {
          collectEvents: true,
          store: backend.make(),
          trustProxy: 1,
          otp: {
            resolveUser: (u, req: { headers: Record<string, string | undefined> }) =>
              u === USERNAME && req.headers['x-first-factor'] === 'passed' ? VICTIM : null,
            limits: { ...generousLimits, sendsPerUsername: { points: 3, windowSeconds: 3600 }, failedVerifications: 5, maxConsecutiveFailures: 5 },
          },
        });
        const user = () => from(app, '203.0.113.10', { 'x-first-factor': 'passed' });
        const a = user();
        const codeA = await sendAndRead(app, a);

        const decoys = Array.from({ length: 5 }, (_, i) => from(app, `198.51.100.${66 + i}`));
        const decoySends: Answer[] = [];
        for (const decoy of decoys) decoySends.push(await decoy.send(USERNAME));
        const decoyResend = await decoys[0]!.send(USERNAME);
        const decoyGuesses: Answer[] = [];
        for (const decoy of decoys.slice(0, 3)) {
          for (let guess = 0; guess < 6; guess += 1) decoyGuesses.push(await decoy.verify(USERNAME, String(200000 + guess)));
        }
        const decoyCompared = compared(app);
        const decoyLocks = app.events.locked.length;
        await sleep(DELIVERY_PAUSE_MS.max + 50); // deliveries start after a random pause
        const deliveredForDecoys = app.capture.calls.length - 2; // A's send: SMS + email

        // The real user's quota: two more sends (3 in all) pass, the fourth is refused.
        const userSends: Answer[] = [];
        for (let i = 0; i < 3; i += 1) userSends.push(await user().send(USERNAME));
        const aAnswers: Answer[] = [];
        for (let guess = 0; guess < 4; guess += 1) aAnswers.push(await a.verify(USERNAME, wrongFor(codeA)));
        const right = await a.verify(USERNAME, codeA);
        const decoyAfter = await decoys[0]!.verify(USERNAME, '123456');
        console.log(
          `# ${framework}/${backend.name}: decoy sends ${JSON.stringify(tally(decoySends))}, resend ${decoyResend.status} ${decoyResend.body.error}; ` +
            `decoy guesses ${JSON.stringify(tally(decoyGuesses))}, compared ${decoyCompared}, locks ${decoyLocks}; deliveries for decoy sends ${deliveredForDecoys}; ` +
            `user sends after ${JSON.stringify(userSends.map((s) => s.status))}; user 4 wrong ${JSON.stringify(tally(aAnswers))}, then its code ${right.status}`,
        );
        assert.deepEqual(
          decoySends.map((s) => s.status),
          [202, 202, 202, 429, 429],
          'the decoy has a quota of its own, as a real user would',
        );
        assert.deepEqual([decoyResend.status, decoyResend.body.error, decoyResend.body.retryAfter], [429, 'rate_limited', 30]);
        assert.deepEqual(tally(decoyGuesses), { '401 invalid_code': 5, '429 too_many_attempts': 13 }, 'the decoy locks, as a real user would');
        assert.deepEqual(app.events.locked, [{ username: USERNAME, permanent: true, ip: '198.51.100.66', decoy: true }], "the decoy's lock says so");
        assert.deepEqual(
          userSends.map((s) => s.status),
          [202, 202, 429],
          "the decoy's sends did not count towards the user's sendsPerUsername",
        );
        assert.equal(deliveredForDecoys, 0);
        assert.deepEqual(tally(aAnswers), { '401 invalid_code': 4 }, "the decoy's failures did not count towards the user's lock");
        assert.equal(right.status, 200, right.text);
        assert.equal(decoyAfter.status, 429, 'and the decoy stays locked');
        await app.close();
      });

      it(`${framework}: a send refused by sendsPerUsername, and one refused by sendsPerDestination, leave the earlier code working and start no cooldown`, async () => {
        const directory: Record<string, { smsTo: string; emailTo: string }> = {
          [USERNAME]: VICTIM,
          'victim.one': { smsTo: '4155550122', emailTo: 'one@example.com' },
          'victim.two': { smsTo: '4155550133', emailTo: 'two@example.com' },
        };
        const start = (limits: object) =>
          appOn(framework, {
            collectEvents: true,
            store: backend.make(),
            trustProxy: 1,
            otp: { resolveUser: (u) => directory[u] ?? null, resendCooldownSeconds: 1, limits: { ...generousLimits, ...limits } },
          });
        const perUser = await start({ sendsPerUsername: { points: 2, windowSeconds: 3600 } });
        const perDest = await start({ sendsPerDestination: { points: 1, windowSeconds: 3600 } });
        // sendsPerUsername: A and B use the username's 2 sends; A, past its cooldown, is refused.
        const a = from(perUser, '203.0.113.10');
        const b = from(perUser, '198.51.100.20');
        const codeA = await sendAndRead(perUser, a);
        await sendAndRead(perUser, b);
        // sendsPerDestination: one send per address; a second email send is refused.
        const d = from(perDest, '203.0.113.11');
        const codeD = await sendAndRead(perDest, d, 'victim.one', 'email');
        const e = from(perDest, '203.0.113.12');
        await sendAndRead(perDest, e, 'victim.two', 'email');
        const delivered = perUser.capture.calls.length + perDest.capture.calls.length;
        await sleep(1100); // every cooldown is over

        const userRefused = [await a.send(USERNAME), await a.send(USERNAME)];
        const userLimits = perUser.events.rate_limited.map((x) => x.limit);
        const destRefused = [await d.send('victim.one', 'email'), await d.send('victim.one', 'email')];
        const destLimits = perDest.events.rate_limited.map((x) => x.limit);
        const eRefused = await e.send('victim.two', 'email');
        const eRefusedBy = perDest.events.rate_limited.at(-1)?.limit;
        const deliveredByRefused = perUser.capture.calls.length + perDest.capture.calls.length - delivered;
        const eOtherChannel = await e.send('victim.two', 'sms'); // at once: a cooldown, had one started, would refuse it
        const verifiedA = await a.verify(USERNAME, codeA);
        const verifiedD = await d.verify('victim.one', codeD);
        console.log(
          `# ${framework}/${backend.name}: refused by sendsPerUsername ${JSON.stringify(userRefused.map((r) => `${r.status} Retry-After ${r.headers.get('retry-after') ?? undefined}`))} (${userLimits}), ` +
            `by sendsPerDestination ${JSON.stringify(destRefused.map((r) => `${r.status} Retry-After ${r.headers.get('retry-after') ?? undefined}`))} (${destLimits}); deliveries by refused sends ${deliveredByRefused}; ` +
            `earlier codes then: ${verifiedA.status} / ${verifiedD.status}; refused email then SMS at once: ${eRefused.status} (${eRefusedBy}) then ${eOtherChannel.status}`,
        );
        for (const refused of [...userRefused, ...destRefused, eRefused]) {
          assert.equal(refused.status, 429, refused.text);
          assert.equal(refused.body.error, 'rate_limited');
          assert.ok(
            Number(refused.headers.get('retry-after') ?? undefined) > 3000,
            `the quota's Retry-After, not a 1 s cooldown: ${refused.headers.get('retry-after') ?? undefined}`,
          );
        }
        assert.deepEqual(userLimits, ['sendsPerUsername', 'sendsPerUsername'], 'the second refusal is the quota again: the first started no cooldown');
        assert.deepEqual(destLimits, ['sendsPerDestination', 'sendsPerDestination']);
        assert.equal(eRefusedBy, 'sendsPerDestination');
        assert.equal(eOtherChannel.status, 202, 'a send right after a refused one is admitted: no cooldown started');
        assert.equal(deliveredByRefused, 0, 'refused sends deliver nothing');
        assert.equal(verifiedA.status, 200, verifiedA.text);
        assert.equal(verifiedD.status, 200, verifiedD.text);
        await perUser.close();
        await perDest.close();
      });
    }
  });
}

describe('the rate_limited event names the limit that refused the send', () => {
  // When the request is refused (here by sendsPerUsername) and a target is over its own quota
  // too, the one refusal reported is the one that answered (and set Retry-After).
  it('a send refused by sendsPerUsername while its destination is also over quota reports sendsPerUsername', async () => {
    const app = await appOn('express', {
      collectEvents: true,
      store: backends[0]!.make(),
      otp: {
        resolveUser: (u) => (u === USERNAME ? { emailTo: VICTIM.emailTo } : null),
        resendCooldownSeconds: 0,
        limits: { ...generousLimits, sendsPerUsername: { points: 1, windowSeconds: 3600 }, sendsPerDestination: { points: 1, windowSeconds: 60 } },
      },
    });
    assert.equal((await browserClient(app.url).send(USERNAME)).status, 202);
    const refused = await browserClient(app.url).send(USERNAME);
    assert.equal(refused.status, 429);
    assert.ok(Number(refused.headers.get('retry-after') ?? undefined) > 3500, 'refused by sendsPerUsername');
    assert.deepEqual(
      app.events.rate_limited.map((e) => e.limit),
      ['sendsPerUsername'],
    );
    await app.close();
  });
});
