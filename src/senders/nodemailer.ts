/**
 * Email through `nodemailer`. The package is an optional peer dependency: it is imported
 * lazily, and only when this sender has to build its own transporter from `smtpUrl`.
 */
import { OtpError, configError } from '../core/errors.js';
import { checkOptions } from '../core/validate.js';
import type { EmailMessage, EmailSender } from '../core/types.js';
import { withProvider } from '../core/provider.js';
import { assertPeerInstalled } from '../core/peer.js';

/** The part of a nodemailer transporter this sender uses; `createTransport(...)` fits it. */
export interface MailTransporterLike {
  sendMail(mail: { from: string; to: string; subject: string; text: string; html: string }): Promise<unknown>;
}

/** Extra nodemailer SMTP transport options for `smtpUrl`, e.g. the timeouts (milliseconds). */
export interface SmtpTransportOptions {
  connectionTimeout?: number | undefined;
  greetingTimeout?: number | undefined;
  socketTimeout?: number | undefined;
  [option: string]: unknown;
}

export type NodemailerEmailOptions =
  | { transporter: MailTransporterLike; from: string }
  | { smtpUrl: string; from: string; transportOptions?: SmtpTransportOptions | undefined };

const knownOptions = ['transporter', 'smtpUrl', 'transportOptions', 'from'];
const connectionCodes = new Set(['ECONNREFUSED', 'ETIMEDOUT', 'ECONNECTION', 'ESOCKET', 'ECONNRESET', 'EDNS']);

/** An `EmailSender` that sends `{ from, to, subject, text, html }` with nodemailer. */
export function nodemailerEmail(options: NodemailerEmailOptions): EmailSender {
  const { from, transporter: given, smtpUrl, transportOptions } = validate(options);
  if (given === undefined) assertPeerInstalled('nodemailer', 'nodemailerEmail', '"smtpUrl"');
  let transporter: Promise<MailTransporterLike> | undefined = given && Promise.resolve(given);

  return withProvider(
    {
      async send(message: EmailMessage): Promise<void> {
        transporter ??= buildTransporter(smtpUrl!, transportOptions).catch((error: unknown) => {
          transporter = undefined;
          throw error;
        });
        const ready = await transporter;
        const { to, subject, text, html } = message;
        try {
          await ready.sendMail({ from, to, subject, text, html });
        } catch (error) {
          throw deliveryFailed(error);
        }
      },
    },
    'smtp',
  );
}

interface Resolved {
  from: string;
  transporter?: MailTransporterLike;
  smtpUrl?: string;
  transportOptions?: SmtpTransportOptions;
}

function validate(options: NodemailerEmailOptions): Resolved {
  checkOptions('nodemailerEmail', options, knownOptions, 'nodemailerEmail({ transporter, from })');
  const { transporter, smtpUrl, transportOptions, from } = options as Resolved;

  if ((transporter === undefined) === (smtpUrl === undefined)) {
    throw configError('nodemailerEmail: pass either "transporter" or "smtpUrl"', 'invalid-sender-options');
  }
  if (transporter !== undefined && typeof transporter?.sendMail !== 'function') {
    throw configError('nodemailerEmail: option "transporter" must be a nodemailer transporter (createTransport(...))', 'invalid-sender-options');
  }
  if (smtpUrl !== undefined && !isSmtpUrl(smtpUrl)) {
    throw configError('nodemailerEmail: option "smtpUrl" must be a URL like smtp://user:pass@host:587 or smtps://host:465', 'invalid-sender-options');
  }
  if (transportOptions !== undefined && (transporter !== undefined || typeof transportOptions !== 'object' || transportOptions === null)) {
    throw configError('nodemailerEmail: option "transportOptions" must be an object, and goes with "smtpUrl"', 'invalid-sender-options');
  }
  if (typeof from !== 'string' || from.trim() === '') {
    throw configError('nodemailerEmail: option "from" must be a sender address, e.g. "Acme <no-reply@acme.test>"', 'invalid-sender-options');
  }
  return { from, transporter, smtpUrl, transportOptions };
}

function isSmtpUrl(value: unknown): boolean {
  if (typeof value !== 'string' || !URL.canParse(value)) return false;
  const url = new URL(value);
  return (url.protocol === 'smtp:' || url.protocol === 'smtps:') && url.hostname !== '';
}

async function buildTransporter(smtpUrl: string, transportOptions: SmtpTransportOptions = {}): Promise<MailTransporterLike> {
  let nodemailer: { default?: unknown };
  try {
    nodemailer = await import('nodemailer');
  } catch (cause) {
    throw new OtpError('DELIVERY_FAILED', 'nodemailerEmail: "smtpUrl" needs the optional "nodemailer" package (npm install nodemailer)', {
      retryable: false,
      cause,
    });
  }
  const { createTransport } = (nodemailer.default ?? nodemailer) as { createTransport(options: object): MailTransporterLike };
  return createTransport({ ...transportOptions, url: smtpUrl });
}

/**
 * A nodemailer failure as an OtpError. Only the reply code, command and error code are
 * kept: the server's reply text and the error's envelope can echo the message.
 */
function deliveryFailed(error: unknown): OtpError {
  const fields = typeof error === 'object' && error !== null ? (error as Record<string, unknown>) : {};
  const responseCode = typeof fields.responseCode === 'number' ? fields.responseCode : undefined;
  const command = typeof fields.command === 'string' ? fields.command : undefined;
  const errorCode = typeof fields.code === 'string' ? fields.code : undefined;
  const systemCode = typeof fields.originalCode === 'string' ? fields.originalCode : undefined;
  const cause = { provider: 'smtp', responseCode, command, errorCode, ...(systemCode !== undefined && { systemCode }) };

  if (responseCode !== undefined && responseCode >= 400) {
    const retryable = responseCode < 500;
    const after = command ? ` to ${command}` : '';
    return new OtpError('DELIVERY_FAILED', `SMTP server refused the message (reply ${responseCode}${after})`, { retryable, cause });
  }
  const connectionCode = [systemCode, errorCode].find((code) => code !== undefined && connectionCodes.has(code));
  if (connectionCode !== undefined) {
    return new OtpError('DELIVERY_FAILED', `SMTP server could not be reached (${connectionCode})`, { retryable: true, cause });
  }
  const detail = errorCode ? ` (${errorCode})` : '';
  return new OtpError('DELIVERY_FAILED', `Email send failed${detail}`, { retryable: false, cause });
}
