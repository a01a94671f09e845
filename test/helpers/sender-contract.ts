/**
 * What every sender must do, run once per sender (`describeSenderContract(kit)`): deliver the
 * code to the destination through the real SDK (the Twilio SDK against Prism mocking Twilio's
 * own API description; nodemailer against a local SMTP server), from its own client too; report
 * a provider's refusal, an unreachable provider and a silent one as an `OtpError`
 * `DELIVERY_FAILED` with `retryable` right; never put the code, the number or the address (or
 * the text that carries the code) into an error; refuse a bad client and unknown options.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { inspect } from 'node:util';
import { OtpError } from '../../src/core/errors.js';
import { closedPort, startSilentServer, type SilentServer } from './smtp.js';

/** A provider answer the sender must turn into a DELIVERY_FAILED of this retryability. */
interface Refusal {
  /** How the refusal reads in the test name, e.g. `HTTP 400 (Twilio error 21211)`. */
  name: string;
  retryable: boolean;
  /** The error's exact message. */
  message: string;
  /** The error's exact `cause`. */
  cause: unknown;
}

/** Where the provider stand-in runs; each call is one `send` of the kit's message. */
export interface Provider {
  /** Sends through a sender given a ready client (Twilio) or transporter (nodemailer). */
  send(): Promise<void>;
  /** Sends through a sender that builds its own client from credentials (accountSid/authToken, smtpUrl). */
  sendFromCredentials(): Promise<void>;
  /** What the provider got from the `count`th send so far: the destination and whether the code was in it. */
  received(count: number): Promise<{ to: string; accepted: boolean; carriesCode: boolean }>;
  stop(): Promise<void>;
}

export interface SenderKit {
  name: string;
  /** The destination of the kit's message (E.164 number or address): never in an error. */
  to: string;
  /** How the provider writes the destination it received (e.g. `whatsapp:+1…`). */
  receivedTo: string;
  /** The code, and whatever else carries it (the SMS body, the spoken digits, the TwiML): never in an error. */
  secrets: string[];
  /** Starts the provider stand-in; a string says why it cannot run (the delivery tests skip with it). */
  startProvider(): Promise<Provider | string>;
  /** Refusals the provider can answer with, and a sender facing each: `send()` ends in the refusal; `stop()` afterwards. */
  refusals: Array<Refusal & { start(): Promise<{ send(): Promise<void>; stop(): Promise<void> }> }>;
  /** A send to a port where nothing listens. */
  sendToClosedPort(port: number): Promise<void>;
  unreachableMessage: string;
  /** A send to a server that accepts the connection and never answers, with a short timeout. */
  sendToSilentServer(port: number): Promise<void>;
  timeoutMessage: RegExp;
  /** How long the timed-out send may take, in ms: [at least, less than]. */
  timeoutWithinMs: [number, number];
  /** The factory called with options that are not valid: [what, options, the message it must match]. */
  refusedOptions: Array<[string, () => unknown, RegExp]>;
}

/** The send's error, checked to be DELIVERY_FAILED and to hold none of `secrets` in any form a log could print. */
export async function deliveryError(send: Promise<void>, secrets: string[]): Promise<OtpError> {
  const error = await send.then(
    () => assert.fail('send should have failed'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof OtpError, `expected an OtpError, got ${inspect(error)}`);
  assert.equal(error.code, 'DELIVERY_FAILED');
  for (const text of [error.message, JSON.stringify(error), JSON.stringify(error.cause) ?? '', inspect(error, { depth: 10 })]) {
    for (const secret of secrets) assert.ok(!text.includes(secret), `${JSON.stringify(secret)} leaked: ${text}`);
  }
  return error;
}

export function describeSenderContract(kit: SenderKit): void {
  const secrets = [...kit.secrets, kit.to, kit.to.replace(/^\+1/, '')];

  describe(`${kit.name}: the sender contract`, () => {
    describe('delivery through the real SDK', () => {
      let provider: Provider | string = 'not started';
      before(async () => {
        provider = await kit.startProvider();
      });
      after(async () => {
        if (typeof provider !== 'string') await provider.stop();
      });

      it('delivers the code to the destination, and the provider accepts the request', async (t) => {
        if (typeof provider === 'string') return t.skip(provider);
        await provider.send();
        const received = await provider.received(1);
        assert.equal(received.to, kit.receivedTo);
        assert.ok(received.accepted, 'the provider accepted the request');
        assert.ok(received.carriesCode, 'the code went out');
      });

      it('builds its own client from credentials, and keeps using it', async (t) => {
        if (typeof provider === 'string') return t.skip(provider);
        await provider.sendFromCredentials();
        await provider.sendFromCredentials();
        for (const count of [2, 3]) {
          const received = await provider.received(count);
          assert.equal(received.to, kit.receivedTo);
          assert.ok(received.accepted && received.carriesCode);
        }
      });
    });

    describe('failures', () => {
      for (const refusal of kit.refusals) {
        it(`${refusal.name} is DELIVERY_FAILED, retryable: ${refusal.retryable}`, async () => {
          const refusing = await refusal.start();
          try {
            const error = await deliveryError(refusing.send(), secrets);
            assert.equal(error.retryable, refusal.retryable);
            assert.equal(error.message, refusal.message);
            assert.deepEqual(error.cause, refusal.cause);
          } finally {
            await refusing.stop();
          }
        });
      }

      it('a refused connection is DELIVERY_FAILED, retryable', async () => {
        const error = await deliveryError(kit.sendToClosedPort(await closedPort()), secrets);
        assert.equal(error.retryable, true);
        assert.equal(error.message, kit.unreachableMessage);
      });

      describe('a server that accepts the connection and never answers', () => {
        let silent: SilentServer;
        before(async () => {
          silent = await startSilentServer();
        });
        after(() => silent.stop());

        it('times out within the configured timeout as DELIVERY_FAILED, retryable', async () => {
          const startedMs = Date.now();
          const error = await deliveryError(kit.sendToSilentServer(silent.port), secrets);
          const elapsedMs = Date.now() - startedMs;
          const [leastMs, underMs] = kit.timeoutWithinMs;
          assert.ok(elapsedMs >= leastMs && elapsedMs < underMs, `ended after ${elapsedMs} ms`);
          assert.equal(error.retryable, true);
          assert.match(error.message, kit.timeoutMessage);
        });
      });
    });

    describe('options', () => {
      for (const [what, make, expected] of kit.refusedOptions) {
        it(`refuses ${what} with a TypeError`, () => {
          assert.throws(make, (error: unknown) => {
            assert.ok(error instanceof TypeError);
            assert.match(error.message, new RegExp(`^${kit.name}: `));
            assert.match(error.message, expected);
            return true;
          });
        });
      }
    });
  });
}
