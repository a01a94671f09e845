/** Delivery with a time budget and bounded retries; failures become events, never crashes. */
import { OtpError } from './errors.js';
import { maskDestination } from './destinations.js';
import type { OtpEvents } from './events.js';
import type { Channel, EmailMessage, EmailSender, SmsMessage, SmsSender } from './types.js';

export type Outgoing =
  | { channel: 'sms'; sender: SmsSender; message: SmsMessage }
  | { channel: 'email'; sender: EmailSender; message: EmailMessage };

export interface DeliveryPolicy {
  timeoutMs: number;
  retries: number;
}

/** Sends one message; resolves true when delivered, false when it failed (an event says why). */
export async function deliver(outgoing: Outgoing, policy: DeliveryPolicy, events: OtpEvents): Promise<boolean> {
  const deadline = Date.now() + policy.timeoutMs;
  let attempts = 0;
  let reason = 'unknown error';
  while (attempts <= policy.retries && Date.now() < deadline) {
    attempts += 1;
    try {
      await withDeadline(sendOnce(outgoing), deadline);
      events.emit('sent', { username: outgoing.message.username, channel: outgoing.channel, destination: maskDestination(outgoing.message.to) });
      return true;
    } catch (error) {
      reason = describeFailure(error, outgoing.message.code);
      if (!isRetryable(error)) break;
    }
  }
  events.emit('delivery_failed', {
    username: outgoing.message.username,
    channel: outgoing.channel,
    destination: maskDestination(outgoing.message.to),
    reason,
    attempts,
  });
  return false;
}

/** Sends to every target at once; resolves with the channels that got through. */
export async function deliverAll(outgoing: Outgoing[], policy: DeliveryPolicy, events: OtpEvents): Promise<Channel[]> {
  const results = await Promise.all(outgoing.map((item) => deliver(item, policy, events)));
  return outgoing.filter((_, index) => results[index]).map((item) => item.channel);
}

function sendOnce(outgoing: Outgoing): Promise<void> {
  // Called inside a promise chain so a sender that throws synchronously is caught too.
  return Promise.resolve().then(() =>
    outgoing.channel === 'sms' ? outgoing.sender.send(outgoing.message) : outgoing.sender.send(outgoing.message),
  );
}

class DeliveryTimeout extends Error {}

function withDeadline<T>(work: Promise<T>, deadline: number): Promise<T> {
  work.catch(() => undefined); // a late failure after the deadline must not become an unhandled rejection
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeliveryTimeout('delivery timed out')), Math.max(deadline - Date.now(), 0));
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

function isRetryable(error: unknown): boolean {
  return error instanceof DeliveryTimeout || (error instanceof OtpError && error.retryable === true);
}

/** A one-line reason for logs and events, with the code scrubbed should a provider echo it. */
function describeFailure(error: unknown, code: string): string {
  const text = error instanceof DeliveryTimeout ? 'timed out' : error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return text.split(code).join('[code]').slice(0, 300);
}
