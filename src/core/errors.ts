/** Stable error codes. The README lists each one with what to do about it. */
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
 * The one error type of blockid-otp. `code` is stable (UPPER_SNAKE), `status` is the HTTP
 * status it maps to. Messages never contain a passcode.
 */
export class OtpError extends Error {
  override readonly name = 'OtpError';
  readonly code: OtpErrorCode;
  readonly status: number;
  /** Seconds until a retry can succeed (RATE_LIMITED only). */
  readonly retryAfterSeconds?: number;
  /** For DELIVERY_FAILED: whether trying the same send again may succeed (timeouts, 5xx, 429). */
  readonly retryable?: boolean;

  constructor(
    code: OtpErrorCode,
    message: string,
    extra: { retryAfterSeconds?: number; retryable?: boolean; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.code = code;
    this.status = defaultStatus[code];
    if (extra.retryAfterSeconds !== undefined) this.retryAfterSeconds = extra.retryAfterSeconds;
    if (extra.retryable !== undefined) this.retryable = extra.retryable;
  }
}

export function isOtpError(value: unknown): value is OtpError {
  return value instanceof OtpError;
}
