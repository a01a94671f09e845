/**
 * "A consecutive-failure cap that holds": an attacker who waits out every timed
 * lock, from several sessions and IPs, never gets more than `maxConsecutiveFailures` wrong
 * guesses compared; then even the right code is refused until `unlock()`. Over real HTTP,
 * on Express and Koa, on memory, Redis and Redis Cluster. The cases run concurrently (each
 * on its own app and keys): the 30 cycles of one-second locks are what takes the time.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { appOn, FRAMEWORKS, generousLimits, type Framework, type TestApp } from '../helpers/apps.js';
import { browserClient, type Client, type Reply as Answer } from '../helpers/client.js';
import { storeBackends, type Backend } from '../helpers/store-matrix.js';
import { sleep, tally, wrongFor } from '../helpers/util.js';

const backends = await storeBackends();
const USERNAME = 'victim.user';
const resolveUser = (username: string) => (username === USERNAME ? { emailTo: 'victim@example.com' } : null);

async function start(framework: Framework, backend: Backend, limits: object) {
  return appOn(framework, {
    collectEvents: true,
    store: backend.make(),
    trustProxy: 1,
    otp: { resolveUser, resendCooldownSeconds: 0, limits: { ...generousLimits, ...limits } },
  });
}

/** Sessions with an IP each (through the trusted proxy's X-Forwarded-For). */
const attackers = (app: TestApp, count: number) =>
  Array.from({ length: count }, (_, i) => browserClient(app.url, { 'x-forwarded-for': `198.51.100.${i + 1}` }));

async function sendAndRead(app: TestApp, browser: Client): Promise<string> {
  const mark = app.capture.calls.length;
  const sent = await browser.send(USERNAME);
  assert.equal(sent.status, 202, sent.text);
  return app.capture.codeAfter(USERNAME, mark);
}

const compared = (app: TestApp) => app.events.failed.filter((e) => e.reason === 'wrong_code' && e.username === USERNAME).length;
const permanentLocks = (app: TestApp) => app.events.locked.filter((e) => e.permanent === true);

/**
 * After the cap: the right code (of a fresh send) is tried, then `unlock()`, then a fresh code.
 * Returns what happened; `assertHeld` checks it (after the figures are printed).
 */
async function rightCodeUntilUnlock(app: TestApp) {
  const owner = browserClient(app.url, { 'x-forwarded-for': '203.0.113.9' });
  const code = await sendAndRead(app, owner);
  const refused = await owner.verify(USERNAME, code);
  const refusedAs = app.events.failed.at(-1)?.reason;
  await app.service.unlock(USERNAME);
  // The code above verified if the lock did not hold; ask a fresh one either way.
  const fresh = await sendAndRead(app, owner);
  const verified = await owner.verify(USERNAME, fresh);
  return { refused, verified, refusedAs, text: `${refused.status} ${refused.body?.error ?? refused.body?.status}`, after: verified.status };
}

function assertHeld(outcome: Awaited<ReturnType<typeof rightCodeUntilUnlock>>) {
  assert.equal(outcome.refused.status, 429, `the right code before unlock(): ${outcome.refused.text}`);
  assert.equal(outcome.refused.body.error, 'too_many_attempts');
  assert.equal(outcome.refusedAs, 'locked', 'refused by the lock, before any compare');
  assert.equal(outcome.verified.status, 200, outcome.verified.text);
  assert.deepEqual(outcome.verified.body, { status: 'verified', username: USERNAME });
}

