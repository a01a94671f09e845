/** Which service a built-in sender delivers through, for traces (a sender of the app's own is `custom`). */
const PROVIDER = Symbol.for('blockid-otp.provider');

/** Who a sender delivers through, for traces: the built-in senders say so; anything else is `custom`. */
export function providerOf(sender: unknown): 'twilio' | 'smtp' | 'custom' {
  const provider = (sender as { [PROVIDER]?: unknown } | undefined)?.[PROVIDER];
  return provider === 'twilio' || provider === 'smtp' ? provider : 'custom';
}

/** Marks a built-in sender with its provider. */
export function withProvider<T extends object>(sender: T, provider: 'twilio' | 'smtp'): T {
  Object.defineProperty(sender, PROVIDER, { value: provider, enumerable: false });
  return sender;
}
