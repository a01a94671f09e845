/**
 * Measured: a probe sent right after the 202 of `POST /otp/send` tells known from unknown users
 * no better than 55 % of the time from one request. The app runs in its own process
 * (test/fixtures/timing-app.ts) on Express and on Koa, with the real `twilio` SDK against a fake
 * of Twilio's Messages API and nodemailer against a local SMTP server, both in this process.
 *
 * One trial: a fresh username (known or unknown, in random order), `POST /otp/send` with no
 * session cookie on one keep-alive connection and, the moment its 202 arrives, `GET /otp/status`
 * on a second keep-alive connection; the probe's latency is what an attacker reads. The
 * classifier is fixed in advance, not fitted to the data: slower than the overall median means
 * known. With N trials and no leak its accuracy is 0.5 with σ = sqrt(0.25 / N); at N = 800 the
 * 0.55 bound is 2.8 σ away (a false failure about once in 400 runs). Noise from a busy machine
 * only makes the classes look more alike, so the control (the same probe against a route that
 * spins 1 ms after its reply for known users, as the delivery once did) shows the probe can
 * see a leak of that size on the same machine at the same moment.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { once } from 'node:events';
import { Agent, createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { AddressObject } from 'mailparser';
import { testAccountSid } from './helpers/prism.js';
import { startRuntimeApp, type RuntimeApp } from './helpers/runtimes.js';
import { startSmtpSink, type SmtpSink } from './helpers/smtp.js';

const fixture = fileURLToPath(new URL('./fixtures/timing-app.ts', import.meta.url));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Trials per class (known, unknown) that count, after the warm-up. */
const TRIALS_PER_CLASS = 400;
const CONTROL_TRIALS_PER_CLASS = 300;
const WARM_UP_PER_CLASS = 20;
const MAX_ACCURACY = 0.55;
const MIN_CONTROL_ACCURACY = 0.7;
/** A slow, shared machine may need far longer than the ~30 s a run usually takes. */
const TEST_TIMEOUT_MS = 300_000;

interface TwilioFake {
  url: string;
  /** `To` of every Messages create call, in arrival order. */
  messages: string[];
  stop(): Promise<void>;
}

/** Twilio's Messages create endpoint, answered at once with a 201 shaped like Twilio's. */
async function startTwilioFake(): Promise<TwilioFake> {
  const messages: string[] = [];
  const messagesPath = `/2010-04-01/Accounts/${testAccountSid}/Messages.json`;
  const server: Server = createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (raw += chunk));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== messagesPath) {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 20404, message: 'Not Found', status: 404 }));
        return;
      }
      const form = new URLSearchParams(raw);
      const to = form.get('To') ?? '';
      messages.push(to);
      const now = new Date().toUTCString();
      const sid = `SM${randomInt(2 ** 47).toString(16).padStart(32, '0')}`;
      res.writeHead(201, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          sid, account_sid: testAccountSid, to, from: form.get('From'), body: form.get('Body'), status: 'queued',
          num_segments: '1', direction: 'outbound-api', api_version: '2010-04-01', price: null, price_unit: 'USD',
          date_created: now, date_updated: now, date_sent: null, error_code: null, error_message: null,
          uri: `/2010-04-01/Accounts/${testAccountSid}/Messages/${sid}.json`,
        }),
      );
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    messages,
    stop: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** One keep-alive connection each: the sends on one, the probes on the other. */
class Connections {
  readonly send = new Agent({ keepAlive: true, maxSockets: 1 });
  readonly probe = new Agent({ keepAlive: true, maxSockets: 1 });
  constructor(readonly url: string) {}
  close(): void {
    this.send.destroy();
    this.probe.destroy();
  }
}

/**
 * POSTs to `sendPath` with no cookie and, in the callback where its response head arrives,
 * sends `GET /otp/status` on the probe connection; resolves with the send's status and the
 * probe's latency in milliseconds (request written to response fully read).
 */
