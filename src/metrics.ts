/**
 * `blockid-otp/metrics`: Prometheus metrics on `prom-client` (an optional peer dependency of
 * this subpath only; the main entry never loads it). Without `prom-client` installed, importing
 * this subpath fails with Node's own "Cannot find package 'prom-client'" (`ERR_MODULE_NOT_FOUND`
 * / `MODULE_NOT_FOUND`): `npm install prom-client` fixes it.
 *
 *   const otp = blockidOtp({ ..., metrics: prometheusMetrics({ registry }) });
 *   app.get('/metrics', async (_req, res) => res.type(registry.contentType).send(await registry.metrics()));
 *
 * The metric names are public API. No label ever holds a username, number, address, IP or
 * code: every label value is checked against its closed set here (anything else becomes
 * `other`; an `npa` that is not exactly three digits becomes `''`), so a bug upstream cannot
 * leak personal data into a scrape.
 */
import { configError } from './core/errors.js';
import { Counter, Histogram, register as defaultRegistry, type Registry } from 'prom-client';
import type { Channel, OtpMetrics, VerifyMethod } from './core/types.js';
import { checkOptions, optionError } from './core/validate.js';

export interface PrometheusMetricsOptions {
  /** Where the metrics register. Default: prom-client's default `register`. */
  registry?: Registry | undefined;
  /** Replaces `blockid_otp_` in every name; must itself be a valid name ending in `_`, e.g. `myapp_otp_`. */
  prefix?: string | undefined;
}

/** The `metrics` option for `blockidOtp`, `blockidOtpKoa` and `createOtpService`. */
export interface PrometheusMetrics extends OtpMetrics {
  /** The registry the metrics live in, for a `/metrics` route: `await registry.metrics()`. */
  readonly registry: Registry;
}

const DEFAULT_PREFIX = 'blockid_otp_';
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const OPTIONS = ['registry', 'prefix'];

/** 50 ms (a fast SMTP relay) to 30 s (a provider timeout). */
const DELIVERY_BUCKETS_SECONDS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30];
/** 5 s (an autofilled code) to 600 s (the longest `ttlSeconds`), then `+Inf`. */
const TIME_TO_VERIFY_BUCKETS_SECONDS = [5, 10, 15, 30, 45, 60, 90, 120, 180, 300, 600];

const CHANNELS: readonly Channel[] = ['sms', 'email', 'whatsapp', 'voice'];
const PHONE_CHANNELS: readonly string[] = ['sms', 'whatsapp', 'voice'];
const SEND_OUTCOMES = ['sent', 'rate_limited', 'test'] as const;
const DELIVERY_RESULTS = ['delivered', 'failed'] as const;
const METHODS: readonly VerifyMethod[] = ['code', 'totp', 'recovery', 'link'];
const VERIFY_RESULTS = ['verified', 'invalid', 'burned', 'locked'] as const;
const LOCK_KINDS = ['timed', 'permanent'] as const;
/** The limits' option names (`limits.*` and the resend cooldown). */
export const RATE_LIMIT_LABELS = [
  'resendCooldownSeconds',
  'sendsPerUsername',
  'sendsPerDestination',
  'sendsPerIp',
  'smsPerPrefix',
  'smsPerHour',
  'smsPerDay',
  'voicePerHour',
  'voicePerDay',
  'lookupsPerDay',
] as const;

const OTHER = 'other';
const NPA = /^\d{3}$/;

/** The value itself when it is one of `allowed`, else `other`. */
function oneOf(value: unknown, allowed: readonly string[]): string {
  return typeof value === 'string' && allowed.includes(value) ? value : OTHER;
}

/** The area code on a phone channel when it is exactly three digits; `''` otherwise. */
function npaLabel(channel: string, npa: unknown): string {
  return PHONE_CHANNELS.includes(channel) && typeof npa === 'string' && NPA.test(npa) ? npa : '';
}

function validSeconds(seconds: unknown): seconds is number {
  return typeof seconds === 'number' && Number.isFinite(seconds) && seconds >= 0;
}

function resolvePrefix(prefix: unknown): string {
  if (prefix === undefined) return DEFAULT_PREFIX;
  if (typeof prefix !== 'string') {
    throw optionError('prometheusMetrics', 'prefix', "a string such as 'myapp_otp_'", prefix);
  }
  if (prefix === '') return prefix;
  if (!METRIC_NAME.test(prefix)) {
    throw configError(
      `prometheusMetrics: \`prefix\` ${JSON.stringify(prefix)} is not a valid Prometheus name start: ` +
        'use letters, digits, `_` and `:`, not starting with a digit (e.g. `myapp_otp_`).',
      'invalid-metrics-options',
    );
  }
  if (!prefix.endsWith('_') && !prefix.endsWith(':')) {
    throw configError(
      `prometheusMetrics: \`prefix\` ${JSON.stringify(prefix)} is joined directly to names like \`sends_total\`; ` +
        `did you mean ${JSON.stringify(`${prefix}_`)}?`,
      'invalid-metrics-options',
    );
  }
  return prefix;
}

function resolveRegistry(registry: unknown): Registry {
  if (registry === undefined) return defaultRegistry;
  const candidate = registry as Partial<Registry> | null;
  if (typeof candidate?.getSingleMetric !== 'function' || typeof candidate.registerMetric !== 'function') {
    throw configError('prometheusMetrics: `registry` must be a prom-client Registry (`new Registry()` from prom-client).', 'invalid-metrics-options');
  }
  return registry as Registry;
}

/**
 * One metric, created in `registry`, or the one already there under that name (a second
 * `prometheusMetrics` call) when it is of the same type with the same labels.
 */
