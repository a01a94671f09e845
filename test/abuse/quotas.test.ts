/**
 * Send quotas under attack, over real HTTP: per destination, per number block, per client
 * IP, per username, and the global SMS spend breakers, on the memory store and on Redis.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { describe, it } from 'node:test';
import type { Destinations, OtpEventMap, OtpOptions } from '../../src/index.js';
import { ipQuotaKey } from '../../src/core/http/client-ip.js';
import { DELIVERY_PAUSE_MS } from '../../src/core/send/after-reply.js';
import { expressApp, type TestApp } from '../helpers/apps.js';
import { captureSenders } from '../helpers/capture.js';
import { Client, type Reply as Answer } from '../helpers/client.js';
import { storeBackends } from '../helpers/store-matrix.js';
import { directory, numberInBlock, sleep, tally } from '../helpers/util.js';

const backends = await storeBackends({ cluster: false });
const randomIPv4 = () => `${randomInt(1, 224)}.${randomInt(0, 256)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;

/** Resolves once `calls` has not grown for `quietMs` (deliveries start after a random pause following the response). */
async function settled(calls: unknown[], quietMs = DELIVERY_PAUSE_MS.max + 100): Promise<void> {
  let seen = -1;
  while (seen !== calls.length) {
    seen = calls.length;
    await sleep(quietMs);
  }
}

async function start(otp: Partial<OtpOptions> & Pick<OtpOptions, 'resolveUser'>, trustProxy?: unknown) {
  const senders = captureSenders();
  const app = await expressApp({ capture: senders, otp, trustProxy });
  const limited: Array<OtpEventMap['rate_limited']> = [];
  app.service.on('rate_limited', (event) => limited.push(event));
  return { app, senders, limited };
}

/**
 * POSTs /otp/send for each username at once, each from a fresh session (and a fresh
 * X-Forwarded-For when asked), on `channel` (the user's one channel: `both` would add a
 * stand-in for the channel the user lacks, which is admitted as it is for any username).
 */
function sendAll(
  app: TestApp,
  usernames: string[],
  channel: 'sms' | 'email' | 'both',
  headers: (i: number) => Record<string, string> = () => ({}),
): Promise<Answer[]> {
  return Promise.all(usernames.map((username, i) => new Client(app.url, { keepAlive: 64 }).post('/otp/send', { username, channel }, { headers: headers(i) })));
}

function assertRateLimited(answers: Answer[]): void {
  for (const answer of answers.filter((a) => a.status === 429)) {
    assert.equal(answer.body.error, 'rate_limited');
    assert.ok(Number.isInteger(answer.body.retryAfter) && answer.body.retryAfter >= 1, answer.text);
    assert.equal(answer.headers.get('retry-after'), String(answer.body.retryAfter));
  }
}

