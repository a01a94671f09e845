/**
 * `blockid-otp/testing`: senders that keep what they were asked to send, so an app's own
 * tests can read the code and sign in. No test-runner dependency (node:test, Jest, Vitest,
 * supertest, Playwright alike) and nothing heavy: this file imports only types.
 *
 * ```ts
 * const capture = captureSenders();
 * const app = makeApp(blockidOtp({ secret, resolveUser, sms: capture.sms, email: capture.email }));
 * await agent.post('/otp/send').send({ username: 'ada' });
 * await agent.post('/otp/verify').send({ username: 'ada', code: await capture.waitForCode('ada') });
 * ```
 */
import { configError } from './core/errors.js';
import type { EmailMessage, EmailSender, SmsMessage, SmsSender, VoiceMessage, VoiceSender, WhatsAppMessage, WhatsAppSender } from './core/types.js';

/** One message as its sender got it, with the channel it went through. */
export type CapturedMessage =
  | ({ channel: 'sms' } & SmsMessage)
  | ({ channel: 'email' } & EmailMessage)
  | ({ channel: 'whatsapp' } & WhatsAppMessage)
  | ({ channel: 'voice' } & VoiceMessage);

export interface WaitOptions {
  /** How long to wait before rejecting, in milliseconds. Default 5000. */
  timeoutMs?: number | undefined;
}

export interface CapturedSenders {
  sms: SmsSender;
  email: EmailSender;
  whatsapp: WhatsAppSender;
  voice: VoiceSender;
  /**
   * Every message, in send order. The same array for the life of the capture (`clear()`
   * empties it in place), so a reference kept by a test stays valid.
   */
  readonly outbox: CapturedMessage[];
  /**
   * The newest code for a username or a destination; throws when there is none. See
   * {@link captureSenders} for how `destinationOrUsername` is compared.
   */
  lastCode(destinationOrUsername: string): string;
  /**
   * Resolves with the newest code for a username or destination: at once when one was
   * already captured, else as soon as one is. Rejects after `timeoutMs` (default 5000).
   * To ignore codes captured earlier, use {@link CapturedSenders.nextCode} or `clear()`.
   */
  waitForCode(destinationOrUsername: string, options?: WaitOptions): Promise<string>;
  /**
   * Resolves with the first code for a username or destination captured *after* this call
   * (call it before the send); rejects after `timeoutMs` (default 5000).
   */
  nextCode(destinationOrUsername: string, options?: WaitOptions): Promise<string>;
  /** The messages for a username or a destination, oldest first (a new array). */
  messagesTo(destinationOrUsername: string): CapturedMessage[];
  /**
   * Resolves with the newest message (already captured or still to come) for which `match`
   * returns true; rejects after `timeoutMs` (default 5000). `index` is the message's place in
   * `outbox`.
   */
  waitForMessage(match: (message: CapturedMessage, index: number) => boolean, options?: WaitOptions): Promise<CapturedMessage>;
  /** Empties `outbox` in place. Pending waits keep waiting for new messages. */
  clear(): void;
}

/**
 * Capture senders for every channel. Pass them as `sms`, `email`, `whatsapp` and `voice`;
 * each `send` records the message in `outbox` and resolves.
 *
 * `destinationOrUsername` matches a message when it equals the message's `username` (as
 * given, or trimmed and lower-cased like the default `normalizeUsername`), or names the
 * message's `to`:
 * - a phone number in any writing of a US/Canada number (`4155550100`, `(415) 555-0100`,
 *   `+1 415 555 0100`) matches the E.164 `to` of the sms, whatsapp and voice messages;
 * - an email address matches with its domain compared case-insensitively (local part exact,
 *   as the core keeps it).
 */