describe('the consecutive-failure cap survives timed locks', { concurrency: true }, () => {
  for (const backend of backends) {
    for (const framework of FRAMEWORKS) {
      it(`${framework} on ${backend.name}: 30 lock cycles (failedVerifications 1, lockSeconds 1, cap 10) compare 10 guesses, then the right code waits for unlock()`, async () => {
        const started = performance.now();
        const cap = 10;
        const app = await start(framework, backend, { failedVerifications: 1, lockSeconds: 1, maxConsecutiveFailures: cap });
        const sessions = attackers(app, 3);
        const answers: Answer[] = [];
        for (let cycle = 0; cycle < 30; cycle += 1) {
          // Each session asks for a code of its own, then all three guess at once, three
          // guesses each, the moment the last lock has ended: 9 guesses in flight together.
          const codes: string[] = [];
          for (const session of sessions) codes.push(await sendAndRead(app, session));
          const round = await Promise.all(sessions.flatMap((session, i) => [0, 1, 2].map(() => session.verify(USERNAME, wrongFor(codes[i]!)))));
          answers.push(...round);
          await sleep(1050); // past lockSeconds
        }
        const timed = app.events.locked.filter((e) => e.lockSeconds === 1).length;
        const last = answers.at(-1)!;
        const outcome = await rightCodeUntilUnlock(app);
        console.log(
          `# ${framework}/${backend.name}: 30 lock cycles, ${answers.length} wrong guesses (9 in flight at once per cycle) from 3 sessions/IPs: compared ${compared(app)} (cap ${cap}); ` +
            `answers ${JSON.stringify(tally(answers))}; locked events ${timed} timed + ${permanentLocks(app).length} permanent; ` +
            `last Retry-After ${last.headers.get('retry-after') ?? undefined} s; right code before unlock(): ${outcome.text}, fresh code after: ${outcome.after}; ` +
            `${((performance.now() - started) / 1000).toFixed(1)} s`,
        );
        assertHeld(outcome);
        assert.ok(compared(app) <= cap, `compared ${compared(app)} > cap ${cap}`);
        assert.equal(compared(app), cap, 'each cycle before the cap compared its first guess');
        assert.deepEqual(tally(answers), { '401 invalid_code': cap, '429 too_many_attempts': 270 - cap });
        assert.equal(permanentLocks(app).length, 1);
        assert.deepEqual({ ...permanentLocks(app)[0], ip: undefined }, { username: USERNAME, permanent: true, ip: undefined });
        assert.match(permanentLocks(app)[0]?.ip ?? '', /^198\.51\.100\.[1-3]$/);
        assert.equal(timed, cap - 1);
        assert.ok(
          Number(last.headers.get('retry-after') ?? undefined) > 86_400,
          `still locked for failureMemorySeconds, not lockSeconds: ${last.headers.get('retry-after') ?? undefined}`,
        );
        await app.close();
      });
    }
  }

  for (const backend of backends) {
    for (const framework of FRAMEWORKS) {
      it(`${framework} on ${backend.name}: the default cap (100, timed lock every 20) holds across 7 lock cycles with lockSeconds 1`, async () => {
        const started = performance.now();
        const app = await start(framework, backend, { lockSeconds: 1 });
        const sessions = attackers(app, 4);
        const answers: Answer[] = [];
        let sends = 0;
        for (let cycle = 0; cycle < 7; cycle += 1) {
          let locked = false;
          while (!locked) {
            const session = sessions[sends % sessions.length]!;
            const code = await sendAndRead(app, session);
            sends += 1;
            for (let guess = 0; guess < 5 && !locked; guess += 1) {
              const answer = await session.verify(USERNAME, wrongFor(code));
              answers.push(answer);
              locked = answer.headers.get('retry-after') !== null;
            }
            assert.ok(sends < 100, 'the lock came');
          }
          await sleep(1050);
        }
        const outcome = await rightCodeUntilUnlock(app);
        const timed = app.events.locked.filter((e) => e.lockSeconds === 1).length;
        console.log(
          `# ${framework}/${backend.name} defaults: 7 lock cycles, ${answers.length} wrong guesses over ${sends} codes from 4 sessions/IPs: compared ${compared(app)} (cap 100); ` +
            `answers ${JSON.stringify(tally(answers))}; locked events ${timed} timed + ${permanentLocks(app).length} permanent; ` +
            `right code before unlock(): ${outcome.text}, fresh code after: ${outcome.after}; ${((performance.now() - started) / 1000).toFixed(1)} s`,
        );
        assertHeld(outcome);
        assert.equal(compared(app), 100);
        assert.equal(permanentLocks(app).length, 1);
        assert.equal(timed, 4);
        assert.deepEqual(tally(answers), { '401 invalid_code': 100, '429 too_many_attempts': 7 });
        await app.close();
      });
    }
  }

  for (const backend of backends) {
    for (const framework of FRAMEWORKS) {
      it(`${framework} on ${backend.name}: without unlock(), the cap ends failureMemorySeconds after the last failure, not counting refused guesses`, async () => {
        const app = await start(framework, backend, { failedVerifications: 1, lockSeconds: 1, maxConsecutiveFailures: 3, failureMemorySeconds: 3 });
        const [session] = attackers(app, 1);
        for (let cycle = 0; cycle < 3; cycle += 1) {
          const code = await sendAndRead(app, session!);
          assert.equal((await session!.verify(USERNAME, wrongFor(code))).status, 401);
          if (cycle < 2) await sleep(1050);
        }
        const lastFailure = performance.now();
        const code = await sendAndRead(app, session!);
        await sleep(Math.max(0, 1500 - (performance.now() - lastFailure))); // the send and its delivery pause count toward the 1.5 s
        const during = await session!.verify(USERNAME, code); // refused: not a failure, so it does not extend the memory
        await sleep(Math.max(0, 3100 - (performance.now() - lastFailure)));
        const afterMemory = await session!.verify(USERNAME, code);
        console.log(
          `# ${framework}/${backend.name}: cap 3, failureMemorySeconds 3: right code 1.5 s after the last failure ${during.status} (Retry-After ${during.headers.get('retry-after') ?? undefined}), ` +
            `3.1 s after it ${afterMemory.status}; compared ${compared(app)}, permanent locks ${permanentLocks(app).length}`,
        );
        assert.equal(during.status, 429);
        assert.ok(Number(during.headers.get('retry-after') ?? undefined) <= 2, `Retry-After ${during.headers.get('retry-after') ?? undefined}`);
        assert.equal(afterMemory.status, 200, afterMemory.text);
        assert.equal(compared(app), 3);
        await app.close();
      });
    }
  }
});
