/**
 * The suites' capture senders: `captureSenders()` from `blockid-otp/testing`, plus a record
 * of every call (failed ones too), an optional provider delay and failure, and the names the
 * suites were written with (`messages` for `outbox`, `waitFor(count)`, `codeAfter`).
 * And `captureLogger()`, a pino-shaped logger that keeps every line.
 */
import { captureSenders as captureKit, type CapturedMessage } from '../../src/testing.js';
import type { OtpLogger } from '../../src/index.js';
import { sleep } from './util.js';

export type Captured = CapturedMessage;

/** One call to a sender, in the order the calls started. */
export interface SenderCall {
  channel: CapturedMessage['channel'];
  to: string;
  code: string;
  username: string;
}

export interface CaptureBehaviour {
  /** Every send takes this long (a provider's latency) before it is kept or fails. */
  delayMs?: number;
  /** Decides per call whether (and with what) the send fails; a failed send is in `calls`, not in `outbox`. */
  fail?: (call: SenderCall) => unknown;
}

export function captureSenders(behaviour: CaptureBehaviour = {}) {
  const kit = captureKit();
  const calls: SenderCall[] = [];
  /** Records the call, waits, fails if told to, else hands the message to the kit (which keeps it in `outbox`). */
  const through = <M extends { to: string; code: string; username: string }>(channel: SenderCall['channel'], keep: (message: M) => Promise<void>) => ({
    async send(message: M): Promise<void> {
      const call = { channel, to: message.to, code: message.code, username: message.username };
      calls.push(call);
      if (behaviour.delayMs) await sleep(behaviour.delayMs);
      const failure = behaviour.fail?.(call);
      if (failure !== undefined) throw failure;
      await keep(message);
    },
  });
  return {
    ...kit,
    sms: through('sms', kit.sms.send),
    email: through('email', kit.email.send),
    whatsapp: through('whatsapp', kit.whatsapp.send),
    voice: through('voice', kit.voice.send),
    /** Every call any sender got, including the ones that failed. */
    calls,
    /** Every code a sender was asked to deliver. */
    codes: () => new Set(calls.map((call) => call.code)),
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
    /** The code of the first call for `username` after `mark` (a `calls.length` taken before the send). */
    async codeAfter(username: string, mark: number): Promise<string> {
      for (let i = 0; i < 400; i += 1) {
        const call = calls.slice(mark).find((c) => c.username === username);
        if (call) return call.code;
        await sleep(5);
      }
      throw new Error(`no code was delivered for ${username}`);
    },
  };
}

export type CaptureSenders = ReturnType<typeof captureSenders>;

/** A pino-shaped logger that keeps every line as the JSON text pino would print. */
export function captureLogger(): OtpLogger & { lines: string[] } {
  const lines: string[] = [];
  const keep = (level: string) => (details: object, message?: string) => {
    lines.push(JSON.stringify({ level, ...details, msg: message }));
  };
  return { lines, info: keep('info'), warn: keep('warn'), error: keep('error') };
}
