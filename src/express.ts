/** The Express adapter: a thin translation between Express and the framework-free core. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readJsonBody, readTextBody } from './core/http/body.js';
import { createHttpHandler, type HttpExchange, type SessionPort } from './core/http/handler.js';
import { createGuard, type RequireOtpOptions } from './core/http/guard.js';
import {
  afterResponse,
  insecureCookieMessage,
  isRequest,
  notCalledError,
  requireResolveUser,
  trustAllProxiesError,
  withOtpApi,
  type OtpApi,
} from './core/http/adapter.js';
import { createOtpService } from './core/service.js';
import type { OtpOptions } from './core/options.js';
import { cookieSessionsOf, createCookieSessions, takeCookieSession, type CookieSession, type CookieSessionState } from './core/http/cookie-session.js';

type Next = (error?: unknown) => void;

/** The slice of express-session's `req.session` that blockid-otp uses. */
interface ExpressSession {
  [key: string]: unknown;
  regenerate(callback: (error?: unknown) => void): void;
}

interface ExpressRequest extends IncomingMessage {
  path?: string;
  /** https, or X-Forwarded-Proto: https from a trusted proxy. */
  secure?: boolean;
  ip?: string;
  body?: unknown;
  session?: ExpressSession;
  sessionID?: string;
  app?: { get(setting: string): unknown };
}

interface ExpressResponse extends ServerResponse {
  status?(code: number): ExpressResponse;
}

/** `blockidOtp` options: every core option, and optionally `session: cookieSession()` instead of express-session. */
export interface BlockidOtpOptions extends OtpOptions {
  /** `cookieSession(...)`: the session in one sealed cookie, no express-session needed. Default: express-session's `req.session`. */
  session?: CookieSession | undefined;
}

/** `blockidOtp(options)`: Express middleware serving the OTP endpoints, plus the programmatic API. */
// biome-ignore lint/suspicious/noExplicitAny: any Express (4 or 5) request and response, without making @types/express a dependency
export type BlockidOtpMiddleware = ((req: any, res: any, next: (error?: unknown) => void) => void) & OtpApi;

function sessionPort(req: ExpressRequest): SessionPort | undefined {
  const session = req.session;
  if (session === undefined || session === null || typeof session.regenerate !== 'function') return undefined;
  return {
    read: (name) => req.session?.[name],
    write: (name, value) => {
      if (req.session) req.session[name] = value;
    },
    regenerate: () =>
      new Promise<void>((resolve, reject) => {
        session.regenerate((error) => (error ? reject(error) : resolve()));
      }),
    id: () => (typeof req.sessionID === 'string' && req.sessionID !== '' ? `sid:${req.sessionID}` : undefined),
  };
}

const checkedApps = new WeakSet<object>();

/**
 * Refuses a `trust proxy` setting that trusts any number of hops from anywhere (`true`,
 * `'0.0.0.0/0'`, a huge hop count, a function that always says yes): with it any client
 * picks its own IP through X-Forwarded-For and escapes the per-IP quota. Checked once per app.
 */
function checkTrustProxy(req: ExpressRequest): void {
  const app = req.app;
  if (app === undefined || checkedApps.has(app)) return;
  const trusts = app.get('trust proxy fn');
  // Trusting 10 hops or more is trusting whatever the client writes: no real deployment has that many proxies.
  const trustsAnyone =
    typeof trusts === 'function' &&
    [
      ['198.51.100.7', 9],
      ['2001:db8::7', 9],
    ].some(([address, hop]) => trusts(address, hop) === true);
  if (trustsAnyone) {
    throw trustAllProxiesError(`app.set('trust proxy', ${JSON.stringify(app.get('trust proxy')) ?? 'fn'})`, "app.set('trust proxy', 1)");
  }
  checkedApps.add(app);
}

/** The one writer of every reply: JSON (`body`), HTML (`html`, typed by its headers) or empty. */
function writeReply(
  res: ServerResponse,
  reply: { status: number; headers: Record<string, string>; body?: object; html?: string; afterReply?: () => Promise<void> },
  setCookie?: string,
): void {
  if (reply.afterReply !== undefined) afterResponse(res, reply.afterReply);
  if (setCookie !== undefined) res.appendHeader('Set-Cookie', setCookie);
  res.statusCode = reply.status;
  for (const [name, value] of Object.entries(reply.headers)) res.setHeader(name, value);
  if (reply.html !== undefined) {
    res.setHeader('Content-Length', Buffer.byteLength(reply.html));
    return void res.end(reply.html);
  }
  if (reply.body === undefined) return void res.end();
  const text = JSON.stringify(reply.body);
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  // A declared length, as res.json() sends: otherwise express-session's save-then-end makes the
  // reply chunked, one more framed write per request.
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}

