/**
 * Admit, then issue: the store decides a send's whole plan at once and keeps the code only
 * when it is admitted; events and metrics say what it decided. What to deliver goes back to
 * the caller, which starts it once it has answered (see ../service.ts).
 */
import { generateCode, hashCode, userKey } from '../codes.js';
import { OtpError } from '../errors.js';
import type { OtpEvents } from '../events.js';
import { issueLinkToken } from '../link/token.js';
import type { ResolvedOptions } from '../options.js';
import type { Channel } from '../types.js';
import type { Refusal, SendDecision, Space } from '../../stores/types.js';
import type { Admission, PlannedTarget } from './admission.js';
import type { Target } from './targets.js';

/** Stored for a decoy: no code's keyed hash (base64url) can equal it. */
const DECOY_HASH = '!decoy';

/** The area code of a +1 number, for metrics (a few hundred values; never the number). */
const npaOf = (target: { channel: Channel; to: string }) => (target.channel === 'email' ? '' : target.to.slice(2, 5));

/** A code the store admitted: where it goes, and what the reply and the delivery need. */
export interface IssuedSend {
  expiresAt: Date;
  /** The targets admitted (a refused target's, a stand-in's and a decoy's are not). */
  admitted: Target[];
  code: string;
  /** A test destination's fixed code: nothing is delivered. */
  test: boolean;
  /** The sign-in link's URL, when links are on and the send has a session. */
  link: string | undefined;
}

const retryAfterSeconds = (refusal: Refusal): number => Math.max(1, Math.ceil(refusal.retryAfterMs / 1000));

export function createIssuer({ config, admission, events }: { config: ResolvedOptions; admission: Admission; events: OtpEvents }) {
  const { secret, store, metrics, testDestinations } = config;
  const refusalError = (refusal: Refusal) => {
    const seconds = retryAfterSeconds(refusal);
    const what = refusal.limit === 'resendCooldownSeconds' ? 'A code was sent moments ago' : `Too many codes requested (${refusal.limit})`;
    return new OtpError('RATE_LIMITED', `${what}; ask again in ${seconds} s.`, { retryAfterSeconds: seconds });
  };

  /**
   * Events and metrics for a decision. A send refused as a whole is one refusal, reported
   * once, for the limit its answer names (even when some of its targets were also over their
   * own quotas); a target refused while others were sent is reported for its own limit. A
   * decoy's refusals carry `decoy: true`.
   */
  const reportDecision = (decision: SendDecision, username: string, space: Space, planned: PlannedTarget[], test: boolean, ip: string | undefined) => {
    const about = { ...(ip !== undefined && { ip }), ...(space === 'decoy' && { decoy: true as const }) };
    const channels = planned.map((p) => p.channel);
    const refused = (refusal: Refusal, channel: Channel | undefined) => {
      events.emit('rate_limited', { username, limit: refusal.limit, retryAfterSeconds: retryAfterSeconds(refusal), ...about, ...(channel && { channel }) });
      metrics?.rateLimited(refusal.limit);
    };
    if (!decision.ok) {
      const at = decision.targets.findIndex((t) => t?.limit === decision.refusal.limit);
      refused(decision.refusal, at === -1 ? undefined : channels[at]);
    } else {
      decision.targets.forEach((refusal, index) => {
        if (refusal !== null) refused(refusal, channels[index]);
      });
    }
    if (metrics === undefined) return;
    if (space === 'decoy') return metrics.unknownUserSend();
    planned.forEach(({ target }, index) => {
      if (target === null) return; // a channel the user lacks: nothing was sent
      const refused = !decision.ok || decision.targets[index] !== null;
      metrics.send(target.channel, refused ? 'rate_limited' : test ? 'test' : 'sent', npaOf(target));
    });
  };

  /**
   * The one send path: admit (the store decides the whole plan at once), then issue (the
   * store keeps the code only when admitted), and hand back what to deliver, which the
   * caller starts once it has answered. Stand-ins (`target: null`) are admitted like targets
   * and deliver nothing; a send with no real target keeps a code that never verifies.
   */
  const issue = async (
    username: string,
    space: Space,
    planned: PlannedTarget[],
    context: { slot: string; countIp: boolean; ip: string | undefined; withLink?: boolean },
  ): Promise<IssuedSend> => {
    const user = userKey(secret, username);
    // A session's send (never an unbound generateOtp() code, which no browser could confirm); decoys too, for the same work.
    const link = context.withLink === true && config.link !== undefined ? issueLinkToken(secret, user, context.slot) : undefined;
    const real: Target[] = [];
    for (const { target } of planned) if (target !== null) real.push(target);
    const fixed = real.length === 0 ? undefined : testDestinations?.codeForTargets(real);
    const code = fixed ?? generateCode(config.codeLength);
    const hash = hashCode(secret, user, code);
    const plan = admission.plan({
      username,
      user,
      space,
      slot: context.slot,
      countIp: context.countIp,
      ip: context.ip,
      targets: planned,
      test: fixed !== undefined,
      code: {
        hash: real.length === 0 ? DECOY_HASH : hash,
        // A fixed code dies with test mode, also one sent just before testDestinationsExpireAt.
        ttlMs: fixed === undefined || testDestinations === undefined ? config.ttlSeconds * 1000 : testDestinations.lifetimeMs(config.ttlSeconds * 1000),
        // Where the code went (channels and area codes, nothing personal), for the conversion-rate metric.
        ...(real.length > 0 && fixed === undefined && metrics !== undefined && { tag: real.map((t) => `${t.channel}:${npaOf(t)}`).join(',') }),
        ...(link !== undefined && { linkHash: link.hash }),
      },
    });
    const decision = await store.send(plan);
    reportDecision(decision, username, space, planned, fixed !== undefined, context.ip);
    if (!decision.ok) throw refusalError(decision.refusal);
    const expiresAt = new Date(plan.code.issuedAtMs + config.ttlSeconds * 1000);
    const admitted: Target[] = [];
    planned.forEach(({ target }, index) => {
      if (target !== null && decision.targets[index] === null) admitted.push(target);
    });
    return { expiresAt, admitted, code, test: fixed !== undefined, link: link === undefined ? undefined : `${config.link!.url}?t=${link.token}` };
  };

  return { issue };
}
