/** The Express adapter: a thin translation between Express and the framework-free core. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readJsonBody } from './core/body.js';
import { createHttpHandler, SESSION_FLAG, sessionMissingMessage, type HttpExchange, type SessionPort } from './core/http.js';
import { isVerified, otpRequiredBody, resolveGuardOptions, wantsHtml, type RequireOtpOptions } from './core/guard.js';
import { createOtpService, type OtpService } from './core/service.js';
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
  app?: { get(setting: string): unknown };
}

interface ExpressResponse extends ServerResponse {
  status?(code: number): ExpressResponse;
}

/** `blockidOtp(options)`: Express middleware serving the OTP endpoints, plus the programmatic API. */
export type BlockidOtpMiddleware = ((req: any, res: any, next: Next) => void) &
  Pick<OtpService, 'generateOtp' | 'verifyOtp' | 'on' | 'off'> & { readonly service: OtpService };

const notCalled = (name: string, example: string) =>
  new TypeError(`${name} was passed to app.use() without being called: write app.use(${example}).`);

function isRequest(value: unknown): boolean {
  return value !== null && typeof value === 'object' && 'method' in value && 'headers' in value && 'url' in value;
}

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
  };
}

/** Refuses `app.set('trust proxy', true)`: with it any client picks its own IP and escapes per-IP quotas. */
function checkTrustProxy(req: ExpressRequest): void {
  if (req.app?.get('trust proxy') === true) {
    throw new TypeError(
      "blockid-otp: app.set('trust proxy', true) lets any client choose its IP through X-Forwarded-For, which defeats the per-IP send quota. " +
        "Set the number of proxies in front of the app instead, e.g. app.set('trust proxy', 1).",
    );
  }
}

export function blockidOtp(options: OtpOptions): BlockidOtpMiddleware {
  if (isRequest(options)) throw notCalled('blockidOtp', 'blockidOtp({ secret, resolveUser, sms })');
  const service = createOtpService(options, 'blockidOtp');
  const handle = createHttpHandler(service);
  const { maxBodyBytes } = service.options;

  const middleware = (req: ExpressRequest, res: ExpressResponse, next: Next): void => {
    const exchange: HttpExchange = {
      method: req.method ?? 'GET',
      path: req.path ?? new URL(req.url ?? '/', 'http://x').pathname,
      contentType: req.headers['content-type'],
      acceptLanguage: req.headers['accept-language'],
      ip: req.ip ?? req.socket.remoteAddress,
      body: () => readJsonBody(req, req.body, maxBodyBytes),
      session: sessionPort(req),
      req,
    };
    let handled: Promise<unknown>;
    try {
      checkTrustProxy(req);
      handled = handle(exchange).then((reply) => {
        if (reply === undefined) return next();
        res.statusCode = reply.status;
        for (const [name, value] of Object.entries(reply.headers)) res.setHeader(name, value);
        res.setHeader('Content-Type', 'application/json; charset=utf-8');
        res.end(JSON.stringify(reply.body));
      });
    } catch (error) {
      handled = Promise.reject(error);
    }
    handled.catch(next);
  };

  return Object.assign(middleware, {
    service,
    generateOtp: service.generateOtp,
    verifyOtp: service.verifyOtp,
    on: service.on,
    off: service.off,
  }) as BlockidOtpMiddleware;
}

/** `requireOtp(options?)`: lets verified sessions through; 401 `otp_required`, or 303 for pages when `redirectTo` is set. */
export function requireOtp(options?: RequireOtpOptions): (req: any, res: any, next: Next) => void {
  if (isRequest(options)) throw notCalled('requireOtp', 'requireOtp()');
  const { redirectTo, maxAgeSeconds } = resolveGuardOptions(options, 'requireOtp');
  return (req: ExpressRequest, res: ExpressResponse, next: Next) => {
    if (sessionPort(req) === undefined) return next(new TypeError(`requireOtp(): ${sessionMissingMessage}`));
    if (isVerified(req.session?.[SESSION_FLAG], maxAgeSeconds)) return next();
    if (redirectTo !== undefined && wantsHtml(req.headers.accept)) {
      res.statusCode = 303;
      res.setHeader('Location', redirectTo);
      res.setHeader('Cache-Control', 'no-store');
      return res.end();
    }
    res.statusCode = 401;
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.end(JSON.stringify(otpRequiredBody));
  };
}
