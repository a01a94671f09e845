/**
 * One options type, resolved once: every default in one literal, every check at creation
 * with a `TypeError` that names the option and the fix.
 */
import type { OtpStore } from '../stores/types.js';
import { configError } from './errors.js';
import { memoryStore } from '../stores/memory.js';
import type { Destinations, EmailSender, LineTypeLookup, OtpMetrics, PhoneChannel, SmsSender, VoiceSender, WhatsAppSender } from './types.js';
import { resolveAllowedNumberTypes, type PhoneNumberType } from './send/destinations.js';
import { resolveTestDestinations, type TestDestinations } from './send/test-destinations.js';
import type { MessageTemplates } from './send/messages.js';
import { definedOnly } from './defined.js';
import { booleanOption, checkOptions, unknownOptionError, wholeNumber } from './validate.js';

/** A pino-compatible logger (pino, console-like objects with these methods). */
export interface OtpLogger {
  info(details: object, message?: string): void;
  warn(details: object, message?: string): void;
  error(details: object, message?: string): void;
}

export interface WindowQuota {
  /** Events allowed per window; `0` turns the quota off. */
  points: number;
  windowSeconds: number;
}

export interface OtpLimits {
  /** Sends per username per window, on top of `resendCooldownSeconds`. */
  sendsPerUsername: WindowQuota;
  /** Sends to one phone number or email address (whoever asks). */
  sendsPerDestination: WindowQuota;
  /** Sends from one client IP (IPv6 by /56). */
  sendsPerIp: WindowQuota;
  /** SMS to one number block (the number minus its last 4 digits): stops SMS pumping of adjacent numbers. */
  smsPerPrefix: WindowQuota;
  /** SMS from the whole app per hour: a spend breaker. */
  smsPerHour: number;
  /** SMS from the whole app per day: a spend breaker. */
  smsPerDay: number;
  /** Voice calls from the whole app per hour: a spend breaker of its own (a call costs more than an SMS). */
  voicePerHour: number;
  /** Voice calls from the whole app per day. */
  voicePerDay: number;
  /** Line-type lookups (`lookup` option) from the whole app per day: each one costs money. */
  lookupsPerDay: number;
  /**
   * Wrong guesses in a row per username, across codes, sessions and methods, that start a
   * timed lock of `lockSeconds` (and again at every multiple). A success resets the count.
   */
  failedVerifications: number;
  /** How long that timed lock lasts, from the failure that started it. */
  lockSeconds: number;
  /**
   * Wrong guesses in a row per username (across codes, sessions, methods and timed locks)
   * that lock its verification until `unlock(username)` or `failureMemorySeconds` without a
   * failure (NIST SP 800-63B 5.2.2: at most 100).
   */
  maxConsecutiveFailures: number;
  /** How long the failure count is remembered after the last failure. */
  failureMemorySeconds: number;
}

/** What `resolveUser` returns for a known user: where codes go, and the other methods it has. */
export interface ResolvedUser extends Destinations {
  /** The sealed authenticator key from `otp.totp.enroll()` (stored on the user's row). */
  totp?: string | null | undefined;
  /** The recovery code hashes from `otp.recoveryCodes.generate()` still unused. */
  recoveryCodes?: readonly string[] | null | undefined;
}

export type ResolveUser = (
  username: string,
  // biome-ignore lint/suspicious/noExplicitAny: the framework's request (Express, Koa, Fastify, a fetch Request), whichever adapter calls
  req: any,
) => ResolvedUser | null | undefined | Promise<ResolvedUser | null | undefined>;

/** Called when a recovery code verifies: delete `hash` from the user's row (the store refuses it again meanwhile). */
// biome-ignore lint/suspicious/noExplicitAny: the framework's request, as in ResolveUser
export type OnRecoveryCodeUsed = (username: string, hash: string, req: any) => void | Promise<void>;

