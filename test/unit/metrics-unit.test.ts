/** prometheusMetrics() on a real prom-client Registry: names, exact values, prefix, registries, label guards. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Counter, Gauge, Registry, register as defaultRegistry } from 'prom-client';
import { prometheusMetrics } from '../../src/metrics.js';
import type { Channel, OtpMetrics } from '../../src/core/types.js';
import { parseScrape, sampleValue, type Sample } from '../helpers/prom-scrape.js';

const parse = parseScrape;
const value = sampleValue;

async function scrape(registry: Registry): Promise<Sample[]> {
  return parse(await registry.metrics());
}

/** One of everything, the way the core reports a scripted run. */
function script(metrics: OtpMetrics): void {
  metrics.send('sms', 'sent', '415');
  metrics.send('sms', 'sent', '415');
  metrics.send('email', 'sent', '');
  metrics.send('sms', 'rate_limited', '212');
  metrics.send('whatsapp', 'test', '604');
  metrics.unknownUserSend();
  metrics.unknownUserSend();
  metrics.rateLimited('resendCooldownSeconds');
  metrics.rateLimited('smsPerPrefix');
  metrics.rateLimited('smsPerPrefix');
  metrics.delivery('sms', 'delivered', 0.3);
  metrics.delivery('sms', 'failed', 12);
  metrics.delivery('email', 'delivered', 0.04);
  metrics.verification('code', 'invalid');
  metrics.verification('code', 'invalid');
  metrics.verification('code', 'verified');
  metrics.verification('totp', 'locked');
  metrics.verification('recovery', 'burned');
  metrics.lock('timed');
  metrics.lock('permanent');
  metrics.timeToVerify(7);
  metrics.timeToVerify(42);
  metrics.timeToVerify(900);
}

