/**
 * Turns a send request into one admission plan: the per-session cooldown, the per-username
 * quota, the per-IP quota and, for every channel asked for, that target's quotas and spend
 * breakers, each with its key. The space is chosen only by whether `resolveUser` returned a
 * user; a channel the user lacks (or every channel, for a decoy) gets a stand-in with the same
 * counters on keys of its own that only reads the shared breakers, so every plan has the same
 * shape for every kind of user. The store decides the whole plan in one call.
 */
import { hashKey } from '../codes.js';
import { ipQuotaKey } from '../http/client-ip.js';
import type { OtpLimits, WindowQuota } from '../options.js';
import type { Target } from './targets.js';
import type { Channel } from '../types.js';
import type { Counter, SendPlan, Space } from '../../stores/types.js';
import { RecentValues } from './recent.js';

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

export interface PlanRequest {
  /** The normalized username. */
  username: string;
  /** Its store key (`userKey(username)`). */
  user: string;
  /** The session binding's keyed hash, or `''` for an unbound code. */
  slot: string;
  /** Count the send against the client's IP (every HTTP send; programmatic ones given `{ ip }`). */
  countIp: boolean;
  ip: string | undefined;
  /** `user` when `resolveUser` returned a user, `decoy` when it returned nothing. */
  space: Space;
  /** One per channel asked for, in order: its real target, or `null` for a stand-in that delivers nothing. */
  targets: PlannedTarget[];
  /** Test destinations deliver nothing: they spend no SMS or voice budget. */
  test: boolean;
  code: { hash: string; ttlMs: number; tag?: string };
}

/** A channel of a send: where it goes, or `target: null` when the user lacks it (or is a decoy). */
export interface PlannedTarget {
  channel: Channel;
  target: Target | null;
}

/** Keys of destinations, number blocks and IPs seen lately, per kind (bounded: at most 2 × 5,000 each, a few MB in all): a resend to them hashes nothing new. */
const MAX_CACHED_KEYS = 5_000;

export type Admission = ReturnType<typeof createAdmission>;

export function createAdmission({ secret, limits, cooldownSeconds }: { secret: string; limits: OtpLimits; cooldownSeconds: number }) {
  /**
   * `${label}:${hashKey(kind, value)}` for values that recur across sends (a destination, a
   * number block, an IP, and a decoy's stand-ins for them): remembered per kind, so a resend
   * hashes nothing and hands the store the same key string as before. Kept because the
   * old-against-new bench measured the Redis send below 0.95× without it.
   */
  const recurringKeys = (label: string, kind: string) => {
    const cache = new RecentValues<string>(MAX_CACHED_KEYS);
    return (value: string): string => {
      let key = cache.get(value);
      if (key === undefined) {
        key = `${label}:${hashKey(secret, kind, value)}`;
        cache.set(value, key);
      }
      return key;
    };
  };
  const destinationKey = recurringKeys('dest', 'dest');
  const prefixKey = recurringKeys('prefix', 'prefix');
  const ipKey = recurringKeys('ip', 'ip');
  // Stand-ins' keys, per space: a decoy's sends never spend what a known user's stand-ins count.
  const standInKeys: Record<Space, { destination: (value: string) => string; prefix: (value: string) => string }> = {
    decoy: { destination: recurringKeys('dest', 'decoy-dest'), prefix: recurringKeys('prefix', 'decoy-prefix') },
    user: { destination: recurringKeys('dest', 'stand-in-dest'), prefix: recurringKeys('prefix', 'stand-in-prefix') },
  };

  const window = (limit: string, quota: WindowQuota, key: string, mode: Counter['mode'] = 'take'): Counter[] =>
    quota.points > 0 ? [{ limit, key, points: quota.points, windowMs: quota.windowSeconds * 1000, mode }] : [];

  const breakers = (channel: Channel, mode: Counter['mode']) => phoneBreakers(limits, channel, mode);

  const targetCounters = (target: Target, test: boolean): Counter[] => {
    const destination = window('sendsPerDestination', limits.sendsPerDestination, destinationKey(destinationQuotaKey(target)));
    if (target.channel === 'email' || test) return destination;
    return [...destination, ...window('smsPerPrefix', limits.smsPerPrefix, prefixKey(target.to.slice(0, -4))), ...breakers(target.channel, 'take')];
  };

  /** A stand-in for a channel nobody receives: the same counters, on its own keys, reading (not spending) the shared breakers. */
  const standInCounters = (channel: Channel, username: string, space: Space): Counter[] => {
    const keys = standInKeys[space];
    const destination = window('sendsPerDestination', limits.sendsPerDestination, keys.destination(`${channel}\0${username}`));
    if (channel === 'email') return destination;
    return [...destination, ...window('smsPerPrefix', limits.smsPerPrefix, keys.prefix(username)), ...breakers(channel, 'peek')];
  };

  return {
    /** The username's store key, shared by both spaces. */

    plan(request: PlanRequest): SendPlan {
      const { space } = request;
      const targets = request.targets.map(({ channel, target }) =>
        target === null ? standInCounters(channel, request.username, space) : targetCounters(target, request.test),
      );
      const perUser = limits.sendsPerUsername;
      return {
        user: request.user,
        space,
        slot: request.slot,
        cooldownMs: cooldownSeconds * 1000,
        perUser: perUser.points > 0 ? { points: perUser.points, windowMs: perUser.windowSeconds * 1000 } : null,
        request: request.countIp ? window('sendsPerIp', limits.sendsPerIp, ipKey(ipQuotaKey(request.ip))) : [],
        targets,
        code: { ...request.code, issuedAtMs: Date.now() },
      };
    },
  };
}

/** The spend breakers of a phone channel (the app-wide counters): voice has its own, SMS and WhatsApp share one. */
export function phoneBreakers(limits: OtpLimits, channel: Channel, mode: Counter['mode']): Counter[] {
  const breaker = (limit: string, points: number, windowMs: number): Counter[] => (points > 0 ? [{ limit, key: limit, points, windowMs, mode }] : []);
  return channel === 'voice'
    ? [...breaker('voicePerHour', limits.voicePerHour, HOUR_MS), ...breaker('voicePerDay', limits.voicePerDay, DAY_MS)]
    : [...breaker('smsPerHour', limits.smsPerHour, HOUR_MS), ...breaker('smsPerDay', limits.smsPerDay, DAY_MS)];
}

const GMAIL_DOMAINS = new Set(['gmail.com', 'googlemail.com']);

/**
 * The key a destination's quota is counted under: E.164 for numbers (every writing of one
 * number is one string); for email the address in lower case without a `+tag` subaddress,
 * and for Gmail without dots in the local part and with googlemail.com as gmail.com, since
 * those all reach one inbox. Used for quotas only: mail still goes to the address as given.
 */
function destinationQuotaKey(target: Target): string {
  if (target.channel !== 'email') return target.to;
  const at = target.to.lastIndexOf('@');
  const domain = target.to.slice(at + 1).toLowerCase();
  const local = (target.to.slice(0, at).split('+')[0] || target.to.slice(0, at)).toLowerCase();
  if (GMAIL_DOMAINS.has(domain)) return `${local.replace(/\./g, '')}@gmail.com`;
  return `${local}@${domain}`;
}
