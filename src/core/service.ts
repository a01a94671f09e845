/**
 * The framework-free OTP service. A send reads top to bottom as admit → issue → reply →
 * deliver, one way for real users and decoys alike; a verify is one atomic store step per
 * method (see verify/verifier.ts). Adapters (Express, Koa, fetch, Hono, Fastify, the BlockID SDK facade) call into this.
 */
import { hashKey, randomToken, userKey } from './codes.js';
import { linkHash, parseLinkToken } from './link/token.js';
import { createAdmission } from './send/admission.js';
import { createIssuer } from './send/issue.js';
import { afterRandomPause } from './send/after-reply.js';
import { createComposer } from './send/compose.js';
import { createDispatcher } from './send/dispatch.js';
import { OtpError } from './errors.js';
import { createEvents, type OtpEventName, type OtpListener } from './events.js';
import { createLineTypeGate } from './send/line-type.js';
import { resolveOptions, type OtpOptions, type ResolveContext, type ResolvedOptions } from './options.js';
import { lenientTargets, strictTargets, wantedChannels } from './send/targets.js';
import { captureContext, inSpan } from './tracing.js';
import { createVerifier, type VerifyResult } from './verify/verifier.js';
import type { TotpEnrollment, TotpEnrollOptions } from './verify/totp.js';
import type { RecoveryCodeSet } from './verify/recovery.js';
import type { Channel, ChannelChoice, Destinations, VerifyMethod } from './types.js';
import type { Space } from '../stores/types.js';

export type { VerifyResult } from './verify/verifier.js';

export interface GenerateResult {
  /** The channels the code was delivered on (a phone channel that fell back is reported as asked). */
  channels: ('sms' | 'email')[];
  expiresAt: Date;
}

/** What an adapter knows about the request behind a send or a verify. */
export interface RequestContext {
  /** Keyed hash of the session's binding nonce, or null when there is none. */
  binding: string | null;
  /**
   * An HTTP request: only the session's own code can be verified (a session that holds no code
   * spends nothing, and never reaches an unbound `generateOtp()` code).
   */
  sessionOnly?: boolean;
  ip?: string;
  /** False when the runtime gave no client address: the per-IP send quota does not apply (default true). */
  countIp?: boolean;
  acceptLanguage?: string;
  /** The framework's request, handed to `resolveUser`. */
  req?: unknown;
}

/**
 * What a POST of a sign-in link comes to: signed in, a live link from another session (nothing
 * spent), a link that cannot be used (unknown, used or expired: one answer), or too many
 * wrong guesses of the session's code.
 */
type LinkResult =
  | { result: 'verified'; username: string }
  | { result: 'other_device' }
  | { result: 'unusable' }
  | { result: 'too_many_attempts'; retryAfterSeconds?: number };

/** An admitted HTTP send: `deliver()` is called once the reply is written. */
interface AcceptedSend {
  expiresAt: Date;
  /** How many messages `deliver()` will hand to senders (0 for a decoy or a test destination). */
  targets: number;
  deliver(): Promise<Channel[]>;
}

export interface OtpService {
  readonly options: ResolvedOptions;
  /** The BlockID SDK's `OTP.GenerateOTP`: one code to every destination given; waits for delivery. */
  generateOtp(username: string, destinations: Destinations, context?: { ip?: string }): Promise<GenerateResult>;
  /** The BlockID SDK's `OTP.VerifyOTP`. */
  verifyOtp(username: string, code: string): Promise<VerifyResult>;
  /** Lifts every lock of `username` and resets its failure count. */
  unlock(username: string): Promise<void>;
  /** Authenticator apps (TOTP, RFC 6238): enrollment; verification is `method: 'totp'` on /verify. */
  readonly totp: {
    enroll(username: string, options?: TotpEnrollOptions): Promise<TotpEnrollment>;
    confirm(username: string, sealed: string, code: string): Promise<boolean>;
  };
  readonly recoveryCodes: {
    generate(options?: { count?: number }): Promise<RecoveryCodeSet>;
  };
  on<E extends OtpEventName>(event: E, listener: OtpListener<E>): OtpService;
  off<E extends OtpEventName>(event: E, listener: OtpListener<E>): OtpService;
  /** @internal The HTTP send: resolves the user, answers the same for unknown users. */
  requestCode(username: string, channel: ChannelChoice, context: RequestContext): Promise<AcceptedSend>;
  /** @internal The HTTP verify, by any method. */
  checkCode(username: string, code: string, context: RequestContext, method?: VerifyMethod): Promise<VerifyResult>;
  /**
   * @internal POST {basePath}/link: `username` is the one the session last asked a code for
   * (undefined when it asked none), `context.binding` its slot.
   */
  confirmLink(token: string, username: string | undefined, context: RequestContext): Promise<LinkResult>;
  /** @internal A fresh session binding nonce and its keyed hash. */
  newBinding(): string;
  bindingHash(nonce: string): string;
  /** Trims, validates and normalizes a username; throws INVALID_REQUEST. */
  normalizeUsername(username: unknown): string;
}

