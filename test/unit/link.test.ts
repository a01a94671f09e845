/**
 * The sign-in link beyond the HTTP contract: the option's checks, the email in every bundled
 * locale, `requireOtp({ methods: ['link'] })`, the verification metric, and no token in any
 * log line, event, metric or span.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Registry } from 'prom-client';
import express from 'express';
import session from 'express-session';
import type { AddressInfo } from 'node:net';
import { blockidOtp, memoryStore, requireOtp } from '../../src/index.js';
import { createOtpService } from '../../src/core/service.js';
import { prometheusMetrics } from '../../src/metrics.js';
import { baseOptions, closeServer, expressApp, users } from '../helpers/apps.js';
import { captureSenders } from '../helpers/capture.js';
import { Client } from '../helpers/client.js';
import { askCode, LINK_URL, postLink, tokenIn } from '../helpers/link-contract.js';

const link = { url: LINK_URL };

describe('the link option', () => {
  const make = (value: unknown) => () => createOtpService({ ...baseOptions(captureSenders()), link: value as never }, 'blockidOtp');
  it('accepts an absolute http(s) URL and a same-origin redirectTo', () => {
    assert.doesNotThrow(make({ url: 'https://app.example/otp/link', redirectTo: '/account' }));
    assert.equal(make({ url: 'https://app.example/otp/link' })().options.link?.redirectTo, '/');
  });
  for (const [why, value, pattern] of [
    ['a relative url', { url: '/otp/link' }, /"link.url" must be the absolute http\(s\) URL/],
    ['another scheme', { url: 'javascript:alert(1)' }, /"link.url"/],
    ['a query string', { url: 'https://app.example/otp/link?x=1' }, /without query or fragment/],
    ['a protocol-relative redirectTo', { url: 'https://app.example/otp/link', redirectTo: '//evil.example' }, /"link.redirectTo" must be a path on this site/],
    ['a backslash redirectTo', { url: 'https://app.example/otp/link', redirectTo: '/\\evil.example' }, /"link.redirectTo"/],
    ['an unknown key', { url: 'https://app.example/otp/link', redirect: '/' }, /unknown link option "redirect": did you mean "redirectTo"\?/],
    ['not an object', 'https://app.example/otp/link', /"link" must be an object/],
  ] as const) {
    it(`refuses ${why} with a TypeError naming the option`, () =>
      assert.throws(make(value), (error: Error) => error instanceof TypeError && pattern.test(error.message) && error.message.startsWith('blockidOtp:')));
  }
});

describe('GET and HEAD of a link touch no store', () => {
  it('50 GETs and HEADs call no store operation at all (the real memory store, its calls recorded)', async () => {
    const calls: string[] = [];
    const real = memoryStore();
    const recorded = new Proxy(real, {
      get: (target, name, receiver) => {
        const value = Reflect.get(target, name, receiver);
        return typeof value === 'function' ? (...args: unknown[]) => (calls.push(String(name)), value.apply(target, args)) : value;
      },
    });
    const app = await expressApp({ otp: { link, store: recorded } });
    try {
      const client = new Client(app.url);
      const { token } = await askCode(app, client);
      calls.length = 0;
      for (let i = 0; i < 25; i += 1) {
        assert.equal((await client.get(`/otp/link?t=${token}`)).status, 200);
        assert.equal((await new Client(app.url).request('HEAD', `/otp/link?t=${token}`)).status, 200);
      }
      assert.deepEqual(calls, []);
      assert.equal((await postLink(client, { t: token })).status, 303);
      assert.deepEqual(calls, ['verify'], 'the POST of the session that asked: one verify');
    } finally {
      await app.close();
    }
  });
});

/** An Express app with a logger, metrics and tracing, and routes guarded by method. */
async function linkApp(capture = captureSenders()) {
  const lines: string[] = [];
  const log = (level: string) => (object: object, message: string) => void lines.push(`${level} ${JSON.stringify(object)} ${message}`);
  const registry = new Registry();
  const app = express();
  app.use(session({ secret: 'session-secret-for-tests', resave: false, saveUninitialized: false }));
  const otp = blockidOtp({
    ...baseOptions(capture),
    link,
    logger: { info: log('info'), warn: log('warn'), error: log('error') },
    metrics: prometheusMetrics({ registry }),
    resolveUser: (username) => (username === 'marie.curie' ? { emailTo: 'marie@example.ca', locale: 'fr-CA' } : (users[username] ?? null)),
  });
  const events: string[] = [];
  for (const name of ['sent', 'verified', 'failed', 'locked', 'rate_limited', 'delivery_failed'] as const)
    otp.on(name, (event) => void events.push(JSON.stringify(event)));
  app.use(otp);
  app.get('/link-only', requireOtp({ methods: ['link'] }), (_req, res) => void res.json({ ok: true }));
  app.get('/code-only', requireOtp({ methods: ['code'] }), (_req, res) => void res.json({ ok: true }));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, capture, lines, events, registry, close: () => closeServer(server) };
}

