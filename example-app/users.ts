// The example's user directory: two demo accounts with scrypt password hashes, as a real
// app would keep them in its database. Passwords are compared as hashes, in constant time.
import { scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const scryptAsync = promisify(scrypt) as (password: string, salt: string, keyLength: number, options: { N: number; r: number; p: number }) => Promise<Buffer>;

export interface DemoUser {
  username: string;
  displayName: string;
  /** `scrypt$N$r$p$salt$hash`, salt and hash base64url. */
  passwordHash: string;
  /** US or Canada number, as users type it. */
  phone?: string;
  email?: string;
}

/** Shown on the sign-in page so anyone can try the demo. */
export const DEMO_PASSWORD = 'blockid-demo';

export const demoUsers: readonly DemoUser[] = [
  {
    username: 'john.smith',
    displayName: 'John Smith',
    passwordHash: 'scrypt$16384$8$1$eRf40m-REBg_DmWE_BRy2Q$jDFEmxAJc3isqos0XLJi6e7mc97P7-KpU_7F-3JBnIE',
    phone: '4155550100',
    email: 'john.smith@example.com',
  },
  {
    username: 'ada.lovelace',
    displayName: 'Ada Lovelace',
    passwordHash: 'scrypt$16384$8$1$w8-ckVObNSxUnfsZUFO-Hg$xvOPF_BVBtEcHMJ3JguxjNyiiVJTuA7RnWGm8mNtuOs',
    email: 'ada@example.com',
  },
];

/** Compared against when the username is unknown, so both answers take the same time. */
const DUMMY_HASH = 'scrypt$16384$8$1$2CtuWAGAGJyV0n5jyvOB3w$YL0FUfja9e0rQS2nwhoTPzG7pftyBFTSFVZvheFNMHY';

export function normalizeUsername(raw: unknown): string {
  return typeof raw === 'string' ? raw.trim().toLowerCase() : '';
}

export function findUser(username: string): DemoUser | undefined {
  return demoUsers.find((user) => user.username === username);
}

async function passwordMatches(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !n || !r || !p || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64url');
  const actual = await scryptAsync(password, salt, expected.length, {
    N: Number(n),
    r: Number(r),
    p: Number(p),
  });
  return timingSafeEqual(actual, expected);
}

/** The user when username and password match; `undefined` otherwise (same cost either way). */
export async function authenticate(rawUsername: unknown, rawPassword: unknown): Promise<DemoUser | undefined> {
  const username = normalizeUsername(rawUsername);
  const password = typeof rawPassword === 'string' ? rawPassword.slice(0, 1024) : '';
  const user = findUser(username);
  const ok = await passwordMatches(password, user?.passwordHash ?? DUMMY_HASH);
  return ok && user && password !== '' ? user : undefined;
}

/**
 * What a user set up beyond the password: the sealed authenticator key from
 * `otp.totp.enroll()` and the hashes of the unused recovery codes. A real app keeps these on
 * the user's row; the example keeps them in memory, per app instance, so a restart forgets them.
 */
export interface UserFactors {
  /** The sealed key (never the key itself), or undefined when no app is set up. */
  totp?: string;
  totpAddedAt?: Date;
  /** Hashes only: the codes are shown once and never stored. */
  recoveryCodes: string[];
  recoveryCodesAddedAt?: Date;
}

export interface FactorStore {
  get(username: string): UserFactors;
  setTotp(username: string, sealed: string): void;
  removeTotp(username: string): void;
  /** Replaces every recovery code of the user. */
  setRecoveryCodes(username: string, hashes: string[]): void;
  /** Deletes one used code (blockid-otp's `onRecoveryCodeUsed`). */
  removeRecoveryCode(username: string, hash: string): void;
}

export function createFactorStore(): FactorStore {
  const rows = new Map<string, UserFactors>();
  const row = (username: string): UserFactors => {
    let factors = rows.get(username);
    if (!factors) rows.set(username, (factors = { recoveryCodes: [] }));
    return factors;
  };
  return {
    get: (username) => {
      const factors = rows.get(username);
      return factors ? { ...factors, recoveryCodes: [...factors.recoveryCodes] } : { recoveryCodes: [] };
    },
    setTotp(username, sealed) {
      Object.assign(row(username), { totp: sealed, totpAddedAt: new Date() });
    },
    removeTotp(username) {
      const factors = row(username);
      delete factors.totp;
      delete factors.totpAddedAt;
    },
    setRecoveryCodes(username, hashes) {
      Object.assign(row(username), { recoveryCodes: [...hashes], recoveryCodesAddedAt: new Date() });
    },
    removeRecoveryCode(username, hash) {
      const factors = row(username);
      factors.recoveryCodes = factors.recoveryCodes.filter((stored) => stored !== hash);
    },
  };
}
