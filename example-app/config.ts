// Reads the example app's settings from the environment. Every variable is documented in
// `.env.example`. With no environment at all the app runs on embedded defaults (memory
// store, dev outbox, fixed dev secrets); in production those defaults are refused.

/** Twilio credentials and the channels that have a sender configured (at least one). */
interface TwilioConfig {
  accountSid: string;
  authToken: string;
  /** SMS from a number or through a Messaging Service. */
  sms: { from: string } | { messagingServiceSid: string } | undefined;
  /** WhatsApp from a sender number, with an approved authentication template. */
  whatsapp: { from: string; contentSid: string } | undefined;
  /** Voice calls from a calling number. */
  voice: { from: string } | undefined;
}

/** The channels the dev outbox can stand in for. */
export type OutboxChannel = 'sms' | 'email' | 'whatsapp' | 'voice';
const OUTBOX_CHANNELS: readonly OutboxChannel[] = ['sms', 'email', 'whatsapp', 'voice'];

interface SmtpConfig {
  smtpUrl: string;
  from: string;
}

export interface ExampleConfig {
  production: boolean;
  port: number;
  host: string | undefined;
  appName: string;
  otpSecret: string;
  /** First secret signs new cookies; the others are still accepted (rotation). */
  sessionSecrets: string[];
  /** Value for `app.set('trust proxy', …)`, or `undefined` to leave it off. */
  trustProxy: number | undefined;
  twilio: TwilioConfig | undefined;
  smtp: SmtpConfig | undefined;
  redisUrl: string | undefined;
  /** Prepended to every Redis key the app writes (codes, limits, sessions). */
  redisPrefix: string;
  /** PostgreSQL for codes and sessions (instead of Redis or memory). */
  databaseUrl: string | undefined;
  /** Where the PostgreSQL tables live. */
  databaseSchema: string;
  /** Mount `GET /metrics` (Prometheus text format). */
  metrics: boolean;
  /** Channels without a real sender that the dev outbox stands in for (none in production). */
  outboxChannels: OutboxChannel[];
  webOtpDomain: string | undefined;
  /** Things worth a console line at start-up. */
  warnings: string[];
}

export type Env = Record<string, string | undefined>;

