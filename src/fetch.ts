/**
 * `blockid-otp/fetch`: the Web-standard adapter. `otp.fetch(request, context?)` answers the
 * endpoints as a `Request` → `Response` function, for `Bun.serve`, `Deno.serve`, Next.js route
 * handlers and any runtime with Web `Request`/`Response`; the session is one sealed cookie.
 */
import { isRequest, notCalledError, withOtpApi, type OtpApi } from './core/http/adapter.js';
import type { RequireOtpOptions } from './core/http/guard.js';
import { createWebCore, toResponse, type OtpHandlerOptions, type OtpSession, type PlatformContext } from './core/http/web.js';

export { cookieSession, type CookieSession, type CookieSessionOptions } from './core/http/cookie-session.js';
export type { FetchContext, OtpHandlerOptions, OtpSession, PlatformContext } from './core/http/web.js';
export type { RequireOtpOptions } from './core/http/guard.js';
export type { OtpApi } from './core/http/adapter.js';

export interface OtpHandler extends OtpApi {
  /**
   * The endpoints under `basePath`; 404 `{ "error": "not_found" }` for any other path. `context`
   * is a `FetchContext`, or what a platform passes: Next.js's `{ params }` (ignored), Bun's server
   * and Deno's `info` (the client's IP is read from them).
   */
  fetch(request: Request, context?: PlatformContext): Promise<Response>;
  /** The same, but `null` for a path outside `basePath`, so an app can chain its own routes. */
  handle(request: Request, context?: PlatformContext): Promise<Response | null>;
  /** `null` when the request's session is verified; else the refusal (401 `otp_required`, or 303 to `redirectTo` for pages). */
  requireOtp(request: Request, options?: RequireOtpOptions): Promise<Response | null>;
  /** The verified session flag, or `null`. */
  readSession(request: Request): Promise<OtpSession | null>;
  /** A `Set-Cookie` header value that ends the session (sign-out). */
  clearSession(): string;
}

const notFound = { error: 'not_found', message: 'No blockid-otp endpoint at this path.' };

/** `createOtpHandler(options)`: the OTP endpoints as a fetch handler, with a cookie session. */
export function createOtpHandler(options: OtpHandlerOptions): OtpHandler {
  if (isRequest(options) || options instanceof Request) throw notCalledError('createOtpHandler', 'createOtpHandler({ secret, resolveUser, email })');
  const core = createWebCore(options, 'createOtpHandler');
  const guard = core.guard(undefined, 'requireOtp');
  return withOtpApi(
    {
      // Arrow functions: `export const POST = otp.fetch` and `Bun.serve({ fetch: otp.fetch })` call them unbound.
      fetch: async (request, context) =>
        (await core.handle(request, context)) ?? toResponse({ status: 404, headers: { 'Cache-Control': 'no-store' }, body: notFound }),
      handle: (request, context) => core.handle(request, context),
      requireOtp: (request, guardOptions) => (guardOptions === undefined ? guard(request) : core.guard(guardOptions, 'requireOtp')(request)),
      readSession: (request) => core.readSession(request),
      clearSession: () => core.sessions.clear(),
    } satisfies Omit<OtpHandler, keyof OtpApi>,
    core.service,
  );
}
