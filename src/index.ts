export { blockidOtp, requireOtp, type BlockidOtpMiddleware } from './express.js';
export { createOtpService, type OtpService, type GenerateResult, type VerifyResult } from './core/service.js';
export { OtpError, type OtpErrorCode } from './core/errors.js';
export type { OtpOptions, OtpLimits, OtpLogger, WindowQuota, ResolveUser } from './core/options.js';
export type { RequireOtpOptions } from './core/guard.js';
export type { OtpEventMap, OtpEventName, OtpListener } from './core/events.js';
export type { MessageTemplates, MessageContext } from './core/messages.js';
export type { Channel, ChannelChoice, Destinations, EmailMessage, EmailSender, OtpSessionFlag, SmsMessage, SmsSender } from './core/types.js';
export { normalizePhone, normalizeEmail } from './core/destinations.js';
export { memoryStore, type MemoryStoreOptions } from './stores/memory.js';
export { redisStore, type RedisStoreOptions } from './stores/redis.js';
export type {
  OtpStore, SendPlan, SendDecision, Counter, Refusal, Space, LockPolicy, LockStarted, VerifyRequest, VerifyOutcome, AttemptRequest, AttemptStart, SettleRequest,
} from './stores/types.js';
export { twilioSms, type TwilioSmsOptions } from './senders/twilio.js';
export { nodemailerEmail, type NodemailerEmailOptions } from './senders/nodemailer.js';
export { devOutbox, type DevOutbox, type OutboxEntry } from './senders/dev-outbox.js';
