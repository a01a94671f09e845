/**
 * A session that needs no session middleware: the whole session lives in one cookie, sealed
 * with AES-256-GCM under a key that HKDF-SHA-256 derives from the OTP `secret` once per
 * handler. One job: seal, unseal, rotate.
 *
 * The cipher is `node:crypto`'s (OpenSSL on Node; Bun and Deno implement the same module):
 * its calls are synchronous, where WebCrypto's `subtle.decrypt` queues a job per call and cost
 * about ten times as much per request on Node. The bytes are WebCrypto's AES-GCM and HKDF
 * exactly (test/integration/cookie-session.test.ts opens each with the other).
 *
 * Sealed value: `v1.` + base64url(12-byte IV ‖ ciphertext ‖ tag); the cookie name is the
 * additional data, so a value moved to another cookie name does not open. The plaintext is
 * `{ i: session id, e: expiry (s since epoch), d: data }`; the expiry inside the seal is what
 * counts (a replayed cookie past it is no session, whatever its Max-Age said).
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import type { SessionPort } from './handler.js';

export interface CookieSessionOptions {
  /** Default `__Host-blockid-otp` when `secure`, `blockid-otp` otherwise. */
  cookieName?: string | undefined;
  /** Send the cookie over HTTPS only (default true). Set false for plain-http development on localhost. */
  secure?: boolean | undefined;
  /** Default `'lax'`. `'none'` (a cross-site SPA) needs `secure: true`. */
  sameSite?: 'lax' | 'strict' | 'none' | undefined;
  /** How long a session lasts from its creation or last rotation (default 86,400 s). */
  maxAgeSeconds?: number | undefined;
  /** The cookie's Domain (not with the `__Host-` prefix). */
  domain?: string | undefined;
  /** The cookie's Path (default `/`; must be `/` with the `__Host-` prefix). */
  path?: string | undefined;
}

/** What `cookieSession()` returns: settings, checked once; the handler binds them to its `secret`. */
export interface CookieSession {
  readonly kind: 'cookie-session';
  readonly cookieName: string;
  readonly secure: boolean;
  readonly sameSite: 'lax' | 'strict' | 'none';
  readonly maxAgeSeconds: number;
  readonly domain: string | undefined;
  readonly path: string;
}

const KNOWN = ['cookieName', 'secure', 'sameSite', 'maxAgeSeconds', 'domain', 'path'];
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const COOKIE_ATTRIBUTE = /^[\x21-\x3a\x3c-\x7e]+$/;
/** Browsers keep about 4 KB per cookie; anything longer was not written by us. */
const MAX_COOKIE_CHARS = 4096;

