/** Senders that keep what they were asked to send, so tests can read the code. */
import type { EmailMessage, EmailSender, SmsMessage, SmsSender } from '../../src/index.js';

export type Captured = ({ channel: 'sms' } & SmsMessage) | ({ channel: 'email' } & EmailMessage);

export function captureSenders() {
  const messages: Captured[] = [];
  const waiters: Array<() => void> = [];
  const keep = (message: Captured) => {
    messages.push(message);
    for (const wake of waiters.splice(0)) wake();
  };
  const sms: SmsSender = { send: async (m) => keep({ channel: 'sms', ...m }) };
  const email: EmailSender = { send: async (m) => keep({ channel: 'email', ...m }) };
  return {
    sms,
    email,
    messages,
    /** Resolves once at least `count` messages were sent (or rejects after `timeoutMs`). */
    async waitFor(count: number, timeoutMs = 2000): Promise<Captured[]> {
      const deadline = Date.now() + timeoutMs;
      while (messages.length < count) {
        if (Date.now() > deadline) throw new Error(`expected ${count} messages, got ${messages.length}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 20);
        });
      }
      return messages;
    },
    /** The code of the newest message to `username`. */
    lastCode(username: string): string {
      const found = messages.filter((m) => m.username === username).at(-1);
      if (!found) throw new Error(`no message for ${username}`);
      return found.code;
    },
  };
}