export interface OtpOptions {
  /** Key for hashing codes and keys at rest: a string of at least 32 characters. */
  secret: string;
  /** The user's destinations, or null/undefined for an unknown user. Required for the HTTP endpoints. */
  resolveUser?: ResolveUser | undefined;
  sms?: SmsSender | undefined;
  email?: EmailSender | undefined;
  store?: OtpStore | undefined;
  basePath?: string | undefined;
  codeLength?: number | undefined;
  ttlSeconds?: number | undefined;
  maxAttempts?: number | undefined;
  resendCooldownSeconds?: number | undefined;
  /** Names the app in messages ("123456 is your Acme code"). */
  appName?: string | undefined;
  /** Overrides or adds message templates per locale (`en`, `fr-CA`, ...). */
  messages?: Record<string, { [Name in keyof MessageTemplates]?: MessageTemplates[Name] | undefined }> | undefined;
  /** Locale when neither `resolveUser` nor `Accept-Language` picks one. */
  defaultLocale?: string | undefined;
  /** Adds the WebOTP line `@domain #code` to every SMS. */
  webOtpDomain?: string | undefined;
  /** Wait for delivery before answering /send (default false: answer at once, so timing does not reveal users). */
  awaitDelivery?: boolean | undefined;
  /** Time budget for one delivery, retries included. */
  deliveryTimeoutMs?: number | undefined;
  /** Extra tries after a retryable delivery failure. */
  deliveryRetries?: number | undefined;
  /** Largest accepted request body. */
  maxBodyBytes?: number | undefined;
  /** Turns a raw username into the key it is known by (default: trim, NFKC, lower case). */
  normalizeUsername?: ((username: string) => string) | undefined;
  limits?: { [Name in keyof OtpLimits]?: OtpLimits[Name] | undefined } | undefined;
  logger?: OtpLogger | undefined;
  /** WhatsApp (`twilioWhatsApp(...)`): enables `channel: 'whatsapp'`. */
  whatsapp?: WhatsAppSender | undefined;
  /** Voice calls (`twilioVoice(...)`): enables `channel: 'voice'`. */
  voice?: VoiceSender | undefined;
  /** Phone channels to try in order with the same code when a delivery fails, e.g. `['whatsapp', 'sms', 'voice']`. */
  fallback?: PhoneChannel[] | undefined;
  /** A line-type gate before the first send to a number (`twilioLookup(...)`). */
  lookup?: LineTypeLookup | undefined;
  /** Number types to accept besides a person's phone (default none), e.g. `['TOLL_FREE']`. */
  allowNumberTypes?: PhoneNumberType[] | undefined;
  /** `{ [phone or email]: fixedCode }`: sends there deliver nothing and issue the fixed code. */
  testDestinations?: Record<string, string> | undefined;
  /** When test destinations stop being special (a `Date` or ISO string); required unless NODE_ENV is development or test, at most 30 days ahead. */
  testDestinationsExpireAt?: Date | string | undefined;
  /** Called when a recovery code verifies, so the app deletes its hash. */
  onRecoveryCodeUsed?: OnRecoveryCodeUsed | undefined;
  /** Metrics (`prometheusMetrics(...)` from `blockid-otp/metrics`). */
  metrics?: OtpMetrics | undefined;
  /** The issuer an authenticator app shows for `totp.enroll()` (default: `appName`). */
  totpIssuer?: string | undefined;
  /**
   * A sign-in link in each email beside the code, safe from mail scanners (docs/sign-in-link.md):
   * `url` is where the app serves `{basePath}/link`, absolute; `redirectTo` (default `/`) is
   * where a confirmed link lands.
   */
  link?: LinkOptions | undefined;
}

export interface LinkOptions {
  /** Absolute `http(s)` URL of `{basePath}/link`, without query or fragment, e.g. `https://app.example/otp/link`. */
  url: string;
  /** A path on this site to send the browser to once signed in (default `/`). */
  redirectTo?: string | undefined;
}

type Optional =
  | 'resolveUser'
  | 'sms'
  | 'email'
  | 'logger'
  | 'webOtpDomain'
  | 'limits'
  | 'whatsapp'
  | 'voice'
  | 'fallback'
  | 'lookup'
  | 'allowNumberTypes'
  | 'testDestinations'
  | 'testDestinationsExpireAt'
  | 'onRecoveryCodeUsed'
  | 'metrics'
  | 'totpIssuer'
  | 'link';