for (const backend of backends) {
  describe(`send quotas (${backend.name} store)`, () => {
    it('50 parallel sends to one number, written five ways by 50 usernames: exactly sendsPerDestination sender calls, and the refused ones spend nothing shared', async () => {
      const writings = ['4155550100', '(415) 555-0100', '415-555-0100', '+1 415 555 0100', '415.555.0100'];
      const users: Array<[string, Destinations]> = writings.flatMap((smsTo, w) =>
        Array.from({ length: 10 }, (_, i): [string, Destinations] => [`same.number.${w}.${i}`, { smsTo, smsISDCode: i % 2 ? '+1' : '1' }]),
      );
      const others: Array<[string, Destinations]> = Array.from({ length: 4 }, (_, i) => [`other.number.${i}`, { smsTo: numberInBlock(i) }]);
      const { app, senders, limited } = await start({
        store: backend.make(),
        resolveUser: directory([...users, ...others]),
        limits: { sendsPerIp: { points: 100_000, windowSeconds: 3600 }, sendsPerDestination: { points: 10, windowSeconds: 3600 }, smsPerHour: 13 },
      });

      const answers = await sendAll(
        app,
        users.map(([name]) => name),
        'sms',
      );
      await settled(senders.calls);
      console.log(`# ${backend.name}: 50 parallel sends to one number: ${JSON.stringify(tally(answers))}; sender calls ${senders.calls.length}`);
      assert.deepEqual(tally(answers), { 202: 10, '429 rate_limited': 40 });
      assertRateLimited(answers);
      assert.equal(senders.calls.length, 10);
      assert.ok(senders.calls.every((call) => call.to === '+14155550100'));
      assert.equal(limited.filter((e) => e.limit === 'sendsPerDestination').length, 40);

      // smsPerHour is 13: had the 40 refused sends touched the global budget, none of these would pass.
      const later = await sendAll(
        app,
        others.map(([name]) => name),
        'sms',
      );
      assert.deepEqual(
        later.map((a) => a.status),
        [202, 202, 202, 429],
      );
      assert.equal(limited.at(-1)?.limit, 'smsPerHour');
    });

    it('email destinations share one quota whatever their case, spacing or +tag', async () => {
      const writings = ['ada@example.com', 'Ada@Example.com', ' ADA@EXAMPLE.COM ', 'ada+otp@example.com', 'ADA+x@example.COM'];
      const users: Array<[string, Destinations]> = Array.from({ length: 30 }, (_, i) => [`mail.${i}`, { emailTo: writings[i % writings.length] ?? '' }]);
      const { app, senders } = await start({
        store: backend.make(),
        resolveUser: directory(users),
        limits: { sendsPerIp: { points: 100_000, windowSeconds: 3600 }, sendsPerDestination: { points: 7, windowSeconds: 3600 } },
      });
      const answers = await sendAll(
        app,
        users.map(([name]) => name),
        'email',
      );
      await settled(senders.calls);
      console.log(`# ${backend.name}: 30 parallel sends to one inbox in 5 writings: ${JSON.stringify(tally(answers))}; sender calls ${senders.calls.length}`);
      assert.deepEqual(tally(answers), { 202: 7, '429 rate_limited': 23 });
      assert.equal(senders.calls.length, 7);
      assert.ok(
        senders.calls.some((call) => call.to !== 'ada@example.com'),
        'mail still goes to the address as written',
      );
    });

    it('100 adjacent numbers (one block) from 100 addresses, default limits: stops at the prefix cap (30)', async () => {
      const users: Array<[string, Destinations]> = Array.from({ length: 100 }, (_, i) => [`pump.${i}`, { smsTo: `415555${String(100 + i).padStart(4, '0')}` }]);
      const outside: [string, Destinations] = ['outside.block', { smsTo: numberInBlock(7) }];
      // One trusted proxy, and a different client address per request, so only number quotas apply.
      const { app, senders, limited } = await start({ store: backend.make(), resolveUser: directory([...users, outside]) }, 1);
      const answers = await sendAll(
        app,
        users.map(([name]) => name),
        'sms',
        () => ({ 'x-forwarded-for': randomIPv4() }),
      );
      await settled(senders.calls);
      console.log(`# ${backend.name}: 100 adjacent numbers: ${JSON.stringify(tally(answers))}; SMS sent ${senders.calls.length}`);
      assert.deepEqual(tally(answers), { 202: 30, '429 rate_limited': 70 });
      assertRateLimited(answers);
      assert.equal(senders.calls.length, 30);
      assert.equal(new Set(senders.calls.map((c) => c.to)).size, 30);
      assert.ok(limited.every((e) => e.limit === 'smsPerPrefix'));
      const elsewhere = await new Client(app.url, { keepAlive: 64 }).post(
        '/otp/send',
        { username: 'outside.block', channel: 'sms' },
        { headers: { 'x-forwarded-for': randomIPv4() } },
      );
      assert.equal(elsewhere.status, 202, 'another block is not affected');
    });

    it('the global SMS budgets trip: smsPerHour, then smsPerDay, whatever the number and the address', async () => {
      const users: Array<[string, Destinations]> = Array.from({ length: 40 }, (_, i) => [`global.${i}`, { smsTo: numberInBlock(i) }]);
      const bothChannels: [string, Destinations] = ['global.both', { smsTo: numberInBlock(41), emailTo: 'both@example.com' }];
      const smsOnly: [string, Destinations] = ['global.sms.only', { smsTo: numberInBlock(42) }];
      for (const [limit, limits] of [
        ['smsPerHour', { smsPerHour: 25 }],
        ['smsPerDay', { smsPerHour: 1000, smsPerDay: 25 }],
      ] as const) {
        const { app, senders, limited } = await start({ store: backend.make(), resolveUser: directory([...users, bothChannels, smsOnly]), limits }, 1);
        const answers: Answer[] = [];
        for (const [username] of users)
          answers.push(
            await new Client(app.url, { keepAlive: 64 }).post('/otp/send', { username, channel: 'sms' }, { headers: { 'x-forwarded-for': randomIPv4() } }),
          );
        await settled(senders.calls);
        console.log(`# ${backend.name}: 40 SMS to 40 blocks with ${limit} 25: ${JSON.stringify(tally(answers))}; SMS sent ${senders.calls.length}`);
        assert.deepEqual(tally(answers), { 202: 25, '429 rate_limited': 15 });
        assert.equal(senders.calls.length, 25);
        assert.ok(limited.length === 15 && limited.every((e) => e.limit === limit), JSON.stringify(limited.slice(0, 3)));
        // Tripped, it refuses an unknown username's SMS exactly as a known one's (no existence oracle).
        const known = await new Client(app.url, { keepAlive: 64 }).post(
          '/otp/send',
          { username: 'global.sms.only', channel: 'sms' },
          { headers: { 'x-forwarded-for': randomIPv4() } },
        );
        const unknown = await new Client(app.url, { keepAlive: 64 }).post(
          '/otp/send',
          { username: 'nobody.here', channel: 'sms' },
          { headers: { 'x-forwarded-for': randomIPv4() } },
        );
        assert.equal(known.status, 429);
        const sansRetry = (answer: Answer) => ({ ...answer.body, retryAfter: undefined });
        assert.equal(unknown.status, known.status);
        assert.deepEqual(sansRetry(unknown), sansRetry(known));
        assert.ok(
          Math.abs(Number(unknown.headers.get('retry-after') ?? undefined) - Number(known.headers.get('retry-after') ?? undefined)) <= 1,
          'the same Retry-After (give or take a second boundary)',
        );
        // The breaker stops SMS only: a user with both channels still gets the email.
        const both = await new Client(app.url, { keepAlive: 64 }).post(
          '/otp/send',
          { username: 'global.both' },
          { headers: { 'x-forwarded-for': randomIPv4() } },
        );
        await settled(senders.calls);
        assert.equal(both.status, 202);
        assert.deepEqual(
          senders.calls.filter((c) => c.username === 'global.both').map((c) => c.channel),
          ['email'],
        );
      }
    });

    it('a failed provider send still counts against the destination and the global budget', async () => {
      const users: Array<[string, Destinations]> = Array.from({ length: 10 }, (_, i) => [`failing.${i}`, { smsTo: '4155550100' }]);
      const spare: Array<[string, Destinations]> = Array.from({ length: 3 }, (_, i) => [`spare.${i}`, { smsTo: numberInBlock(100 + i) }]);
      const senders = captureSenders({ fail: () => new Error('provider down') });
      const app = await expressApp({
        capture: senders,
        channels: ['sms'],
        otp: {
          store: backend.make(),
          resolveUser: directory([...users, ...spare]),
          deliveryRetries: 0,
          limits: { sendsPerIp: { points: 100_000, windowSeconds: 3600 }, sendsPerDestination: { points: 3, windowSeconds: 3600 }, smsPerHour: 5 },
        },
      });
      const answers: Answer[] = [];
      for (const [username] of users) answers.push(await new Client(app.url, { keepAlive: 64 }).post('/otp/send', { username }));
      await settled(senders.calls);
      assert.deepEqual(tally(answers), { 202: 3, '429 rate_limited': 7 });
      assert.equal(senders.calls.length, 3, 'three failed sends, then the quota refused');
      const later: number[] = [];
      for (const [username] of spare) later.push((await new Client(app.url, { keepAlive: 64 }).post('/otp/send', { username })).status);
      assert.deepEqual(later, [202, 202, 429], 'the three failed SMS were counted in smsPerHour (5)');
    });
  });
}