export function captureSenders(): CapturedSenders {
  const outbox: CapturedMessage[] = [];
  const waiters = new Set<(message: CapturedMessage, index: number) => void>();
  const keep = async (message: CapturedMessage): Promise<void> => {
    outbox.push(message);
    const index = outbox.length - 1;
    for (const waiter of [...waiters]) waiter(message, index);
  };

  /** Waits for a new message that `match` accepts; the timer is cleared as soon as it settles. */
  const waitForNew = <T>(
    match: (message: CapturedMessage, index: number) => T | undefined,
    options: WaitOptions | undefined,
    what: () => string,
  ): Promise<T> => {
    const timeoutMs = checkTimeout(options);
    return new Promise<T>((resolve, reject) => {
      const waiter = (message: CapturedMessage, index: number) => {
        const found = match(message, index);
        if (found === undefined) return;
        waiters.delete(waiter);
        clearTimeout(timer);
        resolve(found);
      };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`captureSenders: ${what()} within ${timeoutMs} ms (${summary(outbox)}).`));
      }, timeoutMs);
      waiters.add(waiter);
    });
  };

  const newest = (x: string): CapturedMessage | undefined => {
    for (let i = outbox.length - 1; i >= 0; i--) if (matches(outbox[i] as CapturedMessage, x)) return outbox[i];
    return undefined;
  };
  const codeOf = (x: string) => (message: CapturedMessage) => (matches(message, x) ? message.code : undefined);

  return {
    sms: { send: (m) => keep({ channel: 'sms', ...m }) },
    email: { send: (m) => keep({ channel: 'email', ...m }) },
    whatsapp: { send: (m) => keep({ channel: 'whatsapp', ...m }) },
    voice: { send: (m) => keep({ channel: 'voice', ...m }) },
    outbox,
    lastCode(x) {
      const found = newest(x);
      if (found === undefined) throw new Error(`captureSenders: no code was sent to ${JSON.stringify(x)} (${summary(outbox)}).`);
      return found.code;
    },
    async waitForCode(x, options) {
      const found = newest(x);
      if (found !== undefined) {
        checkTimeout(options);
        return found.code;
      }
      return waitForNew(codeOf(x), options, () => `no code was sent to ${JSON.stringify(x)}`);
    },
    async nextCode(x, options) {
      return waitForNew(codeOf(x), options, () => `no new code was sent to ${JSON.stringify(x)}`);
    },
    messagesTo(x) {
      return outbox.filter((message) => matches(message, x));
    },
    async waitForMessage(match, options) {
      for (let i = outbox.length - 1; i >= 0; i--) {
        const message = outbox[i] as CapturedMessage;
        if (match(message, i)) {
          checkTimeout(options);
          return message;
        }
      }
      return waitForNew(
        (message, index) => (match(message, index) ? message : undefined),
        options,
        () => 'no matching message was sent',
      );
    },
    clear() {
      outbox.length = 0;
    },
  };
}

/** Whether `destinationOrUsername` names this message's user or destination (see {@link captureSenders}). */
function matches(message: CapturedMessage, destinationOrUsername: string): boolean {
  const x = destinationOrUsername;
  if (message.username === x || message.username === x.trim().normalize('NFKC').toLowerCase()) return true;
  if (message.channel === 'email') return x.includes('@') && canonicalEmail(x) === canonicalEmail(message.to);
  const phone = canonicalPhone(x);
  return phone !== undefined && phone === canonicalPhone(message.to);
}

/**
 * A US/Canada number as E.164, from its digits only: enough to compare writings of numbers
 * the core has already validated (it is not a validator; `undefined` when it cannot be one).
 */
function canonicalPhone(value: string): string | undefined {
  const text = value.trim();
  if (!/^\+?[0-9\s().-]+$/.test(text)) return undefined;
  const digits = text.replace(/[^0-9]/g, '');
  if (digits.length === 10) return `+1${digits}`;
  if (digits.length === 11 && digits.startsWith('1')) return `+${digits}`;
  return undefined;
}

function canonicalEmail(value: string): string {
  const text = value.trim();
  const at = text.lastIndexOf('@');
  return text.slice(0, at) + text.slice(at).toLowerCase();
}

function checkTimeout(options: WaitOptions | undefined): number {
  const timeoutMs = options?.timeoutMs ?? 5000;
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 0 || timeoutMs > 2 ** 31 - 1) {
    throw configError(`captureSenders: timeoutMs must be a number of milliseconds from 0 to 2147483647 (got ${String(timeoutMs)}).`, 'invalid-argument');
  }
  return timeoutMs;
}

/** What was captured, without codes: for error messages. */
function summary(outbox: readonly CapturedMessage[]): string {
  if (outbox.length === 0) return 'nothing was captured';
  const seen = [...new Set(outbox.map((m) => `${m.username} (${m.channel} ${m.to})`))];
  const shown = seen.slice(0, 5).join(', ') + (seen.length > 5 ? `, and ${seen.length - 5} more` : '');
  return `${outbox.length} message${outbox.length === 1 ? '' : 's'} captured, for: ${shown}`;
}
