/**
 * Builds a real app around the plugin on a loopback port: the same options and the same
 * routes for every framework, so one contract suite runs against each.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { after } from 'node:test';
import express from 'express';
import session from 'express-session';
import Koa from 'koa';
import koaSession from 'koa-session';
import { blockidOtp, requireOtp, type BlockidOtpMiddleware, type Destinations, type OtpEventMap, type OtpOptions } from '../../src/index.js';
import type { OtpService } from '../../src/core/service.js';
import type { OtpStore } from '../../src/store.js';
import { blockidOtpKoa, requireOtpKoa } from '../../src/koa.js';
import { createAdaptorServer } from '@hono/node-server';
import { cookieSession, createOtpHandler, type OtpHandler } from '../../src/fetch.js';
import { serviceOf } from '../../src/core/http/adapter.js';
import { Hono } from 'hono';
import { blockidOtpHono, requireOtpHono } from '../../src/hono.js';
import Fastify from 'fastify';
import fastifyCookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import { blockidOtpFastify, requireOtpFastify } from '../../src/fastify.js';
import { captureSenders, type CaptureSenders } from './capture.js';
import type { ContractOptions } from './http-contract.js';

export const SECRET = 'test-secret-0123456789-abcdefghijklmnop';

export const users: Record<string, Destinations> = {
  'john.smith': { smsTo: '4155550100', smsISDCode: '1', emailTo: 'john.smith@example.com' },
  'ada.lovelace': { emailTo: 'ada@example.com' },
  'grace.hopper': { smsTo: '(613) 555-0100' },
};

/** The events `AppOptions.collectEvents` keeps. */
type CollectedEvents = { [E in 'failed' | 'locked' | 'rate_limited' | 'verified']: Array<OtpEventMap[E]> };

export interface TestApp {
  framework: string;
  url: string;
  service: OtpService;
  capture: CaptureSenders;
  /** Errors the app's error handler answered with 500. */
  errors: Error[];
  /** The events of each kind, in order (empty unless `collectEvents`). */
  events: CollectedEvents;
  /** What a second instance of this app shares with it (`AppOptions.instanceOf`). */
  shared: SharedParts;
  close(): Promise<void>;
}

/** The parts app instances behind one load balancer share: the OTP store, the sessions, the senders. */
interface SharedParts {
  store: OtpStore;
  /** express-session's store, or koa-session's external store (undefined: Koa cookie sessions, shared through `app.keys`). */
  sessions: unknown;
  capture: CaptureSenders;
}

export interface AppOptions {
  otp?: Partial<OtpOptions>;
  /** Leave the session middleware out (to test the clear error). */
  withoutSession?: boolean;
  /** Express and Koa: `session: cookieSession({ secure: false })` instead of express-session / koa-session. */
  cookieSession?: boolean;
  /**
   * Start another instance of that app: its own server and plugin, but the same sessions, the
   * same capture senders and the same OTP store, unless `otp.store` names another (e.g. a
   * `redisStore` on a second Redis connection, as a second machine would have).
   */
  instanceOf?: TestApp;
  /** The OTP store (a second instance shares the first one's unless given one). */
  store?: OtpStore;
  /** The channels the capture senders serve (default both); a channel left out has no sender at all. */
  channels?: Array<'sms' | 'email'>;
  /** The capture senders to use (e.g. `captureSenders({ delayMs })`); default a new one. */
  capture?: CaptureSenders;
  /** Trust the proxy in front: Express's `trust proxy` setting as given; Koa `proxy` with `maxIpsCount` (a number of hops). */
  trustProxy?: unknown;
  /** Keep the `failed`, `locked`, `rate_limited` and `verified` events in `TestApp.events` (off: an observed event changes what the plugin warns about). */
  collectEvents?: boolean;
}

export type AppFactory = (options?: AppOptions) => Promise<TestApp>;

/** Apps still open when the file ends (a failed assertion skipped their `close()`): closed then, so no server keeps the file alive. */
const openApps = new Set<TestApp>();
after(async () => {
  for (const app of openApps) await app.close();
});

/** Fills in what every app has (errors, events) and tracks it until it is closed. */
function finish(
  parts: Omit<TestApp, 'errors' | 'events' | 'close'> & {
    errors: Error[];
    on: (event: string, listener: (payload: never) => void) => unknown;
    close(): Promise<void>;
  },
  options: AppOptions,
): TestApp {
  const { on, close, ...rest } = parts;
  const events: CollectedEvents = { failed: [], locked: [], rate_limited: [], verified: [] };
  if (options.collectEvents) {
    for (const name of Object.keys(events) as Array<keyof CollectedEvents>) on(name, (event) => void (events[name] as unknown[]).push(event));
  }
  const app: TestApp = {
    ...rest,
    events,
    close: async () => {
      if (!openApps.delete(app)) return;
      await close();
    },
  };
  openApps.add(app);
  return app;
}

