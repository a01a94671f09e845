/**
 * What every framework adapter shares: the programmatic API it carries, and the misuse it
 * catches the same way, with messages that say what to write instead.
 */
import { configError, withDocsLink } from './errors.js';
import type { OtpService } from './service.js';

/** An adapter's middleware that also carries the programmatic API (the seed's `GenerateOTP`). */
export type WithOtpApi<Middleware> = Middleware &
  Pick<OtpService, 'generateOtp' | 'verifyOtp' | 'unlock' | 'totp' | 'recoveryCodes' | 'on' | 'off'> & { readonly service: OtpService };

export function withOtpApi<Middleware extends object>(middleware: Middleware, service: OtpService): WithOtpApi<Middleware> {
  return Object.assign(middleware, {
    service,
    generateOtp: service.generateOtp,
    verifyOtp: service.verifyOtp,
    unlock: service.unlock,
    totp: service.totp,
    recoveryCodes: service.recoveryCodes,
    on: service.on,
    off: service.off,
  });
}

/**
 * Runs `work` once the response is done: a ServerResponse emits `close` after `finish` (the
 * answer handed to the socket) and also when the connection is gone without it. Never before
 * the answer is written, and never inside the request's own tick, so a sender's synchronous
 * work does not delay the reply. One listener: this runs on every send.
 */
export function afterResponse(res: { once(event: 'close', listener: () => void): unknown }, work: () => void): void {
  res.once('close', () => setImmediate(work));
}

/** True for an HTTP request or a Koa context: what a factory receives when it is mounted without being called. */
export function isRequest(value: unknown): boolean {
  return value !== null && typeof value === 'object' && 'method' in value && 'headers' in value && 'url' in value;
}

/** `app.use(blockidOtp)` instead of `app.use(blockidOtp({ ... }))`. */
export function notCalledError(name: string, example: string): TypeError {
  return configError(`${name} was passed to app.use() without being called: write app.use(${example}).`, 'not-called');
}

/**
 * A framework set to trust every X-Forwarded-For entry: any client then picks its own IP
 * and escapes the per-IP send quota. `setting` names what was set, `fix` what to set instead.
 */
export function trustAllProxiesError(setting: string, fix: string): TypeError {
  return configError(
    `blockid-otp: ${setting} lets any client choose its IP through X-Forwarded-For, which defeats the per-IP send quota. ` +
      `Set the number of proxies in front of the app instead, e.g. ${fix}.`,
    'trust-proxy',
  );
}

/**
 * Koa: blockid-otp mounted before koa-session. koa-session defines `ctx.session` on the app's
 * context when it is created, so a session can be read and written there, but only its own
 * middleware saves it: a code sent there could never be verified.
 */
export function sessionOrderError(factory: string): TypeError {
  return configError(
    `${factory} runs before koa-session, so the session it writes is never saved and a code it sends could never be verified: ` +
      `mount koa-session first, app.use(session(app)) then app.use(${factory}({ ... })).`,
    'session-order',
  );
}

/**
 * A session cookie marked `Secure` on a plain-http request: the browser never gets it (or
 * the framework refuses to write it), so the right code is refused for want of a session.
 * `setting` names what was set, `framework` the session middleware.
 */
export function insecureCookieMessage(setting: string, framework: string): string {
  return withDocsLink(
    `blockid-otp: ${framework} is set with ${setting}, but this request came over plain http, so no session cookie can be set and the code can never verify. ` +
      'Serve the app over https (behind a proxy: set the number of proxies, so X-Forwarded-Proto counts), or set secure only in production, ' +
      "e.g. secure: process.env.NODE_ENV === 'production'.",
    'cookie-not-set',
  );
}
