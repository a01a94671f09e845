export { blockidOtp, requireOtp, type BlockidOtpMiddleware, type BlockidOtpOptions } from './express.js';
export { cookieSession, type CookieSession, type CookieSessionOptions } from './core/cookie-session.js';
export { createOtpService, type OtpService, type GenerateResult, type VerifyResult } from './core/service.js';
export { OtpError, type OtpErrorCode } from './core/errors.js';
export type { OtpOptions, OtpLimits, OtpLogger, WindowQuota, ResolveUser, ResolvedUser, OnRecoveryCodeUsed, LinkOptions } from './core/options.js';
export type { TotpEnrollment, TotpEnrollOptions } from './core/methods/totp.js';
export type { RecoveryCodeSet } from './core/methods/recovery.js';
export type { RequireOtpOptions } from './core/guard.js';
export type { OtpEventMap, OtpEventName, OtpListener } from './core/events.js';
export type { MessageTemplates, MessageContext } from './core/messages.js';
export type {
  Channel, ChannelChoice, PhoneChannel, VerifyMethod, OtpMetrics, Destinations, EmailMessage, EmailSender, OtpSessionFlag, SmsMessage, SmsSender,
  WhatsAppMessage, WhatsAppSender, VoiceMessage, VoiceSender, LineTypeLookup,
} from './core/types.js';
export {
  normalizePhone, normalizeEmail, resolveAllowedNumberTypes, PHONE_NUMBER_TYPES, type PhoneNumberType, type NormalizePhoneOptions,
} from './core/destinations.js';
export { memoryStore, type MemoryStoreOptions } from './stores/memory.js';
export { redisStore, type RedisStoreOptions } from './stores/redis.js';
export { postgresStore, postgresSchemaSql, type PostgresStore, type PostgresStoreOptions } from './stores/postgres.js';
export type {
  OtpStore, SendPlan, SendDecision, Counter, Refusal, Space, LockPolicy, LockStarted, VerifyRequest, VerifyOutcome, AttemptRequest, AttemptStart, SettleRequest,
  PeekLinkRequest,
} from './stores/types.js';
export {
  twilioSms, twilioWhatsApp, twilioVoice, twilioLookup, TWILIO_LINE_TYPES,
  type TwilioSmsOptions, type TwilioWhatsAppOptions, type TwilioVoiceOptions, type TwilioLookupOptions,
  type TwilioClientOptions, type TwilioLineType, type VoiceLanguage,
} from './senders/twilio/index.js';
export { nodemailerEmail, type NodemailerEmailOptions } from './senders/nodemailer.js';
export { devOutbox, type DevOutbox, type OutboxEntry } from './senders/dev-outbox.js';