/** The capture senders of a new instance: the first instance's, the ones given, or new ones. */
const captureFor = (options: AppOptions): CaptureSenders => options.instanceOf?.shared.capture ?? options.capture ?? captureSenders();

/** Koa's `proxy` settings for `trustProxy` (a number of hops). */
function koaProxy(app: Koa, trustProxy: unknown): void {
  if (trustProxy === undefined) return;
  if (typeof trustProxy !== 'number') throw new TypeError('koaApp: trustProxy must be a number of hops');
  Object.assign(app, { proxy: true, maxIpsCount: trustProxy });
}

/** The OTP options of an instance: a second instance inherits the first one's store. */
function instanceOptions(capture: CaptureSenders, options: AppOptions): OtpOptions {
  const store = options.store ?? options.instanceOf?.shared.store;
  const { channels = ['sms', 'email'] } = options;
  const senders = { ...(channels.includes('sms') && { sms: capture.sms }), ...(channels.includes('email') && { email: capture.email }) };
  const { sms: _sms, email: _email, ...base } = baseOptions(capture);
  return { ...base, ...senders, ...(store !== undefined && { store }), ...options.otp };
}

export function baseOptions(capture: CaptureSenders, overrides: Partial<OtpOptions> = {}): OtpOptions {
  return {
    secret: SECRET,
    resolveUser: (username) => users[username] ?? null,
    sms: capture.sms,
    email: capture.email,
    ...overrides,
  };
}

export function listen(server: Server): Promise<string> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
  });
}

export function closeServer(server: Server): Promise<void> {
  server.closeAllConnections?.();
  return new Promise((resolve) => server.close(() => resolve()));
}

export interface ExpressAppOptions extends AppOptions {
  /** Runs first on the new app (e.g. `app.set('trust proxy', 10)`). */
  setup?: (app: express.Express) => void;
  /** Middleware mounted after the session, before the plugin. */
  before?: express.RequestHandler;
  /** Routes after the plugin (before the guarded routes); they get the plugin, for its programmatic API. */
  routes?: (app: express.Express, otp: BlockidOtpMiddleware) => void;
}