describe('prometheusMetrics: every sink method, scraped from a real registry', () => {
  const registry = new Registry();
  const metrics = prometheusMetrics({ registry });
  script(metrics);

  it('exposes the registry it registered in', () => {
    assert.equal(metrics.registry, registry);
  });

  it('counts sends by channel, outcome and area code', async () => {
    const s = await scrape(registry);
    assert.equal(value(s, 'blockid_otp_sends_total', { channel: 'sms', outcome: 'sent', npa: '415' }), 2);
    assert.equal(value(s, 'blockid_otp_sends_total', { channel: 'email', outcome: 'sent', npa: '' }), 1);
    assert.equal(value(s, 'blockid_otp_sends_total', { channel: 'sms', outcome: 'rate_limited', npa: '212' }), 1);
    assert.equal(value(s, 'blockid_otp_sends_total', { channel: 'whatsapp', outcome: 'test', npa: '604' }), 1);
    assert.equal(s.filter((x) => x.name === 'blockid_otp_sends_total').length, 4);
  });

  it('counts decoy sends and refusals by limit (the other limits at 0)', async () => {
    const s = await scrape(registry);
    assert.equal(value(s, 'blockid_otp_unknown_user_sends_total'), 2);
    assert.equal(value(s, 'blockid_otp_rate_limited_total', { limit: 'resendCooldownSeconds' }), 1);
    assert.equal(value(s, 'blockid_otp_rate_limited_total', { limit: 'smsPerPrefix' }), 2);
    for (const limit of ['sendsPerUsername', 'sendsPerDestination', 'sendsPerIp', 'smsPerHour', 'smsPerDay']) {
      assert.equal(value(s, 'blockid_otp_rate_limited_total', { limit }), 0, limit);
    }
  });

  it('counts deliveries and their durations by channel, with the configured buckets', async () => {
    const s = await scrape(registry);
    assert.equal(value(s, 'blockid_otp_deliveries_total', { channel: 'sms', result: 'delivered' }), 1);
    assert.equal(value(s, 'blockid_otp_deliveries_total', { channel: 'sms', result: 'failed' }), 1);
    assert.equal(value(s, 'blockid_otp_deliveries_total', { channel: 'email', result: 'delivered' }), 1);
    assert.equal(value(s, 'blockid_otp_delivery_duration_seconds_count', { channel: 'sms' }), 2);
    assert.equal(value(s, 'blockid_otp_delivery_duration_seconds_sum', { channel: 'sms' }), 12.3);
    assert.equal(value(s, 'blockid_otp_delivery_duration_seconds_count', { channel: 'email' }), 1);
    assert.equal(value(s, 'blockid_otp_delivery_duration_seconds_bucket', { channel: 'email', le: '0.05' }), 1);
    assert.equal(value(s, 'blockid_otp_delivery_duration_seconds_bucket', { channel: 'sms', le: '0.5' }), 1);
    assert.equal(value(s, 'blockid_otp_delivery_duration_seconds_bucket', { channel: 'sms', le: '10' }), 1);
    assert.equal(value(s, 'blockid_otp_delivery_duration_seconds_bucket', { channel: 'sms', le: '30' }), 2);
    const les = s.filter((x) => x.name === 'blockid_otp_delivery_duration_seconds_bucket' && x.labels.channel === 'sms').map((x) => x.labels.le);
    assert.deepEqual(les, ['0.05', '0.1', '0.25', '0.5', '1', '2', '5', '10', '20', '30', '+Inf']);
  });

  it('counts verifications by method and result, every pair present from the start', async () => {
    const s = await scrape(registry);
    assert.equal(value(s, 'blockid_otp_verifications_total', { method: 'code', result: 'invalid' }), 2);
    assert.equal(value(s, 'blockid_otp_verifications_total', { method: 'code', result: 'verified' }), 1);
    assert.equal(value(s, 'blockid_otp_verifications_total', { method: 'totp', result: 'locked' }), 1);
    assert.equal(value(s, 'blockid_otp_verifications_total', { method: 'recovery', result: 'burned' }), 1);
    assert.equal(value(s, 'blockid_otp_verifications_total', { method: 'totp', result: 'verified' }), 0);
    assert.equal(s.filter((x) => x.name === 'blockid_otp_verifications_total').length, 16);
  });

  it('counts locks by kind and times verifications from 5 s to 600 s and beyond', async () => {
    const s = await scrape(registry);
    assert.equal(value(s, 'blockid_otp_locks_total', { kind: 'timed' }), 1);
    assert.equal(value(s, 'blockid_otp_locks_total', { kind: 'permanent' }), 1);
    assert.equal(value(s, 'blockid_otp_time_to_verify_seconds_count'), 3);
    assert.equal(value(s, 'blockid_otp_time_to_verify_seconds_sum'), 949);
    assert.equal(value(s, 'blockid_otp_time_to_verify_seconds_bucket', { le: '5' }), 0);
    assert.equal(value(s, 'blockid_otp_time_to_verify_seconds_bucket', { le: '10' }), 1);
    assert.equal(value(s, 'blockid_otp_time_to_verify_seconds_bucket', { le: '45' }), 2);
    assert.equal(value(s, 'blockid_otp_time_to_verify_seconds_bucket', { le: '600' }), 2);
    assert.equal(value(s, 'blockid_otp_time_to_verify_seconds_bucket', { le: '+Inf' }), 3);
  });

  it('declares each metric with its type and a help text', async () => {
    const text = await registry.metrics();
    const types: Record<string, string> = {
      sends_total: 'counter',
      unknown_user_sends_total: 'counter',
      rate_limited_total: 'counter',
      deliveries_total: 'counter',
      delivery_duration_seconds: 'histogram',
      verifications_total: 'counter',
      locks_total: 'counter',
      time_to_verify_seconds: 'histogram',
      verified_sends_total: 'counter',
    };
    for (const [suffix, type] of Object.entries(types)) {
      assert.match(text, new RegExp(`^# TYPE blockid_otp_${suffix} ${type}$`, 'm'));
      assert.match(text, new RegExp(`^# HELP blockid_otp_${suffix} \\S.{10,}$`, 'm'));
    }
    const names = new Set([...text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]));
    assert.deepEqual(names, new Set(Object.keys(types).map((suffix) => `blockid_otp_${suffix}`)));
  });
});

