/**
 * A sender's error that echoes what it was given, in another writing, is scrubbed before it
 * becomes a `delivery_failed` reason or a log line: the number's digits in any grouping (with
 * or without the 1, any separators), the address in any case, the code's digits with any
 * separators (as a voice call's TwiML spaces them). Over real HTTP on Express and Koa, with
 * custom senders that fail the way a careless provider wrapper does.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { OtpEventMap, OtpOptions } from '../../src/index.js';
import { frameworks } from '../helpers/apps.js';
import { Client } from '../helpers/client.js';

const PHONE = '4155550142';
const ADDRESS = 'John.Smith@Example.com';

/** Every writing of the number a provider may echo. */
const phoneWritings = [
  '+14155550142',
  '14155550142',
  '4155550142',
  '(415) 555-0142',
  '415-555-0142',
  '415.555.0142',
  '+1 415 555 0142',
  '1-415-555-0142',
  '+1 (415) 555-0142',
  '415 555 0142',
  '555-0142',
  '5550142',
];
/** Every writing of the code a provider may echo. */
const codeWritings = (code: string) => {
  const d = [...code];
  return [
    code,
    d.join(' '),
    `${d.join('. ')}.`,
    d.join(', '),
    `${code.slice(0, 3)} ${code.slice(3)}`,
    `${code.slice(0, 3)}-${code.slice(3)}`,
    d.map((x) => `<Say>${x}</Say>`).join('<Pause length="1"/>'),
  ];
};

/** Codes the failing senders were handed. */
const handed: string[] = [];

/** A sender that always fails with an error echoing the message in many writings. */
const echoing = (describe: (m: { to: string; code: string }) => string) => ({
  async send(message: { to: string; code: string }) {
    handed.push(message.code);
    throw new Error(describe(message));
  },
});

for (const [framework, makeApp] of frameworks.slice(0, 2)) {
  describe(`scrubbing a sender's error (${framework})`, () => {
    it('removes the number, the address and the code in every writing from delivery_failed and the log', async () => {
      const lines: string[] = [];
      const keep = (details: object, message?: string) => void lines.push(JSON.stringify(details) + (message ?? ''));
      const smsEcho = (m: { to: string; code: string }) =>
        `carrier refused ${phoneWritings.join(' / ')} for "${codeWritings(m.code).join(' | ')}" (got ${m.to.slice(1)})`;
      const emailEcho = (m: { to: string; code: string }) =>
        `550 mailbox ${m.to.toUpperCase()} unknown; JOHN.SMITH@example.COM; john.smith; body had ${codeWritings(m.code).join(' / ')}`;
      const app = await makeApp({
        otp: {
          resolveUser: (username: string) => (username === 'john.smith' ? { smsTo: PHONE, emailTo: ADDRESS } : null),
          sms: echoing(smsEcho),
          email: echoing(emailEcho),
          voice: echoing((m) => `<Response>${codeWritings(m.code).at(-1)}</Response> to ${phoneWritings[3]}`),
          deliveryRetries: 0,
          resendCooldownSeconds: 0,
          logger: { info: keep, warn: keep, error: keep },
        } as Partial<OtpOptions>,
      });
      const failures: Array<OtpEventMap['delivery_failed']> = [];
      app.service.on('delivery_failed', (event) => void failures.push(event));
      handed.length = 0;
      try {
        const client = new Client(app.url);
        assert.equal((await client.post('/otp/send', { username: 'john.smith' })).status, 202);
        assert.equal((await client.post('/otp/send', { username: 'john.smith', channel: 'voice' })).status, 202);
        for (let i = 0; i < 50 && failures.length < 3; i++) await new Promise((resolve) => setTimeout(resolve, 20));
        assert.equal(failures.length, 3, 'sms, email and voice each failed once');
        const text = [...failures.map((f) => f.reason), ...lines].join('\n');
        for (const writing of phoneWritings) assert.ok(!text.includes(writing), `no ${writing} in ${text}`);
        assert.ok(!/john\.smith@example\.com/i.test(text), 'no address in any case');
        assert.ok(!/john\.smith;/i.test(text), 'no local part in any case');
        // The reason is still useful: what failed, with the destination masked.
        assert.match(failures.find((f) => f.channel === 'sms')?.reason ?? '', /carrier refused \+1\*+0142/);
        assert.match(failures.find((f) => f.channel === 'email')?.reason ?? '', /550 mailbox j\*+@example\.com unknown/i);
        assert.equal(handed.length, 3);
        for (const code of handed) {
          for (const writing of codeWritings(code)) assert.ok(!text.includes(writing), `no ${writing} in ${text}`);
          assert.doesNotMatch(text, new RegExp([...code].join('\\D{0,48}')), 'no spacing of the code at all (digits and separators)');
        }
        for (const failure of failures) assert.match(failure.reason, /\[code\]/, 'the code was replaced, not dropped silently');
      } finally {
        await app.close();
      }
    });
  });
}
