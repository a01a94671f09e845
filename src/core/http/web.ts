/**
 * The Web-standard front door: a `Request` in, a `Response` out, with the cookie session.
 * `blockid-otp/fetch` is this and the programmatic API; the Hono adapter calls it as is.
 */
import { requireResolveUser } from './adapter.js';
import { BodyError } from './body.js';
import { createCookieSessions, cookieSession, isCookieSession, type CookieSession, type CookieSessions } from './cookie-session.js';
import { createGuard, isVerified, type RequireOtpOptions } from './guard.js';
import { createHttpHandler, SESSION_FLAG, type HttpReply } from './handler.js';
import { createOtpService, type OtpService } from '../service.js';
import type { OtpOptions } from '../options.js';
import type { OtpSessionFlag } from '../types.js';

/** Every `blockidOtp` option, plus where the session lives and how many proxies to trust. */
export interface OtpHandlerOptions extends OtpOptions {
  /** The session (default `cookieSession()`: a sealed cookie, `Secure`). */
  session?: CookieSession | undefined;
  /** Proxies in front of the app (0..9, default 0): with `n`, the n-th `X-Forwarded-For` entry from the right is the client's IP. */
  trustProxy?: number | undefined;
}

/** What the platform knows about a request beyond the `Request` itself. */
export interface FetchContext {
  /** The client's address (Bun: `server.requestIP(request)?.address`, Deno: `info.remoteAddr.hostname`). */
  ip?: string | undefined;
  /** Keeps the process alive for work after the response (Vercel, Cloudflare, Next.js `after`). */
  waitUntil?: ((promise: Promise<unknown>) => void) | undefined;
}

/**
 * What `fetch`/`handle` accept as their second argument: a `FetchContext`, or whatever the
 * platform passes when the handler is handed over as is: Next.js's `{ params }`, Bun's server,
 * Deno's `info`. The handler reads what it can of it and ignores the rest.
 */
export type PlatformContext = FetchContext | object;

/**
 * The client's address in a second argument: `ip` when it is a string, else Bun's
 * `server.requestIP(request)` or Deno's `info.remoteAddr.hostname`, so that
 * `Bun.serve({ fetch: otp.fetch })` and `Deno.serve(otp.fetch)` count the client's IP too.
 */
function platformIp(request: Request, context: PlatformContext | undefined): string | undefined {
  if (context === null || typeof context !== 'object') return undefined;
  const given = context as { ip?: unknown; requestIP?: unknown; remoteAddr?: { hostname?: unknown } };
  if (typeof given.ip === 'string' && given.ip !== '') return given.ip;
  if (typeof given.requestIP === 'function') {
    let address: unknown;
    try {
      address = (given.requestIP as (request: Request) => { address?: unknown } | null)(request)?.address;
    } catch {
      // Not Bun's server after all: no IP, which the handler reports, rather than a failed request.
    }
    if (typeof address === 'string' && address !== '') return address;
  }
  const hostname = given.remoteAddr?.hostname;
  return typeof hostname === 'string' && hostname !== '' ? hostname : undefined;
}

/** The platform's `waitUntil` in a second argument, read only when there is work for it (on Hono a getter that throws where there is none). */
function platformWaitUntil(context: PlatformContext | undefined): FetchContext['waitUntil'] {
  if (context === null || typeof context !== 'object') return undefined;
  const { waitUntil } = context as { waitUntil?: unknown };
  return typeof waitUntil === 'function' ? (waitUntil as FetchContext['waitUntil']) : undefined;
}

/** The session flag a verified request carries (what `requireOtp` checks). */
export type OtpSession = OtpSessionFlag;

export interface WebCore {
  service: OtpService;
  sessions: CookieSessions;
  /** The endpoints under `basePath`; `null` for any other path. */
  handle(request: Request, context?: PlatformContext): Promise<Response | null>;
  /** The session flag of `request`, or null when it is not verified. */
  readSession(request: Request): Promise<OtpSession | null>;
  /** The guard for one set of options: null lets the request through. */
  guard(options: RequireOtpOptions | undefined, factory: string): (request: Request) => Promise<Response | null>;
  clientIp(request: Request, context: PlatformContext | undefined): string | undefined;
}