describe('the sign-in link on Express with a logger, metrics and tracing', () => {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  let app: Awaited<ReturnType<typeof linkApp>>;
  before(async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(provider);
    app = await linkApp();
  });
  after(async () => {
    await app?.close();
    trace.disable();
    context.disable();
    await provider.shutdown();
  });

  it("every bundled locale's email holds the code and the link (text: the URL; HTML: a button); SMS has no link", async () => {
    const client = new Client(app.url);
    for (const [username, phrase] of [
      ['ada.lovelace', /Sign in/],
      ['marie.curie', /Se connecter/],
    ] as const) {
      assert.equal((await client.post('/otp/send', { username, channel: 'email' })).status, 202);
      const to = username === 'ada.lovelace' ? 'ada@example.com' : 'marie@example.ca';
      const sent = (await app.capture.waitForMessage((m) => m.to === to)) as unknown as { text: string; html: string; code: string };
      const token = tokenIn(sent.text);
      assert.ok(sent.text.includes(sent.code) && sent.text.includes(`${LINK_URL}?t=${token}`));
      assert.ok(sent.html.includes(sent.code));
      assert.match(sent.html, new RegExp(`<a href="${LINK_URL}\\?t=${token}"[^>]*>${phrase.source}</a>`));
      assert.ok(token.length >= 22 + 54, 'at least 128 random bits and the record reference');
    }
    assert.equal((await client.post('/otp/send', { username: 'grace.hopper', channel: 'sms' })).status, 202);
    const sms = await app.capture.waitForMessage((m) => m.channel === 'sms');
    assert.doesNotMatch((sms as { body: string }).body, /\?t=/);
  });

  it('requireOtp({ methods: ["link"] }) accepts a link sign-in, and /otp/status reports method "link"', async () => {
    const client = new Client(app.url);
    const { token } = await askCode(app as never, client, 'john.smith');
    assert.equal((await client.get('/link-only', 'application/json')).status, 401);
    assert.equal((await postLink(client, { t: token })).status, 303);
    assert.equal((await client.get('/link-only', 'application/json')).status, 200);
    assert.equal((await client.get('/code-only', 'application/json')).status, 401);
    assert.equal((await client.get('/otp/status')).body.method, 'link');
  });

  it('counts blockid_otp_verifications_total{method="link"}, and no token reaches a log line, event, metric or span', async () => {
    const client = new Client(app.url);
    const tokens: string[] = [];
    const first = await askCode(app as never, client, 'john.smith');
    tokens.push(first.token);
    await postLink(client, { t: `${first.token.slice(0, 5)}AAAA${first.token.slice(9)}` }); // a wrong guess
    assert.equal((await postLink(client, { t: first.token })).status, 303);
    await postLink(new Client(app.url), { t: first.token });
    const scrape = await app.registry.metrics();
    assert.match(scrape, /blockid_otp_verifications_total\{method="link",result="verified"\} [1-9]/);
    assert.match(scrape, /blockid_otp_verifications_total\{method="link",result="invalid"\} [1-9]/);
    for (const message of app.capture.messages) if (message.channel === 'email') tokens.push(tokenIn((message as { text: string }).text));
    const spans = JSON.stringify(exporter.getFinishedSpans().map((span) => ({ name: span.name, attributes: span.attributes, events: span.events })));
    assert.ok(spans.includes('"blockid_otp.method":"link"'), 'the link verify is traced');
    for (const token of tokens) {
      for (const [where, text] of [
        ['log', app.lines.join('\n')],
        ['event', app.events.join('\n')],
        ['metric', scrape],
        ['span', spans],
      ] as const) {
        assert.ok(!text.includes(token) && !text.includes(token.slice(0, 22)), `no token in a ${where}`);
      }
    }
    assert.ok(app.events.some((event) => event.includes('"method":"link"')));
  });
});