/** `cookieSession(options?)`: the session in one sealed cookie, for `blockid-otp/fetch`, `/hono`, `/fastify` (and `blockidOtp`/`blockidOtpKoa` as the `session` option). */
export function cookieSession(options: CookieSessionOptions = {}): CookieSession {
  const fail = (message: string): never => {
    throw new TypeError(`cookieSession: ${message}`);
  };
  if (options === null || typeof options !== 'object') fail('expected an options object such as { secure: false }.');
  for (const name of Object.keys(options)) {
    if (!KNOWN.includes(name)) fail(`unknown option "${name}"; the options are ${KNOWN.map((n) => `"${n}"`).join(', ')}.`);
  }
  const secure = options.secure ?? true;
  if (typeof secure !== 'boolean') fail(`option "secure" must be true or false (got ${describe(secure)}).`);
  const sameSite = options.sameSite ?? 'lax';
  if (!['lax', 'strict', 'none'].includes(sameSite)) fail(`option "sameSite" must be "lax", "strict" or "none" (got ${describe(sameSite)}).`);
  if (sameSite === 'none' && !secure) fail('option "sameSite": "none" needs secure: true (browsers drop SameSite=None cookies without Secure).');
  const maxAgeSeconds = options.maxAgeSeconds ?? 86_400;
  if (typeof maxAgeSeconds !== 'number' || !Number.isInteger(maxAgeSeconds) || maxAgeSeconds < 60 || maxAgeSeconds > 31_536_000) {
    fail(`option "maxAgeSeconds" must be a whole number from 60 to 31536000 (got ${describe(maxAgeSeconds)}).`);
  }
  const cookieName = options.cookieName ?? (secure ? '__Host-blockid-otp' : 'blockid-otp');
  if (typeof cookieName !== 'string' || !COOKIE_NAME.test(cookieName))
    fail(`option "cookieName" must be a cookie name token such as "otp-session" (got ${describe(cookieName)}).`);
  const path = options.path ?? '/';
  if (typeof path !== 'string' || !path.startsWith('/') || !COOKIE_ATTRIBUTE.test(path))
    fail(`option "path" must be a path starting with "/" (got ${describe(path)}).`);
  const domain = options.domain;
  if (domain !== undefined && (typeof domain !== 'string' || !/^[a-z0-9.-]+$/i.test(domain)))
    fail(`option "domain" must be a host name such as "example.com" (got ${describe(domain)}).`);
  if (cookieName.startsWith('__Host-')) {
    if (!secure) fail(`the "__Host-" cookie name prefix needs secure: true; pick another cookieName for plain http.`);
    if (domain !== undefined || path !== '/') fail('a "__Host-" cookie has Path=/ and no Domain: drop "domain" and "path", or pick another cookieName.');
  }
  if (cookieName.startsWith('__Secure-') && !secure) fail('the "__Secure-" cookie name prefix needs secure: true.');
  return Object.freeze({ kind: 'cookie-session', cookieName, secure, sameSite, maxAgeSeconds, domain, path });
}

export function isCookieSession(value: unknown): value is CookieSession {
  return value !== null && typeof value === 'object' && (value as { kind?: unknown }).kind === 'cookie-session';
}

function describe(value: unknown): string {
  return typeof value === 'string' ? `the string ${JSON.stringify(value)}` : `${typeof value} ${String(value)}`;
}

/** One request's session: the port the core uses, and whether it must be written back. */
export interface CookieSessionState {
  port: SessionPort;
  /** The `Set-Cookie` value when the session changed during the request, else `undefined`. */
  setCookie(): Promise<string | undefined>;
}

interface Payload {
  /** Session id. */
  i: string;
  /** Expiry, seconds since the epoch. */
  e: number;
  d: Record<string, unknown>;
}

const IV_BYTES = 12;
const TAG_BYTES = 16;
/** HKDF's salt and info: a key for this use only, whatever else the secret keys. */
export const COOKIE_SALT = 'blockid-otp cookie session';
export const COOKIE_INFO = 'v1';

