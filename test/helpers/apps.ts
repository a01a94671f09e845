/**
 * Builds a real app around the plugin on a loopback port: the same options and the same
 * routes for every framework, so one contract suite runs against each.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import session from 'express-session';
import Koa from 'koa';
import koaSession from 'koa-session';
import { blockidOtp, requireOtp, type Destinations, type OtpOptions, type OtpService } from '../../src/index.js';
import { blockidOtpKoa, requireOtpKoa } from '../../src/koa.js';
import { captureSenders } from './capture.js';

export const SECRET = 'test-secret-0123456789-abcdefghijklmnop';

export const users: Record<string, Destinations> = {
  'john.smith': { smsTo: '4155550100', smsISDCode: '1', emailTo: 'john.smith@example.com' },
  'ada.lovelace': { emailTo: 'ada@example.com' },
  'grace.hopper': { smsTo: '(613) 555-0100' },
};

export interface TestApp {
  framework: string;
  url: string;
  service: OtpService;
  capture: ReturnType<typeof captureSenders>;
  close(): Promise<void>;
}

export interface AppOptions {
  otp?: Partial<OtpOptions>;
  /** Leave the session middleware out (to test the clear error). */
  withoutSession?: boolean;
}

export type AppFactory = (options?: AppOptions) => Promise<TestApp>;

export function baseOptions(capture: ReturnType<typeof captureSenders>, overrides: Partial<OtpOptions> = {}): OtpOptions {
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

export const expressApp: AppFactory = async (options = {}) => {
  const capture = captureSenders();
  const app = express();
  if (!options.withoutSession) {
    app.use(session({ secret: 'session-secret-for-tests', resave: false, saveUninitialized: false, name: 'sid' }));
  }
  const otp = blockidOtp(baseOptions(capture, options.otp));
  app.use(otp);
  app.get('/account', requireOtp({ redirectTo: '/login' }), (_req, res) => {
    res.json({ account: true });
  });
  app.get('/fresh', requireOtp({ maxAgeSeconds: 1 }), (_req, res) => {
    res.json({ fresh: true });
  });
  app.use((error: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(500).json({ error: 'internal_error', message: error.message });
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return {
    framework: 'express',
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    service: otp.service,
    capture,
    close: () => closeServer(server),
  };
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
}

/** The same app as `expressApp`, on Koa with koa-session (signed cookies). */
export const koaApp = async (options: KoaAppOptions = {}): Promise<TestApp> => {
  const capture = captureSenders();
  const app = new Koa();
  app.keys = ['session-key-for-tests'];
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      ctx.status = 500;
      ctx.body = { error: 'internal_error', message: (error as Error).message };
    }
  });
  options.setup?.(app);
  if (!options.withoutSession) {
    app.use(koaSession({ key: 'sid', signed: true, ...(options.sessionStore && { store: options.sessionStore }) }, app));
  }
  const otp = blockidOtpKoa(baseOptions(capture, options.otp));
  app.use(otp);
  const account = requireOtpKoa({ redirectTo: '/login' });
  const fresh = requireOtpKoa({ maxAgeSeconds: 1 });
  app.use(async (ctx, next) => {
    if (ctx.method !== 'GET') return next();
    if (ctx.path === '/account') return account(ctx, async () => void (ctx.body = { account: true }));
    if (ctx.path === '/fresh') return fresh(ctx, async () => void (ctx.body = { fresh: true }));
    return next();
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return {
    framework: 'koa',
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    service: otp.service,
    capture,
    close: () => closeServer(server),
  };
};

/** Every framework the HTTP contract suite runs against (Koa twice: cookie sessions and an external session store). */
export const frameworks: Array<[string, AppFactory]> = [
  ['express', expressApp],
  ['koa', (options) => koaApp(options)],
  ['koa with an external session store', (options) => koaApp({ ...options, sessionStore: mapSessionStore() })],
];
