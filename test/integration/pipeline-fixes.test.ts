/**
 * The smaller fixes, over real HTTP on Express and Koa:
 * - `generateOtp(username, destinations, { ip })` from an app's own send route counts the
 *   per-IP quota (memory and Redis: the counter is the one HTTP sends use);
 * - `trust proxy` hop counts of 10 and more (Koa: `maxIpsCount`) are refused, 1 and 2 work;
 * - email quota keys fold dots for gmail.com / googlemail.com, and only there;
 * - `redirectTo` refuses values that browsers read as another origin;
 * - the body reader answers 400 at once when an earlier middleware consumed the stream.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Context } from 'koa';
import express from 'express';
import { OtpError, requireOtp, type BlockidOtpMiddleware } from '../../src/index.js';
import { requireOtpKoa } from '../../src/koa.js';
import { DELIVERY_PAUSE_MS } from '../../src/core/send/after-reply.js';
import { memoryStore } from '../../src/index.js';
import { appOn, FRAMEWORKS, generousLimits } from '../helpers/apps.js';
import { browserClient, type Reply as Answer } from '../helpers/client.js';
import { storeBackends } from '../helpers/store-matrix.js';
import { tally } from '../helpers/util.js';

const backends = await storeBackends({ cluster: false });

/** The app's own send route: `POST /login { username }` → `otp.generateOtp(..., { ip })` (`/login-no-ip` leaves the IP out). */
async function ownRoute(otp: BlockidOtpMiddleware, path: string, body: { username?: string }, ip: string) {
  try {
    const result = await otp.generateOtp(String(body.username), { emailTo: `${body.username}@example.com` }, path === '/login' ? { ip } : undefined);
    return { status: 202, body: { channels: result.channels } };
  } catch (error) {
    if (!(error instanceof OtpError)) throw error;
    return { status: error.status, body: { error: error.code, retryAfter: error.retryAfterSeconds } };
  }
}

const expressRoutes = (app: express.Express, otp: BlockidOtpMiddleware) => {
  for (const path of ['/login', '/login-no-ip']) {
    app.post(path, express.json(), (req, res, next) => {
      ownRoute(otp, path, req.body, req.ip ?? '').then((r) => void res.status(r.status).json(r.body), next);
    });
  }
};
const koaRoutes = (app: import('koa'), otp: BlockidOtpMiddleware) => {
  app.use(async (ctx: Context, next) => {
    if (ctx.method !== 'POST' || !['/login', '/login-no-ip'].includes(ctx.path)) return next();
    let raw = '';
    for await (const chunk of ctx.req) raw += chunk;
    const r = await ownRoute(otp, ctx.path, JSON.parse(raw), ctx.ip);
    ctx.status = r.status;
    ctx.body = r.body;
  });
};

for (const backend of backends) {
  describe(`generateOtp(username, destinations, { ip }) counts sendsPerIp (${backend.name} store)`, () => {
    for (const framework of FRAMEWORKS) {
      it(`${framework}: an app's own send route, 3 sends per IP`, async () => {
        const app = await appOn(framework, {
          collectEvents: true,
          store: backend.make(),
          trustProxy: 1,
          otp: { resolveUser: () => ({ emailTo: 'someone@example.com' }), limits: { ...generousLimits, sendsPerIp: { points: 3, windowSeconds: 3600 } } },
          express: { routes: expressRoutes },
          koa: { routes: koaRoutes },
        });
        const first = browserClient(app.url, { 'x-forwarded-for': '203.0.113.7' });
        const second = browserClient(app.url, { 'x-forwarded-for': '198.51.100.8' });
        const fromFirst: Answer[] = [];
        for (let i = 0; i < 4; i += 1) fromFirst.push(await first.post('/login', { username: `user.${i}` }));
        const limit = app.events.rate_limited.at(-1);
        const otherIp = await second.post('/login', { username: 'user.other' });
        const pluginSend = await first.send('user.http');
        const withoutIp: Answer[] = [];
        for (let i = 0; i < 5; i += 1) withoutIp.push(await first.post('/login-no-ip', { username: `user.noip.${i}` }));
        console.log(
          `# ${framework}/${backend.name}: generateOtp with { ip }: one IP ${JSON.stringify(fromFirst.map((a) => a.body.error ?? a.status))} (${limit?.limit}, ip ${limit?.ip}), ` +
            `another IP ${otherIp.status}; the plugin's /otp/send from the first IP ${pluginSend.status}; without { ip } ${JSON.stringify(tally(withoutIp))}`,
        );
        assert.deepEqual(
          fromFirst.map((a) => a.status),
          [202, 202, 202, 429],
        );
        assert.deepEqual(fromFirst[3]!.body, { error: 'RATE_LIMITED', retryAfter: fromFirst[3]!.body.retryAfter });
        assert.ok(fromFirst[3]!.body.retryAfter > 3500);
        assert.equal(limit?.limit, 'sendsPerIp');
        assert.equal(limit?.ip, '203.0.113.7');
        assert.equal(otherIp.status, 202);
        assert.equal(pluginSend.status, 429, 'HTTP sends and generateOtp({ ip }) share the per-IP quota');
        assert.deepEqual(tally(withoutIp), { 202: 5 }, 'without { ip } nothing is counted per IP');
        await app.close();
      });
    }
  });
}

