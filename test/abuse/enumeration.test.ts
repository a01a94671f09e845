/**
 * Enumeration safety of /otp/send: known and unknown usernames get the same status, body and
 * header names, and (delivery running off the response path) the same response time.
 */
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { describe, it } from 'node:test';
import type { Destinations, OtpOptions } from '../../src/index.js';
import { expressApp, type TestApp } from '../helpers/apps.js';
import { captureSenders } from '../helpers/capture.js';
import { Client, type Reply as Answer } from '../helpers/client.js';
import { storeBackends } from '../helpers/store-matrix.js';
import { directory, median, numberInBlock } from '../helpers/util.js';

const backends = await storeBackends({ cluster: false });

/** A provider that takes this long to accept a message: were delivery awaited, known users would answer this much later. */
const PROVIDER_MS = 40;

async function start(otp: Partial<OtpOptions>, knownCount: number) {
  const senders = captureSenders({ delayMs: PROVIDER_MS });
  const users: Array<[string, Destinations]> = Array.from({ length: knownCount }, (_, i) => [
    `known.${i}`,
    { smsTo: numberInBlock(i), emailTo: `known.${i}@example.com` },
  ]);
  const app = await expressApp({
    capture: senders,
    otp: {
      resolveUser: directory(users),
      // All requests come from 127.0.0.1: lift only the per-IP quota.
      limits: { sendsPerIp: { points: 100_000, windowSeconds: 3600 } },
      ...otp,
    },
  });
  return { app, senders };
}

/** Sends for known.i and nobody.i in turn (the order alternating), one request at a time. */
async function interleaved(app: TestApp, count: number, offset = 0) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const known: Answer[] = [];
  const unknown: Answer[] = [];
  for (let i = offset; i < offset + count; i++) {
    const pair = [
      async () => known.push(await new Client(app.url, { agent }).post('/otp/send', { username: `known.${i}` })),
      async () => unknown.push(await new Client(app.url, { agent }).post('/otp/send', { username: `nobody.${i}` })),
    ];
    if (i % 2) pair.reverse();
    for (const send of pair) await send();
  }
  agent.destroy();
  return { known, unknown };
}

const shape = (answer: Answer) => ({ status: answer.status, body: answer.text, headers: [...new Set(answer.headers.keys())].sort().join(',') });
const round2 = (ms: number) => Math.round(ms * 100) / 100;

for (const backend of backends) {
  describe(`enumeration safety of /otp/send (${backend.name} store)`, () => {
    it('500 sends each for known and unknown usernames: same status, body and header names; median latency within 5 ms', async () => {
      const { app, senders } = await start({ store: backend.make() }, 550);
      await interleaved(app, 50, 500); // warm-up, not measured
      const { known, unknown } = await interleaved(app, 500);

      const knownShapes = new Set(known.map((a) => JSON.stringify(shape(a))));
      const unknownShapes = new Set(unknown.map((a) => JSON.stringify(shape(a))));
      assert.equal(knownShapes.size, 1, [...knownShapes].join('\n'));
      assert.deepEqual(unknownShapes, knownShapes);
      assert.equal(known[0]?.status, 202);
      assert.ok(known.every((a) => a.headers.has('set-cookie')) && unknown.every((a) => a.headers.has('set-cookie')));

      const knownMs = known.map((a) => a.ms);
      const unknownMs = unknown.map((a) => a.ms);
      const difference = median(knownMs) - median(unknownMs);
      const p90 = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length * 0.9)] ?? 0;
      console.log(
        `# ${backend.name}: 500+500 sends, median known ${round2(median(knownMs))} ms, unknown ${round2(median(unknownMs))} ms, ` +
          `difference ${round2(difference)} ms (p90 ${round2(p90(knownMs))} / ${round2(p90(unknownMs))} ms; provider takes ${PROVIDER_MS} ms)`,
      );
      assert.ok(Math.abs(difference) < 5, `median difference ${difference} ms`);

      // Deliveries start after a random pause (src/core/send/after-reply.ts), then take the provider's time.
      for (let i = 0; i < 100 && senders.calls.length < 550 * 2; i++) await new Promise((resolve) => setTimeout(resolve, 50));
      await new Promise((resolve) => setTimeout(resolve, PROVIDER_MS * 3));
      assert.equal(senders.calls.length, 550 * 2, 'every known user got an SMS and an email; no unknown user got anything');
      assert.ok(senders.calls.every((c) => c.username.startsWith('known.')));
    });

    it('the same measurement does see the provider once awaitDelivery is on (so the test above could fail)', async () => {
      const { app } = await start({ store: backend.make(), awaitDelivery: true }, 60);
      const { known, unknown } = await interleaved(app, 60);
      const difference = median(known.map((a) => a.ms)) - median(unknown.map((a) => a.ms));
      console.log(`# ${backend.name}: with awaitDelivery, median difference ${round2(difference)} ms`);
      assert.ok(difference > PROVIDER_MS / 2, `difference ${difference} ms`);
    });
  });
}
