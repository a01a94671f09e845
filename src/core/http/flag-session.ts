/**
 * A read-only session that holds only the verified flag. The Hono and Fastify adapters read
 * the flag once per request, before the app's routes; their guards decide on that flag with
 * the shared `createGuard` rules instead of opening the session a second time.
 */
import { SESSION_FLAG, type SessionPort } from './handler.js';
import type { OtpSessionFlag } from '../types.js';

export function flagSession(flag: OtpSessionFlag | null): SessionPort {
  const readOnly = (): never => {
    throw new TypeError('blockid-otp: a guard never changes the session.');
  };
  return { read: (name) => (name === SESSION_FLAG ? (flag ?? undefined) : undefined), write: readOnly, regenerate: async () => readOnly() };
}

/** The flag as the adapters expose it (`c.get('blockidOtp')`, `request.blockidOtp`): verified, or null. */
export function normalizeFlag(value: unknown): OtpSessionFlag | null {
  if (value === null || typeof value !== 'object') return null;
  const flag = value as Partial<OtpSessionFlag>;
  if (flag.verified !== true || typeof flag.verifiedAt !== 'number' || typeof flag.username !== 'string') return null;
  return { verified: true, username: flag.username, verifiedAt: flag.verifiedAt, method: flag.method ?? 'code' };
}
