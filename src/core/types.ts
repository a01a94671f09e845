/** Where a user's codes go: the shape of the BlockID SDK's `OTP.GenerateOTP`. */
export interface Destinations {
  /** A US or Canada number in any common writing: `4155550100`, `(415) 555-0100`, `+1 415 555 0100`. */
  smsTo?: string | undefined;
  /** `"1"` or `"+1"` (the default). */
  smsISDCode?: string | undefined;
  /** One plain email address. */
  emailTo?: string | undefined;
  /** Message language, e.g. `en` or `fr-CA`. */
  locale?: string | undefined;
}

/** Where one code can go. `whatsapp` and `voice` need their senders (`twilioWhatsApp`, `twilioVoice`). */
export type Channel = 'sms' | 'email' | 'whatsapp' | 'voice';
/** The channels that reach a phone number, each covered by the number quotas and spend breakers. */
export type PhoneChannel = 'sms' | 'whatsapp' | 'voice';
/** `both` is the BlockID SDK's "Via Email and SMS": every one of those two that the user has. */
export type ChannelChoice = Channel | 'both';
/** How a session was verified: the SMS/email/WhatsApp/voice code, an authenticator app, a recovery code, or the email's sign-in link. */
export type VerifyMethod = 'code' | 'totp' | 'recovery' | 'link';

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

/** A WhatsApp authentication-template message: the code is a template variable. */
export interface WhatsAppMessage {
  /** E.164, e.g. `+14155550100` (the sender adds `whatsapp:`). */
  to: string;
  code: string;
  username: string;
  /** The message locale, e.g. `en` or `fr-CA`. */
  locale: string;
}

/** A voice call that reads the code aloud. */
export interface VoiceMessage {
  /** E.164. */
  to: string;
  code: string;
  username: string;
  /** The message locale, e.g. `en` or `fr-CA` (the voice's language). */
  locale: string;
  /** Names the app in the call ("your Acme code is"). */
  appName: string;
}

export interface WhatsAppSender {
  send(message: WhatsAppMessage): Promise<void>;
}

export interface VoiceSender {
  send(message: VoiceMessage): Promise<void>;
}

/**
 * A line-type gate before the first send to a number (`twilioLookup(...)`): `lookup` answers
 * the number's line type (`mobile`, `landline`, `nonFixedVoip`, ...; `null` when unknown),
 * and the core caches it, counts it in its own quota, and refuses (`block`) or only reports
 * (`monitor`) a type not in `allow`.
 */
export interface LineTypeLookup {
  readonly mode: 'block' | 'monitor';
  readonly allow: readonly string[];
  readonly cacheSeconds: number;
  lookup(e164: string): Promise<{ lineType: string | null }>;
}

/**
 * What blockid-otp reports to a metrics backend (`prometheusMetrics()` from
 * `blockid-otp/metrics`). No argument ever holds a username, number, address, IP or code.
 */
export interface OtpMetrics {
  /** One per channel of a send for a resolved user. `npa`: the area code on phone channels, `''` for email. */
  send(channel: Channel, outcome: 'sent' | 'rate_limited' | 'test', npa: string): void;
  /** A send answered with a decoy (unknown user). */
  unknownUserSend(): void;
  /** A refusal, by the limit's option name. */
  rateLimited(limit: string): void;
  /** One delivery attempt (retries included) and how long it took. */
  delivery(channel: Channel, result: 'delivered' | 'failed', seconds: number): void;
  verification(method: VerifyMethod, result: 'verified' | 'invalid' | 'burned' | 'locked'): void;
  lock(kind: 'timed' | 'permanent'): void;
  /** A verified code, once per channel it was sent on (the conversion rate's numerator). Optional for custom sinks. */
  verifiedSend?(channel: Channel, npa: string): void;
  /** From issuing a code to its successful verify. */
  timeToVerify(seconds: number): void;
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
  method: VerifyMethod;
}

/** What an adapter knows about the request behind a send or a verify. */
export interface RequestContext {
  /** Keyed hash of the session's binding nonce, or null when there is none. */
  binding: string | null;
  /**
   * An HTTP request: only the session's own code can be verified (a session that holds no code
   * spends nothing, and never reaches an unbound `generateOtp()` code).
   */
  sessionOnly?: boolean;
  ip?: string;
  /** False when the runtime gave no client address: the per-IP send quota does not apply (default true). */
  countIp?: boolean;
  acceptLanguage?: string;
  /** The framework's request, handed to `resolveUser`. */
  req?: unknown;
}
