/**
 * The two ways a send runs, each as admit → issue → reply → deliver: the HTTP send
 * (`requestCode`: resolves the user and answers alike for unknown ones; delivery after the
 * reply) and the BlockID SDK's `generateOtp` (the caller's destinations; waits for delivery).
 */
import { OtpError } from '../errors.js';
import type { ResolvedOptions } from '../options.js';
import { captureContext, inSpan } from '../tracing.js';
import type { Channel, ChannelChoice, Destinations, RequestContext } from '../types.js';
import type { Space } from '../../stores/types.js';
import { afterRandomPause } from './after-reply.js';
import type { Composer } from './compose.js';
import type { createDispatcher } from './dispatch.js';
import type { createIssuer } from './issue.js';
import type { LineTypeGate } from './line-type.js';
import { lenientTargets, strictTargets, wantedChannels } from './targets.js';

export interface GenerateResult {
  /** The channels the code was delivered on (a phone channel that fell back is reported as asked). */
  channels: ('sms' | 'email')[];
  expiresAt: Date;
}

/** An admitted HTTP send: `deliver()` is called once the reply is written. */
export interface AcceptedSend {
  expiresAt: Date;
  /** How many messages `deliver()` will hand to senders (0 for a decoy or a test destination). */
  targets: number;
  deliver(): Promise<Channel[]>;
}

/** Where a stand-in's message is composed to (never sent): a fictitious number and address. */
const STAND_IN_TO: Record<Channel, string> = { sms: '+12015550123', whatsapp: '+12015550123', voice: '+12015550123', email: 'nobody@example.invalid' };

export function createSendFlows({
  config,
  composer,
  issue,
  deliver,
  lineTypeGate,
  normalizeUsername,
}: {
  config: ResolvedOptions;
  composer: Composer;
  issue: ReturnType<typeof createIssuer>['issue'];
  deliver: ReturnType<typeof createDispatcher>['deliver'];
  lineTypeGate: LineTypeGate | undefined;
  normalizeUsername: (username: unknown) => string;
}): {
  generateOtp(username: string, destinations: Destinations, context?: { ip?: string }): Promise<GenerateResult>;
  requestCode(username: string, channel: ChannelChoice, context: RequestContext): Promise<AcceptedSend>;
} {
  const { metrics, testDestinations } = config;
  const { senders } = composer;
  const phoneRules = { allowTypes: config.allowNumberTypes };
  return {
    generateOtp: (username, destinations, context = {}) =>
      inSpan(
        'blockid_otp.send',
        { 'blockid_otp.channel': destinations?.smsTo && destinations?.emailTo ? 'both' : destinations?.smsTo ? 'sms' : 'email' },
        async (span) => {
          const normalized = normalizeUsername(username);
          const ip = context?.ip;
          if (ip !== undefined && typeof ip !== 'string')
            throw new OtpError('INVALID_REQUEST', 'generateOtp(username, destinations, { ip }): ip must be a string.');
          const targets = strictTargets(destinations, senders, phoneRules);
          // The caller chose these destinations: a refused line type is an invalid number, said before anything is issued.
          if (lineTypeGate !== undefined && testDestinations?.codeForTargets(targets) === undefined) {
            for (const target of targets) {
              if (target.channel !== 'email' && !(await lineTypeGate(target.to, normalized))) {
                throw new OtpError('INVALID_PHONE', 'smsTo is a line type that cannot receive codes here (see the lookup option\'s "allow").');
              }
            }
          }
          const planned = targets.map((target) => ({ channel: target.channel, target }));
          const issued = await issue(normalized, 'user', planned, { slot: '', countIp: ip !== undefined, ip });
          span.setAttribute('blockid_otp.outcome', 'sent');
          const locale = composer.locale(destinations.locale, undefined);
          const channels = await deliver(issued, normalized, locale, { ...(ip !== undefined && { ip }), metrics, trace: captureContext(span), gate: false });
          if (channels.length === 0)
            throw new OtpError('DELIVERY_FAILED', 'The code could not be delivered on any channel; see the delivery_failed event for why.');
          return { channels: channels as ('sms' | 'email')[], expiresAt: issued.expiresAt };
        },
      ),

    requestCode: (username, channel, context) =>
      inSpan('blockid_otp.send', { 'blockid_otp.channel': channel }, async (span) => {
        const destinations = config.resolveUser === undefined ? null : await config.resolveUser(username, context.req);
        // One space per username, chosen only by whether resolveUser returned a user.
        const space: Space = destinations !== null && typeof destinations === 'object' ? 'user' : 'decoy';
        const targets = lenientTargets(
          destinations ?? undefined,
          channel,
          senders,
          (reason) => config.logger?.warn({ event: 'otp.invalid_destination', username, reason }, 'blockid-otp: resolveUser returned an unusable destination'),
          phoneRules,
        );
        // Every channel asked for is in the plan: a channel the user lacks is a stand-in that delivers nothing.
        const planned = wantedChannels(channel, senders).map((wanted) => ({ channel: wanted, target: targets.find((t) => t.channel === wanted) ?? null }));
        let issued: Awaited<ReturnType<typeof issue>>;
        try {
          issued = await issue(username, space, planned, {
            slot: context.binding ?? '',
            countIp: context.countIp !== false,
            ip: context.ip,
            withLink: context.binding !== null,
          });
        } catch (error) {
          if (error instanceof OtpError && error.code === 'RATE_LIMITED') span.setAttribute('blockid_otp.outcome', 'rate_limited');
          throw error;
        }
        span.setAttribute('blockid_otp.outcome', targets.length > 0 ? 'sent' : 'decoy');
        const locale = composer.locale(destinations?.locale, context.acceptLanguage);
        const deliveryContext = { ...(context.ip !== undefined && { ip: context.ip }), metrics, trace: captureContext(span), gate: true };
        // Channels asked for that deliver nothing (stand-ins, a decoy's, a refused target's) are
        // composed all the same, so every kind of user does the same work when delivery starts.
        const idle: Channel[] = [];
        for (const { channel: wanted, target } of planned) if (target === null || !issued.admitted.includes(target)) idle.push(wanted);
        return {
          expiresAt: issued.expiresAt,
          targets: issued.test ? 0 : issued.admitted.length,
          deliver: laterDelivery(issued, username, locale, deliveryContext, idle),
        };
      }),
  };

  /**
   * An accepted send's delivery, built outside the request's closures: what waits for the
   * pause holds only what delivery needs, not the request (its framework objects die young).
   * Awaited (awaitDelivery): at once. After the reply: after a random pause (see send/after-reply.ts).
   */
  function laterDelivery(
    issued: Awaited<ReturnType<typeof issue>>,
    username: string,
    locale: ReturnType<Composer['locale']>,
    deliveryContext: Parameters<typeof deliver>[3],
    idle: Channel[],
  ): () => Promise<Channel[]> {
    const run = () => {
      for (const channel of idle) composer.compose(issued.code, username, { channel, to: STAND_IN_TO[channel] }, locale);
      return deliver(issued, username, locale, deliveryContext);
    };
    return config.awaitDelivery ? run : () => afterRandomPause(run);
  }
}
