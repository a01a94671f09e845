/**
 * The HTTP contract, framework-free: the Express and Koa adapters translate their request
 * into an `HttpExchange`, call `handle`, and write the `HttpReply` back.
 *
 * What an adapter provides and writes (the sign-in link, `link` option, needs all of it):
 * - `exchange.header(name)`, `exchange.query` (the raw query string) and `exchange.text()`
 *   (the raw body as text, with the same size limit as `body()`): `POST {basePath}/link` is a
 *   form post (`application/x-www-form-urlencoded`), so nothing may parse or refuse bodies
 *   under `basePath` before the core sees them.
 * - a reply is JSON (`body`), HTML (`html`, its `Content-Type` already in `headers`) or empty
 *   (neither: a 303 carries its `Location` in `headers`). One writer per adapter handles all three.
 */
import { BodyError, isJsonContentType } from './body.js';
import { createLinkRoutes, isFormContentType, SESSION_LINK_USER } from '../link/route.js';
import { anchorOf, configError, OtpError, withDocsLink } from '../errors.js';
import type { OtpService } from '../service.js';
import type { RequestContext } from '../types.js';
import type { ChannelChoice, OtpSessionFlag, VerifyMethod } from '../types.js';

/** The two session values blockid-otp keeps; adapters map them onto their session object. */
export const SESSION_FLAG = 'blockidOtp';
export const SESSION_BINDING = 'blockidOtpBinding';

export interface SessionPort {
  read(name: string): unknown;
  write(name: string, value: unknown): void;
  /** A new session id; the old one stops being valid. Data is not carried over. */
  regenerate(): Promise<void>;
  /** The session's own id where the session lives in a server-side store (express-session), so parallel first sends of one session share one code slot. */
  id?(): string | undefined;
}

export interface HttpExchange {
  method: string;
  /** The path relative to where the middleware is mounted. */
  path: string;
  contentType: string | undefined;
  acceptLanguage: string | undefined;
  ip: string | undefined;
  /** False when the runtime gave no client address: the per-IP send quota does not apply (default true). */
  countIp?: boolean;
  /** Reads the parsed JSON body; throws `BodyError`. */
  body(): Promise<unknown>;
  /** Reads the raw body as UTF-8 text, at most `maxBodyBytes` (a form post); throws `BodyError`. */
  text(): Promise<string>;
  /** A request header by its lower-case name (`origin`, `sec-fetch-site`, `host`), or undefined. */
  header(name: string): string | undefined;
  /** The raw query string, without `?` (`''` for none). */
  query: string;
  /** Undefined when no session middleware ran. */
  session: SessionPort | undefined;
  /** The framework's request (for `resolveUser`). */
  req: unknown;
}

export interface HttpReply {
  status: number;
  /** A JSON body. */
  body?: Record<string, unknown>;
  /** An HTML page (the sign-in link's); `headers` carry its `Content-Type`. */
  html?: string;
  headers: Record<string, string>;
  /**
   * Work to start once the reply is written (the adapter calls it on the response's
   * `finish`): the deliveries of an accepted send, so a sender's own time, synchronous work
   * included, never shows in the answer. Settles once the deliveries are done (a platform's
   * `waitUntil` keeps the process alive until then); it never rejects: a failed delivery is
   * reported through events, the logger or the console warning.
   */
  afterReply?: () => Promise<void>;
}

type Route = (exchange: HttpExchange, session: SessionPort) => Promise<HttpReply>;
/** A route: its handler per method, and the body type its POST takes. */
type Entry = { GET?: Route; POST?: Route; accepts?: 'json' | 'form' };

const CHANNELS = new Set<ChannelChoice>(['sms', 'email', 'both', 'whatsapp', 'voice']);
const METHODS = new Set<VerifyMethod>(['code', 'totp', 'recovery']); // 'link' only through POST {basePath}/link
const NO_STORE = { 'Cache-Control': 'no-store' };
/** What a delivery after the reply settles to, either way: its failures are reported as events, never thrown. */
const settled = (): undefined => undefined;

export const sessionMissingMessage = withDocsLink(
  'blockid-otp needs a session: mount express-session (or koa-session on Koa) before it, with a store whose sessions have regenerate().',
  'session-missing',
);

function reply(status: number, body: Record<string, unknown>, headers: Record<string, string> = {}): HttpReply {
  return { status, body, headers: { ...NO_STORE, ...headers } };
}

/** An error answer; its message ends with the link to the error's section of docs/errors.md. */
function failure(status: number, error: string, message: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): HttpReply {
  return reply(status, { error, message: withDocsLink(message, anchorOf(error)), ...extra }, headers);
}