function reuse<M extends Counter<string> | Histogram<string>>(
  registry: Registry,
  name: string,
  labelNames: readonly string[],
  type: typeof Counter | typeof Histogram,
  create: () => M,
): M {
  const existing = registry.getSingleMetric(name) as (M & { labelNames?: readonly string[] }) | undefined;
  if (existing === undefined) return create();
  // By class name too: the app's registry may come from another copy of prom-client.
  const sameType = existing instanceof type || existing.constructor?.name === type.name;
  const sameLabels =
    Array.isArray(existing.labelNames) && existing.labelNames.length === labelNames.length && labelNames.every((label) => existing.labelNames?.includes(label));
  if (!sameType || !sameLabels) {
    throw configError(
      `prometheusMetrics: the registry already holds a different metric named ${name} ` +
        `(not a ${type.name.toLowerCase()} with labels [${labelNames.join(', ')}]); pass another \`registry\` or a \`prefix\`.`,
      'invalid-metrics-options',
    );
  }
  return existing;
}

/**
 * Prometheus metrics for blockid-otp, passed as the `metrics` option. Calling it again on the
 * same registry reuses the metrics already registered there (one set of series per registry).
 */
export function prometheusMetrics(options: PrometheusMetricsOptions = {}): PrometheusMetrics {
  checkOptions('prometheusMetrics', options, OPTIONS, 'prometheusMetrics({ registry })');
  const prefix = resolvePrefix(options.prefix);
  const registry = resolveRegistry(options.registry);
  const registers = [registry];

  const counter = <L extends string>(suffix: string, help: string, labelNames: readonly L[]): Counter<L> => {
    const name = `${prefix}${suffix}`;
    return reuse(registry, name, labelNames, Counter, () => new Counter<L>({ name, help, labelNames, registers }));
  };
  const histogram = <L extends string>(suffix: string, help: string, labelNames: readonly L[], buckets: number[]): Histogram<L> => {
    const name = `${prefix}${suffix}`;
    return reuse(registry, name, labelNames, Histogram, () => new Histogram<L>({ name, help, labelNames, buckets, registers }));
  };

  const sends = counter(
    'sends_total',
    'Sends for resolved users, one per channel: outcome sent (handed to the sender), rate_limited (refused by a quota) or test (a test destination); npa is the area code on phone channels, empty for email.',
    ['channel', 'outcome', 'npa'],
  );
  const unknownUserSends = counter('unknown_user_sends_total', 'Sends for unknown usernames, answered with a decoy (nothing delivered).', []);
  const rateLimited = counter('rate_limited_total', 'Refused sends, by the option name of the limit that refused them.', ['limit']);
  const deliveries = counter('deliveries_total', 'Delivery attempts (retries and fallbacks included), by channel and result.', ['channel', 'result']);
  const deliveryDuration = histogram(
    'delivery_duration_seconds',
    'How long one delivery attempt took, in seconds, by channel.',
    ['channel'],
    DELIVERY_BUCKETS_SECONDS,
  );
  const verifications = counter(
    'verifications_total',
    'Verification attempts, by method (code, totp, recovery) and result (verified, invalid, burned, locked).',
    ['method', 'result'],
  );
  const verifiedSends = counter(
    'verified_sends_total',
    'Sends whose code was then verified, one per channel it was sent on (with the same labels as sends_total): the numerator of the conversion rate per channel and per area code.',
    ['channel', 'npa'],
  );
  const locks = counter('locks_total', 'Usernames locked after wrong guesses: timed (lockSeconds) or permanent (maxConsecutiveFailures).', ['kind']);
  const timeToVerify = histogram('time_to_verify_seconds', 'Seconds from issuing a code to its successful verification.', [], TIME_TO_VERIFY_BUCKETS_SECONDS);

  // Series with closed label sets start at 0, so rate() and ratios work before the first event.
  for (const limit of RATE_LIMIT_LABELS) rateLimited.inc({ limit }, 0);
  for (const method of METHODS) for (const result of VERIFY_RESULTS) verifications.inc({ method, result }, 0);
  for (const kind of LOCK_KINDS) locks.inc({ kind }, 0);

  return {
    registry,
    send(channel, outcome, npa) {
      const channelLabel = oneOf(channel, CHANNELS);
      sends.inc({ channel: channelLabel, outcome: oneOf(outcome, SEND_OUTCOMES), npa: npaLabel(channelLabel, npa) });
    },
    unknownUserSend() {
      unknownUserSends.inc();
    },
    rateLimited(limit) {
      rateLimited.inc({ limit: oneOf(limit, RATE_LIMIT_LABELS) });
    },
    delivery(channel, result, seconds) {
      const channelLabel = oneOf(channel, CHANNELS);
      deliveries.inc({ channel: channelLabel, result: oneOf(result, DELIVERY_RESULTS) });
      if (validSeconds(seconds)) deliveryDuration.observe({ channel: channelLabel }, seconds);
    },
    verification(method, result) {
      verifications.inc({ method: oneOf(method, METHODS), result: oneOf(result, VERIFY_RESULTS) });
    },
    verifiedSend(channel, npa) {
      const channelLabel = oneOf(channel, CHANNELS);
      verifiedSends.inc({ channel: channelLabel, npa: npaLabel(channelLabel, npa) });
    },
    lock(kind) {
      locks.inc({ kind: oneOf(kind, LOCK_KINDS) });
    },
    timeToVerify(seconds) {
      if (validSeconds(seconds)) timeToVerify.observe(seconds);
    },
  };
}
