/**
 * What every framework adapter shares: the programmatic API it carries, and the misuse it
 * catches the same way, with messages that say what to write instead.
 */
import type { OtpEventName, OtpListener } from '../events.js';
import type { RecoveryCodeSet } from '../verify/recovery.js';
import type { TotpEnrollment, TotpEnrollOptions } from '../verify/totp.js';
import type { GenerateResult, OtpService } from '../service.js';
import type { Destinations } from '../types.js';
import type { VerifyResult } from '../verify/verifier.js';
import { configError, withDocsLink } from '../errors.js';

/**
 * The programmatic API a middleware carries (the BlockID SDK's `OTP.GenerateOTP`, and more),
 * and nothing else of the service: no resolved options, no store, no secret. Written out
 * member by member (not picked from the service) so the published types name no internals.
 */
export interface OtpApi {
  /** One code to every destination given; waits for delivery. `context.ip` is counted by the per-IP quota. */
  readonly generateOtp: (username: string, destinations: Destinations, context?: { ip?: string | undefined }) => Promise<GenerateResult>;
  /** `{ ok: true }` once for the right code; `{ ok: false, reason }` otherwise. */
  readonly verifyOtp: (username: string, code: string) => Promise<VerifyResult>;
  /** Lifts every lock of a username and resets its failure count. */
  readonly unlock: (username: string) => Promise<void>;
  /** Authenticator apps (TOTP, RFC 6238): enrollment and its first confirmation; sign-in is `method: 'totp'` on /verify. */
  readonly totp: {
    enroll(username: string, options?: TotpEnrollOptions): Promise<TotpEnrollment>;
    confirm(username: string, sealed: string, code: string): Promise<boolean>;
  };
  /** One-time recovery codes, and the hashes the app stores. */
  readonly recoveryCodes: {
    generate(options?: { count?: number | undefined }): Promise<RecoveryCodeSet>;
  };
  /** Adds an event listener; returns the middleware, for chaining. */
  on<E extends OtpEventName>(event: E, listener: OtpListener<E>): this;
  /** Removes an event listener; returns the middleware, for chaining. */
  off<E extends OtpEventName>(event: E, listener: OtpListener<E>): this;
}

/** An adapter's middleware that also carries the programmatic API. */
export type WithOtpApi<Middleware> = Middleware & OtpApi;

/**
 * The service behind each middleware, kept here rather than on the middleware so that
 * nothing an app (or an attacker with a reference to the middleware) can walk reaches the
 * secret or the resolved options.
 */
const services = new WeakMap<object, OtpService>();

/**
 * @internal The service behind a middleware, for the package's own tests. Not exported from
 * any package entry.
 */
export function serviceOf(middleware: object): OtpService {
  return lookupService(middleware);
}

function lookupService(middleware: object): OtpService {
  const service = services.get(middleware);
  if (service === undefined) throw new TypeError('serviceOf: this is not a blockid-otp middleware.');
  return service;
}

export function withOtpApi<Middleware extends object>(middleware: Middleware, service: OtpService): WithOtpApi<Middleware> {
  services.set(middleware, service);
  const self = middleware as WithOtpApi<Middleware>;
  const api: OtpApi = {
    generateOtp: service.generateOtp,
    verifyOtp: service.verifyOtp,
    unlock: service.unlock,
    // Copies: the service's own objects stay out of reach of a caller that changes these.
    totp: { enroll: service.totp.enroll, confirm: service.totp.confirm },
    recoveryCodes: { generate: service.recoveryCodes.generate },
    // The service's own on/off return the service; these return the middleware (`this` in OtpApi), also when called detached.
    on: (event, listener) => {
      service.on(event, listener);
      return self as never;
    },
    off: (event, listener) => {
      service.off(event, listener);
      return self as never;
    },
  };
  return Object.assign(middleware, api);
}

/**
 * Runs `work` once the response is done: a ServerResponse emits `close` after `finish` (the
 * answer handed to the socket) and also when the connection is gone without it. Never before
 * the answer is written, and never inside the request's own tick, so a sender's synchronous
 * work does not delay the reply. One listener: this runs on every send.
 */
export function afterResponse(res: { once(event: 'close', listener: () => void): unknown }, work: () => unknown): void {
  res.once('close', () => setImmediate(() => void work()));
}

/**
 * The HTTP endpoints look every username up: without `resolveUser` each send would fail on
 * the first request, so the middleware refuses to be created instead. The programmatic API
 * alone (`createOtpService`) needs no `resolveUser`.
 */
export function requireResolveUser(factory: string, options: { resolveUser?: unknown }): void {
  if (options.resolveUser === undefined) {
    throw configError(
      `${factory}: option "resolveUser" is required for the HTTP endpoints, e.g. resolveUser: async (username, req) => users.find(username) ` +
        "(the user's { smsTo, smsISDCode, emailTo }, or null for an unknown user). For the programmatic API alone, use createOtpService(options).",
    );
  }
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
