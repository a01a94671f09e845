#!/usr/bin/env node
/**
 * CPU cost of the metrics calls one request makes, measured in-process (the HTTP figures in
 * RESULTS.md cannot resolve a few per cent): `node bench/metrics-cost.mjs [dist/index.js]`.
 * A send for a known user with SMS + email makes 2 `sends_total` increments and, once
 * delivered, 2 `deliveries_total` increments and 2 `delivery_duration_seconds` observations;
 * a wrong verify makes 1 `verifications_total` increment. Prints µs per request (median of 5).
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Registry } from 'prom-client';
import { buildDist, entry, median } from './lib.mjs';

const dist = process.argv[2] ?? buildDist().dist;
const { prometheusMetrics } = await import(pathToFileURL(entry(path.resolve(dist), 'metrics')).href);
const metrics = prometheusMetrics({ registry: new Registry() });
const npas = ['415', '212', '646', '917', '312'];
const flows = {
  send: (i) => {
    metrics.send('sms', 'sent', npas[i % npas.length]);
    metrics.send('email', 'sent', '');
    metrics.delivery('sms', 'delivered', 0.2);
    metrics.delivery('email', 'delivered', 0.05);
  },
  'wrong verify': () => metrics.verification('code', 'invalid'),
};
const N = 200_000;
for (const [name, flow] of Object.entries(flows)) {
  const runs = [];
  for (let run = 0; run < 6; run++) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < N; i++) flow(i);
    if (run > 0) runs.push(Number(process.hrtime.bigint() - started) / 1000 / N); // the first run warms up
  }
  console.log(`${name}: ${median(runs).toFixed(2)} µs per request (runs ${runs.map((r) => r.toFixed(2)).join(' / ')})`);
}
