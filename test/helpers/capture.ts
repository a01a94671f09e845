/**
 * The project's capture senders: `captureSenders()` from `blockid-otp/testing`, plus the two
 * names the suites were written with (`messages` for `outbox`, `waitFor(count)`).
 */
import { captureSenders as captureKit, type CapturedMessage } from '../../src/testing.js';

export type Captured = CapturedMessage;

export function captureSenders() {
  const kit = captureKit();
  return {
    ...kit,
    /** The kit's `outbox` (the same array). */
    messages: kit.outbox,
    /** Resolves once at least `count` messages were sent (or rejects after `timeoutMs`). */
    async waitFor(count: number, timeoutMs = 2000): Promise<Captured[]> {
      if (kit.outbox.length >= count) return kit.outbox;
      try {
        await kit.waitForMessage((_message, index) => index >= count - 1, { timeoutMs });
      } catch {
        throw new Error(`expected ${count} messages, got ${kit.outbox.length}`);
      }
      return kit.outbox;
    },
  };
}
