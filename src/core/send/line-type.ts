/**
 * The line-type gate (`lookup` option): before the first send to a number, ask what kind of
 * line it is, keep the answer in the store (under a keyed hash, for `cacheSeconds`), count
 * each lookup in `limits.lookupsPerDay`, and refuse (`block`) or only report (`monitor`) a
 * line type not in `allow`. An unknown type counts as not allowed. A lookup that fails, or a
 * spent lookup budget, fails closed in block mode (not cached) and never blocks in monitor mode.
 */
import { hashKey } from '../codes.js';
import { maskDestination } from './destinations.js';
import type { OtpEvents } from '../events.js';
import type { OtpLimits } from '../options.js';
import { inSpan } from '../tracing.js';
import type { LineTypeLookup } from '../types.js';
import type { OtpStore } from '../../stores/types.js';

const DAY_MS = 86_400_000;
/** Stored for "the lookup found no type", which a missing cache entry cannot say. */
const NO_TYPE = '-';

export type LineTypeGate = (to: string, username: string) => Promise<boolean>;

export function createLineTypeGate({
  lookup,
  store,
  secret,
  limits,
  events,
}: {
  lookup: LineTypeLookup;
  store: OtpStore;
  secret: string;
  limits: OtpLimits;
  events: OtpEvents;
}): LineTypeGate {
  const allow = new Set(lookup.allow);
  const block = lookup.mode === 'block';
  const budget = { limit: 'lookupsPerDay', key: 'lookups', points: limits.lookupsPerDay, windowMs: DAY_MS, mode: 'take' as const };

  const verdict = (to: string, username: string, lineType: string | null, outcome: 'refused' | 'reported' | 'failed'): boolean => {
    events.emit('line_type', { username, destination: maskDestination(to), lineType, mode: lookup.mode, outcome });
    return !block;
  };

  /** True when a code may go to `to`. */
  return async (to, username) => {
    const key = `line:${hashKey(secret, 'line-type', to)}`;
    let cached: string | null;
    try {
      cached = await store.get(key);
    } catch {
      return verdict(to, username, null, 'failed');
    }
    let lineType: string | null;
    if (cached !== null) {
      lineType = cached === NO_TYPE ? null : cached;
    } else {
      try {
        if (limits.lookupsPerDay > 0 && (await store.consume(budget)) !== null) return verdict(to, username, null, 'failed');
        ({ lineType } = await inSpan('blockid_otp.lookup', { 'blockid_otp.provider': 'twilio' }, () => lookup.lookup(to)));
      } catch {
        return verdict(to, username, null, 'failed');
      }
      await store.set(key, lineType ?? NO_TYPE, lookup.cacheSeconds * 1000).catch(() => undefined);
    }
    if (lineType !== null && allow.has(lineType)) return true;
    return verdict(to, username, lineType, block ? 'refused' : 'reported');
  };
}
