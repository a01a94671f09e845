/**
 * The framework-free OTP service: it wires the steps together. A send (send/flows.ts) reads
 * top to bottom as admit → issue → reply → deliver, one way for real users and decoys alike; a
 * verify is one atomic store step per method (verify/verifier.ts); a posted sign-in link is
 * link/confirm.ts. Adapters (Express, Koa, fetch, Hono, Fastify, the BlockID SDK facade) call
 * into this.
 */
import { hashKey, randomToken, userKey } from './codes.js';
import { OtpError } from './errors.js';
import { createEvents, type OtpEventName, type OtpListener } from './events.js';
import { createLinkConfirmer, type LinkResult } from './link/confirm.js';
import { resolveOptions, type OtpOptions, type ResolveContext, type ResolvedOptions } from './options.js';
import { createAdmission } from './send/admission.js';
import { createComposer } from './send/compose.js';
import { createDispatcher } from './send/dispatch.js';
import { createSendFlows, type AcceptedSend, type GenerateResult } from './send/flows.js';
import { createIssuer } from './send/issue.js';
import { createLineTypeGate } from './send/line-type.js';
import type { ChannelChoice, Destinations, RequestContext, VerifyMethod } from './types.js';
import type { RecoveryCodeSet } from './verify/recovery.js';
import type { TotpEnrollment, TotpEnrollOptions } from './verify/totp.js';
import { createVerifier, type VerifyResult } from './verify/verifier.js';

export type { GenerateResult } from './send/flows.js';
export type { VerifyResult } from './verify/verifier.js';

export interface OtpService {
  readonly options: ResolvedOptions;
  /** The BlockID SDK's `OTP.GenerateOTP`: one code to every destination given; waits for delivery. */
  generateOtp(username: string, destinations: Destinations, context?: { ip?: string }): Promise<GenerateResult>;
  /** The BlockID SDK's `OTP.VerifyOTP`. */
  verifyOtp(username: string, code: string): Promise<VerifyResult>;
  /** Lifts every lock of `username` and resets its failure count. */
  unlock(username: string): Promise<void>;
  /** Authenticator apps (TOTP, RFC 6238): enrollment; verification is `method: 'totp'` on /verify. */
  readonly totp: {
    enroll(username: string, options?: TotpEnrollOptions): Promise<TotpEnrollment>;
    confirm(username: string, sealed: string, code: string): Promise<boolean>;
  };
  readonly recoveryCodes: {
    generate(options?: { count?: number }): Promise<RecoveryCodeSet>;
  };
  on<E extends OtpEventName>(event: E, listener: OtpListener<E>): OtpService;
  off<E extends OtpEventName>(event: E, listener: OtpListener<E>): OtpService;
  /** @internal The HTTP send: resolves the user, answers the same for unknown users. */
  requestCode(username: string, channel: ChannelChoice, context: RequestContext): Promise<AcceptedSend>;
  /** @internal The HTTP verify, by any method. */
  checkCode(username: string, code: string, context: RequestContext, method?: VerifyMethod): Promise<VerifyResult>;
  /**
   * @internal POST {basePath}/link: `username` is the one the session last asked a code for
   * (undefined when it asked none), `context.binding` its slot.
   */
  confirmLink(token: string, username: string | undefined, context: RequestContext): Promise<LinkResult>;
  /** @internal A fresh session binding nonce and its keyed hash. */
  newBinding(): string;
  bindingHash(nonce: string): string;
  /** Trims, validates and normalizes a username; throws INVALID_REQUEST. */
  normalizeUsername(username: unknown): string;
}

const MAX_USERNAME_LENGTH = 256;
export function createOtpService(options: OtpOptions, factory = 'createOtpService', resolution?: ResolveContext): OtpService {
  const config = resolveOptions(options, factory, resolution);
  const { secret, store, limits, testDestinations } = config;
  const events = createEvents(config.logger);
  const composer = createComposer(config);
  const admission = createAdmission({ secret, limits, cooldownSeconds: config.resendCooldownSeconds });
  const verifier = createVerifier(config, events);
  const lineTypeGate = config.lookup === undefined ? undefined : createLineTypeGate({ lookup: config.lookup, store, secret, limits, events });
  const { issue } = createIssuer({ config, admission, events });
  const { deliver } = createDispatcher({ config, composer, events, lineTypeGate });
  if (testDestinations !== undefined) {
    const warning = `blockid-otp: test destinations are on (${testDestinations.describe()}): sends to them deliver nothing and issue their fixed code.`;
    if (config.logger !== undefined) config.logger.warn({ event: 'otp.test_destinations' }, warning);
    else console.warn(warning);
  }

  const normalizeUsername = (username: unknown): string => {
    if (typeof username !== 'string') throw new OtpError('INVALID_REQUEST', 'username must be a string.');
    const trimmed = username.trim();
    if (trimmed === '') throw new OtpError('INVALID_REQUEST', 'username must not be empty.');
    if ([...username].length > MAX_USERNAME_LENGTH) throw new OtpError('INVALID_REQUEST', `username must be at most ${MAX_USERNAME_LENGTH} characters.`);
    const normalized = config.normalizeUsername(trimmed);
    if (typeof normalized !== 'string' || normalized === '') throw new OtpError('INVALID_REQUEST', 'username is empty once normalized.');
    return normalized;
  };
  const flows = createSendFlows({ config, composer, issue, deliver, lineTypeGate, normalizeUsername });
  const confirmLink = createLinkConfirmer({ config, verifier });

  const service: OtpService = {
    options: config,

    generateOtp: flows.generateOtp,

    async verifyOtp(username, code) {
      const result = await service.checkCode(normalizeUsername(username), String(code), { binding: null });
      // The contract's shape exactly: { ok: true } | { ok: false, reason } (Retry-After is an HTTP matter).
      return result.ok ? { ok: true } : { ok: false, reason: result.reason };
    },

    async unlock(username) {
      await store.unlock(userKey(secret, normalizeUsername(username)));
    },

    totp: {
      async enroll(username, enrollOptions = {}) {
        const normalized = normalizeUsername(username);
        return verifier.totp.enroll(normalized, { issuer: enrollOptions.issuer ?? config.totpIssuer, accountName: enrollOptions.accountName ?? normalized });
      },
      confirm: async (username, sealed, code) => verifier.confirmTotp(normalizeUsername(username), sealed, String(code)),
    },

    recoveryCodes: {
      generate: async (generateOptions) => verifier.recovery.generate(generateOptions),
    },

    requestCode: flows.requestCode,

    checkCode(username, code, context, method = 'code') {
      return verifier.verify(method, {
        username,
        code,
        slots: context.sessionOnly === true ? (context.binding === null ? [] : [context.binding]) : [context.binding ?? ''],
        ip: context.ip,
        req: context.req,
      });
    },

    confirmLink,

    newBinding: randomToken,
    bindingHash: (nonce) => hashKey(secret, 'binding', nonce),
    normalizeUsername,

    on(event, listener) {
      events.on(event, listener);
      return service;
    },
    off(event, listener) {
      events.off(event, listener);
      return service;
    },
  };
  return service;
}
