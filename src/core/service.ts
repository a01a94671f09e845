/**
 * The framework-free OTP service: issue and deliver codes, verify them, enforce quotas,
 * attempt budgets and lockouts. Adapters (Express, Koa, the seed facade) call into this.
 */
import { generateCode, hashCode, hashKey, isWellFormedCode, randomToken } from './codes.js';
import { deliverAll, type Outgoing } from './delivery.js';
import { OtpError } from './errors.js';
import { createEvents, type OtpEventName, type OtpListener } from './events.js';
import { buildCatalog, describeDuration, escapeHtml, pickLocale } from './messages.js';
import { resolveOptions, type OtpOptions, type ResolvedOptions } from './options.js';
import { createQuotas } from './quotas.js';
import { lenientTargets, strictTargets, type Target } from './targets.js';
import type { Channel, ChannelChoice, Destinations } from './types.js';

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

export interface OtpService {
  readonly options: ResolvedOptions;
  /** The seed's `GenerateOTP`: one code to every destination given; waits for delivery. */
  generateOtp(username: string, destinations: Destinations): Promise<GenerateResult>;
  /** The seed's `VerifyOTP`. */
  verifyOtp(username: string, code: string): Promise<VerifyResult>;
  on<E extends OtpEventName>(event: E, listener: OtpListener<E>): OtpService;
  off<E extends OtpEventName>(event: E, listener: OtpListener<E>): OtpService;
  /** @internal The HTTP send: resolves the user, answers the same for unknown users. */
  requestCode(username: string, channel: ChannelChoice, context: RequestContext): Promise<{ expiresAt: Date; delivery: Promise<Channel[]>; targets: number }>;
  /** @internal The HTTP verify. */
  checkCode(username: string, code: string, context: RequestContext): Promise<VerifyResult>;
  /** @internal A fresh session binding nonce and its keyed hash. */
  newBinding(): string;
  bindingHash(nonce: string): string;
  /** Trims, validates and normalizes a username; throws INVALID_REQUEST. */
  normalizeUsername(username: unknown): string;
}

const MAX_USERNAME_LENGTH = 256;