/** Splits the Web-only options from the service's and checks them. */
function splitWebOptions(options: OtpHandlerOptions, factory: string): { otp: OtpOptions; session: CookieSession; trustProxy: number } {
  if (options === null || typeof options !== 'object') throw new TypeError(`${factory}: expected an options object, e.g. { secret, resolveUser, email }.`);
  const { session = cookieSession(), trustProxy = 0, ...otp } = options;
  if (!isCookieSession(session)) {
    throw new TypeError(`${factory}: option "session" must be cookieSession(...) from "blockid-otp/fetch" (got ${typeof session}).`);
  }
  if (typeof trustProxy !== 'number' || !Number.isInteger(trustProxy) || trustProxy < 0 || trustProxy > 9) {
    throw new TypeError(
      `${factory}: option "trustProxy" must be a whole number from 0 to 9: the number of proxies in front of the app (got ${typeof trustProxy === 'string' ? `the string ${JSON.stringify(trustProxy)}` : String(trustProxy)}). ` +
        'Trusting more lets any client choose its IP through X-Forwarded-For and escape the per-IP send quota.',
    );
  }
  return { otp, session, trustProxy };
}

const JSON_HEADERS = { 'Content-Type': 'application/json; charset=utf-8' };

/** The one writer of every reply as a `Response`: JSON (`body`), HTML (`html`, typed by its headers) or empty; with the session's cookie when it changed. */
export function toResponse(reply: { status: number; headers: Record<string, string>; body?: object; html?: string }, setCookie?: string): Response {
  const headers = new Headers(reply.headers);
  if (setCookie !== undefined) headers.append('Set-Cookie', setCookie);
  if (reply.html !== undefined) return new Response(reply.html, { status: reply.status, headers });
  if (reply.body === undefined) return new Response(null, { status: reply.status, headers });
  for (const [name, value] of Object.entries(JSON_HEADERS)) headers.set(name, value);
  return new Response(JSON.stringify(reply.body), { status: reply.status, headers });
}

const utf8 = new TextDecoder();

/** The JSON body of `request`, at most `limitBytes`; throws `BodyError` (413 or 400). */
async function readRequestJson(request: Request, limitBytes: number): Promise<unknown> {
  const text = await readRequestText(request, limitBytes);
  try {
    return JSON.parse(text);
  } catch {
    throw new BodyError('malformed', 'The request body is not valid JSON.');
  }
}

/**
 * The body of `request` as UTF-8 text, at most `limitBytes`; throws `BodyError` (413 or 400).
 * A body with a declared length within the limit is read whole by the runtime's own reader
 * (the HTTP framing stops it at that length; @hono/node-server then reads the socket directly,
 * without building a stream); a body without one is read chunk by chunk and cut off past the limit.
 */
async function readRequestText(request: Request, limitBytes: number): Promise<string> {
  const declaredHeader = request.headers.get('content-length');
  const declared = declaredHeader === null ? Number.NaN : Number(declaredHeader);
  if (Number.isFinite(declared) && declared > limitBytes) throw new BodyError('too_large', `The request body is larger than ${limitBytes} bytes.`);
  if (request.bodyUsed) throw new BodyError('malformed', 'The request body was already read before blockid-otp saw it.');
  if (Number.isInteger(declared) && declared >= 0) {
    const whole = new Uint8Array(await request.arrayBuffer());
    if (whole.byteLength > limitBytes) throw new BodyError('too_large', `The request body is larger than ${limitBytes} bytes.`);
    return utf8.decode(whole);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (request.body !== null) {
    const reader = request.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limitBytes) {
        await reader.cancel().catch(() => {});
        throw new BodyError('too_large', `The request body is larger than ${limitBytes} bytes.`);
      }
      chunks.push(value);
    }
  }
  return utf8.decode(Buffer.concat(chunks));
}

