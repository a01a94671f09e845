/**
 * A send's delivery waits a random pause after the reply (src/core/send/after-reply.ts). What
 * waits holds only what delivery needs: the request is collectable as soon as it is answered,
 * not 150–450 ms later. Held, every request of a busy server would live through that pause
 * (about a request graph per send per 300 ms), and the garbage collector would pay for it.
 * Checked on every adapter over real HTTP: a `WeakRef` to the request `resolveUser` saw is
 * cleared by a forced collection while the delivery is still under way (its pause, then a
 * sender that takes a second), and the code then arrives.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { DELIVERY_PAUSE_MS } from '../../src/core/send/after-reply.js';
import { frameworks, users } from '../helpers/apps.js';
import { captureSenders } from '../helpers/capture.js';
import { Client } from '../helpers/client.js';
import { sleep } from '../helpers/util.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

// @fastify/session's default MemoryStore keeps each Session object, which refers to its request,
// for as long as the session lives: there the request outlives the pause whatever waits for it.
const checked = frameworks.filter(([name]) => name !== 'fastify with @fastify/session');

describe('the delivery after the reply does not hold the request', () => {
  for (const [name, factory] of checked) {
    it(`${name}: the request is collectable during the pause, and the code still arrives`, async () => {
      let seen: WeakRef<object> | undefined;
      // The sender takes a second, so the delivery is still under way for a while after the pause.
      const app = await factory({
        capture: captureSenders({ delayMs: 1000 }),
        otp: {
          resolveUser: (username: string, req: unknown) => {
            seen = new WeakRef(req as object);
            return users[username] ?? null;
          },
        },
      });
      try {
        const client = new Client(app.url, { headers: { connection: 'close' } });
        const answer = await client.request('POST', '/otp/send', { json: { username: 'ada.lovelace', channel: 'email' } });
        const answered = performance.now();
        assert.equal(answer.status, 202);
        assert.ok(seen !== undefined, 'resolveUser saw the request');
        // While the delivery waits (its pause, then the slow sender).
        // (A WeakRef's target lives on until the end of the job that created or dereferenced it: collect in later jobs.)
        await sleep(40);
        for (let i = 0; i < 2; i++) {
          gc();
          await sleep(1);
        }
        const checkedAt = Math.round(performance.now() - answered);
        assert.equal(app.capture.messages.length, 0, `the delivery was over ${checkedAt} ms after the answer: the check came too late to mean anything`);
        assert.equal(seen.deref(), undefined, 'the request was still reachable while its delivery waited');
        await app.capture.waitFor(1, DELIVERY_PAUSE_MS.max + 3000);
        assert.equal(app.capture.messages[0]?.username, 'ada.lovelace');
      } finally {
        await app.close();
      }
    });
  }
});
