/** Where a user's codes go: the seed's `GenerateOTP` shape. */
export interface Destinations {
  /** A US or Canada number in any common writing: `4155550100`, `(415) 555-0100`, `+1 415 555 0100`. */
  smsTo?: string;
  /** `"1"` or `"+1"` (the default). */
  smsISDCode?: string;
  /** One plain email address. */
  emailTo?: string;
  /** Message language, e.g. `en` or `fr-CA`. */
  locale?: string;
}

export type Channel = 'sms' | 'email';
export type ChannelChoice = Channel | 'both';

export interface SmsMessage {
  /** E.164, e.g. `+14155550100`. */
  to: string;
  /** The text to send; contains the code. */
  body: string;
  code: string;
  username: string;
}

export interface EmailMessage {
  to: string;
  subject: string;
  text: string;
  html: string;
  code: string;
  username: string;
}

export interface SmsSender {
  send(message: SmsMessage): Promise<void>;
}

export interface EmailSender {
  send(message: EmailMessage): Promise<void>;
}

/** What a verified session carries in `req.session.blockidOtp`. */
export interface OtpSessionFlag {
  verified: true;
  username: string;
  /** Milliseconds since the epoch. */
  verifiedAt: number;
}
