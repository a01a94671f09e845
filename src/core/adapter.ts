/**
 * What every framework adapter shares: the programmatic API it carries, and the misuse it
 * catches the same way, with messages that say what to write instead.
 */
import type { OtpService } from './service.js';

/** An adapter's middleware that also carries the programmatic API (the seed's `GenerateOTP`). */
export type WithOtpApi<Middleware> = Middleware &
  Pick<OtpService, 'generateOtp' | 'verifyOtp' | 'unlock' | 'totp' | 'recoveryCodes' | 'on' | 'off'> & { readonly service: OtpService };

const services = new WeakMap<object, OtpService>();

/** Remembers which service an adapter's object fronts, for the tests (`serviceOf`), without a property that would expose it. */
export function registerService(api: object, service: OtpService): void {
  services.set(api, service);
}

/** The service behind an adapter's object: internal, for the test suite; no package entry exports it. */
export function serviceOf(api: object): OtpService {
  const service = services.get(api);
  if (service === undefined) throw new TypeError('not a blockid-otp adapter object');
  return service;
}

export function withOtpApi<Middleware extends object>(middleware: Middleware, service: OtpService): WithOtpApi<Middleware> {
  registerService(middleware, service);
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
  return new TypeError(`${name} was passed to app.use() without being called: write app.use(${example}).`);
}

/**
 * A framework set to trust every X-Forwarded-For entry: any client then picks its own IP
 * and escapes the per-IP send quota. `setting` names what was set, `fix` what to set instead.
 */
export function trustAllProxiesError(setting: string, fix: string): TypeError {
  return new TypeError(
    `blockid-otp: ${setting} lets any client choose its IP through X-Forwarded-For, which defeats the per-IP send quota. ` +
      `Set the number of proxies in front of the app instead, e.g. ${fix}.`,
  );
}
