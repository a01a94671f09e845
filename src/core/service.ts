/**
 * The framework-free OTP service: issue and deliver codes, verify them, enforce quotas,
 * attempt budgets and lockouts. Adapters (Express, Koa, the seed facade) call into this.
 */
import { generateCode, hashCode, hashKey, isWellFormedCode, randomToken } from './codes.js';
import { deliverAll, type Outgoing } from './delivery.js';
import { maskDestination, normalizeEmail, normalizePhone } from './destinations.js';
import { OtpError } from './errors.js';
import { createEvents, type OtpEventName, type OtpListener } from './events.js';
import { buildCatalog, describeDuration, escapeHtml, pickLocale } from './messages.js';
import { resolveOptions, type OtpOptions, type ResolvedOptions } from './options.js';
import { ipQuotaKey } from './client-ip.js';
import type { Limiter } from '../stores/types.js';
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

interface Target {
  channel: Channel;
  to: string;
}

const MAX_USERNAME_LENGTH = 256;
/** How long failed verifications are remembered (reset by a success or by the lock ending). */
const FAILURE_MEMORY_SECONDS = 86_400;

export function createOtpService(options: OtpOptions, factory = 'createOtpService', resolution?: { senderRequired: boolean }): OtpService {
  const config = resolveOptions(options, factory, resolution);
  const { secret, store, limits } = config;
  const events = createEvents(config.logger);
  const catalog = buildCatalog(config.messages, config.defaultLocale);
  const policy = { timeoutMs: config.deliveryTimeoutMs, retries: config.deliveryRetries };
  const senders = { sms: config.sms, email: config.email };

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

  const normalizeUsername = (username: unknown): string => {
    if (typeof username !== 'string') throw new OtpError('INVALID_REQUEST', 'username must be a string.');
    const trimmed = username.trim();
    if (trimmed === '') throw new OtpError('INVALID_REQUEST', 'username must not be empty.');
    if ([...username].length > MAX_USERNAME_LENGTH) throw new OtpError('INVALID_REQUEST', `username must be at most ${MAX_USERNAME_LENGTH} characters.`);
    const normalized = config.normalizeUsername(trimmed);
    if (typeof normalized !== 'string' || normalized === '') throw new OtpError('INVALID_REQUEST', 'username is empty once normalized.');
    return normalized;
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
      await consume(limiters.ip, hashKey(secret, 'ip', ipQuotaKey(context.ip)), 'sendsPerIp', { username, ...(context.ip !== undefined && { ip: context.ip }) });
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
    await consume(limiters.username, userKey, 'sendsPerUsername', { username });

    const admitted: Target[] = [];
    let refusal: OtpError | null = null;
    for (const target of targets) {
      const refused = await admitTarget(target, username);
      if (refused === null) admitted.push(target);
      else refusal ??= refused;
    }
    if (targets.length === 0 && context.wanted !== undefined) refusal = await admitDecoy(context.wanted, username, context.ip);
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
      const lock = await limiters.failures.peek(userKey);
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
        await limiters.failures.reset(userKey);
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
      const counted = await limiters.failures.consume(userKey);
      if (counted.ok && counted.remaining === 0) {
        // The cap is reached: one more point crosses it, which starts the timed lock now.
        await limiters.failures.consume(userKey);
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

/** The programmatic API's destinations: every bad one is an error the caller must fix. */
function strictTargets(destinations: Destinations, senders: { sms: unknown; email: unknown }): Target[] {
  if (destinations === null || typeof destinations !== 'object') {
    throw new OtpError('NO_DESTINATION', 'Pass the destinations, e.g. { smsTo: "4155550100", smsISDCode: "1" } or { emailTo }.');
  }
  const targets: Target[] = [];
  if (destinations.smsTo !== undefined) {
    const to = normalizePhone(destinations.smsTo, destinations.smsISDCode ?? '1');
    if (senders.sms === undefined) throw new OtpError('CHANNEL_NOT_CONFIGURED', 'smsTo was given, but no "sms" sender is configured (e.g. sms: twilioSms(...)).');
    targets.push({ channel: 'sms', to });
  }
  if (destinations.emailTo !== undefined) {
    const to = normalizeEmail(destinations.emailTo);
    if (senders.email === undefined) throw new OtpError('CHANNEL_NOT_CONFIGURED', 'emailTo was given, but no "email" sender is configured (e.g. email: nodemailerEmail(...)).');
    targets.push({ channel: 'email', to });
  }
  if (targets.length === 0) throw new OtpError('NO_DESTINATION', 'Give smsTo (with smsISDCode) or emailTo, or both.');
  return targets;
}

/** The HTTP send's destinations: what `resolveUser` returned, filtered by channel; bad ones are skipped. */
function lenientTargets(
  destinations: Destinations | undefined,
  choice: ChannelChoice,
  senders: { sms: unknown; email: unknown },
  warn: (reason: string) => void,
): Target[] {
  if (destinations === undefined || destinations === null || typeof destinations !== 'object') return [];
  const targets: Target[] = [];
  const wants = (channel: Channel) => (choice === 'both' || choice === channel) && senders[channel] !== undefined;
  try {
    if (wants('sms') && destinations.smsTo) targets.push({ channel: 'sms', to: normalizePhone(destinations.smsTo, destinations.smsISDCode ?? '1') });
  } catch (error) {
    warn((error as Error).message);
  }
  try {
    if (wants('email') && destinations.emailTo) targets.push({ channel: 'email', to: normalizeEmail(destinations.emailTo) });
  } catch (error) {
    warn((error as Error).message);
  }
  return targets;
}