/** Seals and opens the cookie of one `cookieSession()` under one secret; the key is derived once. */
export function createCookieSessions(settings: CookieSession, secret: string) {
  const { cookieName, maxAgeSeconds } = settings;
  const additionalData = Buffer.from(cookieName, 'utf8');
  const key = Buffer.from(hkdfSync('sha256', secret, COOKIE_SALT, COOKIE_INFO, 32));

  const attributes = [
    `Path=${settings.path}`,
    ...(settings.domain === undefined ? [] : [`Domain=${settings.domain}`]),
    'HttpOnly',
    `SameSite=${settings.sameSite[0]!.toUpperCase()}${settings.sameSite.slice(1)}`,
    ...(settings.secure ? ['Secure'] : []),
  ].join('; ');

  function seal(payload: Payload): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(additionalData);
    const sealed = Buffer.concat([iv, cipher.update(JSON.stringify(payload), 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `v1.${sealed.toString('base64url')}`;
  }

  function open(value: string, nowSeconds: number): Payload | null {
    if (!value.startsWith('v1.') || value.length > MAX_COOKIE_CHARS) return null;
    const bytes = Buffer.from(value.slice(3), 'base64url');
    if (bytes.length < IV_BYTES + TAG_BYTES + 2) return null;
    let plain: string;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, IV_BYTES));
      decipher.setAAD(additionalData);
      decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
      plain = decipher.update(bytes.subarray(IV_BYTES, bytes.length - TAG_BYTES), undefined, 'utf8') + decipher.final('utf8');
    } catch {
      return null; // tampered, truncated, or sealed under another secret or cookie name
    }
    try {
      const payload = JSON.parse(plain) as Partial<Payload>;
      if (typeof payload.i !== 'string' || typeof payload.e !== 'number' || payload.d === null || typeof payload.d !== 'object') return null;
      return payload.e > nowSeconds ? (payload as Payload) : null;
    } catch {
      return null;
    }
  }

  const newId = () => randomBytes(16).toString('base64url');

  return {
    cookieName,

    /** The session a request carries (a fresh one when its cookie is missing or does not open). */
    async load(cookieHeader: string | null | undefined): Promise<CookieSessionState> {
      const nowSeconds = Math.floor(Date.now() / 1000);
      // Two copies that both open (one tossed in by a sibling subdomain, say) are ambiguous:
      // neither is trusted, so nobody can slip their own signed-in session under a victim's.
      const opened: Payload[] = [];
      for (const value of cookieValues(cookieHeader, cookieName)) {
        const candidate = open(value, nowSeconds);
        if (candidate !== null) opened.push(candidate);
      }
      const payload = opened.length === 1 ? opened[0]! : null;
      let changed = false;
      let current: Payload = payload ?? { i: newId(), e: nowSeconds + maxAgeSeconds, d: {} };
      const port: SessionPort = {
        read: (name) => current.d[name],
        write: (name, value) => {
          changed = true;
          current.d[name] = value;
        },
        regenerate: async () => {
          changed = true;
          current = { i: newId(), e: nowSeconds + maxAgeSeconds, d: {} };
        },
        id: () => `cs:${current.i}`,
      };
      return {
        port,
        // One clock per request (the time it arrived): a new or regenerated session's Max-Age is
        // exactly maxAgeSeconds, however long the request took.
        setCookie: async () => (changed ? `${cookieName}=${seal(current)}; Max-Age=${Math.max(0, current.e - nowSeconds)}; ${attributes}` : undefined),
      };
    },

    /** A `Set-Cookie` value that ends the session (sign-out). */
    clear(): string {
      return `${cookieName}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; ${attributes}`;
    },
  };
}

export type CookieSessions = ReturnType<typeof createCookieSessions>;

/**
 * For Express and Koa given `session: cookieSession()`: the plugin notes its cookie sessions on
 * each request it sees (the request, or Koa's context), so that `requireOtp()`, which has no
 * secret of its own, can open the same cookie.
 */
export const cookieSessionsOf = new WeakMap<object, CookieSessions>();

/** Takes `session` out of an Express or Koa plugin's options: a `cookieSession()`, or nothing (the framework's session). */
export function takeCookieSession<Options extends object>(
  options: Options & { session?: unknown },
  factory: string,
): { session: CookieSession | undefined; rest: Options } {
  if (options === null || typeof options !== 'object' || !('session' in options)) return { session: undefined, rest: options };
  const { session, ...rest } = options;
  if (session !== undefined && !isCookieSession(session)) {
    throw new TypeError(`${factory}: option "session" must be cookieSession(...) (from "blockid-otp"), or left out to use the framework's session middleware.`);
  }
  return { session, rest: rest as Options };
}

/** Every value of cookie `name` in a `Cookie` header, in order (a browser may send two of one name). */
function cookieValues(header: string | null | undefined, name: string): string[] {
  if (typeof header !== 'string' || header === '') return [];
  const values: string[] = [];
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1 || part.slice(0, eq).trim() !== name) continue;
    let value = part.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    values.push(value);
  }
  return values;
}
