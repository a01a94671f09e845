/**
 * The programmatic API every adapter object carries (the BlockID SDK's `OTP.GenerateOTP` and
 * friends), with `on`/`off` returning the adapter object itself for chaining. Nothing else of
 * the service is reachable from it: no `.service`, no resolved options, no secret.
 */
import { registerService } from './adapter.js';
import type { OtpEventName, OtpListener } from './events.js';
import type { OtpService } from './service.js';

export interface OtpApi<Self> extends Pick<OtpService, 'generateOtp' | 'verifyOtp' | 'unlock' | 'totp' | 'recoveryCodes'> {
  on<E extends OtpEventName>(event: E, listener: OtpListener<E>): Self;
  off<E extends OtpEventName>(event: E, listener: OtpListener<E>): Self;
}

/** Puts the programmatic API on `target` and remembers its service for the test suite (`serviceOf`). */
export function attachOtpApi<Target extends object>(target: Target, service: OtpService): Target & OtpApi<Target> {
  const api: Target & OtpApi<Target> = Object.assign(target, {
    generateOtp: service.generateOtp,
    verifyOtp: service.verifyOtp,
    unlock: service.unlock,
    totp: service.totp,
    recoveryCodes: service.recoveryCodes,
    on: <E extends OtpEventName>(event: E, listener: OtpListener<E>) => {
      service.on(event, listener);
      return api;
    },
    off: <E extends OtpEventName>(event: E, listener: OtpListener<E>) => {
      service.off(event, listener);
      return api;
    },
  });
  registerService(api, service);
  return api;
}
