/**
 * `blockid-otp/otp-provider`: the seed's SDK, as its doc page writes it.
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
 */
import { createOtpService, type GenerateResult, type OtpService, type VerifyResult } from './core/service.js';
import type { OtpStore } from './stores/types.js';
import type { Destinations, EmailSender, SmsSender } from './core/types.js';
import { twilioSms } from './senders/twilio/index.js';
import { nodemailerEmail } from './senders/nodemailer.js';
import { redisStore } from './stores/redis.js';
import { parseTestDestinationsEnv } from './core/test-destinations.js';

export type { Destinations, GenerateResult, VerifyResult };
export { OtpError } from './core/errors.js';

const FACTORY = 'blockid-otp/otp-provider';
/** What errors about test destinations call them: the variables, not the options. */
const TEST_DESTINATION_NAMES = { destinations: 'OTP_TEST_DESTINATIONS', expireAt: 'OTP_TEST_DESTINATIONS_EXPIRE_AT' };

let current: Promise<{ service: OtpService; close(): Promise<void> }> | undefined;

async function fromEnvironment(env: NodeJS.ProcessEnv) {
  const secret = env.OTP_SECRET;
  if (secret === undefined || secret.length < 32) {
    throw new TypeError(`${FACTORY}: set OTP_SECRET to a string of at least 32 characters (e.g. \`openssl rand -hex 32\`).`);
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
    throw new TypeError(`${FACTORY}: ${(error as Error).message}`);
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
        secret, ...(sms && { sms }), ...(email && { email }), ...(store && { store }), ...(env.OTP_APP_NAME && { appName: env.OTP_APP_NAME }),
        ...(testDestinations && { testDestinations }), ...(testDestinationsExpireAt && { testDestinationsExpireAt }),
      },
      FACTORY,
      resolution,
    );
  } catch (error) {
    await close(); // a refused configuration leaves no Redis connection open
    throw error;
  }
  return { service, close: async () => { await store?.close?.(); await close(); } };
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
  return (await provider()).service.generateOtp(username, destinations);
}

/** `{ ok: true }` once for the right code; `{ ok: false, reason }` otherwise. */
export async function VerifyOTP(username: string, code: string): Promise<VerifyResult> {
  return (await provider()).service.verifyOtp(username, code);
}

/** Forgets the configuration (and closes its Redis client) so the next call reads the environment again. */
export async function reset(): Promise<void> {
  const previous = current;
  current = undefined;
  if (previous) await (await previous.catch(() => undefined))?.close();
}

export default { GenerateOTP, VerifyOTP, reset };
