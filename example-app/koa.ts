// The blockid-otp example on Koa: a password, then a one-time code (or an authenticator app,
// or a recovery code), then a guarded route. The same pages as the Express example
// (koa-pages.ts, from the same views) for browsers, and JSON endpoints for scripts. Run it
// with `npm run start:koa`; same environment as `npm start` (see .env.example; REDIS_URL but
// not DATABASE_URL here), same demo users (password: blockid-demo).
//
//   curl -c jar -b jar -H 'content-type: application/json' -d '{"username":"john.smith","password":"blockid-demo"}' localhost:3000/login
//   curl -c jar -b jar -H 'content-type: application/json' -d '{"username":"john.smith"}' localhost:3000/otp/send
//   curl localhost:3000/dev/outbox                          # read the code (development only)
//   curl -c jar -b jar -H 'content-type: application/json' -d '{"username":"john.smith","code":"123456"}' localhost:3000/otp/verify
//   curl -b jar localhost:3000/account
import { pathToFileURL } from 'node:url';
import helmet from 'helmet';
import Koa, { type Context } from 'koa';
import session from 'koa-session';
import { Registry } from 'prom-client';
import { createClient } from 'redis';
import { memoryStore, redisStore, type DevOutbox } from '../src/index.js';
import { blockidOtpKoa, requireOtpKoa } from '../src/koa.js';
import { prometheusMetrics } from '../src/metrics.js';
import { ConfigError, readConfig, type Env, type ExampleConfig } from './config.js';
import { koaPages } from './koa-pages.js';
import { otpSettings, securityHeaders } from './page-data.js';
import { buildSenders, channelNames } from './senders.js';
import { authenticate, createFactorStore, findUser, normalizeUsername, type FactorStore } from './users.js';

/** How long a started authenticator set-up waits for its first code. */
const TOTP_SETUP_MS = 10 * 60 * 1000;

export interface KoaExample {
  app: Koa;
  config: ExampleConfig;
  outbox: DevOutbox | undefined;
  /** The users' sealed authenticator keys and recovery code hashes, in memory. */
  factors: FactorStore;
  ready: Promise<void>;
  close(): Promise<void>;
}

/** A small JSON body reader for /login (blockid-otp reads its own bodies). */
async function jsonBody(ctx: Context): Promise<Record<string, unknown>> {
  ctx.assert(ctx.is('application/json'), 415, 'Send JSON with "Content-Type: application/json".');
  let raw = '';
  for await (const chunk of ctx.req) {
    raw += chunk;
    ctx.assert(raw.length <= 4096, 413, 'The body is too large.');
  }
  try {
    const body: unknown = JSON.parse(raw);
    if (body !== null && typeof body === 'object' && !Array.isArray(body)) return body as Record<string, unknown>;
  } catch {}
  return ctx.throw(400, 'The body must be a JSON object.');
}

const errorCodes: Record<number, string> = { 413: 'payload_too_large', 415: 'unsupported_media_type', 500: 'internal_error' };

