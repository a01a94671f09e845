#!/usr/bin/env node
/**
 * Short alternating pairs: on a noisy machine the median of many short pairs moves less than a
 * few long runs. Two modes.
 *
 * One scenario against its baseline, for trying a change before a full `npm run bench`
 * (printed round by round, nothing written):
 *
 *   node bench/ab.mjs --store=memory|redis|postgres --scenario=send|verify|guard
 *        [--rounds=16] [--duration=1.5] [--warmup=0.5] [--users=4000]
 *        [--otp='{"synchronousCommit":false}'] [--b-otp='{"storeProbe":"write"}'] [--src=DIR]
 *
 * Builds the working tree's src/ (or DIR/src with --src). `--otp` is merged into the OTP
 * server's config (bench/server.mjs), e.g. a postgresStore option, or `{"kind":"minimal"}` for
 * memory's send ceiling (bench/minimal-send.mjs) against the baseline; `--b-otp='{"kind":"minimal"}'`
 * measures the package's send against that ceiling. PostgreSQL tables go to a
 * schema of the run's own, dropped at the end; Redis keys under a prefix of its own, deleted.
 *
 * The old build against the new one (`npm run bench -- --ab[=REF]` runs this):
 *
 *   node bench/ab.mjs --old=REF [--worktree] [--stores=memory,redis] [--scenarios=guard,send,verify]
 *        [--rounds=6] [--duration=1.5] [--warmup=0.5] [--users=8000] [--no-write]
 *
 * Builds REF's src/ (old) and HEAD's (new; the working tree with --worktree). The old build
 * is served by REF's own bench/server.mjs (git archive, so its options match that build's
 * API), the new one by this bench/server.mjs; the same HTTP scenarios drive both. For each
 * store and scenario, each round measures old and new back to back, the order swapping every
 * round; the table (new ÷ old per scenario, median of the rounds) goes to stdout and to its
 * own section of bench/RESULTS.md.
 */
import { buildDist, option } from './lib.mjs';
import { oldAgainstNew } from './old-vs-new.mjs';
import { measurePairs } from './pairs.mjs';

const oldRef = option('old');
if (oldRef !== undefined) {
  await oldAgainstNew(oldRef);
  process.exit(0);
}
const store = option('store') ?? 'memory';
const scenario = option('scenario') ?? 'send';
const rounds = Number(option('rounds') ?? '16');
const duration = Number(option('duration') ?? '1.5');
const warmup = Number(option('warmup') ?? '0.5');
const users = Number(option('users') ?? '4000');
const extra = JSON.parse(option('otp') ?? '{}');
const src = option('src');
if (!['memory', 'redis', 'postgres'].includes(store) || !['send', 'verify', 'guard'].includes(scenario)) {
  console.error('usage: node bench/ab.mjs --store=memory|redis|postgres --scenario=send|verify|guard [--rounds=N] [--duration=S] [--otp=JSON] [--src=DIR]');
  process.exit(2);
}

const { dist, label } = buildDist(src === undefined ? { worktree: true } : { srcRoot: src });
// --b-otp=JSON: side b is the OTP server with this config merged instead of the baseline (two builds of one scenario, e.g. a store against its storeProbe ceiling).
const bOtp = option('b-otp');
console.log(`${store} ${scenario}: ${label}; ${rounds} pairs of ${duration} s after ${warmup} s of warm-up`);
const result = await measurePairs({
  dist,
  store: /** @type {'memory' | 'redis' | 'postgres'} */ (store),
  scenario: /** @type {'send' | 'verify' | 'guard'} */ (scenario),
  a: extra,
  ...(bOtp !== undefined && { b: JSON.parse(bOtp) }),
  rounds,
  duration,
  warmup,
  users,
  log: (line) => console.log(line),
});
for (const problem of result.problems) console.log(`! ${problem}`);
console.log(
  `median ratio ${result.ratio.toFixed(2)}× (range ${result.min.toFixed(2)}–${result.max.toFixed(2)}); median server CPU ${result.cpu.a.toFixed(0)} / ${result.cpu.b.toFixed(0)} µs/req`,
);
process.exit(0);
