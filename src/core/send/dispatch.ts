/**
 * Delivery of an admitted send, after the reply: each target on its own channel, through the
 * line-type gate, then along the `fallback` channels with the same code (each past its spend
 * breakers), all within `deliveryTimeoutMs`. Test destinations are reported sent and call no
 * sender.
 */
import { phoneBreakers } from './admission.js';
import type { Composer } from './compose.js';
import { deliverChain, type DeliveryContext, type Outgoing } from './delivery.js';
import { maskDestination } from './destinations.js';
import type { OtpEvents } from '../events.js';
import type { LineTypeGate } from './line-type.js';
import type { ResolvedOptions } from '../options.js';
import type { Target } from './targets.js';
import type { Channel, PhoneChannel } from '../types.js';
import type { Refusal } from '../../stores/types.js';

export interface IssuedCode {
  admitted: Target[];
  code: string;
  test: boolean;
  /** The sign-in link (`link` option) for emails; never logged. */
  link?: string | undefined;
}

export function createDispatcher({
  config,
  composer,
  events,
  lineTypeGate,
}: {
  config: ResolvedOptions;
  composer: Composer;
  events: OtpEvents;
  lineTypeGate: LineTypeGate | undefined;
}) {
  const { store, limits, metrics } = config;
  const deliveryPolicy = { timeoutMs: config.deliveryTimeoutMs, retries: config.deliveryRetries };

  /**
   * Takes one provider request from a phone channel's spend breakers (every request that may
   * be billed counts: the first is counted at admission, each retry and fallback here);
   * `false`, with a `rate_limited` event, when one refuses.
   */
  const spendOn = async (channel: Channel, username: string): Promise<boolean> => {
    let refused: Refusal | null = null;
    for (const breaker of phoneBreakers(limits, channel, 'take')) if (refused === null) refused = await store.consume(breaker);
    if (refused === null) return true;
    events.emit('rate_limited', { username, limit: refused.limit, retryAfterSeconds: Math.max(1, Math.ceil(refused.retryAfterMs / 1000)), channel });
    metrics?.rateLimited(refused.limit);
    return false;
  };

  /** A phone message whose retries count in its channel's breakers. */
  const metered = (outgoing: Outgoing, username: string): Outgoing =>
    outgoing.channel === 'email' ? outgoing : { ...outgoing, spend: () => spendOn(outgoing.channel, username) };

  /** The next fallback channel after the target's own for a phone target, within its spend breakers. */
  const fallbackAfter = (target: Target, code: string, username: string, locale: string) => {
    if (target.channel === 'email' || config.fallback.length === 0) return undefined;
    const at = config.fallback.indexOf(target.channel);
    const queue = (at === -1 ? config.fallback : config.fallback.slice(at + 1)).filter((channel) => channel !== target.channel);
    return async (): Promise<Outgoing | null> => {
      for (let channel = queue.shift(); channel !== undefined; channel = queue.shift()) {
        if (!(await spendOn(channel, username))) continue;
        return metered(composer.compose(code, username, target, locale, channel as PhoneChannel), username);
      }
      return null;
    };
  };

  /**
   * Delivers an issued code to its admitted targets (each with its fallbacks), or, for test
   * destinations, reports them sent without calling a sender. Resolves with the targets'
   * channels that got through; never rejects.
   */
  const deliver = async (issued: IssuedCode, username: string, locale: string, context: DeliveryContext & { gate: boolean }): Promise<Channel[]> => {
    const withIp = context.ip === undefined ? {} : { ip: context.ip };
    if (issued.test) {
      for (const target of issued.admitted)
        events.emit('sent', { username, channel: target.channel, destination: maskDestination(target.to), ...withIp, test: true });
      return issued.admitted.map((target) => target.channel);
    }
    const results = await Promise.all(
      issued.admitted.map(async (target) => {
        try {
          // Inside the send's trace context (this runs after the reply), so the lookup span is a child of the send.
          const gate = lineTypeGate === undefined ? undefined : () => lineTypeGate(target.to, username);
          if (context.gate && gate !== undefined && target.channel !== 'email' && !(await (context.trace?.run(gate) ?? gate()))) return null;
          const first = metered(composer.compose(issued.code, username, target, locale, target.channel, issued.link), username);
          return (await deliverChain(first, fallbackAfter(target, issued.code, username, locale), deliveryPolicy, events, context)) === null
            ? null
            : target.channel;
        } catch {
          return null;
        }
      }),
    );
    return results.filter((channel): channel is Channel => channel !== null);
  };

  return { deliver };
}
