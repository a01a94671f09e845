/**
 * `blockid-otp/otp-provider`: the BlockID SDK's `OTP.GenerateOTP` / `OTP.VerifyOTP`, as its doc page writes them.
 *
 *   const OTP = require('blockid-otp/otp-provider');
 *   await OTP.GenerateOTP('john.smith', { smsTo: '4155550100', smsISDCode: '1' });
 *   await OTP.VerifyOTP('john.smith', code);
 *
 * Configured from the environment on first use: OTP_SECRET, TWILIO_ACCOUNT_SID,
 * TWILIO_AUTH_TOKEN, TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID, SMTP_URL,
 * OTP_EMAIL_FROM, REDIS_URL (optional), OTP_APP_NAME (optional), and for test mode
 * OTP_TEST_DESTINATIONS (`+14155550123=123456,qa@example.com=000000`) with
 * OTP_TEST_DESTINATIONS_EXPIRE_AT (required unless NODE_ENV is development or test, at most 30 days ahead).
 *
 * With REDIS_URL the facade holds a Redis connection open: a script calls `OTP.close()` when
 * done, or Node never exits.
 */
import { createOtpService, type GenerateResult, type OtpService, type VerifyResult } from './core/service.js';
import { configError, OtpError } from './core/errors.js';
import type { OtpStore } from './stores/types.js';
import type { Destinations, EmailSender, SmsSender } from './core/types.js';
import { twilioSms } from './senders/twilio/index.js';
import { nodemailerEmail } from './senders/nodemailer.js';
import { redisStore } from './stores/redis.js';
import { parseTestDestinationsEnv } from './core/send/test-destinations.js';

export type { Destinations, GenerateResult, VerifyResult };
export { OtpError } from './core/errors.js';

const FACTORY = 'blockid-otp/otp-provider';
/** What errors about test destinations call them: the variables, not the options. */
const TEST_DESTINATION_NAMES = { destinations: 'OTP_TEST_DESTINATIONS', expireAt: 'OTP_TEST_DESTINATIONS_EXPIRE_AT' };

/** The variables each channel needs; the first one unset is what an error about that channel names. */
const CHANNEL_VARIABLES = {
  sms: { needs: ['TWILIO_ACCOUNT_SID', 'TWILIO_AUTH_TOKEN', 'TWILIO_FROM'], example: 'TWILIO_FROM=+14155550111 (or TWILIO_MESSAGING_SERVICE_SID=MG…)' },
  email: { needs: ['SMTP_URL', 'OTP_EMAIL_FROM'], example: 'OTP_EMAIL_FROM="Acme <no-reply@acme.example>"' },
} as const;

interface Provider {
  service: OtpService;
  /** The environment variables each unconfigured channel is missing. */
  missing: { sms: string[]; email: string[] };
  close(): Promise<void>;
}

let current: Promise<Provider> | undefined;

/** Which of a channel's variables are unset (TWILIO_MESSAGING_SERVICE_SID stands in for TWILIO_FROM). */
function missingVariables(env: NodeJS.ProcessEnv, channel: keyof typeof CHANNEL_VARIABLES): string[] {
  return CHANNEL_VARIABLES[channel].needs.filter((name) => !env[name] && !(name === 'TWILIO_FROM' && env.TWILIO_MESSAGING_SERVICE_SID));
}