/** `90` → `2 minutes`: a wait a person can read. */
function readableWait(seconds: number): string {
  const units: [number, string][] = [
    [86_400, 'day'],
    [3600, 'hour'],
    [60, 'minute'],
  ];
  for (const [size, unit] of units) {
    if (seconds >= size) {
      const count = Math.ceil(seconds / size);
      return `${count} ${unit}${count === 1 ? '' : 's'}`;
    }
  }
  return `${seconds} second${seconds === 1 ? '' : 's'}`;
}

/**
 * What a refused verify tells the person: a burned code is over, so ask for a new one; a
 * locked username is not helped by a new code, so say how long to wait.
 */
function tooManyAttempts(retryAfterSeconds: number | undefined): HttpReply {
  if (retryAfterSeconds === undefined) {
    return rateLimited('too_many_attempts', 'Too many wrong tries for this code, so it no longer works: request a new code and enter that one.', undefined);
  }
  return rateLimited(
    'too_many_attempts',
    `Too many wrong codes for this account, so sign-in is paused: try again in ${readableWait(retryAfterSeconds)}. A new code will not work before then.`,
    retryAfterSeconds,
  );
}

/** A browser's own form post (an HTML <form> without JavaScript): it gets the same 415, in words a person can act on. */
function isFormPost(contentType: string | undefined): boolean {
  return typeof contentType === 'string' && /^\s*(application\/x-www-form-urlencoded|multipart\/form-data)\b/i.test(contentType);
}

const unsupportedMediaType = (contentType: string | undefined): HttpReply =>
  isFormPost(contentType)
    ? failure(
        415,
        'unsupported_media_type',
        'This address takes JSON from a script, not a form post: the page must send the form with fetch() and "Content-Type: application/json" (an HTML <form> alone cannot sign in).',
      )
    : failure(415, 'unsupported_media_type', 'Send the body as JSON with "Content-Type: application/json".');

