/**
 * The framework-free OTP service. A send reads top to bottom as admit → issue → reply →
 * deliver, one way for real users and decoys alike; a verify is one atomic store step.
 * Adapters (Express, Koa, the seed facade) call into this.
 */
import { generateCode, hashCode, isWellFormedCode, randomToken, hashKey } from './codes.js';
import { createAdmission } from './admission.js';
import { deliverAll, type Outgoing } from './delivery.js';
import { OtpError } from './errors.js';
import { createEvents, type OtpEventName, type OtpListener } from './events.js';
import { lockPolicy } from './lockout.js';
import { buildCatalog, describeDuration, escapeHtml, pickLocale } from './messages.js';
import { resolveOptions, type OtpOptions, type ResolvedOptions } from './options.js';
import { lenientTargets, strictTargets, wantedChannels, type Target } from './targets.js';
import type { Channel, ChannelChoice, Destinations } from './types.js';
import type { Refusal, SendDecision } from '../stores/types.js';

export interface GenerateResult {
  channels: Channel[];
  expiresAt: Date;
}
export type VerifyResult = { ok: true } | { ok: false; reason: 'invalid_code' | 'too_many_attempts'; retryAfterSeconds?: number };

/** What an adapter knows about the request behind a send or a verify. */
export interface RequestContext {
  /** Keyed hash of the session's binding nonce, or null outside a session. */
  binding: string | null;
  ip?: string;
  acceptLanguage?: string;
  /** The framework's request, handed to `resolveUser`. */
  req?: unknown;
}

/** An admitted HTTP send: `deliver()` is called once the reply is written. */
export interface AcceptedSend {
  expiresAt: Date;
  /** How many messages `deliver()` will hand to senders (0 for a decoy). */
  targets: number;
  deliver(): Promise<Channel[]>;
}

export interface OtpService {
  readonly options: ResolvedOptions;
  /** The seed's `GenerateOTP`: one code to every destination given; waits for delivery. */
  generateOtp(username: string, destinations: Destinations, context?: { ip?: string }): Promise<GenerateResult>;
  /** The seed's `VerifyOTP`. */
  verifyOtp(username: string, code: string): Promise<VerifyResult>;
  /** Lifts every lock of `username` and resets its failure count. */
  unlock(username: string): Promise<void>;
  on<E extends OtpEventName>(event: E, listener: OtpListener<E>): OtpService;
  off<E extends OtpEventName>(event: E, listener: OtpListener<E>): OtpService;
  /** @internal The HTTP send: resolves the user, answers the same for unknown users. */
  requestCode(username: string, channel: ChannelChoice, context: RequestContext): Promise<AcceptedSend>;
  /** @internal The HTTP verify. */
  checkCode(username: string, code: string, context: RequestContext): Promise<VerifyResult>;
  /** @internal A fresh session binding nonce and its keyed hash. */
  newBinding(): string;
  bindingHash(nonce: string): string;
  /** Trims, validates and normalizes a username; throws INVALID_REQUEST. */
  normalizeUsername(username: unknown): string;
}

const MAX_USERNAME_LENGTH = 256;
/** Stored for a decoy: no code's keyed hash (base64url) can equal it. */
const DECOY_HASH = '!decoy';