describe('prometheusMetrics: registries and prefixes', () => {
  it('uses prom-client’s default registry when none is given, and reuses it on a second call', async () => {
    try {
      const first = prometheusMetrics();
      const second = prometheusMetrics();
      assert.equal(first.registry, defaultRegistry);
      first.unknownUserSend();
      second.unknownUserSend();
      assert.equal(value(parse(await defaultRegistry.metrics()), 'blockid_otp_unknown_user_sends_total'), 2);
    } finally {
      defaultRegistry.clear();
    }
  });

  it('reuses the metrics already in a registry instead of throwing "already registered"', async () => {
    const registry = new Registry();
    const first = prometheusMetrics({ registry });
    first.verification('code', 'verified');
    const second = prometheusMetrics({ registry });
    second.verification('code', 'verified');
    const s = await scrape(registry);
    assert.equal(value(s, 'blockid_otp_verifications_total', { method: 'code', result: 'verified' }), 2, 'the second call keeps the first call’s counts');
  });

  it('keeps two instances on two registries independent', async () => {
    const a = new Registry();
    const b = new Registry();
    const ma = prometheusMetrics({ registry: a });
    const mb = prometheusMetrics({ registry: b });
    ma.send('sms', 'sent', '415');
    ma.delivery('sms', 'delivered', 1);
    mb.lock('permanent');
    const [sa, sb] = [await scrape(a), await scrape(b)];
    assert.equal(value(sa, 'blockid_otp_sends_total', { channel: 'sms', outcome: 'sent', npa: '415' }), 1);
    assert.equal(value(sb, 'blockid_otp_sends_total', { channel: 'sms', outcome: 'sent', npa: '415' }), undefined);
    assert.equal(value(sa, 'blockid_otp_delivery_duration_seconds_count', { channel: 'sms' }), 1);
    assert.equal(value(sb, 'blockid_otp_delivery_duration_seconds_count', { channel: 'sms' }), undefined);
    assert.equal(value(sa, 'blockid_otp_locks_total', { kind: 'permanent' }), 0);
    assert.equal(value(sb, 'blockid_otp_locks_total', { kind: 'permanent' }), 1);
    assert.equal(defaultRegistry.getSingleMetric('blockid_otp_sends_total'), undefined, 'nothing leaks into the default registry');
  });

  it('replaces blockid_otp_ with `prefix`', async () => {
    const registry = new Registry();
    const metrics = prometheusMetrics({ registry, prefix: 'myapp_otp_' });
    script(metrics);
    const s = await scrape(registry);
    assert.equal(value(s, 'myapp_otp_sends_total', { channel: 'sms', outcome: 'sent', npa: '415' }), 2);
    assert.equal(value(s, 'myapp_otp_time_to_verify_seconds_count'), 3);
    assert.ok(s.every((x) => x.name.startsWith('myapp_otp_')));
    assert.doesNotMatch(await registry.metrics(), /blockid_otp_/);
  });

  it('lets two prefixes share one registry', async () => {
    const registry = new Registry();
    prometheusMetrics({ registry }).unknownUserSend();
    prometheusMetrics({ registry, prefix: 'tenant_b_' }).lock('timed');
    const s = await scrape(registry);
    assert.equal(value(s, 'blockid_otp_unknown_user_sends_total'), 1);
    assert.equal(value(s, 'tenant_b_unknown_user_sends_total'), 0);
    assert.equal(value(s, 'tenant_b_locks_total', { kind: 'timed' }), 1);
  });

  const refused: Array<[string, unknown, RegExp]> = [
    ['a prefix starting with a digit', { prefix: '1otp_' }, /`prefix` "1otp_" is not a valid Prometheus name/],
    ['a prefix with a dash', { prefix: 'my-app_' }, /`prefix` "my-app_" is not a valid Prometheus name/],
    ['a prefix with a space', { prefix: 'my app_' }, /not a valid Prometheus name/],
    ['a prefix without a trailing underscore', { prefix: 'myapp' }, /did you mean "myapp_"\?/],
    ['a prefix that is not a string', { prefix: 42 }, /option "prefix" must be a string such as 'myapp_otp_' \(got the number 42\)/],
    ['a registry that is not a Registry', { registry: {} }, /`registry` must be a prom-client Registry/],
    ['an unknown option', { register: new Registry() }, /unknown option "register": did you mean "registry"\?/],
    ['no options object', null, /expected an options object/],
  ];
  for (const [what, options, message] of refused) {
    it(`refuses ${what} with a TypeError`, () => {
      assert.throws(
        () => prometheusMetrics(options as never),
        (error: unknown) => error instanceof TypeError && message.test(error.message),
      );
    });
  }

  it('refuses a registry holding a different metric under one of its names', () => {
    const labels = new Registry();
    new Counter({ name: 'blockid_otp_locks_total', help: 'the app’s own', labelNames: ['reason'], registers: [labels] });
    assert.throws(
      () => prometheusMetrics({ registry: labels }),
      /already holds a different metric named blockid_otp_locks_total \(not a counter with labels \[kind\]\)/,
    );
    const type = new Registry();
    new Gauge({ name: 'blockid_otp_sends_total', help: 'the app’s own', labelNames: ['channel', 'outcome', 'npa'], registers: [type] });
    assert.throws(() => prometheusMetrics({ registry: type }), /already holds a different metric named blockid_otp_sends_total/);
  });
});

