/**
 * The sign-in link's token and the confirmation page's anti-forgery field.
 *
 * A token is 16 random bytes followed by an opaque reference to its code record: the
 * username's store key and the session slot, both keyed hashes (27 base64url characters each)
 * that reveal nothing without the secret. The reference lets a POST from another device tell a
 * live link (without consuming it) from a dead one; only the random part proves possession.
 * The store keeps `linkHash(...)` (HMAC with its own domain label, never the code's), never the
 * token.
 */
import { hmac, randomToken, safeEqual } from '../codes.js';

const RANDOM_CHARS = 22; // 16 bytes in base64url
const KEY_CHARS = 27; // a hashKey()
export const LINK_TOKEN_LENGTH = RANDOM_CHARS + 2 * KEY_CHARS;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

export interface LinkToken {
  random: string;
  /** The username's store key. */
  user: string;
  /** The session binding's keyed hash (the code's slot). */
  slot: string;
}

/** The keyed hash the store keeps for a token; distinct from a code's (`code\0…`). */
export function linkHash(secret: string, token: LinkToken): string {
  return hmac(secret, `link\0${token.user}\0${token.slot}\0${token.random}`);
}

/** A fresh token for the record (`user`, `slot`), and the hash to store. */
export function issueLinkToken(secret: string, user: string, slot: string): { token: string; hash: string } {
  const parts = { random: randomToken(16), user, slot };
  return { token: parts.random + user + slot, hash: linkHash(secret, parts) };
}

/** The parts of a well-formed token, or null (wrong length or characters). */
export function parseLinkToken(token: unknown): LinkToken | null {
  if (typeof token !== 'string' || token.length !== LINK_TOKEN_LENGTH || !BASE64URL.test(token)) return null;
  return {
    random: token.slice(0, RANDOM_CHARS),
    user: token.slice(RANDOM_CHARS, RANDOM_CHARS + KEY_CHARS),
    slot: token.slice(RANDOM_CHARS + KEY_CHARS),
  };
}

/**
 * The page's anti-forgery field `<issued seconds>.<mac>`, bound to the token and to the
 * session that opened the page (its binding hash, `''` for none). Stateless, so showing the
 * page writes nothing; checked only when a POST carries neither `Origin` nor `Sec-Fetch-Site`.
 */
export function pageToken(secret: string, token: string, binding: string, nowMs = Date.now()): string {
  const issued = Math.floor(nowMs / 1000);
  return `${issued}.${hmac(secret, `link-page\0${issued}\0${binding}\0${token}`)}`;
}

/** True when `field` is this token's page field for this session, issued within `maxAgeSeconds`. */
export function checkPageToken(secret: string, field: unknown, token: string, binding: string, maxAgeSeconds: number, nowMs = Date.now()): boolean {
  if (typeof field !== 'string' || field.length > 80) return false;
  const [issuedText = '', mac = ''] = field.split('.');
  const issued = Number(issuedText);
  if (!/^\d{1,12}$/.test(issuedText) || nowMs / 1000 - issued > maxAgeSeconds || issued - nowMs / 1000 > 60) return false;
  return safeEqual(mac, hmac(secret, `link-page\0${issued}\0${binding}\0${token}`));
}