export const expressApp = async (options: ExpressAppOptions = {}): Promise<TestApp> => {
  const capture = captureFor(options);
  const sessions = (options.instanceOf?.shared.sessions as session.Store | undefined) ?? new session.MemoryStore();
  const app = express();
  if (options.trustProxy !== undefined) app.set('trust proxy', options.trustProxy);
  options.setup?.(app);
  if (!options.withoutSession && !options.cookieSession) {
    app.use(session({ secret: 'session-secret-for-tests', resave: false, saveUninitialized: false, name: 'sid', store: sessions }));
  }
  const otp = blockidOtp({ ...instanceOptions(capture, options), ...(options.cookieSession && { session: cookieSession({ secure: false }) }) });
  if (options.before) app.use(options.before);
  app.use(otp);
  options.routes?.(app, otp);
  app.get('/account', requireOtp({ redirectTo: '/login' }), (_req, res) => {
    res.json({ account: true });
  });
  app.get('/fresh', requireOtp({ maxAgeSeconds: 1 }), (_req, res) => {
    res.json({ fresh: true });
  });
  app.get('/totp-only', requireOtp({ methods: ['totp'] }), (_req, res) => {
    res.json({ totpOnly: true });
  });
  const errors: Error[] = [];
  app.use((error: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    errors.push(error);
    res.status(500).json({ error: 'internal_error', message: error.message });
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return finish(
    {
      framework: 'express',
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      service: serviceOf(otp),
      capture,
      errors,
      shared: { store: serviceOf(otp).options.store, sessions, capture },
      on: otp.on as never,
      close: () => closeServer(server),
    },
    options,
  );
};

/** A koa-session external store over a Map, shaped like koa-redis and friends; `data` is there to inspect. */
export function mapSessionStore() {
  const data = new Map<string, unknown>();
  return {
    data,
    get: async (key: string) => data.get(key),
    set: async (key: string, value: unknown) => {
      data.set(key, value);
    },
    destroy: async (key: string) => {
      data.delete(key);
    },
  };
}

export interface KoaAppOptions extends AppOptions {
  /** Keep sessions in this external store instead of the cookie itself. */
  sessionStore?: ReturnType<typeof mapSessionStore>;
  /** Runs first, e.g. to set `app.proxy` or to fake a body parser. */
  setup?: (app: Koa) => void;
  /** Middleware mounted after the session, before the plugin. */
  before?: Koa.Middleware;
  /** Routes after the plugin (before the guarded routes); they get the plugin, for its programmatic API. */
  routes?: (app: Koa, otp: BlockidOtpMiddleware) => void;
}

/** The same app as `expressApp`, on Koa with koa-session (signed cookies). */
export const koaApp = async (options: KoaAppOptions = {}): Promise<TestApp> => {
  const capture = captureFor(options);
  const sessionStore = options.instanceOf === undefined ? options.sessionStore : (options.instanceOf.shared.sessions as KoaAppOptions['sessionStore']);
  const app = new Koa();
  app.keys = ['session-key-for-tests'];
  koaProxy(app, options.trustProxy);
  const errors: Error[] = [];
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      errors.push(error as Error);
      ctx.status = 500;
      ctx.body = { error: 'internal_error', message: (error as Error).message };
    }
  });
  options.setup?.(app);
  if (!options.withoutSession && !options.cookieSession) {
    app.use(koaSession({ key: 'sid', signed: true, ...(sessionStore && { store: sessionStore }) }, app));
  }
  if (options.before) app.use(options.before);
  const otp = blockidOtpKoa({ ...instanceOptions(capture, options), ...(options.cookieSession && { session: cookieSession({ secure: false }) }) });
  app.use(otp);
  options.routes?.(app, otp as unknown as BlockidOtpMiddleware);
  const account = requireOtpKoa({ redirectTo: '/login' });
  const fresh = requireOtpKoa({ maxAgeSeconds: 1 });
  const totpOnly = requireOtpKoa({ methods: ['totp'] });
  app.use(async (ctx, next) => {
    if (ctx.method !== 'GET') return next();
    if (ctx.path === '/account') return account(ctx, async () => void (ctx.body = { account: true }));
    if (ctx.path === '/fresh') return fresh(ctx, async () => void (ctx.body = { fresh: true }));
    if (ctx.path === '/totp-only') return totpOnly(ctx, async () => void (ctx.body = { totpOnly: true }));
    return next();
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return finish(
    {
      framework: 'koa',
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      service: serviceOf(otp),
      capture,
      errors,
      shared: { store: serviceOf(otp).options.store, sessions: sessionStore, capture },
      on: otp.on as never,
      close: () => closeServer(server),
    },
    options,
  );
};

/** The guarded routes every app serves, as a fetch handler behind `otp` (the fetch adapter's and Hono's test apps). */
export function guardedRoutes(otp: Pick<OtpHandler, 'requireOtp'>) {
  const routes: Record<string, [Parameters<OtpHandler['requireOtp']>[1], object]> = {
    '/account': [{ redirectTo: '/login' }, { account: true }],
    '/fresh': [{ maxAgeSeconds: 1 }, { fresh: true }],
    '/totp-only': [{ methods: ['totp'] }, { totpOnly: true }],
  };
  return async (request: Request): Promise<Response | null> => {
    const route = request.method === 'GET' ? routes[new URL(request.url).pathname] : undefined;
    if (route === undefined) return null;
    return (await otp.requireOtp(request, route[0])) ?? Response.json(route[1]);
  };
}

/** The same app on the Web-standard adapter (`createOtpHandler`), served on Node by @hono/node-server, with the cookie session. */
export const fetchApp: AppFactory = async (options = {}) => {
  const capture = captureFor(options);
  const otp = createOtpHandler({ ...instanceOptions(capture, options), session: cookieSession({ secure: false }) });
  const guarded = guardedRoutes(otp);
  const server = createAdaptorServer({
    fetch: async (request, env) => {
      const ip = 'incoming' in env ? env.incoming.socket.remoteAddress : undefined;
      return (await otp.handle(request, { ip })) ?? (await guarded(request)) ?? Response.json({ error: 'not_found' }, { status: 404 });
    },
  }) as Server;
  const url = await listen(server);
  const service = serviceOf(otp);
  return finish(
    {
      framework: 'fetch',
      url,
      service,
      capture,
      errors: [],
      shared: { store: service.options.store, sessions: undefined, capture },
      on: service.on as never,
      close: () => closeServer(server),
    },
    options,
  );
};

/** The same app on Hono (`blockidOtpHono` + `requireOtpHono`), served on Node by @hono/node-server, with the cookie session. */
export const honoApp: AppFactory = async (options = {}) => {
  const capture = captureFor(options);
  const otp = blockidOtpHono({ ...instanceOptions(capture, options), session: cookieSession({ secure: false }) });
  const app = new Hono().use(otp);
  app.get('/account', requireOtpHono({ redirectTo: '/login' }), (c) => c.json({ account: true }));
  app.get('/fresh', requireOtpHono({ maxAgeSeconds: 1 }), (c) => c.json({ fresh: true }));
  app.get('/totp-only', requireOtpHono({ methods: ['totp'] }), (c) => c.json({ totpOnly: true }));
  const errors: Error[] = [];
  app.onError((error, c) => {
    errors.push(error);
    return c.json({ error: 'internal_error', message: error.message }, 500);
  });
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  const url = await listen(server);
  const service = serviceOf(otp);
  return finish(
    {
      framework: 'hono',
      url,
      service,
      capture,
      errors,
      shared: { store: service.options.store, sessions: undefined, capture },
      on: service.on as never,
      close: () => closeServer(server),
    },
    options,
  );
};

export interface FastifyAppOptions extends AppOptions {
  /** Register @fastify/session (with @fastify/cookie) before the plugin, which then uses it instead of its own cookie. */
  fastifySession?: boolean;
}

/** The same app on Fastify (`blockidOtpFastify` + `requireOtpFastify` as preHandlers): its own cookie session, or @fastify/session. */
export const fastifyApp = async (options: FastifyAppOptions = {}): Promise<TestApp> => {
  const capture = captureFor(options);
  const app = Fastify();
  let sessions: unknown;
  if (options.fastifySession) {
    sessions = options.instanceOf?.shared.sessions ?? new fastifySession.MemoryStore();
    await app.register(fastifyCookie);
    await app.register(fastifySession, {
      secret: 'fastify-session-secret-for-tests-0123456789',
      cookieName: 'sid',
      cookie: { secure: false },
      saveUninitialized: false,
      store: sessions as fastifySession.SessionStore,
    });
  }
  await app.register(blockidOtpFastify, {
    ...instanceOptions(capture, options),
    ...(!options.fastifySession && { session: cookieSession({ secure: false }) }),
  });
  app.get('/account', { preHandler: requireOtpFastify({ redirectTo: '/login' }) }, async () => ({ account: true }));
  app.get('/fresh', { preHandler: requireOtpFastify({ maxAgeSeconds: 1 }) }, async () => ({ fresh: true }));
  app.get('/totp-only', { preHandler: requireOtpFastify({ methods: ['totp'] }) }, async () => ({ totpOnly: true }));
  const errors: Error[] = [];
  app.setErrorHandler((error: Error, _request, reply) => {
    errors.push(error);
    return reply.code(500).send({ error: 'internal_error', message: error.message });
  });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  const service = serviceOf(app.otp);
  return finish(
    {
      framework: options.fastifySession ? 'fastify with @fastify/session' : 'fastify',
      url,
      service,
      capture,
      errors,
      shared: { store: service.options.store, sessions, capture },
      on: service.on as never,
      close: async () => {
        app.server.closeAllConnections();
        await app.close();
      },
    },
    options,
  );
};

/** Every framework the HTTP contract suite runs against (Koa twice: cookie sessions and an external session store). */
export const frameworks: Array<[string, AppFactory, ContractOptions?]> = [
  ['express', expressApp],
  ['koa', (options) => koaApp(options)],
  ['koa with an external session store', (options) => koaApp({ ...options, sessionStore: mapSessionStore() })],
  ['fetch', fetchApp, { cookieSession: true }],
  ['hono', honoApp, { cookieSession: true }],
  ['fastify', (options) => fastifyApp(options), { cookieSession: true }],
  ['fastify with @fastify/session', (options) => fastifyApp({ ...options, fastifySession: true }), { sessionFallback: true }],
  ['express with cookieSession', (options) => expressApp({ ...options, cookieSession: true }), { cookieSession: true }],
  ['koa with cookieSession', (options) => koaApp({ ...options, cookieSession: true }), { cookieSession: true }],
];

export type Framework = 'express' | 'koa';
/** The two frameworks the suites that need framework-specific setup run on. */
export const FRAMEWORKS: Framework[] = ['express', 'koa'];

/** The app on `framework`, with that framework's own `setup`, `before` and `routes` (the other's are ignored). */
export function appOn(
  framework: Framework,
  options: AppOptions & { express?: Pick<ExpressAppOptions, 'setup' | 'before' | 'routes'>; koa?: Pick<KoaAppOptions, 'setup' | 'before' | 'routes'> },
): Promise<TestApp> {
  const { express: onExpress, koa: onKoa, ...common } = options;
  return framework === 'express' ? expressApp({ ...common, ...onExpress }) : koaApp({ ...common, ...onKoa });
}

/** Limits high enough that only the ones a test sets ever refuse. */
export const generousLimits = {
  sendsPerIp: { points: 1_000_000, windowSeconds: 3600 },
  sendsPerUsername: { points: 1_000_000, windowSeconds: 3600 },
  sendsPerDestination: { points: 1_000_000, windowSeconds: 3600 },
  smsPerPrefix: { points: 1_000_000, windowSeconds: 3600 },
  smsPerHour: 100_000_000,
  smsPerDay: 100_000_000,
} satisfies OtpOptions['limits'];
