/**
 * Everything secret-bearing lives here: code generation, keyed hashing, and the one
 * constant-time compare. Nothing else in blockid-otp touches a code's digits.
 */
import * as crypto from 'node:crypto';
import { createHmac, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';

/** A uniformly random code of `lengthDigits` digits, zero-padded (`"004217"`). */
export function generateCode(lengthDigits: number): string {
  return String(randomInt(0, 10 ** lengthDigits)).padStart(lengthDigits, '0');
}

/** True when `value` is exactly `lengthDigits` ASCII digits. */
export function isWellFormedCode(value: string, lengthDigits: number): boolean {
  return value.length === lengthDigits && /^[0-9]+$/.test(value);
}

/** Node's one-shot `crypto.hash` (20.12 and later): no Hash object per call. */
const oneShot = (crypto as { hash?: (algorithm: string, data: string | Buffer, encoding: string) => string }).hash;
const BLOCK = 64;
const ASCII = /^[\x00-\x7f]*$/;
/** Each secret's HMAC pads as strings (null where the fast path does not apply); a handful of secrets per process. */
const padsBySecret = new Map<string, { inner: string; outer: string } | null>();

function padsOf(secret: string): { inner: string; outer: string } | null {
  let pads = padsBySecret.get(secret);
  if (pads !== undefined) return pads;
  pads = null;
  // An ASCII key of at most one block: both pads are ASCII too, so the inner pad written as a
  // string hashes (as UTF-8) to exactly its bytes, followed by the message's UTF-8 bytes.
  if (oneShot !== undefined && secret.length <= BLOCK && ASCII.test(secret)) {
    const key = Buffer.alloc(BLOCK);
    key.write(secret, 'latin1');
    const inner = Buffer.alloc(BLOCK);
    const outer = Buffer.alloc(BLOCK);
    for (let i = 0; i < BLOCK; i++) {
      inner[i] = key[i]! ^ 0x36;
      outer[i] = key[i]! ^ 0x5c;
    }
    pads = { inner: inner.toString('latin1'), outer: outer.toString('latin1') };
  }
  if (padsBySecret.size >= 64) padsBySecret.clear();
  padsBySecret.set(secret, pads);
  return pads;
}

/**
 * HMAC-SHA256 of `message` (as UTF-8) under `secret`, in base64url: RFC 2104 written out with
 * two one-shot hashes where it can be (about twice as fast as `createHmac` for these short
 * inputs), `createHmac` otherwise. Both give the same bytes (test/unit/codes.test.ts pins them
 * to each other). Kept because the old-against-new bench measured the Redis send 0.56-0.81×
 * with `createHmac` alone (a send hashes about ten keys).
 */
export function hmac(secret: string, message: string): string {
  const pads = padsOf(secret);
  if (pads === null || oneShot === undefined) return createHmac('sha256', secret).update(message).digest('base64url');
  const inner = oneShot('sha256', pads.inner + message, 'latin1');
  return oneShot('sha256', Buffer.from(pads.outer + inner, 'latin1'), 'base64url');
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
