/**
 * The old build against the new one, in alternating rounds (bench/ab.mjs --old=REF, which
 * `npm run bench -- --ab[=REF]` runs): guard, send and verify on memory and Redis, the new
 * build's throughput ÷ the old build's per scenario.
 *
 * Each side is one OTP server per store (express-session + blockidOtp + GET /data behind
 * requireOtp(), quotas raised, no-op senders: bench/server.mjs kind `otp`). The old build is
 * served by REF's own bench/server.mjs, unpacked with `git archive` beside its src/, so the
 * options it passes are the ones that build understands; the new one by this tree's.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { buildDist, cannon, cleanRedis, extractTree, flag, machine, median, option, request, startServer, writeResultsSection } from './lib.mjs';
import { cyclingVerifySpec, getSpec, pendingCodeUsers, uniqueSendSpec, verifiedCookie } from './scenarios.mjs';

/** Guesses per user before a code burns (bench/server.mjs maxAttempts). */
const MAX_ATTEMPTS = 10;
/** The slowest ratio that counts as "no slower than the old build". */
const TARGET = 0.95;
const SCENARIOS = ['guard', 'send', 'verify'];
/** The answer every request of a scenario should get (bench/server.mjs raises every quota). */
const EXPECTED = { guard: '200', send: '202', verify: '401' };

/** @param {number | undefined} value @param {number} [digits] */
const fmt = (value, digits = 0) =>
  value === undefined || Number.isNaN(value) ? '—' : value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

const loadAverage = () => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);

/**
 * @typedef {{ rps: number, serverCpuUsPerRequest: number | undefined, otherCores: number, statuses: Record<string, number> }} Measured
 * @typedef {{ url: string, requests?: object[], headers?: Record<string, string> }} Spec
 */

/**
 * @param {string} ref the old build's commit (any git ref); the script's other arguments are read with option() and flag()
 */
