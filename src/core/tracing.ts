/**
 * OpenTelemetry traces through `@opentelemetry/api` only: every helper here is a no-op until
 * the app installs an SDK (e.g. `@opentelemetry/sdk-node`), and costs next to nothing then.
 *
 * The span tree of one send (delivery runs after the HTTP reply, so the send span has
 * usually ended before its deliveries start; they are still its children, through the
 * context that `captureContext()` took inside the send span):
 *
 *   (the app's HTTP server span, if instrumented)
 *   └─ blockid_otp.send      INTERNAL  blockid_otp.channel (the choice, e.g. `both`), blockid_otp.outcome
 *      └─ blockid_otp.deliver CLIENT  blockid_otp.channel, blockid_otp.provider, blockid_otp.attempt (1, 2, ...),
 *                                     error.type (the provider's code, e.g. `21211` or `EAUTH`) on failure
 *   blockid_otp.verify       INTERNAL  blockid_otp.method, blockid_otp.result
 *   blockid_otp.lookup       CLIENT    blockid_otp.provider (a line-type lookup before a first send)
 *
 * No span carries a username, number, address, IP or code. Attributes are typed
 * (`OtpSpanAttributes`), `error.type` is checked against a code's shape, and a failure sets
 * status ERROR with a fixed message: the raw error (whose message may quote a number or an
 * address) is never recorded, so no `exception` events either.
 */
import { context, trace, INVALID_SPAN_CONTEXT, ProxyTracerProvider, SpanKind, SpanStatusCode, type Context, type Span } from '@opentelemetry/api';
import type { Channel, ChannelChoice, VerifyMethod } from './types.js';

/** The instrumentation scope: `trace.getTracer(TRACER_NAME, TRACER_VERSION)`. Kept equal to package.json's version (a test checks). */
export const TRACER_NAME = 'blockid-otp';
export const TRACER_VERSION = '0.1.0';

/** A proxy tracer: it follows whatever provider the app registers, before or after this module loads. */
const tracer = trace.getTracer(TRACER_NAME, TRACER_VERSION);
/** The span handed to `fn` while no tracer provider is registered: records nothing, as the API's no-op tracer's spans. */
const UNTRACED = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/** True once the app has registered a tracer provider (checked on every span, so a later registration counts). */
function tracing(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider) || provider.getDelegateTracer(TRACER_NAME, TRACER_VERSION) !== undefined;
}

export type OtpSpanName = 'blockid_otp.send' | 'blockid_otp.deliver' | 'blockid_otp.verify' | 'blockid_otp.lookup';
/** Who delivered: the Twilio SDK, nodemailer (SMTP), or a sender of the app's own. */
export type OtpProvider = 'twilio' | 'smtp' | 'custom';

/** Every attribute a blockid-otp span may carry; nothing else can be set through these helpers. */
export interface OtpSpanAttributes {
  'blockid_otp.channel'?: ChannelChoice;
  /** send: `sent`, `rate_limited`, `unavailable` (store down), `invalid_request`, `decoy` (unknown user). */
  'blockid_otp.outcome'?: 'sent' | 'rate_limited' | 'unavailable' | 'invalid_request' | 'decoy';
  /** deliver: 1 for the first attempt, then 2, 3, ... (retries and fallbacks). */
  'blockid_otp.attempt'?: number;
  'blockid_otp.provider'?: OtpProvider;
  'blockid_otp.method'?: VerifyMethod;
  'blockid_otp.result'?: 'verified' | 'invalid' | 'burned' | 'locked' | 'unavailable';
  /** OpenTelemetry semantic conventions: the failure's class, here a provider's or Node's error code. Checked by `errorType`. */
  'error.type'?: string;
}

const KINDS: Record<OtpSpanName, SpanKind> = {
  'blockid_otp.send': SpanKind.INTERNAL,
  'blockid_otp.deliver': SpanKind.CLIENT,
  'blockid_otp.verify': SpanKind.INTERNAL,
  'blockid_otp.lookup': SpanKind.CLIENT,
};

const FAILED: Record<OtpSpanName, string> = {
  'blockid_otp.send': 'send failed',
  'blockid_otp.deliver': 'delivery failed',
  'blockid_otp.verify': 'verification failed',
  'blockid_otp.lookup': 'lookup failed',
};

/** A code as providers write them (Twilio `21211`, SMTP `550`, Node `ECONNRESET`, nodemailer `EAUTH`), never a number or an address. */
const ERROR_CODE = /^(?:\d{1,6}|[A-Za-z_][A-Za-z0-9_.]{0,63})$/;
/** The semantic conventions' value for an error of no known type. */
const OTHER_ERROR_TYPE = '_OTHER';

