/** Tracing helpers against the real OpenTelemetry SDK (in-memory exporter): names, tree, attributes, errors, no personal data. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, before, describe, it } from 'node:test';
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import {
  TRACER_NAME,
  TRACER_VERSION,
  captureContext,
  errorType,
  inDeliverySpan,
  inSpan,
  markFailed,
  setOtpAttributes,
  type CapturedContext,
} from '../../src/core/tracing.js';

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
/** The app's own tracer, standing in for an HTTP server instrumentation. */
const app = provider.getTracer('app');

const PERSONAL = ['john.smith', '+14155550100', '4155550100', 'john.smith@example.com', '203.0.113.7', '493817'];

function spans(): ReadableSpan[] {
  return exporter.getFinishedSpans();
}
function only(name: string): ReadableSpan {
  const found = spans().filter((s) => s.name === name);
  assert.equal(found.length, 1, `${found.length} spans named ${name}`);
  return found[0]!;
}
function isChild(child: ReadableSpan, parent: ReadableSpan): boolean {
  return child.parentSpanContext?.spanId === parent.spanContext().spanId && child.spanContext().traceId === parent.spanContext().traceId;
}
/** Every attribute value, event, link and status message of every finished span, as one string. */
function everythingRecorded(): string {
  return JSON.stringify(spans().map((s) => ({ name: s.name, attributes: s.attributes, events: s.events, status: s.status, links: s.links })));
}

/** A Twilio `RestException` as the SDK throws it: its message quotes the number. */
function twilioError(): Error {
  return Object.assign(new Error("The 'To' number +14155550100 is not a valid phone number."), { name: 'RestException', status: 400, code: 21211 });
}

describe('tracing without an SDK', () => {
  it('runs the work and returns its value through a non-recording span', async () => {
    const result = await inSpan('blockid_otp.send', { 'blockid_otp.channel': 'sms' }, (span) => {
      assert.equal(span.isRecording(), false);
      return 42;
    });
    assert.equal(result, 42);
    await assert.rejects(
      inSpan('blockid_otp.verify', {}, () => Promise.reject(twilioError())),
      /not a valid phone number/,
    );
  });
});

describe('tracing with the SDK, no context manager (explicit parents)', () => {
  before(() => {
    assert.equal(trace.setGlobalTracerProvider(provider), true);
  });
  afterEach(() => exporter.reset());

  it('names the scope blockid-otp at the package version', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.equal(TRACER_VERSION, version);
    await inSpan('blockid_otp.verify', {}, () => undefined);
    assert.deepEqual(
      { name: only('blockid_otp.verify').instrumentationScope.name, version: only('blockid_otp.verify').instrumentationScope.version },
      { name: TRACER_NAME, version: TRACER_VERSION },
    );
  });

  it('parents deliveries on the span passed to captureContext(span), after the send span has ended', async () => {
    let later: CapturedContext | undefined;
    await inSpan('blockid_otp.send', { 'blockid_otp.channel': 'both' }, (span) => {
      later = captureContext(span);
      span.setAttribute('blockid_otp.outcome', 'sent');
    });
    assert.ok(later);
    await inDeliverySpan({ channel: 'sms', provider: 'twilio', attempt: 1 }, () => undefined, later);
    await inDeliverySpan({ channel: 'email', provider: 'smtp', attempt: 1 }, () => undefined, later);
    const send = only('blockid_otp.send');
    const deliveries = spans().filter((s) => s.name === 'blockid_otp.deliver');
    assert.equal(deliveries.length, 2);
    for (const delivery of deliveries) assert.ok(isChild(delivery, send));
    assert.equal(send.parentSpanContext, undefined, 'the send span is a root here');
  });

  it('starts a root span from a captured context that holds no span', async () => {
    const empty = captureContext();
    await inDeliverySpan({ channel: 'voice', provider: 'custom', attempt: 1 }, () => undefined, empty);
    assert.equal(only('blockid_otp.deliver').parentSpanContext, undefined);
  });
});