function trial(connections: Connections, sendPath: string, body: string): Promise<{ status: number; probeMs: number }> {
  const { url } = connections;
  return new Promise((resolve, reject) => {
    const send = request(`${url}${sendPath}`, {
      method: 'POST',
      agent: connections.send,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    send.on('error', reject);
    send.on('response', (sent: IncomingMessage) => {
      const probe = request(`${url}/otp/status`, { agent: connections.probe });
      const startedAt = performance.now();
      probe.on('error', reject);
      probe.on('response', (answer: IncomingMessage) => {
        answer.resume();
        answer.on('end', () => {
          const probeMs = performance.now() - startedAt;
          if (answer.statusCode !== 200) reject(new Error(`GET /otp/status answered ${answer.statusCode}`));
          else resolve({ status: sent.statusCode ?? 0, probeMs });
        });
      });
      probe.end();
      sent.resume();
    });
    send.end(body);
  });
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length / 2;
  return sorted.length % 2 === 1 ? sorted[Math.floor(middle)]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

interface Measurement {
  known: number[];
  unknown: number[];
  knownUsernames: string[];
  accuracy: number;
  seconds: number;
}

/**
 * `perClass` counted trials of each class after a warm-up, each pair of trials one known and
 * one unknown in random order, with a random 5-25 ms gap between trials. `path(username)` is
 * the send's path and body.
 */
async function measure(
  connections: Connections,
  perClass: number,
  send: (username: string) => { path: string; body: string },
  tag: string,
): Promise<Measurement> {
  const startedAt = performance.now();
  const samples = { known: [] as number[], unknown: [] as number[] };
  const knownUsernames: string[] = [];
  for (let pair = 0; pair < WARM_UP_PER_CLASS + perClass; pair += 1) {
    const order = randomInt(2) === 0 ? (['known', 'unknown'] as const) : (['unknown', 'known'] as const);
    for (const kind of order) {
      const username = `${kind}-${tag}-${pair}`;
      if (kind === 'known') knownUsernames.push(username);
      const { path, body } = send(username);
      const { status, probeMs } = await trial(connections, path, body);
      assert.equal(status, 202, `${username}: the send answered ${status}`);
      if (pair >= WARM_UP_PER_CLASS) samples[kind].push(probeMs);
      await sleep(5 + randomInt(21));
    }
  }
  const threshold = median([...samples.known, ...samples.unknown]);
  const right = samples.known.filter((ms) => ms > threshold).length + samples.unknown.filter((ms) => ms <= threshold).length;
  return {
    ...samples,
    knownUsernames,
    accuracy: right / (samples.known.length + samples.unknown.length),
    seconds: (performance.now() - startedAt) / 1000,
  };
}

function report(t: TestContext, label: string, m: Measurement): void {
  const ms = (value: number) => value.toFixed(3);
  t.diagnostic(
    `${label}: accuracy ${(m.accuracy * 100).toFixed(1)} % over N = ${m.known.length + m.unknown.length} ` +
      `(${m.known.length} known, ${m.unknown.length} unknown); probe median known ${ms(median(m.known))} ms, ` +
      `unknown ${ms(median(m.unknown))} ms; ${m.seconds.toFixed(1)} s`,
  );
}

const emailRecipients = (sink: SmtpSink): string[] =>
  sink.messages.flatMap((mail) => {
    const to: AddressObject[] = mail.to === undefined ? [] : Array.isArray(mail.to) ? mail.to : [mail.to];
    return to.flatMap(({ value }) => value.map(({ address }) => address ?? ''));
  });

/** Waits until `count()` reaches `expected` (then a little longer, so that any extra would show). */
async function settle(count: () => number, expected: number, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (count() < expected && performance.now() < deadline) await sleep(50);
  assert.ok(count() >= expected, `${what}: ${count()} of ${expected} arrived within ${timeoutMs} ms`);
  await sleep(1_000);
}

for (const framework of ['express', 'koa']) {
  describe(`a probe right after the 202 does not tell known users (${framework}, app in its own process)`, () => {
    let twilio: TwilioFake;
    let smtp: SmtpSink;
    let app: RuntimeApp;
    let connections: Connections;

    before(async () => {
      twilio = await startTwilioFake();
      smtp = await startSmtpSink();
      app = await startRuntimeApp('node', fixture, { TIMING_TWILIO_URL: twilio.url, TIMING_SMTP_URL: smtp.url }, /\{"listening":(\d+)\}/);
      connections = new Connections(app.url);
    });

    after(async () => {
      connections?.close();
      await app?.close();
      await smtp?.stop();
      await twilio?.stop();
    });

    it(`known from unknown no better than ${Math.round(MAX_ACCURACY * 100)} % from one probe, with real deliveries`, { timeout: TEST_TIMEOUT_MS }, async (t) => {
      const m = await measure(connections, TRIALS_PER_CLASS, (username) => ({ path: '/otp/send', body: JSON.stringify({ username }) }), 'otp');
      report(t, `${framework} /otp/send`, m);

      const expected = m.knownUsernames.length;
      await settle(() => Math.min(twilio.messages.length, smtp.messages.length), expected, 'deliveries');
      assert.equal(twilio.messages.length, expected, 'one SMS per known user, none for unknown ones');
      assert.ok(twilio.messages.every((to) => to === '+14155550100'), 'every SMS went to the known users\' number');
      assert.deepEqual(emailRecipients(smtp).sort(), m.knownUsernames.map((username) => `${username}@example.com`).sort(), 'one email per known user, none for unknown ones');
      t.diagnostic(`${framework}: delivered ${twilio.messages.length} SMS and ${smtp.messages.length} emails for ${expected} known users`);
      assert.equal(app.stderr(), '', 'the app wrote nothing to stderr');

      assert.ok(m.accuracy <= MAX_ACCURACY, `a probe told known from unknown users ${(m.accuracy * 100).toFixed(1)} % of the time`);
    });

    it(`control: the same probe sees 1 ms of work after the reply (at least ${Math.round(MIN_CONTROL_ACCURACY * 100)} %)`, { timeout: TEST_TIMEOUT_MS }, async (t) => {
      const m = await measure(connections, CONTROL_TRIALS_PER_CLASS, (username) => ({ path: `/control/send?username=${username}`, body: '{}' }), 'control');
      report(t, `${framework} control`, m);
      assert.ok(m.accuracy >= MIN_CONTROL_ACCURACY, `the probe told the control's known users ${(m.accuracy * 100).toFixed(1)} % of the time`);
    });
  });
}
