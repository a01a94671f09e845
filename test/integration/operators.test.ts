/**
 * What docs/ ships for operators: the Prometheus alerting rules pass `promtool check rules`, the
 * Grafana dashboard's queries parse as PromQL (promtool again, each query as a recording rule),
 * and every metric that the rules, the dashboard and the docs' queries name is one that the
 * package exports, read from a real prom-client registry after a real send and verify.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Registry } from 'prom-client';
import { createOtpService } from '../../src/index.js';
import { prometheusMetrics } from '../../src/metrics.js';
import { captureSenders } from '../../src/testing.js';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '..', '..');
const rulesFile = join(root, 'docs', 'prometheus-rules.yml');
const dashboardFile = join(root, 'docs', 'grafana-dashboard.json');

interface Panel {
  title: string;
  type: string;
  targets?: Array<{ expr: string }>;
  panels?: Panel[];
}

const dashboard = JSON.parse(readFileSync(dashboardFile, 'utf8')) as { title: string; panels: Panel[] };
const dashboardQueries = dashboard.panels
  .flatMap((panel) => [panel, ...(panel.panels ?? [])])
  .flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel: panel.title, expr: target.expr })));

/** Debian's `prometheus` package has it; `.ci/run` installs it. */
const promtool = (() => {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore' });
    return 'promtool';
  } catch {
    return undefined;
  }
})();
const needsPromtool = promtool === undefined ? 'promtool is not installed (Debian: apt-get install prometheus)' : false;

/** `blockid_otp_…` names a text mentions, as PromQL selects them. */
const metricNames = (text: string) => new Set([...text.matchAll(/\bblockid_otp_[a-z0-9_]+\b/g)].map((match) => match[0]));

let exported = new Set<string>();

before(async () => {
  // A real send and verify through a real registry: what the package exports is what it registers.
  const registry = new Registry();
  const capture = captureSenders();
  const otp = createOtpService({
    secret: 'operators-test-secret-0123456789abcdef',
    sms: capture.sms,
    email: capture.email,
    metrics: prometheusMetrics({ registry }),
  });
  await otp.generateOtp('ada', { smsTo: '4155550100', emailTo: 'ada@example.com' });
  assert.deepEqual(await otp.verifyOtp('ada', '000000').then((r) => r.ok), false);
  assert.deepEqual(await otp.verifyOtp('ada', capture.lastCode('ada') ?? ''), { ok: true });
  const metrics = await registry.getMetricsAsJSON();
  exported = new Set(
    metrics.flatMap((metric) =>
      String(metric.type) === 'histogram' ? ['', '_bucket', '_sum', '_count'].map((suffix) => `${metric.name}${suffix}`) : [metric.name],
    ),
  );
  assert.ok(exported.has('blockid_otp_sends_total') && exported.has('blockid_otp_time_to_verify_seconds_bucket'), [...exported].join(', '));
});

describe('docs/prometheus-rules.yml', () => {
  it('passes promtool check rules', { skip: needsPromtool }, async () => {
    const { stdout } = await run(promtool!, ['check', 'rules', rulesFile], { timeout: 30_000 });
    assert.match(stdout, /SUCCESS: [1-9]\d* rules found/);
  });

  it('alerts on pumping, the delivery failure ratio, locks and conversion', () => {
    const rules = readFileSync(rulesFile, 'utf8');
    for (const alert of ['OtpSmsPumping', 'OtpDeliveryFailures', 'OtpLockSpike', 'OtpPermanentLock', 'OtpLowConversion']) {
      assert.match(rules, new RegExp(`- alert: ${alert}\\n`), alert);
    }
  });

  it('queries only metrics the package exports', () => {
    const unknown = [...metricNames(readFileSync(rulesFile, 'utf8'))].filter((name) => !exported.has(name));
    assert.deepEqual(unknown, []);
  });
});

describe('docs/grafana-dashboard.json', () => {
  it('has panels for sends per area code, delivery failures, locks and conversion by channel and area code', () => {
    const titles = dashboardQueries.map((query) => query.panel).join('\n');
    for (const title of [/area code/, /failure ratio/, /Locks/, /Conversion per channel/, /conversion per area code/]) assert.match(titles, title);
  });

  it('queries only metrics the package exports, and uses each of them', () => {
    const named = new Set(dashboardQueries.flatMap((query) => [...metricNames(query.expr)]));
    assert.deepEqual(
      [...named].filter((name) => !exported.has(name)),
      [],
    );
    const bases = [...exported].filter((name) => !/_(bucket|sum|count)$/.test(name));
    assert.deepEqual(
      bases.filter((name) => ![...named].some((used) => used.startsWith(name))),
      [],
      'every exported metric has a panel',
    );
  });

  describe('its queries', () => {
    let work = '';
    before(() => {
      work = mkdtempSync(join(tmpdir(), 'blockid-otp-dashboard-'));
    });
    after(() => rmSync(work, { recursive: true, force: true }));

    it('parse as PromQL (promtool, each query as a recording rule)', { skip: needsPromtool }, async () => {
      assert.ok(dashboardQueries.length >= 10);
      const rules = dashboardQueries.map(
        (query, index) => `      - record: dashboard_query_${index}\n        expr: ${JSON.stringify(query.expr.replaceAll('$__rate_interval', '5m'))}\n`,
      );
      const file = join(work, 'dashboard-queries.yml');
      writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${rules.join('')}`);
      const { stdout } = await run(promtool!, ['check', 'rules', file], { timeout: 30_000 });
      assert.match(stdout, new RegExp(`SUCCESS: ${dashboardQueries.length} rules found`));
    });
  });
});

describe('the metrics named in the docs', () => {
  it('are ones the package exports (docs/observability.md, and every promql block)', () => {
    const pages = [
      'README.md',
      ...readdirSync(join(root, 'docs'))
        .filter((name) => name.endsWith('.md'))
        .map((name) => join('docs', name)),
    ];
    const texts = pages.map((page) => {
      const text = readFileSync(join(root, page), 'utf8');
      // Elsewhere `blockid_otp_` also starts PostgreSQL table and function names.
      return { page, text: page.endsWith('observability.md') ? text : [...text.matchAll(/^```promql\n([\s\S]*?)^```$/gm)].map((m) => m[1]).join('\n') };
    });
    assert.ok(metricNames(texts.map((t) => t.text).join('\n')).size >= 9);
    const unknown = texts.flatMap(({ page, text }) => [...metricNames(text)].filter((name) => !exported.has(name)).map((name) => `${page}: ${name}`));
    assert.deepEqual(unknown, []);
  });
});
