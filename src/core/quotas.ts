/**
 * Send quotas and the verification lockout, on the store's limiters (memory or Redis):
 * per client IP, per username, per destination, per number block, the global SMS spend
 * breakers, and consecutive failed verifications per username.
 */
import { hashKey } from './codes.js';
import { maskDestination } from './destinations.js';
import { OtpError } from './errors.js';
import { ipQuotaKey } from './client-ip.js';
import type { OtpEvents } from './events.js';
import type { OtpLimits } from './options.js';
import type { Target } from './targets.js';
import type { Limiter, OtpStore } from '../stores/types.js';
import type { Channel } from './types.js';

/** How long failed verifications are remembered (reset by a success or by the lock ending). */
const FAILURE_MEMORY_SECONDS = 86_400;

export type Quotas = ReturnType<typeof createQuotas>;

export function createQuotas({ store, limits, secret, events }: { store: OtpStore; limits: OtpLimits; secret: string; events: OtpEvents }) {
  const quota = (name: string, points: number, durationSeconds: number): Limiter | undefined =>
    points > 0 ? store.limiter({ name, points, durationSeconds }) : undefined;
  const limiters = {
    username: quota('send-user', limits.sendsPerUsername.points, limits.sendsPerUsername.windowSeconds),
    destination: quota('send-dest', limits.sendsPerDestination.points, limits.sendsPerDestination.windowSeconds),
    ip: quota('send-ip', limits.sendsPerIp.points, limits.sendsPerIp.windowSeconds),
    prefix: quota('sms-prefix', limits.smsPerPrefix.points, limits.smsPerPrefix.windowSeconds),
    smsHour: quota('sms-hour', limits.smsPerHour, 3600),
    smsDay: quota('sms-day', limits.smsPerDay, 86_400),
    // Consecutive failures across codes: counted for a day, and once over the cap the key is
    // blocked for lockSeconds from that moment (a timed lock, not the rest of a fixed window).
    failures: store.limiter({ name: 'verify-fail', points: limits.failedVerifications, durationSeconds: FAILURE_MEMORY_SECONDS, blockSeconds: limits.lockSeconds }),
  };

  /** Counts one event against `limiter`; throws RATE_LIMITED (and emits) when over. */
  const consume = async (limiter: Limiter | undefined, key: string, limit: string, extra: { username?: string; ip?: string; target?: Target }) => {
    if (limiter === undefined) return;
    const result = await limiter.consume(key);
    if (result.ok) return;
    const retryAfterSeconds = Math.ceil(result.retryAfterMs / 1000);
    events.emit('rate_limited', {
      limit,
      retryAfterSeconds,
      ...(extra.username !== undefined && { username: extra.username }),
      ...(extra.ip !== undefined && { ip: extra.ip }),
      ...(extra.target && { channel: extra.target.channel, destination: maskDestination(extra.target.to) }),
    });
    throw new OtpError('RATE_LIMITED', `Too many codes requested (${limit}); try again in ${retryAfterSeconds} s.`, { retryAfterSeconds });
  };

  /**
   * Per-destination quotas, narrowest first, so a request refused for one destination never
   * spends the shared prefix and global SMS budgets; a target over any of them is dropped
   * (its reason kept).
   */
  const admitTarget = async (target: Target, username: string): Promise<OtpError | null> => {
    try {
      await consume(limiters.destination, hashKey(secret, 'dest', destinationQuotaKey(target)), 'sendsPerDestination', { username, target });
      if (target.channel === 'sms') {
        await consume(limiters.prefix, hashKey(secret, 'prefix', target.to.slice(0, -4)), 'smsPerPrefix', { username, target });
        await consume(limiters.smsHour, 'global', 'smsPerHour', { username, target });
        await consume(limiters.smsDay, 'global', 'smsPerDay', { username, target });
      }
      return null;
    } catch (error) {
      if (error instanceof OtpError && error.code === 'RATE_LIMITED') return error;
      throw error;
    }
  };

  /**
   * A decoy's stand-in for `admitTarget`, for every channel the request asks for: the same
   * limiter round trips, as reads that spend nothing (so unknown users cannot spend the shared
   * budgets), hence the same response time; and a tripped global SMS breaker refuses a decoy's
   * SMS exactly as it refuses a known user's.
   */
  const admitDecoy = async (channels: Channel[], username: string, ip: string | undefined): Promise<OtpError | null> => {
    let refusal: OtpError | null = null;
    for (const channel of channels) {
      const reads: Array<[Limiter | undefined, string, string]> = [[limiters.destination, hashKey(secret, 'decoy-dest', `${channel}\0${username}`), 'sendsPerDestination']];
      if (channel === 'sms') {
        reads.push([limiters.prefix, hashKey(secret, 'decoy-prefix', username), 'smsPerPrefix'], [limiters.smsHour, 'global', 'smsPerHour'], [limiters.smsDay, 'global', 'smsPerDay']);
      }
      let refused: OtpError | null = null;
      for (const [limiter, key, limit] of reads) {
        const state = limiter === undefined || refused !== null ? undefined : await limiter.peek(key);
        if (state === undefined || state.ok) continue;
        const retryAfterSeconds = Math.ceil(state.retryAfterMs / 1000);
        events.emit('rate_limited', { username, limit, retryAfterSeconds, channel, ...(ip !== undefined && { ip }) });
        refused = new OtpError('RATE_LIMITED', `Too many codes requested (${limit}); try again in ${retryAfterSeconds} s.`, { retryAfterSeconds });
      }
      if (refused === null) return null;
      refusal ??= refused;
    }
    return refusal;
  };


  return {
    /** Counts a send against the client's IP (IPv6 by /56); throws RATE_LIMITED when over. */
    perIp: (ip: string | undefined, username: string) =>
      consume(limiters.ip, hashKey(secret, 'ip', ipQuotaKey(ip)), 'sendsPerIp', { username, ...(ip !== undefined && { ip }) }),
    /** Counts a send against the username's window quota; throws RATE_LIMITED when over. */
    perUsername: (userKey: string, username: string) => consume(limiters.username, userKey, 'sendsPerUsername', { username }),
    admitTarget,
    admitDecoy,
    /** Consecutive failed verifications per username (the lockout). */
    failures: limiters.failures,
  };
}

/**
 * The key a destination's quota is counted under: E.164 for numbers (every writing of one
 * number is already one string); for email the whole address in lower case with any
 * `+tag` subaddress dropped, since `Ada+1@Example.com` and `ada@example.com` reach one inbox.
 * Used for quotas only: mail still goes to the address as the user gave it.
 */
function destinationQuotaKey(target: Target): string {
  if (target.channel === 'sms') return target.to;
  const at = target.to.lastIndexOf('@');
  const local = target.to.slice(0, at).split('+')[0] || target.to.slice(0, at);
  return `${local}@${target.to.slice(at + 1)}`.toLowerCase();
}

