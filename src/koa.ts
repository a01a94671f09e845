/**
 * `blockid-otp/koa`: the Koa adapter, a thin translation between Koa (with koa-session)
 * and the framework-free core. Every rule lives in `src/core/`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readJsonBody, readTextBody } from './core/http/body.js';
import { createHttpHandler, sessionMissingMessage, type SessionPort } from './core/http/handler.js';
import { createGuard, type RequireOtpOptions } from './core/http/guard.js';
import {
  afterResponse,
  insecureCookieMessage,
  isRequest,
  notCalledError,
  requireResolveUser,
  sessionOrderError,
  trustAllProxiesError,
  withOtpApi,
  type OtpApi,
} from './core/http/adapter.js';
import { createOtpService } from './core/service.js';
import type { OtpOptions } from './core/options.js';
import { cookieSessionsOf, createCookieSessions, takeCookieSession, type CookieSession } from './core/http/cookie-session.js';

export type { RequireOtpOptions } from './core/http/guard.js';
export type { OtpOptions } from './core/options.js';
export { cookieSession, type CookieSession, type CookieSessionOptions } from './core/http/cookie-session.js';
export type { OtpApi } from './core/http/adapter.js';

type KoaNext = () => Promise<unknown>;

/** The slice of koa-session's `ctx.session` that blockid-otp uses (`regenerate()` since koa-session 6.4). */
interface KoaSession {
  [key: string]: unknown;
  regenerate?(): Promise<void>;
}

/** The slice of a Koa context that blockid-otp uses; no dependency on Koa's types. */
interface KoaContext {
  method: string;
  path: string;
  querystring: string;
  ip: string;
  headers: IncomingMessage['headers'];
  req: IncomingMessage;
  res: ServerResponse;
  request: { body?: unknown };
  app: { proxy?: boolean; maxIpsCount?: number };
  /** koa-session: undefined without it, null after `ctx.session = null`. */
  session?: KoaSession | null;
  /** koa-session's options (its getter on the app's context), e.g. whether the cookie is `secure`. */
  sessionOptions?: { secure?: unknown };
  /** Whether the request came over https (X-Forwarded-Proto counts with `app.proxy`). */
  secure: boolean;
  status: number;
  body: unknown;
  set(headers: Record<string, string>): void;
  append(name: string, value: string): void;
}

/** `blockidOtpKoa` options: every core option, and optionally `session: cookieSession()` instead of koa-session. */
export interface BlockidOtpKoaOptions extends OtpOptions {
  /** `cookieSession(...)`: the session in one sealed cookie, no koa-session needed. Default: koa-session's `ctx.session`. */
  session?: CookieSession | undefined;
}

/** `blockidOtpKoa(options)`: Koa middleware serving the OTP endpoints, plus the programmatic API. */
// biome-ignore lint/suspicious/noExplicitAny: any Koa context, without making @types/koa a dependency
export type BlockidOtpKoaMiddleware = ((ctx: any, next: () => Promise<unknown>) => Promise<void>) & OtpApi;

function sessionPort(ctx: KoaContext): SessionPort | undefined {
  const session = ctx.session;
  if (session === undefined || (session !== null && typeof session.regenerate !== 'function')) return undefined;
  const current = (): KoaSession => {
    ctx.session ??= {}; // a session dropped earlier in this request starts over
    return ctx.session;
  };
  return {
    read: (name) => ctx.session?.[name],
    write: (name, value) => {
      current()[name] = value;
    },
    // koa-session's regenerate() keeps the data under a new id; the contract wants none carried over.
    regenerate: async () => {
      ctx.session = {};
      const fresh = current();
      if (typeof fresh.regenerate !== 'function') throw new TypeError(sessionMissingMessage);
      await fresh.regenerate();
    },
  };
}

/**
 * Refuses `app.proxy = true` without `app.maxIpsCount` (Koa then takes the client's own
 * X-Forwarded-For entry as `ctx.ip`), or with 10 or more: no deployment has that many proxies.
 */
function checkProxy(ctx: KoaContext): void {
  const hops = ctx.app.maxIpsCount ?? 0;
  if (ctx.app.proxy === true && !(hops > 0 && hops < 10)) {
    throw trustAllProxiesError(`app.proxy = true with app.maxIpsCount = ${hops}`, 'app.maxIpsCount = 1');
  }
}

/**
 * What koa-session leaves on a context once its middleware has run (the symbol that holds its
 * per-request state: 7.x, then 6.x). The middleware touches it first thing, before `next()`.
 */
const KOA_SESSION_MARKS = new Set(['contextSession instance', 'context#_contextSession']);

