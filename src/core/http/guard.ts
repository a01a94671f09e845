/** The rules of the requireOtp() guard, shared by the Express and Koa adapters. */
import { configError, withDocsLink } from '../errors.js';
import { SESSION_FLAG, sessionMissingMessage, type SessionPort } from './handler.js';
import type { OtpSessionFlag, VerifyMethod } from '../types.js';
import { checkOptions, optionError } from '../validate.js';

export interface RequireOtpOptions {
  /** Where to send HTML requests that are not verified (303). API requests get 401. */
  redirectTo?: string | undefined;
  /** A verification older than this counts as none (step-up freshness). */
  maxAgeSeconds?: number | undefined;
  /** Only a verification by one of these methods counts, e.g. `['totp']` before a sensitive action. */
  methods?: VerifyMethod[] | undefined;
}

const METHODS: readonly VerifyMethod[] = ['code', 'totp', 'recovery', 'link'];

function resolveGuardOptions(options: RequireOtpOptions | undefined, factory: string): RequireOtpOptions {
  if (options === undefined) return {};
  checkOptions(factory, options, ['redirectTo', 'maxAgeSeconds', 'methods'], `${factory}({ redirectTo: '/login' })`);
  if (options.redirectTo !== undefined && !isSameOriginPath(options.redirectTo)) {
    throw configError(
      `${factory}: option "redirectTo" must be a path on this site starting with a single "/", e.g. "/login" (not "//host" or "/\\host", which browsers read as another site).`,
      'invalid-guard-options',
    );
  }
  const methods = options.methods;
  if (methods !== undefined && (!Array.isArray(methods) || methods.length === 0 || methods.some((m) => !METHODS.includes(m)))) {
    throw optionError(factory, 'methods', 'a non-empty list of "code", "totp" and "recovery", e.g. ["totp"]', methods);
  }
  const maxAge = options.maxAgeSeconds;
  if (maxAge !== undefined && (typeof maxAge !== 'number' || !Number.isFinite(maxAge) || maxAge <= 0)) {
    throw optionError(factory, 'maxAgeSeconds', 'a positive number of seconds', maxAge);
  }
  return options;
}

/** A path that every browser resolves on this origin: one leading `/`, no backslash, no control characters. */
function isSameOriginPath(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith('/') && !value.startsWith('//') && !/[\\\u0000-\u001f\u007f]/.test(value);
}

/** True when `flag` is a verification that is still fresh enough. */
export function isVerified(flag: unknown, maxAgeSeconds: number | undefined, nowMs = Date.now(), methods?: readonly VerifyMethod[]): flag is OtpSessionFlag {
  if (flag === null || typeof flag !== 'object') return false;
  const { verified, verifiedAt, method = 'code' } = flag as Partial<OtpSessionFlag>;
  if (verified !== true || typeof verifiedAt !== 'number') return false;
  if (methods !== undefined && !methods.includes(method)) return false;
  return maxAgeSeconds === undefined || nowMs - verifiedAt <= maxAgeSeconds * 1000;
}

/** True when the client asked for an HTML page (a browser navigation), not an API answer. */
function wantsHtml(accept: string | undefined): boolean {
  return typeof accept === 'string' && /\btext\/html\b/i.test(accept);
}

const otpRequiredBody = {
  error: 'otp_required',
  message: withDocsLink('This page needs a verified one-time passcode: request a code and verify it first.', 'otp-required'),
};

/** What the guard answers instead of letting a request through; no body means an empty one. */
export interface GuardReply {
  status: 303 | 401;
  headers: Record<string, string>;
  body?: typeof otpRequiredBody;
}

/**
 * The guard for one set of options: `undefined` lets the request through, a `GuardReply`
 * refuses it. Throws when there is no session, so a missing session middleware never passes.
 */
export function createGuard(options: RequireOtpOptions | undefined, factory: string) {
  const { redirectTo, maxAgeSeconds, methods } = resolveGuardOptions(options, factory);
  return (session: SessionPort | undefined, accept: string | undefined): GuardReply | undefined => {
    if (session === undefined) throw new TypeError(`${factory}(): ${sessionMissingMessage}`);
    if (isVerified(session.read(SESSION_FLAG), maxAgeSeconds, Date.now(), methods)) return undefined;
    if (redirectTo !== undefined && wantsHtml(accept)) {
      return { status: 303, headers: { Location: redirectTo, 'Cache-Control': 'no-store' } };
    }
    return { status: 401, headers: { 'Cache-Control': 'no-store' }, body: otpRequiredBody };
  };
}
