/**
 * Authenticator apps (TOTP, RFC 6238): enrollment, the sealed key the app stores on the
 * user's row, and matching a code to its time step. Framework-free and stateless: the replay
 * guard (each step at most once per user) is the caller's, fed by the step this returns.
 *
 * The RFC 6238 computation is @oslojs/otp's `generateHOTP` at counter = step; the parameters
 * are the ones every authenticator app reads: SHA-1, 6 digits, 30 s.
 */
import { configError } from '../errors.js';
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { encodeBase32NoPadding } from '@oslojs/encoding';
import { createTOTPKeyURI, generateHOTP } from '@oslojs/otp';
import { safeEqual } from '../codes.js';

export const TOTP_PERIOD_SECONDS = 30;
const TOTP_DIGITS = 6;
/** Steps accepted either side of the current one (clock drift, a code typed at the edge). */
const TOTP_WINDOW_STEPS = 1;
/** 20 random bytes = 160 bits, RFC 4226's recommended key length. */
const KEY_BYTES = 20;
const DEFAULT_ISSUER = 'blockid-otp';
const MAX_LABEL_LENGTH = 256;

const SEAL_PREFIX = 'v1.';
const SEAL_INFO = 'blockid-otp totp seal v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const MAX_SEALED_LENGTH = 256;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const SIX_DIGITS = /^[0-9]{6}$/;

export interface TotpEnrollOptions {
  /** Shown by the authenticator app above the code; no `:`. Default `'blockid-otp'`. */
  issuer?: string | undefined;
  /** The account label in the app (e.g. an email address); no `:`. Default: the username. */
  accountName?: string | undefined;
}

export interface TotpEnrollment {
  /** The key in base32 (no padding), to show once as text beside the QR code. */
  secret: string;
  /** `otpauth://totp/Issuer:account?issuer=…&algorithm=SHA1&secret=…&period=30&digits=6`. */
  uri: string;
  /** The key sealed for this username (AES-256-GCM): what the app stores on the user's row. */
  sealed: string;
}

export interface Totp {
  /** A fresh key for `username` (pass the normalized username: it is bound into `sealed`). */
  enroll(username: string, options?: TotpEnrollOptions): TotpEnrollment;
  /** The key sealed for `username`, or `null` when it is malformed, tampered or another user's. Never throws. */
  unseal(username: string, sealed: unknown): Uint8Array | null;
  /**
   * The time step (`floor(unix seconds / 30)`) whose code is `code`, searched from one step
   * before the current one to one after; `null` when none matches or `code` is not exactly
   * six ASCII digits (strip spaces before). Steps `<= afterStep` are skipped, so a caller that
   * passes the user's last accepted step never accepts a step twice.
   */
  matchStep(key: Uint8Array, code: unknown, nowMs: number, afterStep?: number): number | null;
  /** The step `nowMs` falls in. */
  stepAt(nowMs: number): number;
}

/** TOTP bound to the app's `secret` (>= 32 characters), from which the sealing key is derived. */
export function createTotp(secret: string): Totp {
  if (typeof secret !== 'string' || secret.length < 32) {
    throw configError('createTotp(secret): `secret` must be a string of at least 32 characters.', 'invalid-argument');
  }
  const sealKey = Buffer.from(hkdfSync('sha256', secret, 'blockid-otp', SEAL_INFO, 32));
  const aad = (username: string): Buffer => Buffer.from(`${SEAL_INFO}\0${username}`, 'utf8');

  const seal = (username: string, key: Uint8Array): string => {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', sealKey, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(aad(username));
    const body = Buffer.concat([cipher.update(key), cipher.final()]);
    return SEAL_PREFIX + Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
  };

  const unseal = (username: string, sealed: unknown): Uint8Array | null => {
    if (typeof username !== 'string' || typeof sealed !== 'string') return null;
    if (sealed.length > MAX_SEALED_LENGTH || !sealed.startsWith(SEAL_PREFIX)) return null;
    const encoded = sealed.slice(SEAL_PREFIX.length);
    if (!BASE64URL.test(encoded)) return null;
    const blob = Buffer.from(encoded, 'base64url');
    // Only the canonical encoding opens: no second spelling of the same sealed key.
    if (blob.toString('base64url') !== encoded || blob.length <= IV_BYTES + TAG_BYTES) return null;
    try {
      const decipher = createDecipheriv('aes-256-gcm', sealKey, blob.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
      decipher.setAAD(aad(username));
      decipher.setAuthTag(blob.subarray(blob.length - TAG_BYTES));
      const key = Buffer.concat([decipher.update(blob.subarray(IV_BYTES, blob.length - TAG_BYTES)), decipher.final()]);
      return new Uint8Array(key);
    } catch {
      return null;
    }
  };

  const enroll = (username: string, options: TotpEnrollOptions = {}): TotpEnrollment => {
    if (typeof username !== 'string' || username === '') {
      throw configError('totp.enroll(username): `username` must be a non-empty string.', 'invalid-argument');
    }
    const issuer = label('issuer', options.issuer ?? DEFAULT_ISSUER);
    const accountName = label('accountName', options.accountName ?? username);
    const key = randomBytes(KEY_BYTES);
    const uri = createTOTPKeyURI(issuer, accountName, key, TOTP_PERIOD_SECONDS, TOTP_DIGITS);
    return { secret: encodeBase32NoPadding(key), uri, sealed: seal(username, key) };
  };

  const stepAt = (nowMs: number): number => {
    if (typeof nowMs !== 'number' || !Number.isFinite(nowMs) || nowMs < 0) {
      throw configError('totp: `nowMs` must be a non-negative number of milliseconds since the epoch.', 'invalid-argument');
    }
    return Math.floor(nowMs / (TOTP_PERIOD_SECONDS * 1000));
  };

  const matchStep = (key: Uint8Array, code: unknown, nowMs: number, afterStep = -1): number | null => {
    if (!(key instanceof Uint8Array) || key.length === 0) throw configError('totp.matchStep(key): `key` must be a non-empty Uint8Array.', 'invalid-argument');
    const current = stepAt(nowMs);
    if (typeof code !== 'string' || !SIX_DIGITS.test(code)) return null;
    let matched: number | null = null;
    // Every step of the window is computed and compared: the time taken says nothing of which matched.
    for (let step = current - TOTP_WINDOW_STEPS; step <= current + TOTP_WINDOW_STEPS; step++) {
      if (step < 0) continue;
      const equal = safeEqual(generateHOTP(key, BigInt(step), TOTP_DIGITS), code);
      if (equal && matched === null && step > afterStep) matched = step;
    }
    return matched;
  };

  return { enroll, unseal, matchStep, stepAt };
}

function label(name: 'issuer' | 'accountName', value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '' || value.length > MAX_LABEL_LENGTH || value.includes(':')) {
    throw configError(
      `totp.enroll: \`${name}\` must be a non-empty string of at most ${MAX_LABEL_LENGTH} characters without ":" (the otpauth URI uses ":" to separate issuer and account).`,
      'invalid-argument',
    );
  }
  return value;
}
