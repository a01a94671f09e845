export { blockidOtp, requireOtp, type BlockidOtpMiddleware, type BlockidOtpOptions } from './express.js';
export { cookieSession, type CookieSession, type CookieSessionOptions } from './core/http/cookie-session.js';
export { createOtpService, type OtpService } from './core/programmatic.js';
export type { OtpApi } from './core/http/adapter.js';
export type { GenerateResult, VerifyResult } from './core/service.js';
export { OtpError, type OtpErrorCode } from './core/errors.js';
export type { OtpOptions, OtpLimits, OtpLogger, WindowQuota, ResolveUser, ResolvedUser, OnRecoveryCodeUsed, LinkOptions } from './core/options.js';
export type { TotpEnrollment, TotpEnrollOptions } from './core/verify/totp.js';
export type { RecoveryCodeSet } from './core/verify/recovery.js';
export type { RequireOtpOptions } from './core/http/guard.js';
export type { OtpEventMap, OtpEventName, OtpListener } from './core/events.js';
export type { MessageTemplates, MessageContext } from './core/send/messages.js';
export type {
  Channel,
  ChannelChoice,
  PhoneChannel,
  VerifyMethod,
  OtpMetrics,
  Destinations,
  EmailMessage,
  EmailSender,
  OtpSessionFlag,
  SmsMessage,
  SmsSender,
  WhatsAppMessage,
  WhatsAppSender,
  VoiceMessage,
  VoiceSender,
  LineTypeLookup,
} from './core/types.js';
export {
  normalizePhone,
  normalizeEmail,
  resolveAllowedNumberTypes,
  PHONE_NUMBER_TYPES,
  type PhoneNumberType,
  type NormalizePhoneOptions,
} from './core/send/destinations.js';
export { memoryStore, type MemoryStoreOptions } from './stores/memory.js';
export { redisStore, type RedisStoreOptions, type RedisStoreClient } from './stores/redis.js';
export {
  postgresStore,
  postgresSchemaSql,
  type PostgresStore,
  type PostgresStoreOptions,
  type PostgresPoolLike,
  type PostgresClientLike,
} from './stores/postgres.js';
export {
  twilioSms,
  twilioWhatsApp,
  twilioVoice,
  twilioLookup,
  TWILIO_LINE_TYPES,
  type TwilioSmsOptions,
  type TwilioWhatsAppOptions,
  type TwilioVoiceOptions,
  type TwilioLookupOptions,
  type TwilioClientOptions,
  type TwilioLineType,
  type VoiceLanguage,
  type TwilioCredentials,
  type TwilioSmsFrom,
  type TwilioClientLike,
  type TwilioWhatsAppClient,
  type TwilioVoiceClient,
  type TwilioLookupClient,
} from './senders/twilio/index.js';
export { nodemailerEmail, type NodemailerEmailOptions, type MailTransporterLike, type SmtpTransportOptions } from './senders/nodemailer.js';
export { devOutbox, type DevOutbox, type OutboxEntry } from './senders/dev-outbox.js';
