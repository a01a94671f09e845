/**
 * Guessing codes across resends: the consecutive-failure lock per username (NIST SP 800-63B
 * 5.2.2), its timing, its reset on success, and that unknown usernames lock the same way.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createOtpService, type OtpOptions } from '../../src/index.js';
import { expressApp } from '../helpers/apps.js';
import { captureSenders } from '../helpers/capture.js';
import { Client, type Reply as Answer } from '../helpers/client.js';
import { storeBackends } from '../helpers/store-matrix.js';
import { directory, sleep, tally, wrongFor } from '../helpers/util.js';

const backends = await storeBackends({ cluster: false });

async function start(otp: Partial<OtpOptions> = {}) {
  const senders = captureSenders();
  const app = await expressApp({
    capture: senders,
    otp: {
      resolveUser: directory([['known.user', { smsTo: '4155550100' }]]),
      resendCooldownSeconds: 0,
      ...otp,
      // Sends are not what these tests are about: only the verify lock binds.
      limits: {
        sendsPerIp: { points: 100_000, windowSeconds: 3600 },
        sendsPerUsername: { points: 100_000, windowSeconds: 3600 },
        sendsPerDestination: { points: 100_000, windowSeconds: 3600 },
        ...otp.limits,
      },
    },
  });
  const compared: string[] = [];
  const locked: string[] = [];
  app.service.on('failed', (event) => {
    if (event.reason === 'wrong_code') compared.push(event.username);
  });
  app.service.on('locked', (event) => locked.push(event.username));
  /** The newest code sent to `username`, once its delivery ran. */
  const codeOf = async (username: string, sendsSoFar: number): Promise<string | undefined> => {
    for (let i = 0; i < 300 && senders.calls.filter((c) => c.username === username).length < sendsSoFar; i++) await sleep(5);
    return senders.calls.filter((c) => c.username === username).at(-1)?.code;
  };
  return { app, senders, compared, locked, codeOf };
}

type Started = Awaited<ReturnType<typeof start>>;

/**
 * Makes `attempts` wrong guesses for `username`, `burst` at a time in parallel, asking for a
 * new code as soon as the last one's `maxAttempts` are spent, until the username is locked.
 */
async function guessAcrossResends(
  t: Started,
  username: string,
  attempts: number,
  { burst = 1, maxAttempts = 5, known }: { burst?: number; maxAttempts?: number; known: boolean },
): Promise<{ answers: Answer[]; sends: number }> {
  const session = new Client(t.app.url, { keepAlive: 64 });
  const answers: Answer[] = [];
  let sends = 0;
  let sinceSend = 0;
  let code: string | undefined;
  let locked = false;
  const resend = async () => {
    assert.equal((await session.post('/otp/send', { username })).status, 202);
    sends += 1;
    sinceSend = 0;
    code = known ? await t.codeOf(username, sends) : undefined;
  };
  await resend();
  while (answers.length < attempts) {
    if (sinceSend >= maxAttempts && !locked) await resend();
    const size = Math.min(burst, attempts - answers.length);
    const round = await Promise.all(Array.from({ length: size }, () => session.post('/otp/verify', { username, code: wrongFor(code) })));
    answers.push(...round);
    sinceSend += size;
    locked ||= round.some((a) => a.headers.get('retry-after') !== null);
  }
  return { answers, sends };
}