/** True when koa-session is installed on the app but its middleware has not run for this request yet. */
function mountedBeforeKoaSession(ctx: KoaContext): boolean {
  return 'sessionOptions' in ctx && !Object.getOwnPropertySymbols(ctx).some((symbol) => KOA_SESSION_MARKS.has(symbol.description ?? ''));
}

/**
 * koa-session set with `secure: true` on a plain-http request: Koa refuses to write the
 * cookie ("Cannot send secure cookie over unencrypted connection") after the reply is
 * decided. Said first, with the fix, before anything is sent.
 */
function checkCookieCanBeSet(ctx: KoaContext): void {
  if (ctx.method === 'POST' && ctx.sessionOptions?.secure === true && !ctx.secure) {
    throw new Error(insecureCookieMessage('secure: true', 'koa-session'));
  }
}

/** The one writer of every reply: JSON (`body`), HTML (`html`, typed by its headers) or empty. */
function respond(
  ctx: KoaContext,
  reply: { status: number; headers: Record<string, string>; body?: object; html?: string; afterReply?: () => Promise<void> },
  setCookie?: string,
): void {
  // Koa writes the reply after the middleware returns: deliveries start once it is written.
  if (reply.afterReply !== undefined) afterResponse(ctx.res, reply.afterReply);
  ctx.status = reply.status;
  ctx.set(reply.headers);
  if (setCookie !== undefined) ctx.append('Set-Cookie', setCookie);
  ctx.body = reply.html ?? reply.body ?? '';
}

export function blockidOtpKoa(options: BlockidOtpKoaOptions): BlockidOtpKoaMiddleware {
  if (isRequest(options)) throw notCalledError('blockidOtpKoa', 'blockidOtpKoa({ secret, resolveUser, sms })');
  const { session: cookie, rest } = takeCookieSession(options, 'blockidOtpKoa');
  const service = createOtpService(rest, 'blockidOtpKoa');
  requireResolveUser('blockidOtpKoa', rest);
  const handle = createHttpHandler(service);
  const { maxBodyBytes } = service.options;
  const cookies = cookie === undefined ? undefined : createCookieSessions(cookie, service.options.secret);
  let orderChecked = false;

  const middleware = async (ctx: KoaContext, next: KoaNext): Promise<void> => {
    checkProxy(ctx);
    if (cookies !== undefined) cookieSessionsOf.set(ctx, cookies);
    if (!handle.mayServe(ctx.path)) return void (await next());
    if (cookies === undefined) {
      // The order of middleware never changes: once seen right, it stays right.
      if (!orderChecked) {
        if (mountedBeforeKoaSession(ctx)) throw sessionOrderError('blockidOtpKoa');
        orderChecked = true;
      }
      checkCookieCanBeSet(ctx);
    }
    const state = cookies === undefined ? undefined : await cookies.load(ctx.headers.cookie);
    const reply = await handle({
      method: ctx.method,
      path: ctx.path,
      contentType: ctx.headers['content-type'],
      acceptLanguage: ctx.headers['accept-language'],
      ip: ctx.ip || undefined,
      body: () => readJsonBody(ctx.req, ctx.request.body, maxBodyBytes),
      text: () => readTextBody(ctx.req, ctx.request.body, maxBodyBytes),
      header: (name) => {
        const value = ctx.headers[name];
        return Array.isArray(value) ? value[0] : value;
      },
      query: ctx.querystring,
      session: state?.port ?? sessionPort(ctx),
      req: ctx,
    });
    if (reply === undefined) return void (await next());
    respond(ctx, reply, await state?.setCookie());
  };

  return withOtpApi(middleware, service);
}

/** `requireOtpKoa(options?)`: lets verified sessions through; 401 `otp_required`, or 303 for pages when `redirectTo` is set. */
// biome-ignore lint/suspicious/noExplicitAny: any Koa context, without making @types/koa a dependency
export function requireOtpKoa(options?: RequireOtpOptions): (ctx: any, next: () => Promise<unknown>) => Promise<void> {
  if (isRequest(options)) throw notCalledError('requireOtpKoa', 'requireOtpKoa()');
  const guard = createGuard(options, 'requireOtpKoa');
  return async (ctx: KoaContext, next: KoaNext) => {
    const cookies = cookieSessionsOf.get(ctx);
    const session = cookies === undefined ? sessionPort(ctx) : (await cookies.load(ctx.headers.cookie)).port;
    const refusal = guard(session, ctx.headers.accept);
    if (refusal === undefined) return void (await next());
    respond(ctx, refusal);
  };
}