function rateLimited(error: string, message: string, retryAfterSeconds: number | undefined): HttpReply {
  if (retryAfterSeconds === undefined) return failure(429, error, message);
  return failure(429, error, message, { retryAfter: retryAfterSeconds }, { 'Retry-After': String(retryAfterSeconds) });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Maps an error thrown below the adapter to the contract's answer; unknown errors rethrow. */
function errorReply(error: unknown): HttpReply {
  if (error instanceof BodyError) {
    return error.kind === 'too_large' ? failure(413, 'payload_too_large', error.message) : failure(400, 'invalid_request', error.message);
  }
  if (error instanceof OtpError) {
    switch (error.code) {
      case 'INVALID_REQUEST':
        return failure(400, 'invalid_request', error.message);
      case 'RATE_LIMITED':
        return rateLimited('rate_limited', error.message, error.retryAfterSeconds);
      case 'STORE_UNAVAILABLE':
        return failure(503, 'unavailable', 'The one-time passcode service is unavailable right now; try again shortly.');
      case 'DELIVERY_FAILED':
        return failure(502, 'delivery_failed', 'The code could not be delivered; try again or choose another channel.');
      default:
        break;
    }
  }
  throw error;
}

export interface HttpHandler {
  (exchange: HttpExchange): Promise<HttpReply | undefined>;
  /** False for a path that is none of the endpoints', so an adapter can pass the request on without building an exchange. */
  mayServe(path: string): boolean;
}

export function createHttpHandler(service: OtpService): HttpHandler {
  const { basePath, ttlSeconds, resendCooldownSeconds, awaitDelivery } = service.options;
  const base = basePath === '/' ? '' : basePath;

  const context = (exchange: HttpExchange, binding: string | null): RequestContext => ({
    binding,
    req: exchange.req,
    ...(exchange.ip !== undefined && { ip: exchange.ip }),
    ...(exchange.countIp === false && { countIp: false }),
    ...(exchange.acceptLanguage !== undefined && { acceptLanguage: exchange.acceptLanguage }),
  });

  const send: Route = async (exchange, session) => {
    const body = await exchange.body();
    if (!isPlainObject(body))
      return failure(400, 'invalid_request', 'The body must be a JSON object: { "username": "...", "channel": "sms" | "email" | "both" }.');
    const username = service.normalizeUsername(body.username);
    const channel = (body.channel ?? 'both') as ChannelChoice;
    if (!CHANNELS.has(channel)) return failure(400, 'invalid_request', 'channel must be "sms", "email", "both", "whatsapp" or "voice".');
    if (channel !== 'both' && (service.options as unknown as Record<string, unknown>)[channel] === undefined) {
      return failure(400, 'invalid_request', `The ${channel} channel is not enabled on this server.`);
    }
    if (service.options.resolveUser === undefined) {
      throw configError('blockid-otp: the HTTP endpoints need the "resolveUser" option (username, req) => destinations | null.');
    }
    let nonce = session.read(SESSION_BINDING);
    if (typeof nonce !== 'string') {
      // The session id, where there is one, so that parallel first sends of one session agree on the slot.
      nonce = session.id?.() ?? service.newBinding();
      session.write(SESSION_BINDING, nonce);
    }
    const accepted = await service.requestCode(username, channel, context(exchange, service.bindingHash(nonce as string)));
    // The link's POST needs the username: this session's last send names it (sealed or server-side, never in the link).
    if (service.options.link !== undefined) session.write(SESSION_LINK_USER, username);
    const answer = reply(202, { status: 'sent', expiresIn: ttlSeconds, resendIn: resendCooldownSeconds });
    if (awaitDelivery) {
      const delivered = await accepted.deliver();
      if (accepted.targets > 0 && delivered.length === 0) throw new OtpError('DELIVERY_FAILED', 'no channel delivered');
      return answer;
    }
    return {
      ...answer,
      afterReply: () => accepted.deliver().then(settled, settled),
    };
  };

  const verify: Route = async (exchange, session) => {
    const body = await exchange.body();
    if (!isPlainObject(body)) return failure(400, 'invalid_request', 'The body must be a JSON object: { "username": "...", "code": "123456" }.');
    if (typeof body.code !== 'string') return failure(400, 'invalid_request', 'code must be a string.');
    const method = (body.method ?? 'code') as VerifyMethod;
    if (!METHODS.has(method)) return failure(400, 'invalid_request', 'method must be "code", "totp" or "recovery".');
    if (body.code.length > 128) return failure(400, 'invalid_request', 'code is too long.');
    const username = service.normalizeUsername(body.username);
    const nonce = session.read(SESSION_BINDING);
    const result = await service.checkCode(
      username,
      body.code,
      { ...context(exchange, typeof nonce === 'string' ? service.bindingHash(nonce) : null), sessionOnly: true },
      method,
    );
    if (!result.ok) {
      if (result.reason === 'too_many_attempts') return tooManyAttempts(result.retryAfterSeconds);
      return failure(401, 'invalid_code', 'That code is not valid. Check it and try again, or request a new one.');
    }
    await session.regenerate();
    const flag: OtpSessionFlag = { verified: true, username, verifiedAt: Date.now(), method };
    session.write(SESSION_FLAG, flag);
    return reply(200, { status: 'verified', username });
  };

  const status: Route = async (_exchange, session) => {
    const flag = session.read(SESSION_FLAG) as Partial<OtpSessionFlag> | undefined;
    if (flag?.verified !== true || typeof flag.verifiedAt !== 'number') return reply(200, { verified: false });
    return reply(200, {
      verified: true,
      username: flag.username,
      verifiedAt: new Date(flag.verifiedAt).toISOString(),
      method: flag.method ?? 'code',
    });
  };

  const routes = new Map<string, Entry>([
    [`${base}/send`, { POST: send, accepts: 'json' }],
    [`${base}/verify`, { POST: verify, accepts: 'json' }],
    [`${base}/status`, { GET: status }],
  ]);
  if (service.options.link !== undefined) {
    const link = createLinkRoutes(service, { flag: SESSION_FLAG, binding: SESSION_BINDING });
    routes.set(`${base}/link`, { GET: link.show, POST: link.confirm, accepts: 'form' });
  }

  const prefix = `${base}/`;
  const handler = async (exchange: HttpExchange): Promise<HttpReply | undefined> => {
    const path = exchange.path.length > 1 ? exchange.path.replace(/\/+$/, '') : exchange.path;
    const entry = routes.get(path);
    if (entry === undefined) return undefined;
    const method = exchange.method === 'HEAD' ? 'GET' : exchange.method;
    const route = method === 'GET' || method === 'POST' ? entry[method] : undefined;
    if (route === undefined) {
      const allow = [entry.GET && 'GET', entry.POST && 'POST'].filter(Boolean).join(', ');
      return failure(405, 'method_not_allowed', `Use ${allow} for ${path}.`, {}, { Allow: allow });
    }
    if (method === 'POST' && entry.accepts === 'json' && !isJsonContentType(exchange.contentType)) {
      return unsupportedMediaType(exchange.contentType);
    }
    if (method === 'POST' && entry.accepts === 'form' && !isFormContentType(exchange.contentType)) {
      return failure(415, 'unsupported_media_type', 'Post the confirmation page\'s form: "Content-Type: application/x-www-form-urlencoded" with t=<token>.');
    }
    if (exchange.session === undefined) throw new TypeError(sessionMissingMessage);
    try {
      return await route(exchange, exchange.session);
    } catch (error) {
      return errorReply(error);
    }
  };
  return Object.assign(handler, { mayServe: (path: string) => path.startsWith(prefix) });
}
