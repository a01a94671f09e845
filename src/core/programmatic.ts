/**
 * `createOtpService(options)`: the programmatic API on its own, for apps that serve no HTTP
 * endpoints (a job, a CLI, their own routes). It hands out the same surface a middleware
 * carries, so the secret and the resolved options stay out of reach here too.
 */
import { withOtpApi, type OtpApi } from './http/adapter.js';
import type { OtpOptions } from './options.js';
import { createOtpService as createService } from './service.js';

/** What `createOtpService()` returns: `generateOtp`, `verifyOtp`, `unlock`, `totp`, `recoveryCodes`, `on`, `off`. */
export type OtpService = OtpApi;

export function createOtpService(options: OtpOptions): OtpService {
  return withOtpApi({}, createService(options, 'createOtpService'));
}
