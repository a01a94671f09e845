/**
 * `blockid-otp/koa`: the Koa adapter, a thin translation between Koa (with koa-session)
 * and the framework-free core. Every rule lives in `src/core/`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readJsonBody } from './core/body.js';
import { createHttpHandler, sessionMissingMessage, type SessionPort } from './core/http.js';
import { createGuard, type RequireOtpOptions } from './core/guard.js';
import { afterResponse, isRequest, notCalledError, requireResolveUser, trustAllProxiesError, withOtpApi, type OtpApi } from './core/adapter.js';
import { createOtpService } from './core/service.js';
import type { OtpOptions } from './core/options.js';

export type { RequireOtpOptions } from './core/guard.js';
export type { OtpOptions } from './core/options.js';
export type { OtpApi } from './core/adapter.js';

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
  ip: string;
  headers: IncomingMessage['headers'];
  req: IncomingMessage;
  res: ServerResponse;
  request: { body?: unknown };
  app: { proxy?: boolean; maxIpsCount?: number };
  /** koa-session: undefined without it, null after `ctx.session = null`. */
  session?: KoaSession | null;
  status: number;
  body: unknown;
  set(headers: Record<string, string>): void;
}

/** `blockidOtpKoa(options)`: Koa middleware serving the OTP endpoints, plus the programmatic API. */
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

function respond(ctx: KoaContext, reply: { status: number; headers: Record<string, string>; body?: object; afterReply?: () => void }): void {
  // Koa writes the reply after the middleware returns: deliveries start once it is written.
  if (reply.afterReply !== undefined) afterResponse(ctx.res, reply.afterReply);
  ctx.status = reply.status;
  ctx.set(reply.headers);
  ctx.body = reply.body ?? '';
}

export function blockidOtpKoa(options: OtpOptions): BlockidOtpKoaMiddleware {
  if (isRequest(options)) throw notCalledError('blockidOtpKoa', 'blockidOtpKoa({ secret, resolveUser, sms })');
  const service = createOtpService(options, 'blockidOtpKoa');
  requireResolveUser('blockidOtpKoa', options);
  const handle = createHttpHandler(service);
  const { maxBodyBytes } = service.options;

  const middleware = async (ctx: KoaContext, next: KoaNext): Promise<void> => {
    checkProxy(ctx);
    if (!handle.mayServe(ctx.path)) return void (await next());
    const reply = await handle({
      method: ctx.method,
      path: ctx.path,
      contentType: ctx.headers['content-type'],
      acceptLanguage: ctx.headers['accept-language'],
      ip: ctx.ip || undefined,
      body: () => readJsonBody(ctx.req, ctx.request.body, maxBodyBytes),
      session: sessionPort(ctx),
      req: ctx,
    });
    if (reply === undefined) return void (await next());
    respond(ctx, reply);
  };

  return withOtpApi(middleware, service);
}

/** `requireOtpKoa(options?)`: lets verified sessions through; 401 `otp_required`, or 303 for pages when `redirectTo` is set. */
export function requireOtpKoa(options?: RequireOtpOptions): (ctx: any, next: () => Promise<unknown>) => Promise<void> {
  if (isRequest(options)) throw notCalledError('requireOtpKoa', 'requireOtpKoa()');
  const guard = createGuard(options, 'requireOtpKoa');
  return async (ctx: KoaContext, next: KoaNext) => {
    const refusal = guard(sessionPort(ctx), ctx.headers.accept);
    if (refusal === undefined) return void (await next());
    respond(ctx, refusal);
  };
}
