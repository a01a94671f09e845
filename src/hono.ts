/**
 * `blockid-otp/hono`: the Hono adapter. The endpoints under `basePath` go to the Web-standard
 * core as `c.req.raw` (Hono never parses their bodies); every other request gets the session
 * flag as `c.get('blockidOtp')` and goes on. Runs on Node (@hono/node-server), Bun and Deno:
 * it imports nothing from a runtime, it reads the client address from what each runtime hands
 * Hono as `c.env`.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { isRequest, notCalledError, withOtpApi, type OtpApi } from './core/http/adapter.js';
import { flagSession } from './core/http/flag-session.js';
import { createGuard, type RequireOtpOptions } from './core/http/guard.js';
import { createWebCore, toResponse, type FetchContext, type OtpHandlerOptions, type OtpSession } from './core/http/web.js';

export { cookieSession, type CookieSession, type CookieSessionOptions } from './core/http/cookie-session.js';
export type { OtpHandlerOptions, OtpSession } from './core/http/web.js';
export type { RequireOtpOptions } from './core/http/guard.js';

/** What the middleware puts on the context: `c.get('blockidOtp')` is the verified flag or `null`. */
export interface BlockidOtpVariables {
  blockidOtp: OtpSession | null;
}

/** For `new Hono<BlockidOtpEnv>()`; `new Hono().use(blockidOtpHono(...))` infers it. */
export interface BlockidOtpEnv {
  Variables: BlockidOtpVariables;
}

export interface BlockidOtpHonoOptions extends OtpHandlerOptions {
  /**
   * The client's address, where the runtime is not one this adapter knows (Node, Bun, Deno),
   * e.g. `(c) => getConnInfo(c).remote.address` with Hono's helper for your runtime, or
   * `(c) => c.req.header('cf-connecting-ip')` on Cloudflare. `trustProxy` still applies first.
   */
  getIp?: ((c: Context) => string | undefined) | undefined;
}

export interface BlockidOtpHonoMiddleware extends MiddlewareHandler<BlockidOtpEnv>, OtpApi {
  /** A `Set-Cookie` header value that ends the session (sign-out): `c.header('Set-Cookie', otp.clearSession())`. */
  clearSession(): string;
}

/** The flag each request was given by a `blockidOtpHono` middleware: how a guard knows one ran in front of it. */
const flags = new WeakMap<Context, OtpSession | null>();

/** Hono calls a middleware with (context, next): what a factory gets when it is used without being called. */
function isHonoCall(value: unknown, next: unknown): boolean {
  return typeof next === 'function' && value !== null && typeof value === 'object' && 'req' in value && 'env' in value;
}

/**
 * The server runtime as it hands itself to Hono in `c.env` (what `getConnInfo` of
 * `@hono/node-server/conninfo`, `hono/bun` and `hono/deno` read), with the client's address;
 * `undefined` for a runtime this adapter does not know. Imports no module that only one runtime has.
 */
function serverRuntime(c: Context): { address: string | undefined } | undefined {
  // biome-ignore lint/suspicious/noExplicitAny: each runtime's env has its own shape, probed field by field below
  const env = c.env as Record<string, any> | undefined;
  if (env === null || typeof env !== 'object') return undefined;
  // @hono/node-server: { incoming, outgoing }, or under `server` (e.g. @hono/vite-dev-server).
  const incoming = env.incoming ?? env.server?.incoming;
  if (incoming?.socket !== undefined) return { address: incoming.socket.remoteAddress };
  // Bun.serve({ fetch: app.fetch }): the server itself, or under `server`.
  const server = env.server ?? env;
  if (typeof server?.requestIP === 'function') return { address: server.requestIP(c.req.raw)?.address };
  // Deno.serve(app.fetch): the ServeHandlerInfo.
  const hostname = env.remoteAddr?.hostname;
  return typeof hostname === 'string' ? { address: hostname } : undefined;
}

const runtimeIp = (c: Context): string | undefined => serverRuntime(c)?.address;

/**
 * The platform's `waitUntil` (Cloudflare, Vercel). Node, Bun and Deno hand Hono no execution
 * context, and Hono's getter throws where there is none: a throw costs about 7 µs per send, so
 * it is not asked where `c.env` is one of those servers.
 */