/** The raw query string of a request URL, without `?`. */
const queryOf = (url: string | undefined): string => {
  const at = url?.indexOf('?') ?? -1;
  return at === -1 ? '' : url!.slice(at + 1);
};

export function blockidOtp(options: BlockidOtpOptions): BlockidOtpMiddleware {
  if (isRequest(options)) throw notCalledError('blockidOtp', 'blockidOtp({ secret, resolveUser, sms })');
  const { session: cookie, rest } = takeCookieSession(options, 'blockidOtp');
  const service = createOtpService(rest, 'blockidOtp');
  requireResolveUser('blockidOtp', rest);
  const handle = createHttpHandler(service);
  const { maxBodyBytes, logger } = service.options;
  const cookies = cookie === undefined ? undefined : createCookieSessions(cookie, service.options.secret);

  /**
   * express-session with `cookie: { secure: true }` on a plain-http request sets no cookie,
   * without a word: the reply goes out, and the right code then gets 401. Said once, with the fix.
   */
  let cookieWarned = false;
  const warnIfCookieDropped = (req: ExpressRequest): void => {
    const cookie = req.session?.cookie as { secure?: unknown } | undefined;
    if (cookieWarned || cookie?.secure !== true || req.secure === true || (req.socket as { encrypted?: boolean }).encrypted === true) return;
    cookieWarned = true;
    const message = insecureCookieMessage('cookie: { secure: true }', 'express-session');
    if (logger !== undefined) logger.warn({ event: 'otp.cookie_not_set' }, message);
    else console.warn(message);
  };

  const middleware = (req: ExpressRequest, res: ExpressResponse, next: Next): void => {
    try {
      checkTrustProxy(req);
    } catch (error) {
      next(error);
      return;
    }
    if (cookies !== undefined) cookieSessionsOf.set(req, cookies);
    const path = req.path ?? new URL(req.url ?? '/', 'http://x').pathname;
    if (!handle.mayServe(path)) {
      next();
      return;
    }
    void serve(req, res, next, path);
  };

  const serve = async (req: ExpressRequest, res: ExpressResponse, next: Next, path: string): Promise<void> => {
    let state: CookieSessionState | undefined;
    try {
      state = cookies === undefined ? undefined : await cookies.load(req.headers.cookie);
    } catch (error) {
      return next(error);
    }
    const exchange: HttpExchange = {
      method: req.method ?? 'GET',
      path,
      contentType: req.headers['content-type'],
      acceptLanguage: req.headers['accept-language'],
      ip: req.ip ?? req.socket.remoteAddress,
      body: () => readJsonBody(req, req.body, maxBodyBytes),
      text: () => readTextBody(req, req.body, maxBodyBytes),
      header: (name) => {
        const value = req.headers[name];
        return Array.isArray(value) ? value[0] : value;
      },
      query: queryOf(req.url),
      session: state?.port ?? sessionPort(req),
      req,
    };
    try {
      const reply = await handle(exchange);
      if (reply === undefined) return next();
      if (state === undefined && exchange.method === 'POST' && reply.status < 300) warnIfCookieDropped(req);
      writeReply(res, reply, await state?.setCookie());
    } catch (error) {
      next(error);
    }
  };

  return withOtpApi(middleware, service);
}

/** `requireOtp(options?)`: lets verified sessions through; 401 `otp_required`, or 303 for pages when `redirectTo` is set. */
// biome-ignore lint/suspicious/noExplicitAny: any Express (4 or 5) request and response, without making @types/express a dependency
export function requireOtp(options?: RequireOtpOptions): (req: any, res: any, next: (error?: unknown) => void) => void {
  if (isRequest(options)) throw notCalledError('requireOtp', 'requireOtp()');
  const guard = createGuard(options, 'requireOtp');
  return (req: ExpressRequest, res: ExpressResponse, next: Next) => {
    const cookies = cookieSessionsOf.get(req);
    if (cookies !== undefined) {
      // The plugin's cookie session (opened through the same promise API as on every adapter).
      cookies.load(req.headers.cookie).then((state) => {
        const refusal = guard(state.port, req.headers.accept);
        if (refusal === undefined) return next();
        writeReply(res, refusal);
      }, next);
      return;
    }
    let refusal: ReturnType<typeof guard>;
    try {
      refusal = guard(sessionPort(req), req.headers.accept);
    } catch (error) {
      return next(error);
    }
    if (refusal === undefined) return next();
    writeReply(res, refusal);
  };
}