export function createKoaExample(env: Env = process.env): KoaExample {
  const config = readConfig(env);
  // Real senders where configured, the dev outbox for the other channels (never in production).
  const senders = buildSenders(config, env);
  const { sms, email, whatsapp, voice, outbox } = senders;

  // Redis (when REDIS_URL is set) holds the codes and, through a koa-session external store, the sessions.
  const redis = config.redisUrl ? createClient({ url: config.redisUrl }) : undefined;
  redis?.on('error', (error: Error) => console.error(`[example-app/koa] Redis: ${error.message}`));
  const ready = redis ? redis.connect().then(() => undefined) : Promise.resolve();
  ready.catch(() => {});
  const otpStore = redis ? redisStore({ client: redis, prefix: `${config.redisPrefix}otp:` }) : memoryStore();
  const sessionKey = (id: string) => `${config.redisPrefix}koa-sess:${id}`;
  const sessionStore = redis && {
    get: async (id: string) => JSON.parse((await redis.get(sessionKey(id))) ?? 'null'),
    set: async (id: string, data: unknown, maxAgeMs: number) => void (await redis.set(sessionKey(id), JSON.stringify(data), { PX: maxAgeMs })),
    destroy: async (id: string) => void (await redis.del(sessionKey(id))),
  };

  if (config.databaseUrl)
    throw new ConfigError('The Koa example keeps codes in Redis or memory: unset DATABASE_URL (the Express example, npm start, uses it).');
  const factors = createFactorStore();
  const registry = config.metrics ? new Registry() : undefined;

  const otp = blockidOtpKoa({
    ...otpSettings,
    secret: config.otpSecret,
    appName: config.appName,
    store: otpStore,
    ...(sms && { sms }),
    ...(email && { email }),
    ...(whatsapp && { whatsapp }),
    ...(voice && { voice }),
    ...(registry && { metrics: prometheusMetrics({ registry }) }),
    // Destinations and factors only for the user who just passed the password step in this session.
    resolveUser: (username: string, ctx: Context) => {
      const user = findUser(normalizeUsername(username));
      if (!user || ctx.session?.pendingUsername !== user.username) return null;
      const phone = (sms || whatsapp || voice) && user.phone;
      const { totp, recoveryCodes } = factors.get(user.username);
      return { ...(phone && { smsTo: phone, smsISDCode: '1' }), ...(email && user.email && { emailTo: user.email }), ...(totp && { totp }), recoveryCodes };
    },
    onRecoveryCodeUsed: (username: string, hash: string) => factors.removeRecoveryCode(username, hash),
  });

  const app = new Koa();
  app.keys = config.sessionSecrets;
  if (config.trustProxy !== undefined) Object.assign(app, { proxy: true, maxIpsCount: config.trustProxy });

  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      const status = (error as { status?: number }).status ?? 500;
      ctx.status = status;
      ctx.body = {
        error: errorCodes[status] ?? 'invalid_request',
        message: status === 500 && config.production ? 'Something went wrong.' : (error as Error).message,
      };
      if (status === 500) console.error(error);
    }
  });
  const headers = helmet(securityHeaders(config.production));
  app.use((ctx, next) =>
    new Promise<void>((resolve, reject) => headers(ctx.req, ctx.res, (error?: unknown) => (error ? reject(error) : resolve()))).then(next),
  );
  app.use(
    session(
      {
        key: 'blockid.sess',
        maxAge: 8 * 60 * 60 * 1000,
        httpOnly: true,
        sameSite: 'lax',
        secure: config.production,
        ...(sessionStore && { store: sessionStore }),
      },
      app,
    ),
  );
  app.use(otp);
  app.use(
    koaPages({
      appName: config.appName,
      otp: otpSettings,
      channels: senders.channels,
      otpService: otp,
      factors,
      outbox: outbox && { entries: () => outbox.entries(), channelsInUse: channelNames(senders.outboxChannels) },
      devPages: !config.production,
    }),
  );

  const guard = requireOtpKoa();
  const routes: Record<string, (ctx: Context) => Promise<void>> = {
    'GET /': async (ctx) => {
      ctx.body = {
        app: config.appName,
        steps: ['POST /login { username, password }', 'POST /otp/send { username }', 'POST /otp/verify { username, code, method? }', 'GET /account'],
        account: ['POST /account/totp', 'POST /account/totp/confirm { code }', 'POST /account/recovery-codes'],
        ...(outbox && { outbox: 'GET /dev/outbox' }),
      };
    },
    'POST /login': async (ctx) => {
      const body = await jsonBody(ctx);
      const user = await authenticate(body.username, body.password);
      if (!user) {
        ctx.status = 401;
        ctx.body = { error: 'invalid_credentials', message: 'Wrong username or password.' };
        return;
      }
      ctx.session = { pendingUsername: user.username };
      ctx.body = {
        status: 'password_ok',
        next: 'POST /otp/send',
        channels: [user.phone && sms && 'sms', user.phone && whatsapp && 'whatsapp', user.phone && voice && 'voice', user.email && email && 'email'].filter(
          Boolean,
        ),
      };
    },
    'GET /account': (ctx) =>
      guard(ctx, async () => {
        const flag = ctx.session.blockidOtp;
        const user = findUser(flag.username);
        const { totp, recoveryCodes } = factors.get(flag.username);
        ctx.body = {
          username: user?.username,
          displayName: user?.displayName,
          verifiedAt: new Date(flag.verifiedAt).toISOString(),
          method: flag.method,
          authenticatorApp: totp !== undefined,
          recoveryCodesLeft: recoveryCodes.length,
        };
      }),
    // An authenticator app: the key goes back in this answer only (for a QR code); the session
    // (a signed cookie by default) keeps it sealed until the first code confirms it.
    'POST /account/totp': (ctx) =>
      guard(ctx, async () => {
        const { username } = ctx.session.blockidOtp;
        const { secret, uri, sealed } = await otp.totp.enroll(username, { issuer: config.appName });
        ctx.session!.totpSetup = { sealed, startedAt: Date.now() };
        ctx.body = { secret, uri, next: 'POST /account/totp/confirm { code }' };
      }),
    'POST /account/totp/confirm': (ctx) =>
      guard(ctx, async () => {
        const { username } = ctx.session.blockidOtp;
        const setup = ctx.session?.totpSetup as { sealed: string; startedAt: number } | undefined;
        const { code } = await jsonBody(ctx);
        if (!setup || Date.now() - setup.startedAt > TOTP_SETUP_MS) {
          ctx.status = 409;
          ctx.body = { error: 'no_setup', message: 'Start with POST /account/totp (a set-up lasts 10 minutes).' };
          return;
        }
        if (typeof code !== 'string' || !(await otp.totp.confirm(username, setup.sealed, code))) {
          ctx.status = 422;
          ctx.body = { error: 'invalid_code', message: 'That code does not match the one the app shows now.' };
          return;
        }
        factors.setTotp(username, setup.sealed);
        delete ctx.session!.totpSetup;
        ctx.body = { status: 'enabled' };
      }),
    // Recovery codes: shown in this answer once; only their hashes are kept.
    'POST /account/recovery-codes': (ctx) =>
      guard(ctx, async () => {
        const { username } = ctx.session.blockidOtp;
        const { codes, hashes } = await otp.recoveryCodes.generate();
        factors.setRecoveryCodes(username, hashes);
        ctx.set('Cache-Control', 'no-store');
        ctx.body = { codes };
      }),
    ...(registry && {
      'GET /metrics': async (ctx: Context) => {
        ctx.type = registry.contentType;
        ctx.body = await registry.metrics();
      },
    }),
    'POST /logout': async (ctx) => {
      ctx.session = null;
      ctx.status = 204;
    },
    ...(outbox && {
      'GET /dev/outbox': async (ctx: Context) => {
        ctx.set('Cache-Control', 'no-store');
        ctx.body = outbox.entries().map(({ channel, to, text, at }) => ({ channel, to, text, at }));
      },
    }),
  };
  app.use(async (ctx, next) => {
    const route = routes[`${ctx.method} ${ctx.path}`];
    return route ? route(ctx) : next();
  });

  return {
    app,
    config,
    outbox,
    factors,
    ready,
    async close() {
      await otpStore.close?.();
      if (redis?.isOpen) await redis.close();
    },
  };
}

async function main(): Promise<void> {
  let example: KoaExample;
  try {
    example = createKoaExample(process.env);
    await example.ready;
  } catch (error) {
    if (!(error instanceof ConfigError) && !/redis|ECONNREFUSED/i.test(String(error))) throw error;
    console.error(`blockid-otp Koa example cannot start: ${(error as Error).message}`);
    process.exit(1);
  }
  const { app, config, outbox, close } = example;
  for (const warning of config.warnings) console.warn(`[example-app/koa] warning: ${warning}`);
  // Outside production, listen on loopback only: the dev outbox shows every code.
  const host = config.host ?? (config.production ? undefined : '127.0.0.1');
  const server = app.listen(config.port, host, () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    console.log(`\n  ${config.appName} (blockid-otp Koa example) at http://localhost:${port}`);
    console.log('  Demo accounts: john.smith, ada.lovelace (password: blockid-demo)');
    if (outbox) console.log(`  Messages that are not sent for real: http://localhost:${port}/dev/outbox\n`);
  });
  const stop = () => {
    server.close(() => void close().finally(() => process.exit(0)));
    server.closeAllConnections();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  void main();
}
