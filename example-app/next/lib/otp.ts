/**
 * The one OTP handler of the app. Next.js bundles each route and page on its own, so a
 * module-level `createOtpHandler()` would run once per bundle, each with its own memory store:
 * a code sent through /otp/send would be unknown to the outbox page. `globalThis` holds the
 * one instance every bundle shares (use `redisStore` when the app runs on more than one process).
 */
import { devOutbox, nodemailerEmail, type DevOutbox, type EmailSender } from 'blockid-otp';
import { cookieSession, createOtpHandler, type OtpHandler } from 'blockid-otp/fetch';

/** The demo's users: the username each one signs in with, and where their code goes. */
const users: Record<string, { emailTo: string }> = {
  ada: { emailTo: 'ada@example.com' },
  grace: { emailTo: 'grace@example.com' },
};

interface OtpApp {
  otp: OtpHandler;
  /** Codes kept for the /dev/outbox page when no SMTP server is configured (never in production). */
  outbox: DevOutbox | undefined;
}

function createOtpApp(): OtpApp {
  const smtpUrl = process.env.SMTP_URL;
  if (process.env.NODE_ENV === 'production' && (!smtpUrl || !process.env.OTP_SECRET)) {
    // The dev outbox and the dev secret are for `next dev` only (devOutbox() refuses production too).
    throw new Error('Set SMTP_URL (where codes are mailed) and OTP_SECRET (32+ characters) for next build and next start.');
  }
  const outbox = smtpUrl ? undefined : devOutbox();
  const email: EmailSender = smtpUrl ? nodemailerEmail({ smtpUrl, from: process.env.OTP_EMAIL_FROM ?? 'sign-in@example.com' }) : outbox!.email;
  const otp = createOtpHandler({
    secret: process.env.OTP_SECRET ?? 'dev-only-secret-change-me-0123456789abcdef',
    resolveUser: (username) => users[username] ?? null,
    email,
    // Secure cookies need https, except on localhost, where browsers accept them over http.
    session: cookieSession({ secure: process.env.OTP_INSECURE_COOKIE !== '1' }),
    // Route handlers never see the socket's address: behind a proxy (Vercel, nginx), set
    // OTP_TRUST_PROXY=1 so the per-IP send quota counts the last X-Forwarded-For entry.
    trustProxy: Number(process.env.OTP_TRUST_PROXY ?? 0),
  });
  return { otp, outbox };
}

const shared = globalThis as typeof globalThis & { blockidOtpApp?: OtpApp };
export const { otp, outbox } = (shared.blockidOtpApp ??= createOtpApp());