const MAX_USERNAME_LENGTH = 256;
/** Where a stand-in's message is composed to (never sent): a fictitious number and address. */
const STAND_IN_TO: Record<Channel, string> = { sms: '+12015550123', whatsapp: '+12015550123', voice: '+12015550123', email: 'nobody@example.invalid' };
export function createOtpService(options: OtpOptions, factory = 'createOtpService', resolution?: ResolveContext): OtpService {
  const config = resolveOptions(options, factory, resolution);
  const { secret, store, limits, metrics, testDestinations } = config;
  const events = createEvents(config.logger);
  const composer = createComposer(config);
  const { senders } = composer;
  const admission = createAdmission({ secret, limits, cooldownSeconds: config.resendCooldownSeconds });
  const verifier = createVerifier(config, events);
  const phoneRules = { allowTypes: config.allowNumberTypes };
  const lineTypeGate = config.lookup === undefined ? undefined : createLineTypeGate({ lookup: config.lookup, store, secret, limits, events });
  const { issue } = createIssuer({ config, admission, events });
  const { deliver } = createDispatcher({ config, composer, events, lineTypeGate });
  if (testDestinations !== undefined) {
    const warning = `blockid-otp: test destinations are on (${testDestinations.describe()}): sends to them deliver nothing and issue their fixed code.`;
    if (config.logger !== undefined) config.logger.warn({ event: 'otp.test_destinations' }, warning);
    else console.warn(warning);
  }

  const normalizeUsername = (username: unknown): string => {
    if (typeof username !== 'string') throw new OtpError('INVALID_REQUEST', 'username must be a string.');
    const trimmed = username.trim();
    if (trimmed === '') throw new OtpError('INVALID_REQUEST', 'username must not be empty.');
    if ([...username].length > MAX_USERNAME_LENGTH) throw new OtpError('INVALID_REQUEST', `username must be at most ${MAX_USERNAME_LENGTH} characters.`);
    const normalized = config.normalizeUsername(trimmed);
    if (typeof normalized !== 'string' || normalized === '') throw new OtpError('INVALID_REQUEST', 'username is empty once normalized.');
    return normalized;
  };

  const service: OtpService = {
    options: config,

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

    async verifyOtp(username, code) {
      const result = await service.checkCode(normalizeUsername(username), String(code), { binding: null });
      // The contract's shape exactly: { ok: true } | { ok: false, reason } (Retry-After is an HTTP matter).
      return result.ok ? { ok: true } : { ok: false, reason: result.reason };
    },

    async unlock(username) {
      await store.unlock(userKey(secret, normalizeUsername(username)));
    },

    totp: {
      async enroll(username, enrollOptions = {}) {
        const normalized = normalizeUsername(username);
        return verifier.totp.enroll(normalized, { issuer: enrollOptions.issuer ?? config.totpIssuer, accountName: enrollOptions.accountName ?? normalized });
      },
      confirm: async (username, sealed, code) => verifier.confirmTotp(normalizeUsername(username), sealed, String(code)),
    },

    recoveryCodes: {
      generate: async (generateOptions) => verifier.recovery.generate(generateOptions),
    },

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
        const trace = captureContext(span);
        const deliveryContext = { ...(context.ip !== undefined && { ip: context.ip }), metrics, trace, gate: true };
        // Channels asked for that deliver nothing (stand-ins, a decoy's, a refused target's) are
        // composed all the same, so every kind of user does the same work when delivery starts.
        const idle = planned.filter(({ target }) => target === null || !issued.admitted.includes(target));
        const run = () => {
          for (const { channel: idleChannel } of idle) composer.compose(issued.code, username, { channel: idleChannel, to: STAND_IN_TO[idleChannel] }, locale);
          return deliver(issued, username, locale, deliveryContext);
        };
        return {
          expiresAt: issued.expiresAt,
          targets: issued.test ? 0 : issued.admitted.length,
          // Awaited (awaitDelivery): at once. After the reply: after a random pause (see send/after-reply.ts).
          deliver: () => (config.awaitDelivery ? run() : afterRandomPause(run)),
        };
      }),

    checkCode(username, code, context, method = 'code') {
      return verifier.verify(method, {
        username,
        code,
        slots: context.sessionOnly === true ? (context.binding === null ? [] : [context.binding]) : [context.binding ?? ''],
        ip: context.ip,
        req: context.req,
      });
    },

    async confirmLink(token, username, context) {
      const parsed = parseLinkToken(token);
      const binding = context.binding;
      const own = parsed !== null && username !== undefined && binding !== null && parsed.slot === binding && parsed.user === userKey(secret, username);
      // Another session's live link: say so without spending or consuming anything of it.
      if (!own && parsed !== null && store.peekLink !== undefined) {
        const live = await store.peekLink({ user: parsed.user, slot: parsed.slot, hash: linkHash(secret, parsed), maxAttempts: config.maxAttempts });
        if (live) return { result: 'other_device' };
      }
      // Anything else this session posts is a guess of its own code (a session that asked none spends nothing).
      if (username === undefined || binding === null) return { result: 'unusable' };
      const verified = await verifier.verify('link', { username, code: token, slots: [binding], ip: context.ip, req: context.req });
      if (verified.ok) return { result: 'verified', username };
      if (verified.reason === 'too_many_attempts') {
        return { result: 'too_many_attempts', ...(verified.retryAfterSeconds !== undefined && { retryAfterSeconds: verified.retryAfterSeconds }) };
      }
      return { result: 'unusable' };
    },

    newBinding: randomToken,
    bindingHash: (nonce) => hashKey(secret, 'binding', nonce),
    normalizeUsername,

    on(event, listener) {
      events.on(event, listener);
      return service;
    },
    off(event, listener) {
      events.off(event, listener);
      return service;
    },
  };
  return service;
}