describe('tracing with the SDK and an async context manager', () => {
  const manager = new AsyncLocalStorageContextManager();
  before(() => {
    assert.equal(context.setGlobalContextManager(manager.enable()), true);
  });
  afterEach(() => exporter.reset());
  after(async () => {
    context.disable();
    trace.disable();
    await provider.shutdown();
  });

  it('gives send and verify spans their names, kinds and attributes, under the app’s HTTP span', async () => {
    await app.startActiveSpan('POST /otp/send', { kind: SpanKind.SERVER }, async (http) => {
      await inSpan('blockid_otp.send', { 'blockid_otp.channel': 'sms' }, async (span) => {
        await sleep(1);
        setOtpAttributes(span, { 'blockid_otp.outcome': 'sent', 'blockid_otp.method': undefined });
      });
      http.end();
    });
    await inSpan('blockid_otp.verify', { 'blockid_otp.method': 'totp' }, (span) => {
      setOtpAttributes(span, { 'blockid_otp.result': 'invalid' });
    });
    const http = only('POST /otp/send');
    const send = only('blockid_otp.send');
    const verify = only('blockid_otp.verify');
    assert.ok(isChild(send, http));
    assert.equal(send.kind, SpanKind.INTERNAL);
    assert.deepEqual(send.attributes, { 'blockid_otp.channel': 'sms', 'blockid_otp.outcome': 'sent' });
    assert.equal(send.status.code, SpanStatusCode.UNSET);
    assert.equal(verify.kind, SpanKind.INTERNAL);
    assert.deepEqual(verify.attributes, { 'blockid_otp.method': 'totp', 'blockid_otp.result': 'invalid' });
    assert.equal(verify.status.code, SpanStatusCode.UNSET, 'a wrong code is an outcome, not an error');
    assert.equal(verify.parentSpanContext, undefined);
    assert.ok(send.ended && verify.ended);
  });

  it('nests spans started inside an active span (a lookup inside a send)', async () => {
    await inSpan('blockid_otp.send', {}, async () => {
      await inSpan('blockid_otp.lookup', { 'blockid_otp.provider': 'twilio' }, () => sleep(1));
    });
    const lookup = only('blockid_otp.lookup');
    assert.ok(isChild(lookup, only('blockid_otp.send')));
    assert.equal(lookup.kind, SpanKind.CLIENT);
  });

  it('parents a delayed delivery, run in the captured context after the reply, on the send span', async () => {
    const delivered: Array<Promise<void>> = [];
    await app.startActiveSpan('POST /otp/send', async (http) => {
      await inSpan('blockid_otp.send', { 'blockid_otp.channel': 'both' }, () => {
        const captured = captureContext();
        // What the core does: reply first, deliver on a later tick, inside the captured context.
        delivered.push(
          new Promise<void>((resolve, reject) => {
            setTimeout(() => {
              captured
                .run(async () => {
                  await inDeliverySpan({ channel: 'sms', provider: 'twilio', attempt: 1 }, () => sleep(2));
                  await inDeliverySpan({ channel: 'email', provider: 'smtp', attempt: 1 }, () => sleep(1));
                })
                .then(resolve, reject);
            }, 5);
          }),
        );
      });
      http.end();
    });
    assert.equal(spans().length, 2, 'the send and HTTP spans end before any delivery starts');
    await Promise.all(delivered);
    const send = only('blockid_otp.send');
    const deliveries = spans().filter((s) => s.name === 'blockid_otp.deliver');
    assert.deepEqual(
      deliveries.map((d) => d.attributes),
      [
        { 'blockid_otp.channel': 'sms', 'blockid_otp.provider': 'twilio', 'blockid_otp.attempt': 1 },
        { 'blockid_otp.channel': 'email', 'blockid_otp.provider': 'smtp', 'blockid_otp.attempt': 1 },
      ],
    );
    for (const delivery of deliveries) {
      assert.ok(isChild(delivery, send), 'a delivery is a child of its send');
      assert.equal(delivery.kind, SpanKind.CLIENT);
    }
    assert.ok(isChild(send, only('POST /otp/send')));
    assert.ok(send.endTime[0] * 1e9 + send.endTime[1] <= deliveries[0]!.startTime[0] * 1e9 + deliveries[0]!.startTime[1]);
  });

  it('marks a failed delivery with the provider’s code and a fixed message, never the error, and rethrows it', async () => {
    const error = twilioError();
    await assert.rejects(
      inSpan('blockid_otp.send', {}, async () => {
        const captured = captureContext();
        await assert.rejects(
          inDeliverySpan({ channel: 'sms', provider: 'twilio', attempt: 1 }, () => Promise.reject(error), captured),
          (thrown) => thrown === error,
        );
        await inDeliverySpan({ channel: 'sms', provider: 'twilio', attempt: 2 }, () => undefined, captured);
        throw Object.assign(new Error('SMTP 550 john.smith@example.com unknown'), { code: 'EENVELOPE' });
      }),
      /550/,
    );
    const [failed, retried] = spans().filter((s) => s.name === 'blockid_otp.deliver');
    assert.ok(failed && retried);
    assert.equal(failed.attributes['error.type'], '21211');
    assert.equal(failed.attributes['blockid_otp.attempt'], 1);
    assert.deepEqual(failed.status, { code: SpanStatusCode.ERROR, message: 'delivery failed' });
    assert.deepEqual(failed.events, [], 'no exception event: its message would quote the number');
    assert.equal(retried.attributes['blockid_otp.attempt'], 2);
    assert.equal(retried.attributes['error.type'], undefined);
    assert.equal(retried.status.code, SpanStatusCode.UNSET);
    const send = only('blockid_otp.send');
    assert.deepEqual(send.status, { code: SpanStatusCode.ERROR, message: 'send failed' });
    assert.equal(send.attributes['error.type'], 'EENVELOPE');
    assert.ok(isChild(failed, send) && isChild(retried, send));
  });

  it('uses the errorMessage given, and markFailed for a failure handled without a throw', async () => {
    await assert.rejects(inSpan('blockid_otp.verify', {}, () => Promise.reject(new TypeError('john.smith')), { errorMessage: 'store unavailable' }));
    await inSpan('blockid_otp.lookup', {}, (span) => markFailed(span, { code: 'ETIMEDOUT' }, 'lookup timed out'));
    assert.deepEqual(only('blockid_otp.verify').status, { code: SpanStatusCode.ERROR, message: 'store unavailable' });
    assert.equal(only('blockid_otp.verify').attributes['error.type'], 'TypeError');
    assert.deepEqual(only('blockid_otp.lookup').status, { code: SpanStatusCode.ERROR, message: 'lookup timed out' });
    assert.equal(only('blockid_otp.lookup').attributes['error.type'], 'ETIMEDOUT');
  });

  it('holds no personal data in any attribute, event or status, whatever the errors carried', async () => {
    const leaks = [
      twilioError(),
      Object.assign(new Error('x'), { code: '+14155550100' }),
      Object.assign(new Error('x'), { code: 4155550100 }),
      Object.assign(new Error('x'), { code: 'john.smith@example.com', name: 'john smith' }),
      Object.assign(new Error('x'), { code: '203.0.113.7' }),
      'john.smith',
      { message: '493817' },
    ];
    await inSpan('blockid_otp.send', { 'blockid_otp.channel': 'both', 'blockid_otp.outcome': 'sent' }, async (span) => {
      const captured = captureContext(span);
      for (const [index, leak] of leaks.entries()) {
        await inDeliverySpan({ channel: 'sms', provider: 'custom', attempt: index + 1 }, () => Promise.reject(leak), captured).catch(() => undefined);
      }
      setOtpAttributes(span, { 'error.type': 'john.smith@example.com' });
    });
    const recorded = everythingRecorded();
    for (const personal of PERSONAL) assert.ok(!recorded.includes(personal), `a span holds ${personal}`);
    assert.deepEqual(
      spans()
        .filter((s) => s.name === 'blockid_otp.deliver')
        .map((s) => s.attributes['error.type']),
      ['21211', 'Error', 'Error', '_OTHER', 'Error', '_OTHER', '_OTHER'], // a code that is not a code falls back to the class name
    );
    assert.equal(only('blockid_otp.send').attributes['error.type'], '_OTHER');
  });
});

describe('errorType', () => {
  const cases: Array<[string, unknown, string]> = [
    ['a Twilio code', { code: 21211 }, '21211'],
    ['an SMTP reply code', { code: 550 }, '550'],
    ['a Node code', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:25'), { code: 'ECONNREFUSED' }), 'ECONNREFUSED'],
    ['a nodemailer code', { code: 'EAUTH' }, 'EAUTH'],
    ['an error class', new RangeError('bad'), 'RangeError'],
    ['a number as code', { code: '4155550100' }, '_OTHER'],
    ['an E.164 number as code', { code: '+14155550100' }, '_OTHER'],
    ['an address as code', { code: 'a@b.example' }, '_OTHER'],
    ['a code with spaces', { code: 'not valid' }, '_OTHER'],
    ['a string', 'boom', '_OTHER'],
    ['null', null, '_OTHER'],
  ];
  for (const [what, thrown, expected] of cases) {
    it(`gives ${expected} for ${what}`, () => assert.equal(errorType(thrown), expected));
  }
});