for (const backend of backends) {
  describe(`consecutive-failure lock (${backend.name} store)`, () => {
    it('101 failures spread across resends: compared at most the cap (20), then locked for lockSeconds, the right code included', async () => {
      const t = await start({ store: backend.make() });
      const { answers, sends } = await guessAcrossResends(t, 'known.user', 101, { known: true });
      console.log(
        `# ${backend.name}: 101 sequential failures over ${sends} codes: ${JSON.stringify(tally(answers))}; compared ${t.compared.length}; locked events ${t.locked.length}`,
      );
      assert.equal(t.compared.length, 20, 'exactly the cap was compared');
      assert.deepEqual(t.locked, ['known.user']);
      const afterLock = answers.slice(20);
      assert.ok(
        afterLock.every((a) => a.status === 429 && a.body.error === 'too_many_attempts'),
        JSON.stringify(tally(afterLock)),
      );
      const retryAfter = Number(afterLock.at(-1)?.headers.get('retry-after') ?? undefined);
      assert.ok(retryAfter > 890 && retryAfter <= 900, `Retry-After ${retryAfter}`);

      // A fresh code, read from the sender, is refused while the lock lasts.
      const session = new Client(t.app.url, { keepAlive: 64 });
      assert.equal((await session.post('/otp/send', { username: 'known.user' })).status, 202);
      const code = await t.codeOf('known.user', sends + 1);
      const right = await session.post('/otp/verify', { username: 'known.user', code });
      assert.equal(right.status, 429);
      assert.equal(right.body.error, 'too_many_attempts');
    });

    it('an unknown username gets the very same answers, attempt for attempt', async () => {
      const t = await start({ store: backend.make() });
      const known = await guessAcrossResends(t, 'known.user', 40, { known: true });
      const unknown = await guessAcrossResends(t, 'nobody.at.all', 40, { known: false });
      const shape = (answers: Answer[]) => answers.map((a) => `${a.status} ${a.body?.error} ${[...new Set(a.headers.keys())].sort().join(',')}`);
      assert.deepEqual(shape(unknown.answers), shape(known.answers));
      assert.deepEqual(t.locked, ['known.user', 'nobody.at.all']);
    });

    it('parallel bursts across resends: at most cap + maxAttempts - 1 guesses compared, whatever the interleaving', async () => {
      const t = await start({ store: backend.make(), maxAttempts: 3 });
      const { answers, sends } = await guessAcrossResends(t, 'known.user', 101, { burst: 8, maxAttempts: 3, known: true });
      console.log(
        `# ${backend.name}: 101 failures in bursts of 8 over ${sends} codes (maxAttempts 3): ${JSON.stringify(tally(answers))}; compared ${t.compared.length} (cap 20, bound 22)`,
      );
      assert.ok(t.compared.length >= 20 && t.compared.length <= 20 + 3 - 1, `compared ${t.compared.length}`);
      assert.equal(t.locked.length, 1);
    });

    it('the lock lasts lockSeconds from the failure that reached the cap, not to the end of a window opened by the first failure', async () => {
      const t = await start({ store: backend.make(), limits: { lockSeconds: 2 } });
      const first = await guessAcrossResends(t, 'known.user', 19, { known: true });
      assert.deepEqual(tally(first.answers), { '401 invalid_code': 19 });
      await sleep(1200);
      const session = new Client(t.app.url, { keepAlive: 64 });
      await session.post('/otp/send', { username: 'known.user' });
      const code = await t.codeOf('known.user', first.sends + 1);
      assert.equal((await session.post('/otp/verify', { username: 'known.user', code: wrongFor(code) })).status, 401);
      const lockedAt = performance.now();
      assert.deepEqual(t.locked, ['known.user'], 'the 20th failure locks');
      await sleep(Math.max(0, 1000 - (performance.now() - lockedAt))); // 2.2 s after the first failure, 1 s into the lock
      const during = await session.post('/otp/verify', { username: 'known.user', code });
      assert.equal(during.status, 429, 'still locked 1 s into a 2 s lock');
      assert.ok(Number(during.headers.get('retry-after') ?? undefined) <= 2);
      await sleep(1300);
      const fresh = new Client(t.app.url, { keepAlive: 64 });
      await fresh.post('/otp/send', { username: 'known.user' });
      const newCode = await t.codeOf('known.user', first.sends + 2);
      assert.equal((await fresh.post('/otp/verify', { username: 'known.user', code: newCode })).status, 200, 'unlocked once lockSeconds passed');
    });

    it('a success resets the count', async () => {
      const t = await start({ store: backend.make() });
      const before = await guessAcrossResends(t, 'known.user', 19, { known: true });
      const session = new Client(t.app.url, { keepAlive: 64 });
      await session.post('/otp/send', { username: 'known.user' });
      const code = await t.codeOf('known.user', before.sends + 1);
      assert.equal((await session.post('/otp/verify', { username: 'known.user', code })).status, 200);
      const afterSuccess = await guessAcrossResends(t, 'known.user', 19, { known: true });
      assert.equal(t.locked.length, 0, '19 + 19 failures around a success lock nothing');
      assert.deepEqual(tally([...before.answers, ...afterSuccess.answers]), { '401 invalid_code': 38 });
      assert.equal(t.compared.length, 38);
    });
  });
}

describe('lock limits are validated against NIST SP 800-63B', () => {
  const base = { secret: 'x'.repeat(32), email: captureSenders().email };
  it('refuses a cap above 100, or one that in-flight guesses could push above 100', () => {
    assert.throws(() => createOtpService({ ...base, limits: { failedVerifications: 101 } }), /failedVerifications.*1 to 100/);
    assert.throws(() => createOtpService({ ...base, limits: { failedVerifications: 0 } }), /failedVerifications/);
    assert.throws(
      () => createOtpService({ ...base, limits: { failedVerifications: 100 } }),
      /failedVerifications.*maxAttempts.*lower failedVerifications to 96/,
    );
    assert.throws(() => createOtpService({ ...base, maxAttempts: 10, limits: { failedVerifications: 92 } }), /to 91 or less/);
    assert.doesNotThrow(() => createOtpService({ ...base, limits: { failedVerifications: 96 } }));
    assert.doesNotThrow(() => createOtpService({ ...base, maxAttempts: 10, limits: { failedVerifications: 91 } }));
  });
});