export interface ResolvedOptions extends Required<Omit<OtpOptions, Optional>> {
  resolveUser: ResolveUser | undefined;
  sms: SmsSender | undefined;
  email: EmailSender | undefined;
  whatsapp: WhatsAppSender | undefined;
  voice: VoiceSender | undefined;
  logger: OtpLogger | undefined;
  webOtpDomain: string | undefined;
  limits: OtpLimits;
  fallback: PhoneChannel[];
  lookup: LineTypeLookup | undefined;
  allowNumberTypes: ReadonlySet<PhoneNumberType>;
  testDestinations: TestDestinations | undefined;
  onRecoveryCodeUsed: OnRecoveryCodeUsed | undefined;
  metrics: OtpMetrics | undefined;
  totpIssuer: string;
  link: { url: string; redirectTo: string } | undefined;
}

/** NIST SP 800-63B 5.2.2: at most 100 consecutive failed attempts on one account. */
const NIST_MAX_FAILURES = 100;

const defaultLimits: OtpLimits = {
  sendsPerUsername: { points: 10, windowSeconds: 3600 },
  sendsPerDestination: { points: 10, windowSeconds: 3600 },
  sendsPerIp: { points: 30, windowSeconds: 3600 },
  smsPerPrefix: { points: 30, windowSeconds: 3600 },
  smsPerHour: 1000,
  smsPerDay: 10_000,
  voicePerHour: 100,
  voicePerDay: 1000,
  lookupsPerDay: 1000,
  failedVerifications: 20,
  lockSeconds: 900,
  maxConsecutiveFailures: 100,
  failureMemorySeconds: 2_592_000,
};

const defaults = {
  basePath: '/otp',
  codeLength: 6,
  ttlSeconds: 300,
  maxAttempts: 5,
  resendCooldownSeconds: 30,
  appName: 'your account',
  messages: {},
  defaultLocale: 'en',
  awaitDelivery: false,
  deliveryTimeoutMs: 10_000,
  deliveryRetries: 1,
  maxBodyBytes: 16 * 1024,
  normalizeUsername: (username: string) => username.trim().normalize('NFKC').toLowerCase(),
} satisfies Partial<OtpOptions>;

const knownOptions = [
  'secret',
  'resolveUser',
  'sms',
  'email',
  'store',
  'basePath',
  'codeLength',
  'ttlSeconds',
  'maxAttempts',
  'resendCooldownSeconds',
  'appName',
  'messages',
  'defaultLocale',
  'webOtpDomain',
  'awaitDelivery',
  'deliveryTimeoutMs',
  'deliveryRetries',
  'maxBodyBytes',
  'normalizeUsername',
  'limits',
  'logger',
  'whatsapp',
  'voice',
  'fallback',
  'lookup',
  'allowNumberTypes',
  'testDestinations',
  'testDestinationsExpireAt',
  'onRecoveryCodeUsed',
  'metrics',
  'totpIssuer',
  'link',
] as const;
const SENDER_EXAMPLES = {
  sms: 'twilioSms({ client, from })',
  email: 'nodemailerEmail({ transporter, from })',
  whatsapp: 'twilioWhatsApp({ client, from, contentSid })',
  voice: 'twilioVoice({ client, from })',
} as const;
const METRICS_METHODS = ['send', 'unknownUserSend', 'rateLimited', 'delivery', 'verification', 'lock', 'timeToVerify'] as const;
const knownLimits = Object.keys(defaultLimits);

/** How a caller other than the option literal wants options resolved. */
export interface ResolveContext {
  /** Whether at least one sender is required (default true; otp-provider checks per channel). */
  senderRequired?: boolean;
  /** The names errors about test destinations use (otp-provider passes its environment variables). */
  testDestinationNames?: { destinations: string; expireAt: string };
}