async function fromEnvironment(env: NodeJS.ProcessEnv) {
  const secret = env.OTP_SECRET;
  if (secret === undefined || secret.length < 32) {
    throw configError(
      `${FACTORY}: OTP_SECRET is not set (or shorter than 32 characters): set it to a random string, e.g. \`openssl rand -hex 32\`.`,
      'missing-environment-variable',
    );
  }
  let sms: SmsSender | undefined;
  const { TWILIO_ACCOUNT_SID: accountSid, TWILIO_AUTH_TOKEN: authToken, TWILIO_FROM: from, TWILIO_MESSAGING_SERVICE_SID: messagingServiceSid } = env;
  if (accountSid && authToken && (from || messagingServiceSid)) {
    sms = from ? twilioSms({ accountSid, authToken, from }) : twilioSms({ accountSid, authToken, messagingServiceSid: messagingServiceSid as string });
  }
  let email: EmailSender | undefined;
  if (env.SMTP_URL && env.OTP_EMAIL_FROM) email = nodemailerEmail({ smtpUrl: env.SMTP_URL, from: env.OTP_EMAIL_FROM });

  let testDestinations: Record<string, string> | undefined;
  try {
    if (env.OTP_TEST_DESTINATIONS !== undefined) testDestinations = parseTestDestinationsEnv(env.OTP_TEST_DESTINATIONS);
  } catch (error) {
    throw configError(`${FACTORY}: ${(error as Error).message}`, 'test-destinations');
  }
  const testDestinationsExpireAt = env.OTP_TEST_DESTINATIONS_EXPIRE_AT?.trim() || undefined;

  let store: OtpStore | undefined;
  let close = async () => {};
  if (env.REDIS_URL) {
    const { createClient } = await import('redis');
    const client = createClient({ url: env.REDIS_URL, disableOfflineQueue: true });
    client.on('error', () => undefined); // reconnects on its own; store calls fail closed meanwhile
    await client.connect();
    store = redisStore({ client });
    close = async () => {
      await client.close();
    };
  }
  const resolution = { senderRequired: false, testDestinationNames: TEST_DESTINATION_NAMES };
  let service: OtpService;
  try {
    service = createOtpService(
      {
        secret,
        ...(sms && { sms }),
        ...(email && { email }),
        ...(store && { store }),
        ...(env.OTP_APP_NAME && { appName: env.OTP_APP_NAME }),
        ...(testDestinations && { testDestinations }),
        ...(testDestinationsExpireAt && { testDestinationsExpireAt }),
      },
      FACTORY,
      resolution,
    );
  } catch (error) {
    await close(); // a refused configuration leaves no Redis connection open
    throw error;
  }
  const missing = { sms: sms ? [] : missingVariables(env, 'sms'), email: email ? [] : missingVariables(env, 'email') };
  return {
    service,
    missing,
    close: async () => {
      await store?.close?.();
      await close();
    },
  };
}

/** A channel the destinations ask for whose variables are not all set: the error names the first one missing. */
function checkConfigured({ missing }: Provider, destinations: Destinations): void {
  const asked = [...(destinations?.smsTo !== undefined ? (['sms'] as const) : []), ...(destinations?.emailTo !== undefined ? (['email'] as const) : [])];
  for (const channel of asked) {
    const [first, ...rest] = missing[channel];
    if (first === undefined) continue;
    const also = rest.length > 0 ? ` (nor ${rest.join(', ')})` : '';
    throw new OtpError(
      'CHANNEL_NOT_CONFIGURED',
      `${first} is not set${also}: ${FACTORY} sends ${channel === 'sms' ? 'SMS' : 'email'} only with ${CHANNEL_VARIABLES[channel].needs.join(', ')} set, e.g. ${CHANNEL_VARIABLES[channel].example}.`,
    );
  }
}

function provider() {
  current ??= fromEnvironment(process.env).catch((error: unknown) => {
    current = undefined;
    throw error;
  });
  return current;
}

/** Sends one code to every destination given (`smsTo` with `smsISDCode`, `emailTo`, or both) and waits for delivery. */
export async function GenerateOTP(username: string, destinations: Destinations): Promise<GenerateResult> {
  const ready = await provider();
  checkConfigured(ready, destinations);
  return ready.service.generateOtp(username, destinations);
}

/** `{ ok: true }` once for the right code; `{ ok: false, reason }` otherwise. */
export async function VerifyOTP(username: string, code: string): Promise<VerifyResult> {
  return (await provider()).service.verifyOtp(username, code);
}

/**
 * Closes the Redis connection (REDIS_URL) so the process can exit: call it once a script is
 * done. The next GenerateOTP or VerifyOTP reads the environment again and reconnects.
 */
export async function close(): Promise<void> {
  const previous = current;
  current = undefined;
  if (previous) await (await previous.catch(() => undefined))?.close();
}

/**
 * Forgets the configuration (and closes its Redis client) so the next call reads the environment again; the same as `close()`.
 * @alias
 */
export const reset = close;

export default { GenerateOTP, VerifyOTP, close, reset };