export async function oldAgainstNew(ref) {
  const stores = (option('stores') ?? 'memory,redis').split(',');
  const scenarios = (option('scenarios') ?? SCENARIOS.join(',')).split(',');
  const rounds = Number(option('rounds') ?? '6');
  const duration = Number(option('duration') ?? '1.5');
  const warmup = Number(option('warmup') ?? '0.5');
  const users = Number(option('users') ?? '8000');
  const bad = [...stores.filter((s) => s !== 'memory' && s !== 'redis'), ...scenarios.filter((s) => !SCENARIOS.includes(s))];
  if (bad.length > 0) throw new Error(`--old: unknown store or scenario ${bad.join(', ')} (stores: memory, redis; scenarios: ${SCENARIOS.join(', ')})`);

  const info = machine();
  const loadAtStart = loadAverage();
  const old = buildDist({ ref });
  const oldTree = extractTree(ref, ['bench'], `old-${ref.replace(/[^\w.-]/g, '_')}`);
  const now = buildDist({ worktree: flag('worktree') });
  console.log(
    `old: ${old.label} (its own bench/server.mjs); new: ${now.label}; ${rounds} rounds of ${duration} s after ${warmup} s of warm-up; 1-minute load ${loadAtStart}`,
  );

  const prefix = `blockid-ab:${process.pid}:`;
  /** @type {Array<{ store: string, scenario: string, ratios: number[], old: Measured[], new: Measured[] }>} */
  const rows = [];
  /** @type {string[]} */
  const unexpected = [];
  for (const store of stores) {
    /** @param {'old' | 'new'} side */
    const start = (side) =>
      startServer(
        { name: `${store}/${side}`, kind: 'otp', guard: true, dist: side === 'old' ? old.dist : now.dist, store, prefix: `${prefix}${store}:${side}:` },
        side === 'old' ? { script: path.join(oldTree, 'bench', 'server.mjs') } : {},
      );
    const servers = { old: await start('old'), new: await start('new') };
    try {
      /** @type {Record<string, Record<'old' | 'new', (round: number) => Spec>>} */
      const specs = {};
      /** @type {Array<{ exhausted: () => boolean }>} */
      const verifies = [];
      for (const scenario of scenarios) {
        /** @type {Partial<Record<'old' | 'new', (round: number) => Spec>>} */
        const bySide = {};
        for (const side of /** @type {const} */ (['old', 'new'])) {
          const { url } = servers[side];
          if (scenario === 'guard') {
            const cookie = await verifiedCookie(url, 'bench.user');
            bySide[side] = () => getSpec(url, '/data', cookie);
          } else if (scenario === 'send') {
            bySide[side] = (round) => uniqueSendSpec(url, '/otp/send', `${side}${round}`);
          } else {
            const spec = cyclingVerifySpec(url, '/otp/verify', await pendingCodeUsers(url, { count: users, tag: `${store}-${side}` }), {
              budget: MAX_ATTEMPTS,
            });
            verifies.push(spec);
            bySide[side] = () => spec;
          }
        }
        specs[scenario] = /** @type {Record<'old' | 'new', (round: number) => Spec>} */ (bySide);
      }
      /** @type {Record<string, { ratios: number[], old: Measured[], new: Measured[] }>} */
      const results = Object.fromEntries(scenarios.map((scenario) => [scenario, { ratios: [], old: [], new: [] }]));
      for (let round = 0; round < rounds; round++) {
        for (const scenario of scenarios) {
          const result = /** @type {Record<'old' | 'new', Measured>} */ ({});
          for (const side of /** @type {Array<'old' | 'new'>} */ (round % 2 === 0 ? ['old', 'new'] : ['new', 'old'])) {
            const spec = specs[scenario]?.[side](round);
            if (spec === undefined) throw new Error(`no spec for ${scenario}`);
            const options = { url: spec.url, ...(spec.requests && { requests: spec.requests }), ...(spec.headers && { headers: spec.headers }) };
            await cannon({ ...options, duration: round === 0 ? 2 : warmup });
            const measured = await cannon({ ...options, duration }, { serverPid: servers[side].child.pid, withRedis: store === 'redis' });
            const others = Object.entries(measured.statuses).filter(([status]) => status !== EXPECTED[/** @type {keyof EXPECTED} */ (scenario)]);
            if (others.length > 0) unexpected.push(`${store} ${scenario} ${side} round ${round + 1}: ${JSON.stringify(measured.statuses)}`);
            result[side] = measured;
          }
          const row = results[scenario];
          if (row === undefined) continue;
          row.ratios.push(result.new.rps / result.old.rps);
          row.old.push(result.old);
          row.new.push(result.new);
          console.log(
            `${store} ${scenario} round ${round + 1}: new ${fmt(result.new.rps)} vs old ${fmt(result.old.rps)} req/s = ${fmt(result.new.rps / result.old.rps, 2)}×;` +
              ` server CPU ${fmt(result.new.serverCpuUsPerRequest)} / ${fmt(result.old.serverCpuUsPerRequest)} µs/req;` +
              ` answers ${JSON.stringify(result.new.statuses)} / ${JSON.stringify(result.old.statuses)}; others used ${fmt(Math.max(result.new.otherCores, result.old.otherCores), 2)} cores`,
          );
        }
      }
      if (verifies.some((spec) => spec.exhausted())) console.log(`! ${store}: the verify cycle went past ${MAX_ATTEMPTS} guesses per user (raise --users)`);
      for (const side of /** @type {const} */ (['old', 'new'])) {
        const { errors } = (await request(`${servers[side].url}/__bench/stats`)).body;
        if (errors && Object.keys(errors).length > 0) console.log(`! ${store} ${side}: server errors ${JSON.stringify(errors)}`);
      }
      for (const scenario of scenarios) {
        const row = results[scenario];
        if (row !== undefined) rows.push({ store, scenario, ...row });
      }
    } finally {
      await Promise.all([servers.old.stop(), servers.new.stop()]);
      if (store === 'redis') await cleanRedis(prefix);
    }
  }

  for (const line of unexpected) console.log(`! unexpected answers: ${line}`);
  const markdown = render({
    ref,
    old: old.label,
    now: now.label,
    info,
    rounds,
    duration,
    warmup,
    users,
    loadAtStart,
    loadAtEnd: loadAverage(),
    rows,
    unexpected,
  });
  console.log(`\n${markdown}`);
  if (!flag('no-write')) {
    writeResultsSection('old-vs-new', markdown);
    console.log('wrote the old-vs-new section of bench/RESULTS.md');
  }
}