describe('prometheusMetrics: label values are guarded', () => {
  const phone = '+14155550100';
  const bare = '4155550100';
  const email = 'john.smith@example.com';
  const ip = '203.0.113.7';
  const username = 'john.smith';
  const code = '493817';
  const secrets = [phone, bare, email, ip, username, code, '5550100', '41', '4155'];

  it('never puts a number, an address, an IP, a username or a code into a label', async () => {
    const registry = new Registry();
    const m = prometheusMetrics({ registry });
    for (const leak of secrets) {
      m.send('sms', 'sent', leak);
      m.send(leak as Channel, leak as never, leak);
      m.rateLimited(leak);
      m.delivery(leak as Channel, leak as never, 1);
      m.verification(leak as never, leak as never);
      m.lock(leak as never);
    }
    m.send('email', 'sent', '415');
    m.send('voice', 'sent', '555');
    const text = await registry.metrics();
    for (const leak of secrets) assert.ok(!text.includes(leak), `the scrape contains ${leak}`);
    const s = parse(text);
    assert.equal(
      value(s, 'blockid_otp_sends_total', { channel: 'sms', outcome: 'sent', npa: '' }),
      secrets.length,
      'an npa that is not three digits becomes empty',
    );
    assert.equal(value(s, 'blockid_otp_sends_total', { channel: 'voice', outcome: 'sent', npa: '555' }), 1, 'three digits are an area code');
    assert.equal(value(s, 'blockid_otp_sends_total', { channel: 'other', outcome: 'other', npa: '' }), secrets.length);
    assert.equal(value(s, 'blockid_otp_sends_total', { channel: 'email', outcome: 'sent', npa: '' }), 1, 'email never carries an area code');
    assert.equal(value(s, 'blockid_otp_rate_limited_total', { limit: 'other' }), secrets.length);
    assert.equal(value(s, 'blockid_otp_deliveries_total', { channel: 'other', result: 'other' }), secrets.length);
    assert.equal(value(s, 'blockid_otp_verifications_total', { method: 'other', result: 'other' }), secrets.length);
    assert.equal(value(s, 'blockid_otp_locks_total', { kind: 'other' }), secrets.length);
  });

  it('maps labels of the wrong type to other and ignores durations that are not a finite, non-negative number', async () => {
    const registry = new Registry();
    const m = prometheusMetrics({ registry });
    m.send(undefined as never, null as never, 415 as never);
    m.rateLimited({ toString: () => phone } as never);
    m.delivery('voice', 'delivered', Number.NaN);
    m.delivery('voice', 'delivered', -1);
    m.delivery('voice', 'delivered', Number.POSITIVE_INFINITY);
    m.timeToVerify(Number.NaN);
    m.timeToVerify(-3);
    const text = await registry.metrics();
    assert.ok(!text.includes(phone));
    const s = parse(text);
    assert.equal(value(s, 'blockid_otp_sends_total', { channel: 'other', outcome: 'other', npa: '' }), 1);
    assert.equal(value(s, 'blockid_otp_rate_limited_total', { limit: 'other' }), 1);
    assert.equal(value(s, 'blockid_otp_deliveries_total', { channel: 'voice', result: 'delivered' }), 3, 'the attempt still counts');
    assert.equal(value(s, 'blockid_otp_delivery_duration_seconds_count', { channel: 'voice' }), undefined);
    assert.equal(value(s, 'blockid_otp_time_to_verify_seconds_count'), 0);
  });
});