function waitUntilOf(c: Context): FetchContext['waitUntil'] {
  if (serverRuntime(c) !== undefined) return undefined;
  let executionCtx: { waitUntil?: unknown } | undefined;
  // Where the platform gives none (e.g. `app.request()` in tests), Hono's getter throws. Its Error
  // would capture a stack through Hono's and the app's middleware on every send (measured: about
  // 25 µs and the garbage it leaves), so none is captured; the limit is restored at once.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    executionCtx = c.executionCtx;
  } catch {
    return undefined;
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
  const waitUntil = executionCtx?.waitUntil;
  return typeof waitUntil === 'function' ? (promise) => waitUntil.call(executionCtx, promise) : undefined;
}

/**
 * What the core reads of a Hono request beyond the `Request`: the address and `waitUntil`, looked
 * up only for a request the core answers, the address once. Getters on a class, not on an object
 * literal: a literal's getters are new closures on every request, and V8 kept each one (with the
 * request it closed over) until the next full collection, which cost about 30 µs per request.
 */
class HonoFetchContext implements FetchContext {
  #ip: { value: string | undefined } | undefined;
  readonly #c: Context;
  readonly #ipOf: (c: Context) => string | undefined;

  constructor(c: Context, ipOf: (c: Context) => string | undefined) {
    this.#c = c;
    this.#ipOf = ipOf;
  }

  get ip(): string | undefined {
    this.#ip ??= { value: this.#ipOf(this.#c) };
    return this.#ip.value;
  }

  get waitUntil(): FetchContext['waitUntil'] {
    return waitUntilOf(this.#c);
  }
}

/** `blockidOtpHono(options)`: the OTP endpoints and the session flag, plus the programmatic API. */
export function blockidOtpHono(options: BlockidOtpHonoOptions): BlockidOtpHonoMiddleware {
  // biome-ignore lint/complexity/noArguments: a second argument is Hono's `next` when the factory itself was mounted; the public signature takes one
  if (isHonoCall(options, arguments[1]) || isRequest(options)) {
    throw notCalledError('blockidOtpHono', 'blockidOtpHono({ secret, resolveUser, email })');
  }
  if (options === null || typeof options !== 'object')
    throw new TypeError('blockidOtpHono: expected an options object, e.g. blockidOtpHono({ secret, resolveUser, email }).');
  const { getIp, ...rest } = options;
  if (getIp !== undefined && typeof getIp !== 'function') {
    throw new TypeError('blockidOtpHono: option "getIp" must be a function (c) => the client\'s IP address, e.g. (c) => getConnInfo(c).remote.address.');
  }
  const core = createWebCore(rest, 'blockidOtpHono');
  const ipOf = getIp ?? runtimeIp;

  const middleware: MiddlewareHandler<BlockidOtpEnv> = async (c, next) => {
    const request = c.req.raw;
    const response = await core.handle(request, new HonoFetchContext(c, ipOf));
    if (response !== null) return response;
    const flag = await core.readSession(request);
    flags.set(c, flag);
    c.set('blockidOtp', flag);
    await next();
  };

  return withOtpApi(Object.assign(middleware, { clearSession: () => core.sessions.clear() }), core.service) as BlockidOtpHonoMiddleware;
}

const missingPlugin = {
  error: 'server_error',
  message: 'requireOtpHono() ran without blockidOtpHono() in front of it: add app.use(blockidOtpHono({ ... })) before the routes it guards.',
};

/** `requireOtpHono(options?)`: lets verified sessions through; 401 `otp_required`, or 303 for pages when `redirectTo` is set. */
export function requireOtpHono(options?: RequireOtpOptions): MiddlewareHandler<BlockidOtpEnv> {
  // biome-ignore lint/complexity/noArguments: a second argument is Hono's `next` when the factory itself was mounted; the public signature takes one
  if (isHonoCall(options, arguments[1]) || isRequest(options)) throw notCalledError('requireOtpHono', 'requireOtpHono()');
  const decide = createGuard(options, 'requireOtpHono');
  return async (c, next) => {
    if (!flags.has(c)) {
      console.error(`blockid-otp: ${missingPlugin.message}`);
      return toResponse({ status: 500, headers: { 'Cache-Control': 'no-store' }, body: missingPlugin });
    }
    const refusal = decide(flagSession(flags.get(c) ?? null), c.req.header('accept'));
    if (refusal !== undefined) return toResponse(refusal);
    await next();
  };
}
