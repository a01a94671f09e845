/** Stable error codes. docs/errors.md has a section for each one with what to do about it. */
export type OtpErrorCode =
  | 'INVALID_REQUEST'
  | 'INVALID_PHONE'
  | 'INVALID_EMAIL'
  | 'NO_DESTINATION'
  | 'CHANNEL_NOT_CONFIGURED'
  | 'RATE_LIMITED'
  | 'DELIVERY_FAILED'
  | 'STORE_UNAVAILABLE';

const defaultStatus: Record<OtpErrorCode, number> = {
  INVALID_REQUEST: 400,
  INVALID_PHONE: 400,
  INVALID_EMAIL: 400,
  NO_DESTINATION: 400,
  CHANNEL_NOT_CONFIGURED: 400,
  RATE_LIMITED: 429,
  DELIVERY_FAILED: 502,
  STORE_UNAVAILABLE: 503,
};

/**
 * The sections of docs/errors.md that messages point to, besides one per error code (an
 * `OtpError` code or an HTTP `error` field, lower case with dashes: `#rate-limited`). One
 * list, so the page and the messages cannot drift apart.
 */
export type DocsAnchor =
  | 'invalid-options'
  | 'invalid-sender-options'
  | 'invalid-store-options'
  | 'invalid-guard-options'
  | 'invalid-metrics-options'
  | 'invalid-argument'
  | 'missing-peer-dependency'
  | 'missing-environment-variable'
  | 'not-called'
  | 'trust-proxy'
  | 'session-missing'
  | 'session-order'
  | 'cookie-not-set'
  | 'test-destinations';

/** `RATE_LIMITED` or `rate_limited` → `rate-limited`. */
export function anchorOf(code: string): string {
  return code.toLowerCase().replace(/_/g, '-');
}

const DOCS_LINK = /\(see docs\/errors\.md#[a-z0-9-]+\)$/;

/**
 * `message` ending with where the fix is written up: `… (see docs/errors.md#rate-limited)`.
 * The relative path reads the same in the repository, the packed package and a log line.
 */
export function withDocsLink(message: string, anchor: string): string {
  if (DOCS_LINK.test(message)) return message;
  return `${message} (see docs/errors.md#${anchor})`;
}

/** `message` without its trailing docs link (a delivery failure's reason in an event is read beside the event's own docs). */
export function withoutDocsLink(message: string): string {
  return message.replace(/ ?\(see docs\/errors\.md#[a-z0-9-]+\)$/, '');
}

/** A misconfiguration, reported at creation: the message names the option and the fix, then links to it. */
export function configError(message: string, anchor: DocsAnchor = 'invalid-options'): TypeError {
  return new TypeError(withDocsLink(message, anchor));
}

/**
 * The one error type of blockid-otp. `code` is stable (UPPER_SNAKE), `status` is the HTTP
 * status it maps to. Messages never contain a passcode, and end with a link to the code's
 * section of docs/errors.md.
 */
export class OtpError extends Error {
  override readonly name = 'OtpError';
  readonly code: OtpErrorCode;
  readonly status: number;
  /** Seconds until a retry can succeed (RATE_LIMITED only). */
  readonly retryAfterSeconds?: number;
  /** For DELIVERY_FAILED: whether trying the same send again may succeed (timeouts, 5xx, 429). */
  readonly retryable?: boolean;

  constructor(code: OtpErrorCode, message: string, extra: { retryAfterSeconds?: number; retryable?: boolean; cause?: unknown } = {}) {
    super(withDocsLink(message, anchorOf(code)), extra.cause === undefined ? undefined : { cause: extra.cause });
    this.code = code;
    this.status = defaultStatus[code];
    if (extra.retryAfterSeconds !== undefined) this.retryAfterSeconds = extra.retryAfterSeconds;
    if (extra.retryable !== undefined) this.retryable = extra.retryable;
  }
}

export function isOtpError(value: unknown): value is OtpError {
  return value instanceof OtpError;
}