describe('per-IP quota', () => {
  it('1,000 sends with random X-Forwarded-For under the default trust proxy: limited per real IP (default 30)', async () => {
    const names = Array.from({ length: 1000 }, (_, i) => `spoof.${i}`);
    const { app, senders, limited } = await start({
      resolveUser: directory(names.filter((_, i) => i % 2 === 0).map((n, i) => [n, { smsTo: numberInBlock(i), emailTo: `${n}@example.com` }])),
    });
    const answers: Answer[] = [];
    for (let i = 0; i < names.length; i += 100) {
      answers.push(...(await sendAll(app, names.slice(i, i + 100), 'both', () => ({ 'x-forwarded-for': `${randomIPv4()}, ${randomIPv4()}` }))));
    }
    await settled(senders.calls);
    console.log(`# 1,000 sends, random X-Forwarded-For, trust proxy unset: ${JSON.stringify(tally(answers))}; sender calls ${senders.calls.length}`);
    assert.deepEqual(tally(answers), { 202: 30, '429 rate_limited': 970 });
    assertRateLimited(answers);
    assert.ok(senders.calls.length <= 30 * 2, `sender calls ${senders.calls.length}`);
    assert.ok(limited.every((e) => e.limit === 'sendsPerIp' && e.ip === '127.0.0.1'));
  });

  it('the same spoofing does change the IP once a proxy is trusted (so the test above could fail)', async () => {
    const { app } = await start({ resolveUser: directory([]) }, 1);
    const answers = await sendAll(
      app,
      Array.from({ length: 60 }, (_, i) => `trusted.${i}`),
      'both',
      () => ({ 'x-forwarded-for': randomIPv4() }),
    );
    assert.deepEqual(tally(answers), { 202: 60 });
  });

  it("refuses app.set('trust proxy', true) with a TypeError that says what to set instead, and sends nothing", async () => {
    const { app, senders } = await start({ resolveUser: directory([['john', { smsTo: '4155550100' }]]) }, true);
    const answer = await new Client(app.url, { keepAlive: 64 }).post('/otp/send', { username: 'john' });
    assert.equal(answer.status, 500);
    assert.ok(app.errors[0] instanceof TypeError);
    assert.match(app.errors[0]?.message ?? '', /trust proxy.*X-Forwarded-For.*e\.g\. app\.set\('trust proxy', 1\)/);
    await sleep(50);
    assert.equal(senders.calls.length, 0);
  });

  it('keys IPv6 clients by /56 and IPv4-mapped IPv6 as the IPv4 address, in any writing', async () => {
    const { app } = await start({ resolveUser: directory([]), limits: { sendsPerIp: { points: 2, windowSeconds: 3600 } } }, 1);
    let n = 0;
    const from = async (ip: string) =>
      (await new Client(app.url, { keepAlive: 64 }).post('/otp/send', { username: `v6.${n++}` }, { headers: { 'x-forwarded-for': ip } })).status;
    assert.deepEqual(
      [await from('2001:db8:1:2300::1'), await from('2001:db8:1:23ff:ffff:ffff:ffff:ffff'), await from('2001:DB8:1:2345::3'), await from('2001:db8:1:2400::1')],
      [202, 202, 429, 202],
      'one /56 shares a quota; the next /56 has its own',
    );
    assert.deepEqual(
      [await from('192.0.2.7'), await from('::ffff:192.0.2.7'), await from('::ffff:c000:207'), await from('0:0:0:0:0:ffff:192.0.2.7')],
      [202, 202, 429, 429],
      'IPv4-mapped writings count as the IPv4 address',
    );
    assert.equal(ipQuotaKey('[2001:db8:1:23ab::1]:443'), '2001:0db8:0001:2300::/56');
    assert.equal(ipQuotaKey('192.0.2.7:51234'), '192.0.2.7');
    assert.equal(ipQuotaKey('fe80::1%eth0'), 'fe80:0000:0000:0000::/56');
    assert.equal(ipQuotaKey('not an address'), 'unknown');
    assert.equal(ipQuotaKey(undefined), 'unknown');
  });

  it('the programmatic API (no client IP) is not squeezed into one shared "unknown" IP bucket', async () => {
    const { app, senders } = await start({ resolveUser: directory([]) });
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) => app.service.generateOtp(`api.user.${i}`, { emailTo: `api.user.${i}@example.com` })),
    );
    const refused = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
    assert.deepEqual(refused, [], 'more than sendsPerIp (30) programmatic sends from the server itself');
    assert.equal(senders.calls.length, 40);
  });
});

