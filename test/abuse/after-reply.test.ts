/**
 * No timing after the reply: an HTTP send's delivery does not run in the window right after
 * the 202 (where a cheap probe on a second connection would wait only for known users), and
 * when it does start, every kind of user does the same composing work: a message is composed
 * for every channel asked for, delivered or not. Over real HTTP on Express and Koa, with a
 * message template that notes when it runs (the public `messages` option).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { OtpOptions, ResolvedUser } from '../../src/index.js';
import { frameworks } from '../helpers/apps.js';
import { Client } from '../helpers/client.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** The least pause between the 202 and any delivery work (the pause's own minimum is 150 ms). */
const QUIET_MS = 100;

const directory: Record<string, ResolvedUser> = {
  'both.user': { smsTo: '4155550142', emailTo: 'both@example.com' },
  'email.user': { emailTo: 'email@example.com' },
  'phone.user': { smsTo: '4155550143' },
};

for (const [framework, makeApp] of frameworks.slice(0, 2)) {
  describe(`no delivery work right after the reply (${framework})`, () => {
    it('composes every channel asked for, for every kind of user, and none of it within 100 ms of the 202', async () => {
      const composed: Array<{ channel: string; at: number }> = [];
      const sent: Array<{ to: string; at: number }> = [];
      const note = (channel: string) => composed.push({ channel, at: performance.now() });
      const app = await makeApp({
        otp: {
          resolveUser: (username: string) => directory[username] ?? null,
          messages: {
            en: {
              sms: (m) => (note('sms'), `${m.code} is your code`),
              emailSubject: (m) => (note('email'), `Your ${m.appName} code`),
            },
          },
        } as Partial<OtpOptions>,
      });
      app.service.on('sent', (event) => void sent.push({ to: event.destination, at: performance.now() }));
      try {
        const work: Record<string, string> = {};
        for (const username of ['both.user', 'email.user', 'phone.user', 'nobody.user']) {
          composed.length = 0;
          sent.length = 0;
          // Timed from before the request (not from when this process reads the reply, which a busy
          // machine can delay): work started at the reply would show as a few ms.
          const askedAt = performance.now();
          const reply = await new Client(app.url).post('/otp/send', { username });
          assert.equal(reply.status, 202);
          await sleep(700);
          const after = (events: Array<{ at: number }>) => events.map(({ at }) => Math.round(at - askedAt));
          assert.ok(
            after(composed).every((ms) => ms >= QUIET_MS),
            `${username}: composed ${after(composed)} ms after the request`,
          );
          assert.ok(
            after(sent).every((ms) => ms >= QUIET_MS),
            `${username}: sent ${after(sent)} ms after the request`,
          );
          work[username] = composed
            .map(({ channel }) => channel)
            .sort()
            .join(',');
        }
        assert.deepEqual(new Set(Object.values(work)), new Set(['email,sms']), `the same work for every kind: ${JSON.stringify(work)}`);
        assert.ok((await app.capture.waitForCode('both.user')).length === 6, 'and the code still arrives');
      } finally {
        await app.close();
      }
    });
  });
}