describe('trust proxy: 10 hops or more are refused, 1 and 2 work', () => {
  const user = { resolveUser: () => ({ emailTo: 'someone@example.com' }) };
  const tryFramework = async (framework: 'express' | 'koa', hops: number) => {
    const app = await appOn(framework, {
      collectEvents: true,
      store: memoryStore(),
      otp: user,
      express: { setup: (a) => void a.set('trust proxy', hops) },
      koa: { setup: (a) => void Object.assign(a, { proxy: true, maxIpsCount: hops }) },
    });
    const browser = browserClient(app.url, { 'x-forwarded-for': '203.0.113.1, 198.51.100.2' });
    const answers = [await browser.send('someone'), await browser.send('someone.else')];
    const delivered = app.capture.calls.length;
    await app.close();
    return { answers, delivered };
  };
  for (const framework of FRAMEWORKS) {
    it(`${framework}: ${framework === 'express' ? "app.set('trust proxy', N)" : 'app.proxy = true; app.maxIpsCount = N'}`, async () => {
      const results: string[] = [];
      for (const hops of [10, 50]) {
        const { answers, delivered } = await tryFramework(framework, hops);
        results.push(`${hops}: ${answers.map((a) => a.status).join(',')}`);
        for (const answer of answers) {
          assert.equal(answer.status, 500, answer.text);
          assert.match(answer.body.message, /lets any client choose its IP through X-Forwarded-For, which defeats the per-IP send quota/);
          assert.match(
            answer.body.message,
            framework === 'express'
              ? new RegExp(`trust proxy', ${hops}\\).*app\\.set\\('trust proxy', 1\\)`)
              : new RegExp(`app\\.maxIpsCount = ${hops} .*app\\.maxIpsCount = 1`),
          );
        }
        assert.equal(delivered, 0);
      }
      for (const hops of [1, 2]) {
        const { answers } = await tryFramework(framework, hops);
        results.push(`${hops}: ${answers.map((a) => a.status).join(',')}`);
        assert.deepEqual(
          answers.map((a) => a.status),
          [202, 202],
        );
      }
      console.log(`# ${framework}: hop count → answers of the first two sends: ${results.join('; ')}`);
    });
  }
});

describe('Gmail addresses share one sendsPerDestination quota; other domains keep their dots', () => {
  const addresses: Record<string, string> = {
    'g.1': 'a.d.a@gmail.com',
    'g.2': 'ada@googlemail.com',
    'g.3': 'ADA+x@gmail.com',
    'g.4': 'A.D.A+otp@GoogleMail.com',
    'e.1': 'a.d.a@example.com',
    'e.2': 'ada@example.com',
    'e.3': 'ad.a@example.com',
    'e.4': 'ADA+x@example.com',
  };
  for (const framework of FRAMEWORKS) {
    it(`${framework}: one send per inbox`, async () => {
      const app = await appOn(framework, {
        collectEvents: true,
        store: memoryStore(),
        otp: {
          resolveUser: (u) => (addresses[u] ? { emailTo: addresses[u] } : null),
          limits: { ...generousLimits, sendsPerDestination: { points: 1, windowSeconds: 3600 } },
        },
      });
      const statuses: Record<string, number> = {};
      for (const username of Object.keys(addresses)) statuses[addresses[username]!] = (await browserClient(app.url).send(username, 'email')).status;
      await new Promise((resolve) => setTimeout(resolve, DELIVERY_PAUSE_MS.max + 50)); // deliveries start after a random pause
      console.log(`# ${framework}: sendsPerDestination 1: ${JSON.stringify(statuses)}; delivered to ${JSON.stringify(app.capture.calls.map((c) => c.to))}`);
      assert.deepEqual(statuses, {
        'a.d.a@gmail.com': 202,
        'ada@googlemail.com': 429,
        'ADA+x@gmail.com': 429,
        'A.D.A+otp@GoogleMail.com': 429,
        'a.d.a@example.com': 202,
        'ada@example.com': 202,
        'ad.a@example.com': 202,
        'ADA+x@example.com': 429,
      });
      assert.deepEqual(
        app.capture.calls.map((c) => c.to).sort(),
        ['a.d.a@example.com', 'a.d.a@gmail.com', 'ad.a@example.com', 'ada@example.com'],
        'mail goes to the address as given',
      );
      await app.close();
    });
  }
});

