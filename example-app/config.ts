// Reads the example app's settings from the environment. Every variable is documented in
// `.env.example`. With no environment at all the app runs on embedded defaults (memory
// store, dev outbox, fixed dev secrets); in production those defaults are refused.

export type TwilioConfig =
  | { accountSid: string; authToken: string; from: string }
  | { accountSid: string; authToken: string; messagingServiceSid: string };

export interface SmtpConfig {
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
export const DEV_SESSION_SECRET = 'dev-only-session-secret-change-me-0123456789abcdef';

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
  if (!accountSid && !authToken && !from && !messagingServiceSid) return undefined;
  const missing = [
    accountSid ? undefined : 'TWILIO_ACCOUNT_SID',
    authToken ? undefined : 'TWILIO_AUTH_TOKEN',
    from || messagingServiceSid ? undefined : 'TWILIO_FROM (or TWILIO_MESSAGING_SERVICE_SID)',
  ].filter(Boolean);
  if (missing.length > 0 || !accountSid || !authToken) {
    throw new ConfigError(`Twilio is partly configured: also set ${missing.join(' and ')}.`);
  }
  return messagingServiceSid
    ? { accountSid, authToken, messagingServiceSid }
    : { accountSid, authToken, from: from as string };
}

function smtpConfig(env: Env): SmtpConfig | undefined {
  const smtpUrl = value(env, 'SMTP_URL');
  const from = value(env, 'OTP_EMAIL_FROM');
  if (!smtpUrl && !from) return undefined;
  if (!smtpUrl) throw new ConfigError('OTP_EMAIL_FROM is set but SMTP_URL is not: set SMTP_URL (e.g. smtps://user:pass@smtp.example.com).');
  if (!from) throw new ConfigError('SMTP_URL is set but OTP_EMAIL_FROM is not: set the sender, e.g. "Acme <no-reply@acme.example>".');
  return { smtpUrl, from };
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
        'TWILIO_FROM (or TWILIO_MESSAGING_SERVICE_SID) for SMS, and/or SMTP_URL and OTP_EMAIL_FROM for email. ' +
        'The dev outbox only exists outside production.',
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
  if (production && !redisUrl) {
    warnings.push('REDIS_URL is not set: codes and sessions live in this process only and are lost on restart.');
  }
  const redisPrefix = value(env, 'REDIS_PREFIX') ?? 'blockid-example:';
  if (/[{}\s]/.test(redisPrefix)) throw new ConfigError('REDIS_PREFIX must not contain spaces, "{" or "}" (they break Redis Cluster hash tags).');
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
    webOtpDomain: value(env, 'WEBOTP_DOMAIN'),
    warnings,
  };
}
