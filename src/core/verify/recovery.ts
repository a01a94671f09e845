/**
 * Recovery codes: shown once, stored only as keyed hashes. A code is 12 symbols from a
 * 30-symbol alphabet (Crockford's base32 without 0, 1 and U, so no O/0, I/L/1 or U/V
 * confusion), written `XXXX-XXXX-XXXX`: 12 × log2(30) ≈ 58.9 bits each.
 * The hash is HMAC-SHA256 under a key derived from the app's `secret`, so a leaked table of
 * hashes cannot be checked offline without the secret.
 */
import { configError } from '../errors.js';
import { createHmac, hkdfSync, randomInt } from 'node:crypto';
import { safeEqual } from '../codes.js';

/** The symbols of a recovery code: digits 2-9 and A-Z without I, L, O, U. */
export const RECOVERY_CODE_ALPHABET = '23456789ABCDEFGHJKMNPQRSTVWXYZ';
const GROUPS = 3;
const GROUP_LENGTH = 4;
const CODE_LENGTH = GROUPS * GROUP_LENGTH;
const WELL_FORMED = new RegExp(`^[${RECOVERY_CODE_ALPHABET}]{${CODE_LENGTH}}$`);
const DEFAULT_COUNT = 10;
const MAX_COUNT = 50;
/** Longer input is not a recovery code; it is refused before any hashing. */
const MAX_CANDIDATE_LENGTH = 64;
const HASH_INFO = 'blockid-otp recovery code v1';

export interface RecoveryCodeSet {
  /** The codes to show the user once (`XXXX-XXXX-XXXX`), all different. */
  codes: string[];
  /** Their keyed hashes (base64url), same order: what the app stores. */
  hashes: string[];
}

export interface RecoveryCodes {
  /** `count` (1..50, default 10) fresh codes and their hashes. */
  generate(options?: { count?: number }): RecoveryCodeSet;
  /** Upper-cased, without spaces or dashes: the form that is hashed. `''` for a non-string. */
  normalize(candidate: unknown): string;
  /** The keyed hash of a code (any writing that normalizes to it). */
  hash(code: string): string;
  /**
   * The element of `hashes` that `candidate` matches, or `null`. Every hash is compared, in
   * constant time, whether or not one matched earlier.
   */
  find(candidate: unknown, hashes: readonly unknown[] | null | undefined): string | null;
}

/** Recovery codes keyed by the app's `secret` (>= 32 characters). */
export function createRecoveryCodes(secret: string): RecoveryCodes {
  if (typeof secret !== 'string' || secret.length < 32) {
    throw configError('createRecoveryCodes(secret): `secret` must be a string of at least 32 characters.', 'invalid-argument');
  }
  const hashKey = Buffer.from(hkdfSync('sha256', secret, 'blockid-otp', HASH_INFO, 32));

  const normalize = (candidate: unknown): string => {
    if (typeof candidate !== 'string') return '';
    // NFKC folds full-width letters and digits; then drop whitespace and every kind of dash.
    return candidate
      .normalize('NFKC')
      .toUpperCase()
      .replace(/[\s\p{Pd}]+/gu, '');
  };

  const hash = (code: string): string => createHmac('sha256', hashKey).update(normalize(code)).digest('base64url');

  const generate = (options: { count?: number } = {}): RecoveryCodeSet => {
    const count: unknown = options?.count === undefined ? DEFAULT_COUNT : options.count;
    if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > MAX_COUNT) {
      throw configError(`recoveryCodes.generate: \`count\` must be an integer from 1 to ${MAX_COUNT} (got ${String(count)}).`, 'invalid-argument');
    }
    const codes = new Set<string>();
    while (codes.size < count) codes.add(randomCode());
    const list = [...codes];
    return { codes: list, hashes: list.map(hash) };
  };

  const find = (candidate: unknown, hashes: readonly unknown[] | null | undefined): string | null => {
    if (!Array.isArray(hashes) || hashes.length === 0) return null;
    if (typeof candidate !== 'string' || candidate.length > MAX_CANDIDATE_LENGTH) return null;
    const normalized = normalize(candidate);
    if (!WELL_FORMED.test(normalized)) return null;
    const digest = hash(normalized);
    let found: string | null = null;
    for (const stored of hashes) {
      if (typeof stored !== 'string') continue;
      if (safeEqual(stored, digest) && found === null) found = stored;
    }
    return found;
  };

  return { generate, normalize, hash, find };
}

function randomCode(): string {
  let code = '';
  for (let i = 0; i < CODE_LENGTH; i++) {
    if (i > 0 && i % GROUP_LENGTH === 0) code += '-';
    code += RECOVERY_CODE_ALPHABET[randomInt(RECOVERY_CODE_ALPHABET.length)];
  }
  return code;
}