/**
 * @param {{ ref: string, old: string, now: string, info: ReturnType<typeof machine>, rounds: number, duration: number, warmup: number, users: number,
 *   loadAtStart: number, loadAtEnd: number, rows: Array<{ store: string, scenario: string, ratios: number[], old: Measured[], new: Measured[] }>, unexpected: string[] }} report
 */
function render(report) {
  const { info, rows } = report;
  /** @param {Measured[]} list @param {'rps' | 'serverCpuUsPerRequest' | 'otherCores'} field */
  const mid = (list, field) => median(list.map((m) => m[field] ?? Number.NaN));
  const lines = [
    '## Old build against new',
    '',
    `Generated by \`npm run bench -- --ab=${report.ref}\` (bench/ab.mjs --old) on ${info.date}: old = ${report.old} (served by its own bench/server.mjs), new = ${report.now}. ` +
      `${info.cpus} × ${info.model}, Node ${info.node}; one OTP server per build and store, ${report.rounds} rounds of ${report.duration} s after a ${report.warmup} s warm-up (2 s in the first round), ` +
      `old and new back to back in an order that swaps every round; verify cycles through ${report.users.toLocaleString('en-US')} users per server. ` +
      `1-minute load average ${report.loadAtStart} at the start, ${report.loadAtEnd} at the end (the bench's own load included; the machine is shared).`,
    '',
    '| store | scenario | old req/s | new req/s | **new ÷ old** (median of rounds) | per round | server CPU µs/req old | new | CPU cost old ÷ new | others used (cores, median) | ≥ 0.95× |',
    '|---|---|--:|--:|--:|---|--:|--:|--:|--:|---|',
  ];
  for (const row of rows) {
    const ratio = median(row.ratios);
    const cpuOld = mid(row.old, 'serverCpuUsPerRequest');
    const cpuNew = mid(row.new, 'serverCpuUsPerRequest');
    const others = median(row.old.map((m, i) => Math.max(m.otherCores, row.new[i]?.otherCores ?? 0)));
    lines.push(
      `| ${row.store} | ${row.scenario} | ${fmt(mid(row.old, 'rps'))} | ${fmt(mid(row.new, 'rps'))} | **${fmt(ratio, 2)}×** | ${row.ratios.map((r) => fmt(r, 2)).join(' / ')} | ${fmt(cpuOld)} | ${fmt(cpuNew)} | ${fmt(cpuOld / cpuNew, 2)}× | ${fmt(others, 2)} | ${ratio >= TARGET ? 'yes' : '**no**'} |`,
    );
  }
  lines.push(
    '',
    report.unexpected.length === 0
      ? 'Every request got the expected answer (guard 200, send 202, verify 401).'
      : `**Unexpected answers** (those rounds compare unlike work): ${report.unexpected.join('; ')}.`,
    '',
    "*new ÷ old* is the median of the per-round quotients of the two servers' throughputs; *CPU cost old ÷ new* the quotient of their medians of server CPU per request (above 1: the new build costs less). Scenarios as in the full run: guard `GET /data` with a verified session, send `POST /otp/send` for a new username from a fresh session, verify `POST /otp/verify` with a wrong code.",
  );
  return lines.join('\n');
}
