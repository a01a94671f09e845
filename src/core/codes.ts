/**
 * Everything secret-bearing lives here: code generation, keyed hashing, and the one
 * constant-time compare. Nothing else in blockid-otp touches a code's digits.
 */
import { createHmac, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';

/** A uniformly random code of `lengthDigits` digits, zero-padded (`"004217"`). */
export function generateCode(lengthDigits: number): string {
  return String(randomInt(0, 10 ** lengthDigits)).padStart(lengthDigits, '0');
}

/** True when `value` is exactly `lengthDigits` ASCII digits. */
export function isWellFormedCode(value: string, lengthDigits: number): boolean {
  return value.length === lengthDigits && /^[0-9]+$/.test(value);
}

/** HMAC-SHA256 of `message` (as UTF-8) under `secret`, in base64url. */
export function hmac(secret: string, message: string): string {
  return createHmac('sha256', secret).update(message).digest('base64url');
}

/** Keyed hash of a code, bound to the record it belongs to. */
export function hashCode(secret: string, recordKey: string, code: string): string {
  return hmac(secret, `code\0${recordKey}\0${code}`);
}

/**
 * An opaque key for personal data (a username, a number, an address): stores see only this,
 * so key names carry no personal data and cannot be enumerated without the secret.
 */
export function hashKey(secret: string, kind: string, value: string): string {
  return hmac(secret, `key\0${kind}\0${value}`).slice(0, 27);
}

/** A fresh random token of `bytes` random bytes in base64url (a session binding nonce: 18). */
export function randomToken(bytes = 18): string {
  return randomBytes(bytes).toString('base64url');
}

/** The store's key for a username: every per-username record of both spaces lives under it. */
export function userKey(secret: string, username: string): string {
  return hashKey(secret, 'user', username);
}

/** The one constant-time comparison of two secrets (hashes or tokens). */
export function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
