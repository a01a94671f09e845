/**
 * Spend: every provider request that may be billed counts in the SMS/voice spend breakers,
 * retries and fallbacks included, so an attacker who makes a provider fail (or answer slowly)
 * cannot multiply the app's bill past `smsPerHour` / `voicePerHour`. Over real HTTP on Express
 * and Koa, on memory, Redis, Redis Cluster and PostgreSQL (the breakers live in the store), with senders
 * that fail retryably, as Twilio's 503 does, and count every request.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { OtpError, type OtpOptions } from '../../src/index.js';
import { Client } from '../helpers/client.js';
import { describeOnStores } from '../helpers/store-matrix.js';

const SENDS = 10;
const SMS_PER_HOUR = 12; // SMS and WhatsApp share it
const VOICE_PER_HOUR = 3;

/** A sender that counts each request and fails it retryably. */
function failing(requests: string[], channel: string) {
  return {
    async send() {
      requests.push(channel);
      throw new OtpError('DELIVERY_FAILED', 'Twilio is unavailable (HTTP 503)', { retryable: true, cause: { provider: 'twilio', status: 503 } });
    },
  };
}

describeOnStores('every billable provider request counts in the spend breakers', ({ framework, makeApp, storeName, store }) => {
  it(`fallback [whatsapp, sms, voice] with a retry, ${SENDS} sends to one number: at most ${SMS_PER_HOUR} SMS/WhatsApp and ${VOICE_PER_HOUR} voice requests (${framework}, ${storeName})`, async () => {
    const requests: string[] = [];
    const app = await makeApp({
      otp: {
        store: store(),
        resolveUser: (username: string) => (username.startsWith('victim') ? { smsTo: '4155550142' } : null),
        sms: failing(requests, 'sms'),
        whatsapp: failing(requests, 'whatsapp'),
        voice: failing(requests, 'voice'),
        fallback: ['whatsapp', 'sms', 'voice'],
        deliveryRetries: 1,
        deliveryTimeoutMs: 5_000,
        awaitDelivery: true,
        limits: {
          smsPerHour: SMS_PER_HOUR,
          voicePerHour: VOICE_PER_HOUR,
          sendsPerUsername: { points: 100, windowSeconds: 3600 },
          sendsPerDestination: { points: 100, windowSeconds: 3600 },
        },
      } as Partial<OtpOptions>,
    });
    try {
      const answers = await Promise.all(
        Array.from({ length: SENDS }, (_, i) => new Client(app.url).post('/otp/send', { username: `victim.${i}`, channel: 'whatsapp' })),
      );
      const statuses = answers.map((a) => a.status);
      assert.ok(
        statuses.every((status) => status === 502 || status === 429),
        JSON.stringify(statuses),
      );
      const admitted = statuses.filter((status) => status === 502).length;
      const count = (channel: string) => requests.filter((c) => c === channel).length;
      const messages = count('sms') + count('whatsapp');
      console.log(
        `# ${framework}/${storeName}: ${admitted} admitted sends made ${requests.length} provider requests: ${count('whatsapp')} WhatsApp, ${count('sms')} SMS, ${count('voice')} voice`,
      );
      assert.ok(admitted >= 1);
      assert.ok(messages <= SMS_PER_HOUR, `${messages} SMS/WhatsApp requests for a breaker of ${SMS_PER_HOUR}`);
      assert.ok(count('voice') <= VOICE_PER_HOUR, `${count('voice')} voice requests for a breaker of ${VOICE_PER_HOUR}`);
      assert.ok(messages === SMS_PER_HOUR && count('voice') === VOICE_PER_HOUR, 'and the breakers were spent to the last request, no further');
      // The breaker now refuses a new SMS send outright.
      const after = await new Client(app.url).post('/otp/send', { username: 'victim.late', channel: 'sms' });
      assert.equal(after.status, 429);
      assert.equal(after.body.error, 'rate_limited');
    } finally {
      await app.close();
    }
  });
});