/** A setting the app cannot start with; the message says which variable to fix and how. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

// Only ever used outside production; refused there.
export const DEV_OTP_SECRET = 'dev-only-otp-secret-change-me-0123456789abcdef';
const DEV_SESSION_SECRET = 'dev-only-session-secret-change-me-0123456789abcdef';

const GENERATE_HINT = "generate one with `node -e \"console.log(require('node:crypto').randomBytes(48).toString('base64url'))\"`";

function value(env: Env, name: string): string | undefined {
  const raw = env[name]?.trim();
  return raw === '' ? undefined : raw;
}

function secret(env: Env, name: string, devDefault: string, production: boolean, warnings: string[]): string {
  const given = value(env, name);
  if (given === undefined) {
    if (production) throw new ConfigError(`${name} is required in production: ${GENERATE_HINT}.`);
    warnings.push(`${name} is not set: using a fixed development secret. Set ${name} before deploying.`);
    return devDefault;
  }
  if (production && given.split(',').includes(devDefault)) {
    throw new ConfigError(`${name} is the built-in development secret, which is public: ${GENERATE_HINT}.`);
  }
  return given;
}

function twilioConfig(env: Env): TwilioConfig | undefined {
  const accountSid = value(env, 'TWILIO_ACCOUNT_SID');
  const authToken = value(env, 'TWILIO_AUTH_TOKEN');
  const from = value(env, 'TWILIO_FROM');
  const messagingServiceSid = value(env, 'TWILIO_MESSAGING_SERVICE_SID');
  const whatsappFrom = value(env, 'TWILIO_WHATSAPP_FROM');
  const contentSid = value(env, 'TWILIO_WHATSAPP_CONTENT_SID');
  const voiceFrom = value(env, 'TWILIO_VOICE_FROM');
  const senders = [from, messagingServiceSid, whatsappFrom, contentSid, voiceFrom];
  if (!accountSid && !authToken && senders.every((v) => v === undefined)) return undefined;
  if (whatsappFrom && !contentSid) {
    throw new ConfigError(
      'TWILIO_WHATSAPP_FROM is set but TWILIO_WHATSAPP_CONTENT_SID is not: set the Content SID (HX...) of an approved WhatsApp authentication template.',
    );
  }
  if (contentSid && !whatsappFrom) {
    throw new ConfigError('TWILIO_WHATSAPP_CONTENT_SID is set but TWILIO_WHATSAPP_FROM is not: set your WhatsApp sender number, e.g. +14155550111.');
  }
  const missing = [
    accountSid ? undefined : 'TWILIO_ACCOUNT_SID',
    authToken ? undefined : 'TWILIO_AUTH_TOKEN',
    senders.some((v) => v !== undefined)
      ? undefined
      : 'TWILIO_FROM (or TWILIO_MESSAGING_SERVICE_SID) for SMS, TWILIO_WHATSAPP_FROM and TWILIO_WHATSAPP_CONTENT_SID for WhatsApp, or TWILIO_VOICE_FROM for calls',
  ].filter(Boolean);
  if (missing.length > 0 || !accountSid || !authToken) {
    throw new ConfigError(`Twilio is partly configured: also set ${missing.join(' and ')}.`);
  }
  return {
    accountSid,
    authToken,
    sms: messagingServiceSid ? { messagingServiceSid } : from ? { from } : undefined,
    whatsapp: whatsappFrom && contentSid ? { from: whatsappFrom, contentSid } : undefined,
    voice: voiceFrom ? { from: voiceFrom } : undefined,
  };
}

function smtpConfig(env: Env): SmtpConfig | undefined {
  const smtpUrl = value(env, 'SMTP_URL');
  const from = value(env, 'OTP_EMAIL_FROM');
  if (!smtpUrl && !from) return undefined;
  if (!smtpUrl) throw new ConfigError('OTP_EMAIL_FROM is set but SMTP_URL is not: set SMTP_URL (e.g. smtps://user:pass@smtp.example.com).');
  if (!from) throw new ConfigError('SMTP_URL is set but OTP_EMAIL_FROM is not: set the sender, e.g. "Acme <no-reply@acme.example>".');
  return { smtpUrl, from };
}

function flag(env: Env, name: string): boolean | undefined {
  const raw = value(env, name)?.toLowerCase();
  if (raw === undefined) return undefined;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new ConfigError(`${name} must be 1 or 0, got "${raw}".`);
}

function outboxChannels(env: Env): OutboxChannel[] {
  const raw = value(env, 'DEV_OUTBOX_CHANNELS');
  if (raw === undefined) return [...OUTBOX_CHANNELS];
  const names = raw
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter(Boolean);
  const unknown = names.find((name) => !OUTBOX_CHANNELS.includes(name as OutboxChannel));
  if (unknown !== undefined) throw new ConfigError(`DEV_OUTBOX_CHANNELS has "${unknown}"; use a comma-separated list of ${OUTBOX_CHANNELS.join(', ')}.`);
  return OUTBOX_CHANNELS.filter((channel) => names.includes(channel));
}

function port(env: Env): number {
  const raw = value(env, 'PORT');
  if (raw === undefined) return 3000;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ConfigError(`PORT must be a port number (0-65535), got "${raw}".`);
  return n;
}

function trustProxy(env: Env): number | undefined {
  const raw = value(env, 'TRUST_PROXY');
  if (raw === undefined || raw === '0' || raw.toLowerCase() === 'false') return undefined;
  const hops = Number(raw);
  return Number.isInteger(hops) && hops > 0 ? hops : 1;
}

export function readConfig(env: Env): ExampleConfig {
  const production = env.NODE_ENV === 'production';
  const warnings: string[] = [];
  const twilio = twilioConfig(env);
  const smtp = smtpConfig(env);
  if (production && !twilio && !smtp) {
    throw new ConfigError(
      'NODE_ENV=production but no real sender is configured. Set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and ' +
        'TWILIO_FROM (or TWILIO_MESSAGING_SERVICE_SID) for SMS (TWILIO_WHATSAPP_FROM, TWILIO_VOICE_FROM for WhatsApp and calls), ' +
        'and/or SMTP_URL and OTP_EMAIL_FROM for email. The dev outbox only exists outside production.',
    );
  }
  const otpSecret = secret(env, 'OTP_SECRET', DEV_OTP_SECRET, production, warnings);
  if (otpSecret.length < 32) throw new ConfigError(`OTP_SECRET must be at least 32 characters (it has ${otpSecret.length}): ${GENERATE_HINT}.`);
  const sessionSecrets = secret(env, 'SESSION_SECRET', DEV_SESSION_SECRET, production, warnings)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (sessionSecrets.some((s) => s.length < 32)) {
    throw new ConfigError(`SESSION_SECRET must be at least 32 characters (each one, if comma-separated): ${GENERATE_HINT}.`);
  }
  const redisUrl = value(env, 'REDIS_URL');
  const databaseUrl = value(env, 'DATABASE_URL');
  if (redisUrl && databaseUrl) {
    throw new ConfigError('REDIS_URL and DATABASE_URL are both set: the example keeps codes and sessions in one of them; unset the other.');
  }
  if (production && !redisUrl && !databaseUrl) {
    warnings.push('Neither REDIS_URL nor DATABASE_URL is set: codes and sessions live in this process only and are lost on restart.');
  }
  const redisPrefix = value(env, 'REDIS_PREFIX') ?? 'blockid-example:';
  if (/[{}\s]/.test(redisPrefix)) throw new ConfigError('REDIS_PREFIX must not contain spaces, "{" or "}" (they break Redis Cluster hash tags).');
  const databaseSchema = value(env, 'DATABASE_SCHEMA') ?? 'public';
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(databaseSchema)) {
    throw new ConfigError(`DATABASE_SCHEMA must be lowercase letters, digits and "_" (a plain PostgreSQL name), got "${databaseSchema}".`);
  }
  return {
    production,
    port: port(env),
    host: value(env, 'HOST'),
    appName: value(env, 'APP_NAME') ?? 'BlockID Demo',
    otpSecret,
    sessionSecrets,
    trustProxy: trustProxy(env),
    twilio,
    smtp,
    redisUrl,
    redisPrefix,
    databaseUrl,
    databaseSchema,
    // Development shows metrics by default; production only when asked (METRICS=1).
    metrics: flag(env, 'METRICS') ?? !production,
    outboxChannels: production ? [] : outboxChannels(env),
    webOtpDomain: value(env, 'WEBOTP_DOMAIN'),
    warnings,
  };
}
