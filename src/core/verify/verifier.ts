/**
 * Verification by each method (the SMS/email code, its sign-in link, an authenticator app, a recovery code),
 * with one attempt budget and one lock for all of them. Each method finds its candidate's
 * outcome; `report` turns it into the answer, the events and the metrics, the same way for
 * every method. A known user's guesses, by any method and whether or not the user has that
 * method, spend the user's one budget and meet the user's one lock; an unknown user's spend
 * the decoy space's, as its SMS/email codes do. So from outside a user without the method,
 * a user with it and an unknown user answer alike, before and after a lock.
 */
import { hashCode, hashKey, hmac, isWellFormedCode, userKey as keyOfUser } from '../codes.js';
import { linkHash, parseLinkToken } from '../link/token.js';
import type { OtpEvents } from '../events.js';
import type { ResolvedOptions } from '../options.js';
import { createRecoveryCodes } from './recovery.js';
import { createTotp } from './totp.js';
import { lockPolicy } from './lockout.js';
import { inSpan } from '../tracing.js';
import type { VerifyMethod } from '../types.js';
import type { LockStarted, Space, VerifyOutcome } from '../../stores/types.js';

export type VerifyResult = { ok: true } | { ok: false; reason: 'invalid_code' | 'too_many_attempts'; retryAfterSeconds?: number };

/** What one method found, before it becomes an answer; `space` when it touched a space's state (events mark a decoy's). */
type Outcome =
  | { result: 'ok'; issuedAtMs?: number; tag?: string }
  | { result: 'invalid'; why: 'wrong_code' | 'no_code' | 'malformed_code'; space?: Space; lock?: LockStarted }
  | { result: 'burned'; space?: Space }
  | { result: 'locked'; retryAfterMs: number; space?: Space };

/** How long a used TOTP step is remembered: past the last moment it could be accepted again (its step and the next). */
const TOTP_STEP_MEMORY_MS = 5 * 60_000;

export interface VerifyRequest {
  username: string;
  code: string;
  /** Slots to look in for an SMS/email code: the session's over HTTP, the unbound one for `verifyOtp()`. */
  slots: string[];
  ip: string | undefined;
  /** The framework's request, for `resolveUser` and `onRecoveryCodeUsed`. */
  req?: unknown;
}

