/** The Express adapter: a thin translation between Express and the framework-free core. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readJsonBody } from './core/body.js';
import { createHttpHandler, type HttpExchange, type SessionPort } from './core/http.js';
import { createGuard, type RequireOtpOptions } from './core/guard.js';
import { afterResponse, isRequest, notCalledError, requireResolveUser, trustAllProxiesError, withOtpApi, type OtpApi } from './core/adapter.js';
import { createOtpService } from './core/service.js';
import type { OtpOptions } from './core/options.js';

type Next = (error?: unknown) => void;

/** The slice of express-session's `req.session` that blockid-otp uses. */
interface ExpressSession {
  [key: string]: unknown;
  regenerate(callback: (error?: unknown) => void): void;
}

interface ExpressRequest extends IncomingMessage {
  path?: string;
  ip?: string;
  body?: unknown;
  session?: ExpressSession;
  sessionID?: string;
  app?: { get(setting: string): unknown };
}

interface ExpressResponse extends ServerResponse {
  status?(code: number): ExpressResponse;
}

/** `blockidOtp(options)`: Express middleware serving the OTP endpoints, plus the programmatic API. */
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
    typeof trusts === 'function' && [['198.51.100.7', 9], ['2001:db8::7', 9]].some(([address, hop]) => trusts(address, hop) === true);
  if (trustsAnyone) {
    throw trustAllProxiesError(`app.set('trust proxy', ${JSON.stringify(app.get('trust proxy')) ?? 'fn'})`, "app.set('trust proxy', 1)");
  }
  checkedApps.add(app);
}

function writeReply(res: ServerResponse, reply: { status: number; headers: Record<string, string>; body?: object; afterReply?: () => void }): void {
  if (reply.afterReply !== undefined) afterResponse(res, reply.afterReply);
  res.statusCode = reply.status;
  for (const [name, value] of Object.entries(reply.headers)) res.setHeader(name, value);
  if (reply.body === undefined) return void res.end();
  const text = JSON.stringify(reply.body);
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  // A declared length, as res.json() sends: otherwise express-session's save-then-end makes the
  // reply chunked, one more framed write per request.
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}

export function blockidOtp(options: OtpOptions): BlockidOtpMiddleware {
  if (isRequest(options)) throw notCalledError('blockidOtp', 'blockidOtp({ secret, resolveUser, sms })');
  const service = createOtpService(options, 'blockidOtp');
  requireResolveUser('blockidOtp', options);
  const handle = createHttpHandler(service);
  const { maxBodyBytes } = service.options;

  const middleware = (req: ExpressRequest, res: ExpressResponse, next: Next): void => {
    try {
      checkTrustProxy(req);
    } catch (error) {
      return next(error);
    }
    const path = req.path ?? new URL(req.url ?? '/', 'http://x').pathname;
    if (!handle.mayServe(path)) return next();
    const exchange: HttpExchange = {
      method: req.method ?? 'GET',
      path,
      contentType: req.headers['content-type'],
      acceptLanguage: req.headers['accept-language'],
      ip: req.ip ?? req.socket.remoteAddress,
      body: () => readJsonBody(req, req.body, maxBodyBytes),
      session: sessionPort(req),
      req,
    };
    handle(exchange)
      .then((reply) => {
        if (reply === undefined) return next();
        writeReply(res, reply);
      })
      .catch(next);
  };

  return withOtpApi(middleware, service);
}

/** `requireOtp(options?)`: lets verified sessions through; 401 `otp_required`, or 303 for pages when `redirectTo` is set. */
export function requireOtp(options?: RequireOtpOptions): (req: any, res: any, next: (error?: unknown) => void) => void {
  if (isRequest(options)) throw notCalledError('requireOtp', 'requireOtp()');
  const guard = createGuard(options, 'requireOtp');
  return (req: ExpressRequest, res: ExpressResponse, next: Next) => {
    let refusal;
    try {
      refusal = guard(sessionPort(req), req.headers.accept);
    } catch (error) {
      return next(error);
    }
    if (refusal === undefined) return next();
    writeReply(res, refusal);
  };
}