export function createOtpService(options: OtpOptions, factory = 'createOtpService', resolution?: { senderRequired: boolean }): OtpService {
  const config = resolveOptions(options, factory, resolution);
  const { secret, store, limits } = config;
  const events = createEvents(config.logger);
  const catalog = buildCatalog(config.messages, config.defaultLocale);
  const deliveryPolicy = { timeoutMs: config.deliveryTimeoutMs, retries: config.deliveryRetries };
  const senders = { sms: config.sms, email: config.email };
  const admission = createAdmission({ secret, limits, cooldownSeconds: config.resendCooldownSeconds });
  const policy = lockPolicy(config);

  const normalizeUsername = (username: unknown): string => {
    if (typeof username !== 'string') throw new OtpError('INVALID_REQUEST', 'username must be a string.');
    const trimmed = username.trim();
    if (trimmed === '') throw new OtpError('INVALID_REQUEST', 'username must not be empty.');
    if ([...username].length > MAX_USERNAME_LENGTH) throw new OtpError('INVALID_REQUEST', `username must be at most ${MAX_USERNAME_LENGTH} characters.`);
    const normalized = config.normalizeUsername(trimmed);
    if (typeof normalized !== 'string' || normalized === '') throw new OtpError('INVALID_REQUEST', 'username is empty once normalized.');
    return normalized;
  };

  const compose = (code: string, username: string, target: Target, locale: string): Outgoing => {
    const templates = catalog.get(locale) ?? catalog.get('en');
    if (templates === undefined) throw new Error('blockid-otp: no message templates');
    const context = { code, appName: config.appName, validFor: describeDuration(config.ttlSeconds, locale), locale };
    const about = { to: target.to, code, username };
    if (target.channel === 'sms') {
      const sender = senders.sms;
      if (sender === undefined) throw new OtpError('CHANNEL_NOT_CONFIGURED', 'SMS was asked for, but no "sms" sender is configured.');
      const webOtp = config.webOtpDomain === undefined ? '' : `\n\n@${config.webOtpDomain} #${code}`;
      const message = { to: target.to, body: templates.sms(context) + webOtp, code, username };
      return { channel: 'sms', message: about, send: () => sender.send(message) };
    }
    const sender = senders.email;
    if (sender === undefined) throw new OtpError('CHANNEL_NOT_CONFIGURED', 'Email was asked for, but no "email" sender is configured.');
    const htmlContext = { ...context, appName: escapeHtml(config.appName) };
    const message = {
      to: target.to,
      subject: templates.emailSubject(context),
      text: templates.emailText(context),
      html: templates.emailHtml(htmlContext),
      code,
      username,
    };
    return { channel: 'email', message: about, send: () => sender.send(message) };
  };

  const retryAfterSeconds = (refusal: Refusal) => Math.max(1, Math.ceil(refusal.retryAfterMs / 1000));
  const refusalError = (refusal: Refusal) => {
    const seconds = retryAfterSeconds(refusal);
    const what = refusal.limit === 'resendCooldownSeconds' ? 'A code was sent moments ago' : `Too many codes requested (${refusal.limit})`;
    return new OtpError('RATE_LIMITED', `${what}; ask again in ${seconds} s.`, { retryAfterSeconds: seconds });
  };

  /** Events for every refusal in a decision: the request's, or each refused target's. */
  const reportRefusals = (decision: SendDecision, username: string, targets: Array<{ channel: Channel }>, ip: string | undefined) => {
    const withIp = ip === undefined ? {} : { ip };
    if (!decision.ok && decision.targets.every((t) => t === null)) {
      events.emit('rate_limited', { username, limit: decision.refusal.limit, retryAfterSeconds: retryAfterSeconds(decision.refusal), ...withIp });
      return;
    }
    decision.targets.forEach((refusal, index) => {
      if (refusal === null) return;
      const channel = targets[index]?.channel;
      events.emit('rate_limited', { username, limit: refusal.limit, retryAfterSeconds: retryAfterSeconds(refusal), ...withIp, ...(channel && { channel }) });
    });
  };

  /**
   * The one send path: admit (the store decides the whole plan at once), then issue (the
   * store keeps the code only when admitted), and hand back what to deliver, which the
   * caller starts once it has answered.
   */
  const admitAndIssue = async (
    username: string,
    targets: Target[] | { decoy: Channel[] },
    context: { slot: string; countIp: boolean; ip: string | undefined; locale: string | undefined; acceptLanguage: string | undefined },
  ): Promise<{ expiresAt: Date; outgoing: Outgoing[] }> => {
    const user = admission.userKey(username);
    const code = generateCode(config.codeLength);
    const hash = hashCode(secret, user, code);
    const decoy = !Array.isArray(targets);
    const plan = admission.plan({
      username,
      slot: context.slot,
      countIp: context.countIp,
      ip: context.ip,
      targets,
      test: false,
      code: { hash: decoy ? DECOY_HASH : hash, ttlMs: config.ttlSeconds * 1000 },
    });
    const decision = await store.send(plan);
    const described = Array.isArray(targets) ? targets : targets.decoy.map((channel) => ({ channel }));
    reportRefusals(decision, username, described, context.ip);
    if (!decision.ok) throw refusalError(decision.refusal);
    const expiresAt = new Date(plan.code.issuedAtMs + config.ttlSeconds * 1000);
    if (decoy) return { expiresAt, outgoing: [] };
    const locale = pickLocale(catalog, context.locale, context.acceptLanguage, config.defaultLocale);
    const admitted = targets.filter((_, index) => decision.targets[index] === null);
    return { expiresAt, outgoing: admitted.map((target) => compose(code, username, target, locale)) };
  };

  const deliver = (outgoing: Outgoing[], ip: string | undefined) =>
    deliverAll(outgoing, deliveryPolicy, events, ip === undefined ? {} : { ip }).catch(() => [] as Channel[]);

  const service: OtpService = {
    options: config,

    async generateOtp(username, destinations, context = {}) {
      const normalized = normalizeUsername(username);
      const targets = strictTargets(destinations, senders);
      const ip = context?.ip;
      if (ip !== undefined && typeof ip !== 'string') throw new OtpError('INVALID_REQUEST', 'generateOtp(username, destinations, { ip }): ip must be a string.');
      const { expiresAt, outgoing } = await admitAndIssue(normalized, targets, {
        slot: '',
        countIp: ip !== undefined,
        ip,
        locale: destinations.locale,
        acceptLanguage: undefined,
      });
      const channels = await deliver(outgoing, ip);
      if (channels.length === 0) throw new OtpError('DELIVERY_FAILED', 'The code could not be delivered on any channel; see the delivery_failed event for why.');
      return { channels, expiresAt };
    },

    async verifyOtp(username, code) {
      return service.checkCode(normalizeUsername(username), String(code), { binding: null });
    },

    async unlock(username) {
      await store.unlock(admission.userKey(normalizeUsername(username)));
    },

    async requestCode(username, channel, context) {
      const destinations = config.resolveUser === undefined ? null : await config.resolveUser(username, context.req);
      const targets = lenientTargets(destinations ?? undefined, channel, senders, (reason) =>
        config.logger?.warn({ event: 'otp.invalid_destination', username, reason }, 'blockid-otp: resolveUser returned an unusable destination'),
      );
      // Nobody to send to (an unknown user, or none of the channels asked for): a decoy, in a space of its own.
      const plan = targets.length > 0 ? targets : { decoy: wantedChannels(channel, senders) };
      const { expiresAt, outgoing } = await admitAndIssue(username, plan, {
        slot: context.binding ?? '',
        countIp: true,
        ip: context.ip,
        locale: destinations?.locale,
        acceptLanguage: context.acceptLanguage,
      });
      return { expiresAt, targets: outgoing.length, deliver: () => deliver(outgoing, context.ip) };
    },

    async checkCode(username, code, context) {
      const user = admission.userKey(username);
      const withIp = context.ip === undefined ? {} : { ip: context.ip };
      const candidate = code.replace(/[\s-]/g, '');
      if (!isWellFormedCode(candidate, config.codeLength)) {
        events.emit('failed', { username, reason: 'malformed_code', ...withIp });
        return { ok: false, reason: 'invalid_code' };
      }
      const slots = context.binding === null ? [''] : [context.binding, ''];
      const outcome = await store.verify({ user, slots, hash: hashCode(secret, user, candidate), policy });
      switch (outcome.result) {
        case 'ok':
          events.emit('verified', { username, ...withIp });
          return { ok: true };
        case 'missing':
          events.emit('failed', { username, reason: 'no_code', ...withIp });
          return { ok: false, reason: 'invalid_code' };
        case 'burned':
          events.emit('failed', { username, reason: 'too_many_attempts', ...withIp });
          return { ok: false, reason: 'too_many_attempts' };
        case 'locked':
          events.emit('failed', { username, reason: 'locked', ...withIp });
          return { ok: false, reason: 'too_many_attempts', retryAfterSeconds: Math.max(1, Math.ceil(outcome.retryAfterMs / 1000)) };
        case 'mismatch':
          events.emit('failed', { username, reason: 'wrong_code', ...withIp });
          // Decoys lock too (and say so): from outside, an unknown username behaves as a known one.
          if (outcome.lock === 'permanent') events.emit('locked', { username, permanent: true, ...withIp });
          if (outcome.lock === 'timed') events.emit('locked', { username, lockSeconds: limits.lockSeconds, ...withIp });
          return { ok: false, reason: 'invalid_code' };
      }
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