export function createVerifier(config: ResolvedOptions, events: OtpEvents) {
  const { secret, store, limits, metrics } = config;
  const policy = lockPolicy(config);
  const totp = createTotp(secret);
  const recovery = createRecoveryCodes(secret);
  const userKey = (username: string) => keyOfUser(secret, username);
  // Stand-ins for a method a user does not have (or an unknown user): opened, computed and
  // compared as the real ones are, so a wrong guess costs the same whatever the user has.
  const standIn = createStandIns(totp, recovery);

  const resolve = async (request: VerifyRequest) =>
    config.resolveUser === undefined ? null : ((await config.resolveUser(request.username, request.req)) ?? null);

  /** A candidate compared outside the store: count the failure first (no overshoot), then settle a match. */
  const attempt = async (user: string, space: Space, matched: () => Parameters<typeof store.settle>[0]['use'] | null): Promise<Outcome> => {
    const start = await store.attempt({ user, space, policy });
    if (!start.ok) return { result: 'locked', retryAfterMs: start.retryAfterMs, space };
    const match = matched(); // in the decoy space too: the same work, then thrown away
    const use = space === 'user' ? match : null;
    if (use !== null && (await store.settle({ user, use }))) return { result: 'ok' };
    return { result: 'invalid', why: 'wrong_code', space, lock: start.lock };
  };

  /** The store's answer for a code record (by its code or by its link) as an outcome. */
  const recordOutcome = (outcome: VerifyOutcome): Outcome => {
    switch (outcome.result) {
      case 'ok':
        return { result: 'ok', issuedAtMs: outcome.issuedAtMs, ...(outcome.tag !== undefined && { tag: outcome.tag }) };
      case 'missing':
        return { result: 'invalid', why: 'no_code' };
      case 'burned':
        return { result: 'burned', space: outcome.space };
      case 'locked':
        return { result: 'locked', retryAfterMs: outcome.retryAfterMs, space: outcome.space };
      case 'mismatch':
        return { result: 'invalid', why: 'wrong_code', space: outcome.space, lock: outcome.lock };
    }
  };

  const methods: Record<VerifyMethod, (request: VerifyRequest) => Promise<Outcome>> = {
    async code({ username, code, slots }) {
      const candidate = code.replace(/[\s-]/g, '');
      if (!isWellFormedCode(candidate, config.codeLength)) return { result: 'invalid', why: 'malformed_code' };
      const user = userKey(username);
      return recordOutcome(await store.verify({ user, slots, hash: hashCode(secret, user, candidate), policy }));
    },

    /**
     * A sign-in link's token against the session's own code record: the same budget, lock and
     * single use as the code. A token of another record (or none) is a wrong guess of this one.
     */
    async link({ username, code, slots }) {
      const user = userKey(username);
      const token = parseLinkToken(code);
      const own = token !== null && slots.length === 1 && token.user === user && token.slot === slots[0];
      const hash = own ? linkHash(secret, token) : hmac(secret, `link-mismatch\0${code.slice(0, 128)}`);
      return recordOutcome(await store.verify({ user, slots, hash, link: true, policy }));
    },

    async totp(request) {
      const user = await resolve(request);
      const key = typeof user?.totp === 'string' ? totp.unseal(request.username, user.totp) : standIn.openTotp();
      const candidate = request.code.replace(/\s/g, '');
      return attempt(userKey(request.username), user === null ? 'decoy' : 'user', () => {
        const step = totp.matchStep(key ?? standIn.totpKey, candidate, Date.now());
        return step === null || key === null ? null : { kind: 'totp', step, ttlMs: TOTP_STEP_MEMORY_MS };
      });
    },

    async recovery(request) {
      const user = await resolve(request);
      const hashes = Array.isArray(user?.recoveryCodes) && user.recoveryCodes.length > 0 ? user.recoveryCodes : null;
      const candidate = recovery.find(request.code, hashes ?? standIn.recoveryHashes);
      const found = hashes === null ? null : candidate;
      const outcome = await attempt(userKey(request.username), user === null ? 'decoy' : 'user', () =>
        found === null ? null : { kind: 'recovery', id: hashKey(secret, 'recovery', found), ttlMs: limits.failureMemorySeconds * 1000 },
      );
      if (outcome.result === 'ok' && found !== null && config.onRecoveryCodeUsed !== undefined) {
        try {
          await config.onRecoveryCodeUsed(request.username, found, request.req);
        } catch (error) {
          config.logger?.error(
            { event: 'otp.recovery_code_callback_failed', username: request.username, error: String(error).slice(0, 300) },
            'blockid-otp: onRecoveryCodeUsed threw',
          );
        }
      }
      return outcome;
    },
  };

  /** The answer, events and metrics for an outcome: one way for every method. */
  const reportOutcome = (method: VerifyMethod, request: VerifyRequest, outcome: Outcome): VerifyResult => {
    const { username } = request;
    // A decoy's failures and locks are marked, so listeners never take them for a real account's.
    const about = {
      ...(request.ip !== undefined && { ip: request.ip }),
      ...(outcome.result !== 'ok' && outcome.space === 'decoy' && { decoy: true as const }),
    };
    switch (outcome.result) {
      case 'ok':
        events.emit('verified', { username, method, ...about });
        metrics?.verification(method, 'verified');
        if (outcome.issuedAtMs !== undefined && outcome.issuedAtMs > 0) metrics?.timeToVerify(Math.max(0, Date.now() - outcome.issuedAtMs) / 1000);
        for (const sent of outcome.tag?.split(',') ?? []) {
          const [channel, npa = ''] = sent.split(':');
          if (channel === 'sms' || channel === 'email' || channel === 'whatsapp' || channel === 'voice') metrics?.verifiedSend?.(channel, npa);
        }
        return { ok: true };
      case 'burned':
        events.emit('failed', { username, reason: 'too_many_attempts', method, ...about });
        metrics?.verification(method, 'burned');
        return { ok: false, reason: 'too_many_attempts' };
      case 'locked':
        events.emit('failed', { username, reason: 'locked', method, ...about });
        metrics?.verification(method, 'locked');
        return { ok: false, reason: 'too_many_attempts', retryAfterSeconds: Math.max(1, Math.ceil(outcome.retryAfterMs / 1000)) };
      case 'invalid':
        events.emit('failed', { username, reason: outcome.why, method, ...about });
        metrics?.verification(method, 'invalid');
        // Decoys lock too (and say so): from outside, an unknown username behaves as a known one.
        if (outcome.lock === 'permanent') {
          events.emit('locked', { username, permanent: true, ...about });
          metrics?.lock('permanent');
        } else if (outcome.lock === 'timed') {
          events.emit('locked', { username, lockSeconds: limits.lockSeconds, ...about });
          metrics?.lock('timed');
        }
        return { ok: false, reason: 'invalid_code' };
    }
  };

  const RESULTS = { ok: 'verified', invalid: 'invalid', burned: 'burned', locked: 'locked' } as const;

  return {
    totp,
    recovery,
    policy,
    /** Verifies `request.code` by `method`; the store decides atomically, so concurrent guesses cannot overshoot. */
    verify: (method: VerifyMethod, request: VerifyRequest): Promise<VerifyResult> =>
      inSpan('blockid_otp.verify', { 'blockid_otp.method': method }, async (span) => {
        const outcome = await methods[method](request);
        span.setAttribute('blockid_otp.result', RESULTS[outcome.result]);
        return reportOutcome(method, request, outcome);
      }),
    /**
     * An authenticator app's first code, before its key is stored: the same attempt and settle
     * step as a TOTP verify (the failure counted first, the step remembered once matched).
     */
    async confirmTotp(username: string, sealed: string, code: string): Promise<boolean> {
      const key = totp.unseal(username, sealed);
      const candidate = code.replace(/\s/g, '');
      const outcome = await attempt(userKey(username), 'user', () => {
        const step = key === null ? null : totp.matchStep(key, candidate, Date.now());
        return step === null ? null : { kind: 'totp', step, ttlMs: TOTP_STEP_MEMORY_MS };
      });
      return outcome.result === 'ok';
    },
  };
}

/**
 * What a wrong TOTP or recovery guess is checked against when the user has no such method: a
 * sealed key of nobody's (opened with its own binding, so it opens as a real one does, and
 * then yields `null` to the caller) and recovery code hashes of codes nobody was shown.
 */
function createStandIns(totp: ReturnType<typeof createTotp>, recovery: ReturnType<typeof createRecoveryCodes>) {
  const owner = 'blockid-otp stand-in';
  const { sealed } = totp.enroll(owner);
  const totpKey = totp.unseal(owner, sealed);
  if (totpKey === null) throw new Error('blockid-otp: the stand-in TOTP key does not open');
  return {
    totpKey,
    /** Opens the stand-in key (the work a real key's opening costs); always `null` for the caller. */
    openTotp: (): null => (totp.unseal(owner, sealed), null),
    recoveryHashes: recovery.generate({ count: 10 }).hashes,
  };
}