/**
 * The `error.type` for a thrown value: its `code` (Twilio's `RestException.code`, Node's
 * `ECONNREFUSED`, nodemailer's `EAUTH`), else its class name (`TypeError`), else `_OTHER`.
 * Anything that does not look like a code (spaces, `@`, `+`, a long digit string) is `_OTHER`.
 */
export function errorType(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    // The built-in senders throw OtpError('DELIVERY_FAILED') and keep the provider's own code in `cause`.
    const { cause } = error as { cause?: unknown };
    if (typeof cause === 'object' && cause !== null && 'provider' in cause) {
      const { code: causeCode, errorCode, responseCode, status } = cause as Record<string, unknown>;
      for (const found of [causeCode, errorCode, responseCode, status]) {
        if ((typeof found === 'string' || typeof found === 'number') && ERROR_CODE.test(String(found))) return String(found);
      }
    }
    const { code } = error as { code?: unknown };
    if ((typeof code === 'string' || typeof code === 'number') && ERROR_CODE.test(String(code))) return String(code);
    if (error instanceof Error && ERROR_CODE.test(error.name)) return error.name;
  }
  return OTHER_ERROR_TYPE;
}

/** Sets typed attributes, skipping the undefined ones and guarding `error.type`. */
export function setOtpAttributes(span: Span, attributes: OtpSpanAttributes): void {
  for (const [key, value] of Object.entries(attributes) as Array<[keyof OtpSpanAttributes, string | number | undefined]>) {
    if (value === undefined) continue;
    span.setAttribute(key, key === 'error.type' && !ERROR_CODE.test(String(value)) ? OTHER_ERROR_TYPE : value);
  }
}

/** Marks a span failed without recording the error itself: `error.type` from `errorType(error)`, status ERROR with `message`. */
export function markFailed(span: Span, error: unknown, message: string): void {
  span.setAttribute('error.type', errorType(error));
  span.setStatus({ code: SpanStatusCode.ERROR, message });
}

export interface SpanOptions {
  /** The status message when `fn` throws; default e.g. `delivery failed`. Never derived from the error. */
  errorMessage?: string;
  /** Parent context (from `captureContext()`); default: the active context. */
  parent?: Context;
}

/**
 * Runs `fn` in a new active span (spans started inside it nest under it) and ends the span.
 * When `fn` throws, the span gets `error.type` and status ERROR, and the error is rethrown.
 */
export async function inSpan<T>(name: OtpSpanName, attributes: OtpSpanAttributes, fn: (span: Span) => Promise<T> | T, options: SpanOptions = {}): Promise<T> {
  const run = async (span: Span): Promise<T> => {
    try {
      return await fn(span);
    } catch (error) {
      markFailed(span, error, options.errorMessage ?? FAILED[name]);
      throw error;
    } finally {
      span.end();
    }
  };
  // No provider: the API's no-op tracer would make a span that records nothing; skip its context switch.
  if (!tracing()) return run(UNTRACED);
  const spanOptions = { kind: KINDS[name] };
  const parent = options.parent ?? context.active();
  return tracer.startActiveSpan(name, spanOptions, parent, (span) => {
    setOtpAttributes(span, attributes);
    return run(span);
  });
}

/** One delivery attempt: a `blockid_otp.deliver` child of the captured send context. */
export function inDeliverySpan<T>(
  delivery: { channel: Channel; provider: OtpProvider; attempt: number },
  fn: (span: Span) => Promise<T> | T,
  parent?: CapturedContext,
): Promise<T> {
  return inSpan(
    'blockid_otp.deliver',
    { 'blockid_otp.channel': delivery.channel, 'blockid_otp.provider': delivery.provider, 'blockid_otp.attempt': delivery.attempt },
    fn,
    parent === undefined ? {} : { parent: parent.context },
  );
}

/** A context kept for later: work started after the HTTP reply still belongs to the send's trace. */
export interface CapturedContext {
  readonly context: Context;
  /** Runs `fn` with the captured context active (spans it starts are children of the captured span). */
  run<T>(fn: () => T): T;
}

/**
 * Captures the active context, or `span` set into it (which parents correctly even when the
 * app registered no context manager), to run deferred work inside it later.
 */
export function captureContext(span?: Span): CapturedContext {
  const captured = span === undefined ? context.active() : trace.setSpan(context.active(), span);
  return {
    context: captured,
    run: (fn) => context.with(captured, fn),
  };
}