export function createOtpService(options: OtpOptions, factory = 'createOtpService', resolution?: { senderRequired: boolean }): OtpService {
  const config = resolveOptions(options, factory, resolution);
  const { secret, store, limits } = config;
  const events = createEvents(config.logger);
  const catalog = buildCatalog(config.messages, config.defaultLocale);
  const policy = { timeoutMs: config.deliveryTimeoutMs, retries: config.deliveryRetries };
  const senders = { sms: config.sms, email: config.email };

  const quotas = createQuotas({ store, limits, secret, events });

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
    if (target.channel === 'sms') {
      const sender = senders.sms;
      if (sender === undefined) throw new OtpError('CHANNEL_NOT_CONFIGURED', 'SMS was asked for, but no "sms" sender is configured.');
      const webOtp = config.webOtpDomain === undefined ? '' : `\n\n@${config.webOtpDomain} #${code}`;
      return { channel: 'sms', sender, message: { to: target.to, body: templates.sms(context) + webOtp, code, username } };
    }
    const sender = senders.email;
    if (sender === undefined) throw new OtpError('CHANNEL_NOT_CONFIGURED', 'Email was asked for, but no "email" sender is configured.');
    const htmlContext = { ...context, appName: escapeHtml(config.appName) };
    return {
      channel: 'email',
      sender,
      message: {
        to: target.to,
        subject: templates.emailSubject(context),
        text: templates.emailText(context),
        html: templates.emailHtml(htmlContext),
        code,
        username,
      },
    };
  };

  /**
   * The one send path. Always issues a record (a decoy when there is no target), so verify,
   * attempts, locks and quotas behave the same for known and unknown users.
   */
  const issueAndDeliver = async (
    username: string,
    targets: Target[],
    context: RequestContext & { locale?: string; viaHttp: boolean; wanted?: Channel[] },
  ) => {
    // Every HTTP send counts against its client's IP (an unknown IP shares one bucket: fail
    // closed). A programmatic call has no client IP unless the caller gives one: the app's
    // own server must not share one "unknown" bucket across all its users.
    if (context.viaHttp || context.ip !== undefined) {
      await quotas.perIp(context.ip, username);
    }
    const userKey = hashKey(secret, 'user', username);
    const code = generateCode(config.codeLength);
    const issued = await store.issue(
      userKey,
      { hash: hashCode(secret, userKey, code), binding: context.binding },
      { ttlMs: config.ttlSeconds * 1000, cooldownMs: config.resendCooldownSeconds * 1000 },
    );
    if (!issued.ok) {
      const retryAfterSeconds = Math.max(1, Math.ceil(issued.retryAfterMs / 1000));
      events.emit('rate_limited', { username, limit: 'resendCooldownSeconds', retryAfterSeconds, ...(context.ip !== undefined && { ip: context.ip }) });
      throw new OtpError('RATE_LIMITED', `A code was sent moments ago; ask again in ${retryAfterSeconds} s.`, { retryAfterSeconds });
    }
    const expiresAt = new Date(Date.now() + config.ttlSeconds * 1000);
    await quotas.perUsername(userKey, username);

    const admitted: Target[] = [];
    let refusal: OtpError | null = null;
    for (const target of targets) {
      const refused = await quotas.admitTarget(target, username);
      if (refused === null) admitted.push(target);
      else refusal ??= refused;
    }
    if (targets.length === 0 && context.wanted !== undefined) refusal = await quotas.admitDecoy(context.wanted, username, context.ip);
    if (admitted.length === 0 && refusal !== null) throw refusal;

    const locale = pickLocale(catalog, context.locale, context.acceptLanguage, config.defaultLocale);
    const outgoing = admitted.map((target) => compose(code, username, target, locale));
    const delivery = deliverAll(outgoing, policy, events, context.ip === undefined ? {} : { ip: context.ip }).catch(() => []);
    return { expiresAt, delivery, targets: outgoing.length };
  };

  const service: OtpService = {
    options: config,

    async generateOtp(username, destinations) {
      const normalized = normalizeUsername(username);
      const targets = strictTargets(destinations, senders);
      const { expiresAt, delivery } = await issueAndDeliver(normalized, targets, {
        binding: null,
        viaHttp: false,
        ...(destinations.locale !== undefined && { locale: destinations.locale }),
      });
      const channels = await delivery;
      if (channels.length === 0) throw new OtpError('DELIVERY_FAILED', 'The code could not be delivered on any channel; see the delivery_failed event for why.');
      return { channels, expiresAt };
    },

    async verifyOtp(username, code) {
      return service.checkCode(normalizeUsername(username), String(code), { binding: null });
    },

    async requestCode(username, channel, context) {
      const destinations = config.resolveUser === undefined ? null : await config.resolveUser(username, context.req);
      const targets = lenientTargets(destinations ?? undefined, channel, senders, (reason) =>
        config.logger?.warn({ event: 'otp.invalid_destination', username, reason }, 'blockid-otp: resolveUser returned an unusable destination'),
      );
      const wanted = (['sms', 'email'] as const).filter((c) => (channel === 'both' || channel === c) && senders[c] !== undefined);
      return issueAndDeliver(username, targets, { ...context, viaHttp: true, wanted, ...(destinations?.locale !== undefined && { locale: destinations.locale }) });
    },

    async checkCode(username, code, context) {
      const userKey = hashKey(secret, 'user', username);
      const ip = context.ip === undefined ? {} : { ip: context.ip };
      const lock = await quotas.failures.peek(userKey);
      if (!lock.ok || lock.remaining === 0) {
        events.emit('failed', { username, reason: 'locked', ...ip });
        const retryAfterMs = lock.ok ? limits.lockSeconds * 1000 : lock.retryAfterMs;
        return { ok: false, reason: 'too_many_attempts', retryAfterSeconds: Math.max(1, Math.ceil(retryAfterMs / 1000)) };
      }
      const candidate = code.replace(/[\s-]/g, '');
      const outcome = isWellFormedCode(candidate, config.codeLength)
        ? await store.verify(userKey, { hash: hashCode(secret, userKey, candidate), binding: context.binding }, { maxAttempts: config.maxAttempts })
        : 'malformed';
      if (outcome === 'ok') {
        await quotas.failures.reset(userKey);
        events.emit('verified', { username, ...ip });
        return { ok: true };
      }
      if (outcome === 'burned') {
        events.emit('failed', { username, reason: 'too_many_attempts', ...ip });
        return { ok: false, reason: 'too_many_attempts' };
      }
      events.emit('failed', { username, reason: outcome === 'mismatch' ? 'wrong_code' : outcome === 'missing' ? 'no_code' : 'malformed_code', ...ip });
      // Only a guess against a live code counts towards the lock: with no code there is nothing to find.
      if (outcome !== 'mismatch') return { ok: false, reason: 'invalid_code' };
      const counted = await quotas.failures.consume(userKey);
      if (counted.ok && counted.remaining === 0) {
        // The cap is reached: one more point crosses it, which starts the timed lock now.
        await quotas.failures.consume(userKey);
        events.emit('locked', { username, lockSeconds: limits.lockSeconds, ...ip });
      }
      return { ok: false, reason: 'invalid_code' };
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

