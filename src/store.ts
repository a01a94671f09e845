/**
 * `blockid-otp/store`: the protocol between the core and a store, for people who write their
 * own store. An app only picks one (`memoryStore()`, `redisStore()`, `postgresStore()` from
 * the main entry); it never needs these types. Each operation's atomicity and expiry are
 * written on `OtpStore`.
 */
export type {
  OtpStore,
  SendPlan,
  SendDecision,
  Counter,
  Refusal,
  Space,
  LockPolicy,
  LockStarted,
  VerifyRequest,
  VerifyOutcome,
  AttemptRequest,
  AttemptStart,
  SettleRequest,
  PeekLinkRequest,
} from './stores/types.js';