/** Validates `options` once and fills in every default. */
export function resolveOptions(options: OtpOptions, factory: string, { senderRequired = true, testDestinationNames }: ResolveContext = {}): ResolvedOptions {
  const fail = (message: string): never => {
    throw configError(`${factory}: ${message}`, 'invalid-options');
  };
  checkOptions(factory, options, knownOptions, `${factory}({ secret, resolveUser, sms })`);

  const { secret } = options;
  if (typeof secret !== 'string' || secret.length < 32) {
    fail('option "secret" must be a string of at least 32 characters (e.g. 32 random bytes as hex from `openssl rand -hex 32`).');
  }
  for (const name of ['sms', 'email', 'whatsapp', 'voice'] as const) {
    const sender = options[name];
    if (sender !== undefined && typeof sender?.send !== 'function') {
      fail(`option "${name}" must be a sender with a send(message) method, e.g. ${SENDER_EXAMPLES[name]}.`);
    }
  }
  if (senderRequired && options.sms === undefined && options.email === undefined && options.whatsapp === undefined && options.voice === undefined) {
    fail('pass at least one of "sms" (e.g. twilioSms(...)), "whatsapp", "voice" or "email" (e.g. nodemailerEmail(...)).');
  }
  const fallback = options.fallback ?? [];
  if (!Array.isArray(fallback) || fallback.some((channel) => !['sms', 'whatsapp', 'voice'].includes(channel)) || new Set(fallback).size !== fallback.length) {
    fail('option "fallback" must list phone channels once each, in order, e.g. ["whatsapp", "sms", "voice"].');
  }
  for (const channel of fallback) {
    if (options[channel] === undefined)
      fail(`option "fallback" names "${channel}", but no "${channel}" sender is configured (e.g. ${SENDER_EXAMPLES[channel]}).`);
  }
  const lookup = options.lookup;
  if (lookup !== undefined && (typeof lookup?.lookup !== 'function' || !['block', 'monitor'].includes(lookup.mode) || !Array.isArray(lookup.allow))) {
    fail('option "lookup" must be a line-type lookup such as twilioLookup({ client, allow: ["mobile"], mode: "block" }).');
  }
  const metrics = options.metrics;
  if (metrics !== undefined && !METRICS_METHODS.every((method) => typeof (metrics as unknown as Record<string, unknown>)?.[method] === 'function')) {
    fail('option "metrics" must be a metrics sink such as prometheusMetrics({ registry }) from "blockid-otp/metrics".');
  }
  if (options.onRecoveryCodeUsed !== undefined && typeof options.onRecoveryCodeUsed !== 'function') {
    fail('option "onRecoveryCodeUsed" must be a function (username, hash, req) that deletes the used hash from the user\'s row.');
  }
  if (options.totpIssuer !== undefined && (typeof options.totpIssuer !== 'string' || options.totpIssuer.trim() === '' || options.totpIssuer.includes(':'))) {
    fail('option "totpIssuer" must be a non-empty string without ":" (what authenticator apps show above the code).');
  }
  let allowNumberTypes: ReadonlySet<PhoneNumberType> = new Set();
  try {
    allowNumberTypes = resolveAllowedNumberTypes(options.allowNumberTypes, 'option "allowNumberTypes"');
  } catch (error) {
    fail((error as Error).message);
  }
  if (options.resolveUser !== undefined && typeof options.resolveUser !== 'function') {
    fail('option "resolveUser" must be a function (username, req) => ({ smsTo?, smsISDCode?, emailTo? }) | null.');
  }
  const store = options.store ?? memoryStore();
  if (!(['send', 'verify', 'attempt', 'settle', 'unlock', 'consume', 'get', 'set'] as const).every((method) => typeof store?.[method] === 'function')) {
    fail('option "store" must be an OtpStore such as memoryStore(), redisStore({ client }) or postgresStore({ pool }).');
  }

  const integer = (name: keyof OtpOptions, min: number, max: number): number =>
    wholeNumber(factory, name, options[name] ?? defaults[name as keyof typeof defaults], min, max);
  const basePath = options.basePath ?? defaults.basePath;
  if (typeof basePath !== 'string' || !/^\/[A-Za-z0-9._~\-/]*$/.test(basePath)) {
    fail(`option "basePath" must be a path starting with "/", e.g. "/otp" (got ${JSON.stringify(basePath)}).`);
  }
  const text = (name: 'appName' | 'defaultLocale', allowEmpty = false): string => {
    const value = options[name] ?? defaults[name];
    if (typeof value !== 'string' || (!allowEmpty && value.trim() === '')) fail(`option "${name}" must be a non-empty string.`);
    return value;
  };
  const webOtpDomain = options.webOtpDomain;
  if (webOtpDomain !== undefined && (typeof webOtpDomain !== 'string' || !/^[a-z0-9.-]+(:\d+)?$/i.test(webOtpDomain))) {
    fail('option "webOtpDomain" must be a host name such as "example.com" (no scheme, no path).');
  }
  if (options.awaitDelivery !== undefined) booleanOption(factory, 'awaitDelivery', options.awaitDelivery);
  for (const name of ['normalizeUsername'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') fail(`option "${name}" must be a function.`);
  }
  const logger = options.logger;
  if (
    logger !== undefined &&
    !['info', 'warn', 'error'].every((level) => typeof (logger as unknown as Record<string, unknown> | null)?.[level] === 'function')
  ) {
    fail('option "logger" must have info, warn and error methods (pino and console both do).');
  }
  if (options.messages !== undefined && (options.messages === null || typeof options.messages !== 'object')) {
    fail('option "messages" must be an object keyed by locale, e.g. { en: { sms: (m) => `...` } }.');
  }

  const maxAttempts = integer('maxAttempts', 1, 10);
  const codeLength = integer('codeLength', 6, 10);
  const limits = resolveLimits(options.limits, fail, factory);
  // Guesses already in flight when the cap is reached still get compared (at most the rest of
  // one code's attempt budget), so the cap leaves room for them under NIST's 100.
  if (limits.failedVerifications + maxAttempts - 1 > NIST_MAX_FAILURES) {
    fail(
      `limit "limits.failedVerifications" (${limits.failedVerifications}) plus "maxAttempts" (${maxAttempts}) - 1 must stay within ${NIST_MAX_FAILURES} ` +
        `(NIST SP 800-63B 5.2.2): lower failedVerifications to ${NIST_MAX_FAILURES + 1 - maxAttempts} or less.`,
    );
  }

  return {
    secret,
    resolveUser: options.resolveUser,
    sms: options.sms,
    email: options.email,
    store,
    basePath: basePath.replace(/\/+$/, '') || '/',
    codeLength,
    ttlSeconds: integer('ttlSeconds', 1, 600),
    maxAttempts,
    resendCooldownSeconds: integer('resendCooldownSeconds', 0, 3600),
    appName: text('appName'),
    messages: options.messages ?? defaults.messages,
    defaultLocale: text('defaultLocale'),
    webOtpDomain,
    awaitDelivery: options.awaitDelivery ?? defaults.awaitDelivery,
    deliveryTimeoutMs: integer('deliveryTimeoutMs', 100, 120_000),
    deliveryRetries: integer('deliveryRetries', 0, 5),
    maxBodyBytes: integer('maxBodyBytes', 256, 1024 * 1024),
    normalizeUsername: options.normalizeUsername ?? defaults.normalizeUsername,
    logger,
    limits,
    whatsapp: options.whatsapp,
    voice: options.voice,
    fallback,
    lookup,
    allowNumberTypes,
    testDestinations: resolveTestDestinations(options.testDestinations, options.testDestinationsExpireAt, {
      codeLength,
      factory,
      ...(testDestinationNames && { names: testDestinationNames }),
    }),
    onRecoveryCodeUsed: options.onRecoveryCodeUsed,
    metrics,
    totpIssuer: options.totpIssuer ?? ((options.appName ?? 'blockid-otp').replace(/:/g, '').trim() || 'blockid-otp'),
    link: resolveLink(options.link, fail, factory),
  };
}

/** `link`: an absolute http(s) URL without query or fragment, and a same-origin `redirectTo` path. */
function resolveLink(link: LinkOptions | undefined, fail: (message: string) => never, factory: string): ResolvedOptions['link'] {
  if (link === undefined) return undefined;
  const example = 'e.g. { url: "https://app.example/otp/link", redirectTo: "/" }';
  if (link === null || typeof link !== 'object') return fail(`option "link" must be an object, ${example}.`);
  for (const name of Object.keys(link)) {
    if (name !== 'url' && name !== 'redirectTo') throw unknownOptionError(factory, name, ['url', 'redirectTo'], 'link option');
  }
  let url: URL | undefined;
  try {
    url = typeof link.url === 'string' ? new URL(link.url) : undefined;
  } catch {
    url = undefined;
  }
  if (
    url === undefined ||
    (url.protocol !== 'https:' && url.protocol !== 'http:') ||
    link.url.includes('?') ||
    link.url.includes('#') ||
    url.username !== '' ||
    url.password !== ''
  ) {
    return fail(
      `option "link.url" must be the absolute http(s) URL where the app serves {basePath}/link, without query or fragment, ${example} (got ${JSON.stringify(link.url)}).`,
    );
  }
  const redirectTo = link.redirectTo ?? '/';
  if (typeof redirectTo !== 'string' || !redirectTo.startsWith('/') || redirectTo.startsWith('//') || /[\\\u0000-\u001f\u007f]/.test(redirectTo)) {
    return fail(
      'option "link.redirectTo" must be a path on this site starting with a single "/", e.g. "/account" (not "//host" or "/\\host", which browsers read as another site).',
    );
  }
  return { url: url.href, redirectTo };
}

function resolveLimits(limits: OtpOptions['limits'], fail: (message: string) => never, factory: string): OtpLimits {
  if (limits === undefined) return defaultLimits;
  if (limits === null || typeof limits !== 'object')
    return fail('option "limits" must be an object, e.g. { sendsPerIp: { points: 30, windowSeconds: 3600 } }.');
  for (const name of Object.keys(limits)) if (!knownLimits.includes(name)) throw unknownOptionError(factory, name, knownLimits, 'limit');
  const resolved = { ...defaultLimits, ...definedOnly(limits) };
  for (const name of ['sendsPerUsername', 'sendsPerDestination', 'sendsPerIp', 'smsPerPrefix'] as const) {
    const quota = resolved[name];
    if (!isCount(quota?.points, 1_000_000) || !isCount(quota?.windowSeconds, 31 * 86_400) || quota.windowSeconds === 0) {
      fail(`limit "limits.${name}" must be { points: 0..1000000, windowSeconds: 1..2678400 }.`);
    }
  }
  for (const name of ['smsPerHour', 'smsPerDay', 'voicePerHour', 'voicePerDay', 'lookupsPerDay'] as const) {
    if (!isCount(resolved[name], 100_000_000)) fail(`limit "limits.${name}" must be a whole number (0 turns it off).`);
  }
  if (!isCount(resolved.failedVerifications, NIST_MAX_FAILURES) || resolved.failedVerifications < 1) {
    fail(`limit "limits.failedVerifications" must be a whole number from 1 to ${NIST_MAX_FAILURES} (NIST SP 800-63B allows at most ${NIST_MAX_FAILURES}).`);
  }
  if (!isCount(resolved.lockSeconds, 86_400) || resolved.lockSeconds < 1) fail('limit "limits.lockSeconds" must be from 1 to 86400.');
  if (!isCount(resolved.maxConsecutiveFailures, NIST_MAX_FAILURES) || resolved.maxConsecutiveFailures < 1) {
    fail(
      `limit "limits.maxConsecutiveFailures" must be a whole number from 1 to ${NIST_MAX_FAILURES} (NIST SP 800-63B allows at most ${NIST_MAX_FAILURES} failed attempts).`,
    );
  }
  if (!isCount(resolved.failureMemorySeconds, 366 * 86_400) || resolved.failureMemorySeconds < resolved.lockSeconds) {
    fail('limit "limits.failureMemorySeconds" must be a whole number of seconds, at least "lockSeconds" and at most 31622400 (366 days).');
  }
  return resolved;
}

function isCount(value: unknown, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= max;
}