/**
 * Starts `work` once the response is on its way: through the platform's `waitUntil` where it
 * has one, else on a timer, so it runs after the handler has returned the `Response`.
 */
function afterResponse(waitUntil: FetchContext['waitUntil'], work: () => unknown): void {
  if (waitUntil !== undefined) {
    waitUntil(new Promise<void>((resolve) => setTimeout(() => void Promise.resolve(work()).finally(resolve), 0)));
    return;
  }
  setTimeout(() => void work(), 0);
}

export function createWebCore(options: OtpHandlerOptions, factory: string): WebCore {
  const { otp, session, trustProxy } = splitWebOptions(options, factory);
  const service = createOtpService(otp, factory);
  requireResolveUser(factory, otp);
  const http = createHttpHandler(service);
  const sessions = createCookieSessions(session, service.options.secret);
  const { maxBodyBytes } = service.options;
  let warnedNoIp = false;

  const clientIp = (request: Request, context: PlatformContext | undefined): string | undefined => {
    if (trustProxy > 0) {
      const hops = (request.headers.get('x-forwarded-for') ?? '')
        .split(',')
        .map((entry) => entry.trim())
        .filter((entry) => entry !== '');
      const entry = hops[hops.length - trustProxy];
      if (entry !== undefined) return entry;
    }
    const ip = platformIp(request, context);
    if (ip === undefined && !warnedNoIp) {
      warnedNoIp = true;
      const message = `${factory}: no client IP for this request (pass { ip } as the second argument of fetch(), or set trustProxy behind a proxy): the per-IP send quota does not apply to such requests.`;
      if (service.options.logger !== undefined) service.options.logger.warn({ event: 'otp.no_client_ip' }, message);
      else console.warn(`blockid-otp: ${message}`);
    }
    return ip;
  };

  const handle = async (request: Request, given?: PlatformContext): Promise<Response | null> => {
    const url = new URL(request.url);
    const path = url.pathname;
    if (!http.mayServe(path)) return null;
    const state = await sessions.load(request.headers.get('cookie'));
    const ip = clientIp(request, given);
    let reply: HttpReply | undefined;
    try {
      reply = await http({
        method: request.method,
        path,
        contentType: request.headers.get('content-type') ?? undefined,
        acceptLanguage: request.headers.get('accept-language') ?? undefined,
        ip,
        countIp: ip !== undefined,
        body: () => readRequestJson(request, maxBodyBytes),
        text: () => readRequestText(request, maxBodyBytes),
        header: (name) => request.headers.get(name) ?? undefined,
        query: url.search.slice(1),
        session: state.port,
        req: request,
      });
    } catch (error) {
      // A misconfiguration of ours (a TypeError naming the option): say it, as Express would show it.
      if (error instanceof TypeError) {
        console.error(error);
        return toResponse({ status: 500, headers: { 'Cache-Control': 'no-store' }, body: { error: 'server_error', message: error.message } });
      }
      throw error;
    }
    if (reply === undefined) return null;
    const response = toResponse(reply, await state.setCookie());
    if (reply.afterReply !== undefined) afterResponse(platformWaitUntil(given), reply.afterReply);
    return response;
  };

  const readSession = async (request: Request): Promise<OtpSession | null> => {
    const state = await sessions.load(request.headers.get('cookie'));
    const flag = state.port.read(SESSION_FLAG);
    return isVerified(flag, undefined) ? { verified: true, username: flag.username, verifiedAt: flag.verifiedAt, method: flag.method ?? 'code' } : null;
  };

  const guard = (guardOptions: RequireOtpOptions | undefined, guardFactory: string) => {
    const decide = createGuard(guardOptions, guardFactory);
    return async (request: Request): Promise<Response | null> => {
      const state = await sessions.load(request.headers.get('cookie'));
      const refusal = decide(state.port, request.headers.get('accept') ?? undefined);
      return refusal === undefined ? null : toResponse(refusal);
    };
  };

  return { service, sessions, handle, readSession, guard, clientIp };
}