describe('redirectTo must stay on this origin', () => {
  const refused = ['//evil.example', '/\\evil.example', '/\\/evil.example', '//evil.example/login', '/\t/evil.example', 'https://evil.example', 'evil.example'];
  for (const [name, factory] of [
    ['requireOtp', requireOtp],
    ['requireOtpKoa', requireOtpKoa],
  ] as const) {
    it(`${name} throws a TypeError for ${refused.length} other-origin values and accepts paths`, () => {
      for (const redirectTo of refused) {
        assert.throws(
          () => factory({ redirectTo }),
          (error: unknown) => error instanceof TypeError && /redirectTo.*single "\/"/.test(error.message),
          JSON.stringify(redirectTo),
        );
      }
      for (const redirectTo of ['/login', '/a/b?next=%2F%2Fx', '/login#x']) assert.doesNotThrow(() => factory({ redirectTo }), redirectTo);
    });
  }
  it('the accepted path is what the 303 points to (Express and Koa)', async () => {
    for (const framework of FRAMEWORKS) {
      const app = await appOn(framework, {
        collectEvents: true,
        store: memoryStore(),
        otp: { resolveUser: () => null },
        express: { routes: (a) => void a.get('/account', requireOtp({ redirectTo: '/login' }), (_req, res) => void res.json({ ok: true })) },
        koa: {
          routes: (a) => {
            const guard = requireOtpKoa({ redirectTo: '/login' });
            a.use(async (ctx) => guard(ctx, async () => void (ctx.body = { ok: true })));
          },
        },
      });
      const page = await browserClient(app.url).get('/account', 'text/html');
      assert.equal(page.status, 303, framework);
      assert.equal(page.headers.get('location'), '/login');
      await app.close();
    }
  });
});

describe('the body reader fails at once when an earlier middleware consumed the stream', () => {
  for (const framework of FRAMEWORKS) {
    it(`${framework}: 400 invalid_request, not a hang`, async () => {
      const drain = (stream: NodeJS.ReadableStream, done: () => void) => {
        stream.on('data', () => {});
        stream.on('end', done);
      };
      const app = await appOn(framework, {
        collectEvents: true,
        store: memoryStore(),
        otp: { resolveUser: () => ({ emailTo: 'someone@example.com' }) },
        express: { before: (req, _res, next) => drain(req, () => next()) },
        koa: {
          before: async (ctx, next) => {
            await new Promise<void>((resolve) => drain(ctx.req, resolve));
            await next();
          },
        },
      });
      const browser = browserClient(app.url, {}, 2000);
      const answers = [await browser.post('/otp/send', { username: 'someone' }), await browser.post('/otp/verify', { username: 'someone', code: '123456' })];
      console.log(`# ${framework}: body consumed upstream: ${answers.map((a) => `${a.status} ${a.body?.error} in ${a.ms.toFixed(1)} ms`).join(', ')}`);
      for (const answer of answers) {
        assert.equal(answer.status, 400, answer.text);
        assert.equal(answer.body.error, 'invalid_request');
        assert.match(answer.body.message, /already read by an earlier middleware/);
        assert.ok(answer.ms < 1500, `${answer.ms} ms: answered, not left waiting for a body`);
      }
      assert.equal(app.capture.calls.length, 0);
      await app.close();
    });
  }
});
