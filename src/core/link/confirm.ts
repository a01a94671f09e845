/**
 * POST {basePath}/link: what a sign-in link posted by a session comes to. Its own link is a
 * guess of its own code (the verifier's link method); another session's live link is said as
 * such without spending anything of it; anything else is one answer, "unusable".
 */
import { userKey } from '../codes.js';
import type { ResolvedOptions } from '../options.js';
import type { RequestContext } from '../types.js';
import type { createVerifier } from '../verify/verifier.js';
import { linkHash, parseLinkToken } from './token.js';

/**
 * What a POST of a sign-in link comes to: signed in, a live link from another session (nothing
 * spent), a link that cannot be used (unknown, used or expired: one answer), or too many
 * wrong guesses of the session's code.
 */
export type LinkResult =
  | { result: 'verified'; username: string }
  | { result: 'other_device' }
  | { result: 'unusable' }
  | { result: 'too_many_attempts'; retryAfterSeconds?: number };

export function createLinkConfirmer({ config, verifier }: { config: ResolvedOptions; verifier: ReturnType<typeof createVerifier> }) {
  const { secret, store } = config;
  return async function confirmLink(token: string, username: string | undefined, context: RequestContext): Promise<LinkResult> {
    const parsed = parseLinkToken(token);
    const binding = context.binding;
    const own = parsed !== null && username !== undefined && binding !== null && parsed.slot === binding && parsed.user === userKey(secret, username);
    // Another session's live link: say so without spending or consuming anything of it.
    if (!own && parsed !== null && store.peekLink !== undefined) {
      const live = await store.peekLink({ user: parsed.user, slot: parsed.slot, hash: linkHash(secret, parsed), maxAttempts: config.maxAttempts });
      if (live) return { result: 'other_device' };
    }
    // Anything else this session posts is a guess of its own code (a session that asked none spends nothing).
    if (username === undefined || binding === null) return { result: 'unusable' };
    const verified = await verifier.verify('link', { username, code: token, slots: [binding], ip: context.ip, req: context.req });
    if (verified.ok) return { result: 'verified', username };
    if (verified.reason === 'too_many_attempts') {
      return { result: 'too_many_attempts', ...(verified.retryAfterSeconds !== undefined && { retryAfterSeconds: verified.retryAfterSeconds }) };
    }
    return { result: 'unusable' };
  };
}