describe('per-username quota', () => {
  it('cooldown, then N per window, the same for a known and an unknown username', async () => {
    const { app, senders } = await start({
      resolveUser: directory([['known.user', { emailTo: 'known@example.com' }]]),
      resendCooldownSeconds: 0,
      limits: { sendsPerUsername: { points: 3, windowSeconds: 3600 } },
    });
    const statuses = async (username: string) => {
      const out: string[] = [];
      for (let i = 0; i < 5; i++) {
        const answer = await new Client(app.url, { keepAlive: 64 }).post('/otp/send', { username });
        out.push(`${answer.status}${answer.headers.get('retry-after') ? ' retry-after' : ''}`);
      }
      return out;
    };
    const known = await statuses('known.user');
    const unknown = await statuses('unknown.user');
    assert.deepEqual(known, ['202', '202', '202', '429 retry-after', '429 retry-after']);
    assert.deepEqual(unknown, known);
    await settled(senders.calls);
    assert.equal(senders.calls.length, 3);

    // The cooldown is per session: the same session waits, another session may send.
    const cooled = await start({ resolveUser: directory([['known.user', { emailTo: 'known@example.com' }]]) });
    for (const username of ['known.user', 'unknown.user']) {
      const session = new Client(cooled.app.url, { keepAlive: 64 });
      assert.equal((await session.post('/otp/send', { username })).status, 202);
      const again = await session.post('/otp/send', { username });
      assert.equal(again.status, 429);
      assert.ok(again.body.retryAfter >= 1 && again.body.retryAfter <= 30);
      assert.equal((await new Client(cooled.app.url, { keepAlive: 64 }).post('/otp/send', { username })).status, 202, 'another session is not in the cooldown');
    }
  });
});
