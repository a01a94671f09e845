#!/usr/bin/env node
/**
 * `npm run bench`: blockid-otp against plain-Express baselines and the `passwordless` package,
 * on the memory store and on Redis, plus the memory cost of pending codes.
 *
 * Every server runs in its own child process (bench/server.mjs); this process only drives
 * load with autocannon. Each scenario is measured right next to its baseline, for several
 * rounds that alternate which of the two goes first; every measurement is preceded by a
 * warm-up; the tables show medians. Figures go to stdout and to bench/RESULTS.md.
 *
 * Other processes' CPU use is measured during every run (from /proc); a pair that they
 * disturbed is measured again, within a time budget, and the quietest attempt kept.
 *
 * Options: --quick (1 round of 2 s, for trying the bench out), --stores=memory,redis,
 * --skip-memory, --skip-peer, --worktree (bench the uncommitted src/ instead of HEAD),
 * --src=DIR (bench an experimental copy DIR/src, e.g. a proposed fix; implies --no-write),
 * --no-write (do not touch bench/RESULTS.md), --render (rewrite bench/RESULTS.md from the last
 * run's figures, e.g. after editing bench/analysis.md). BENCH_DURATION / BENCH_ROUNDS /
 * BENCH_RETRY_BUDGET (seconds) override.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { BENCH_DIR, buildDist, cannon, cleanRedis, machine, median, request, sleep, startServer } from './lib.mjs';
import { baselineSessions, cyclingVerifySpec, getSpec, pendingCodeUsers, uniqueSendSpec, verifiedCookie } from './scenarios.mjs';

const args = new Set(process.argv.slice(2));
const option = (name) => [...args].find((arg) => arg.startsWith(`--${name}=`))?.split('=')[1];
const QUICK = args.has('--quick');
const DURATION = Number(process.env.BENCH_DURATION ?? (QUICK ? 2 : 5));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (QUICK ? 1 : 3));
const WARMUP_FIRST = QUICK ? 1 : 2;
const WARMUP = 1;
const CONNECTIONS = 10;
const VERIFY_USERS = QUICK ? 4000 : 20_000;
const MAX_ATTEMPTS = 10;
const PEER_USERS = { memorystore: 10, hmac: 2000 };
const STORES = (option('stores') ?? 'memory,redis').split(',');
const RUN_PREFIX = `blockid-bench:${process.pid}-${Date.now()}:`;
const started = Date.now();

const log = (...parts) => console.log(`[${((Date.now() - started) / 1000).toFixed(0).padStart(3)} s]`, ...parts);

/** Warm-up, then the measured run; `spec` is an autocannon options object (plus bench-only helpers). */
async function measure(server, spec, round, withRedis = false) {
  const { url, requests, headers } = spec;
  const options = { url, connections: CONNECTIONS, ...(requests && { requests }), ...(headers && { headers }) };
  await cannon({ ...options, duration: round === 0 ? WARMUP_FIRST : WARMUP });
  const result = await cannon({ ...options, duration: DURATION }, { serverPid: server.child.pid, withRedis });
  result.label = spec.label;
  return result;
}

function noteNoise(result) {
  if (result.otherCores > NOISY) noisy.push({ label: result.label, otherCores: result.otherCores });
}

/** Other processes using more than this many cores on average during a measurement: noted in RESULTS.md. */
const NOISY = 0.1;
const noisy = [];
/** A pair is measured again when other processes used more than this (at most MAX_RETRIES times, within the budget). */
const RETRY_ABOVE = 0.25;
const MAX_RETRIES = 2;
let retryBudgetSeconds = Number(process.env.BENCH_RETRY_BUDGET ?? (QUICK ? 0 : 100));

function checkStatuses(label, result, expected) {
  const unexpected = Object.entries(result.statuses).filter(([code]) => Number(code) !== expected);
  if (unexpected.length > 0 || result.errors > 0 || result.timeouts > 0) {
    log(`  ! ${label}: unexpected answers ${JSON.stringify(result.statuses)}, errors ${result.errors}, timeouts ${result.timeouts}`);
  }
}

const fmt = (value, digits = 0) => (value === undefined || Number.isNaN(value) ? '—' : value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));

/** One store: three pairs (guard, send, verify), ROUNDS rounds; the peer rides along on memory. */
async function benchStore(dist, store, withPeer) {
  const prefix = `${RUN_PREFIX}${store}:`;
  log(`${store}: starting servers`);
  // The guard pair gets two servers of its own, alike but for requireOtp(), so neither carries the
  // sessions and codes that the send and verify scenarios pile up (a bigger heap costs GC time).
  const guarded = await startServer({ name: `${store}/otp-guarded`, kind: 'otp', guard: true, dist, store, prefix: `${prefix}a:` });
  const open = await startServer({ name: `${store}/otp-unguarded`, kind: 'otp', guard: false, dist, store, prefix: `${prefix}b:` });
  const flows = await startServer({ name: `${store}/otp`, kind: 'otp', guard: true, dist, store, prefix: `${prefix}c:` });
  const baseline = await startServer({ name: `${store}/baseline`, kind: 'baseline', store, prefix: `${prefix}d:` });
  const peers = withPeer
    ? {
        memorystore: await startServer({ name: 'passwordless/memorystore', kind: 'passwordless', tokenStore: 'memorystore', store: 'memory' }),
        hmac: await startServer({ name: 'passwordless/hmac', kind: 'passwordless', tokenStore: 'hmac', store: 'memory' }),
      }
    : undefined;
  const servers = [guarded, open, flows, baseline, ...Object.values(peers ?? {})];

  try {
    log(`${store}: verified sessions, ${VERIFY_USERS} users with a pending code, ${VERIFY_USERS} baseline sessions`);
    const guardedCookie = await verifiedCookie(guarded.url, 'bench.user');
    const openCookie = await verifiedCookie(open.url, 'bench.user');
    const verifyUsers = await pendingCodeUsers(flows.url, { count: VERIFY_USERS, tag: store });
    const baselineUsers = await baselineSessions(baseline.url, { count: VERIFY_USERS, tag: store });
    const verifySpec = cyclingVerifySpec(flows.url, '/otp/verify', verifyUsers, { budget: MAX_ATTEMPTS });
    const baselineVerifySpec = cyclingVerifySpec(baseline.url, '/write', baselineUsers);
    const peerVerify = {};
    if (peers) {
      for (const [name, server] of Object.entries(peers)) {
        log(`${store}: ${PEER_USERS[name]} passwordless (${name}) users with a pending token`);
        const users = await pendingCodeUsers(server.url, { count: PEER_USERS[name], tag: `pl-${name}`, path: '/pl/send', concurrency: 10 });
        peerVerify[name] = cyclingVerifySpec(server.url, '/pl/verify', users);
      }
    }

    const rounds = [];
    for (let round = 0; round < ROUNDS; round++) {
      const scenarioFirst = round % 2 === 0;
      const pair = async (name, scenario, base) => {
        const order = scenarioFirst ? ['scenario', 'baseline'] : ['baseline', 'scenario'];
        let out;
        // Other engineers' jobs share these 2 cores: a pair disturbed by them is measured again
        // (within a fixed time budget) and the quietest attempt kept.
        for (let attempt = 0; ; attempt++) {
          const tried = { attempts: attempt + 1 };
          for (const which of order) {
            const { server, spec, expected } = which === 'scenario' ? scenario : base;
            tried[which] = await measure(server, { ...spec(), label: `${store} round ${round + 1} ${name} ${which}` }, round, store === 'redis');
            checkStatuses(`${store} ${name} ${which}`, tried[which], expected);
          }
          tried.noise = Math.max(tried.scenario.otherCores, tried.baseline.otherCores);
          if (out === undefined || tried.noise < out.noise) out = { ...tried, attempts: attempt + 1 };
          const cost = 2 * (DURATION + WARMUP) + 1;
          if (out.noise <= RETRY_ABOVE || attempt >= MAX_RETRIES || retryBudgetSeconds < cost) break;
          retryBudgetSeconds -= cost;
          log(`  ${store} ${name}: other processes used ${fmt(tried.noise, 2)} cores; measuring the pair again`);
        }
        noteNoise(out.scenario);
        noteNoise(out.baseline);
        out.ratio = out.scenario.rps / out.baseline.rps;
        out.cpuRatio = out.baseline.serverCpuUsPerRequest / out.scenario.serverCpuUsPerRequest;
        log(
          `${store} round ${round + 1} ${name}: ${fmt(out.scenario.rps)} vs ${fmt(out.baseline.rps)} req/s = ${fmt(out.ratio, 3)}x; ` +
            `server CPU ${fmt(out.scenario.serverCpuUsPerRequest)} vs ${fmt(out.baseline.serverCpuUsPerRequest)} µs/req; ` +
            `others used ${fmt(out.scenario.otherCores, 2)} / ${fmt(out.baseline.otherCores, 2)} cores` +
            (out.attempts > 1 ? ` (quietest of ${out.attempts} attempts)` : ''),
        );
        return out;
      };
      const result = {};
      result.guard = await pair(
        'guard',
        { server: guarded, spec: () => getSpec(guarded.url, '/data', guardedCookie), expected: 200 },
        { server: open, spec: () => getSpec(open.url, '/data', openCookie), expected: 200 },
      );
      result.send = await pair(
        'send',
        { server: flows, spec: () => uniqueSendSpec(flows.url, '/otp/send', `${store}-${round}`), expected: 202 },
        { server: baseline, spec: () => uniqueSendSpec(baseline.url, '/write', `${store}-${round}`), expected: 202 },
      );
      await request(`${flows.url}/__bench/stats/reset`, { method: 'POST' });
      result.verify = await pair(
        'verify',
        { server: flows, spec: () => verifySpec, expected: 401 },
        { server: baseline, spec: () => baselineVerifySpec, expected: 202 },
      );
      result.verifyOutcomes = (await request(`${flows.url}/__bench/stats`)).body.failed;
      if (verifySpec.exhausted()) log(`  ! ${store}: the verify cycle went past ${MAX_ATTEMPTS} guesses per user`);
      if (Object.keys(result.verifyOutcomes).some((reason) => reason !== 'wrong_code')) {
        log(`  ! ${store}: verify outcomes other than wrong_code: ${JSON.stringify(result.verifyOutcomes)}`);
      }
      if (peers) {
        result.peer = {};
        for (const name of Object.keys(peers)) {
          const send = await measure(peers[name], { ...uniqueSendSpec(peers[name].url, '/pl/send', `pl-${name}-${round}`), label: `passwordless ${name} request` }, round);
          checkStatuses(`passwordless ${name} request`, send, 202);
          const verify = await measure(peers[name], { ...peerVerify[name], label: `passwordless ${name} accept` }, round);
          checkStatuses(`passwordless ${name} accept`, verify, 401);
          noteNoise(send);
          noteNoise(verify);
          result.peer[name] = { send, verify };
          log(`peer round ${round + 1} passwordless/${name}: request ${fmt(send.rps)} req/s, accept ${fmt(verify.rps)} req/s`);
        }
      }
      rounds.push(result);
    }
    return { rounds, verifyUsed: verifySpec.used(), verifyUsers: VERIFY_USERS };
  } finally {
    await Promise.all(servers.map((server) => server.stop()));
    if (store === 'redis') log(`redis: removed ${await cleanRedis(prefix)} bench keys`);
  }
}

/** bench/memory.mjs in a child with --expose-gc; resolves with its JSON report. */
function memoryBench(dist) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', path.join(BENCH_DIR, 'memory.mjs'), dist], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text) => {
      out += text;
    });
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`bench/memory.mjs exited with ${code}`));
      resolve(JSON.parse(out.trim().split('\n').pop()));
    });
  });
}

/**
 * A flood of sends to unknown users against a server with a stub session (so the heap is the
 * plugin's), heap (after gc) read at several points.
 */
async function floodBench(dist, { label, otp = {}, defaultOptions = false, memoryStore, trustProxy = false, seconds, step, distinctIps }) {
  const server = await startServer(
    { name: 'flood', kind: 'flood', dist, store: 'memory', otp, defaultOptions, memoryStore, trustProxy },
    { execArgv: ['--expose-gc'] },
  );
  const points = [];
  try {
    const heap = async () => (await request(`${server.url}/__bench/heap`)).body.heapUsed;
    const base = await heap();
    points.push({ t: 0, sends: 0, heapMiB: 0, statuses: {} });
    let n = 0;
    let ip = 0;
    for (let t = step; t <= seconds; t += step) {
      const result = await cannon({
        url: server.url,
        connections: CONNECTIONS,
        duration: step,
        requests: [
          {
            method: 'POST',
            path: '/otp/send',
            headers: { 'content-type': 'application/json' },
            setupRequest: (req) => {
              n += 1;
              ip = (ip + 1) % 0x1000000;
              // A different /56 in the IPv6 documentation prefix each time (the per-IP quota keys IPv6 by /56).
              const forwarded = `2001:db8:${(ip >> 8).toString(16)}:${(ip & 255).toString(16)}00::1`;
              const headers = distinctIps ? { ...req.headers, 'x-forwarded-for': forwarded } : req.headers;
              return { ...req, headers, body: `{"username":"nobody-${n}"}` };
            },
          },
        ],
      });
      points.push({ t, sends: n, heapMiB: ((await heap()) - base) / 2 ** 20, statuses: result.statuses, rps: result.rps });
    }
    return { label, points };
  } finally {
    await server.stop();
  }
}

function ratioRow(store, name, label, rounds, target) {
  const pick = (which, field) => median(rounds.map((r) => r[name][which][field]));
  const ratios = rounds.map((r) => r[name].ratio);
  const ratio = median(ratios);
  return {
    store,
    name,
    label,
    scenario: { rps: pick('scenario', 'rps'), p50: pick('scenario', 'p50'), p99: pick('scenario', 'p99'), cpu: pick('scenario', 'serverCpuUsPerRequest') },
    baseline: { rps: pick('baseline', 'rps'), p50: pick('baseline', 'p50'), p99: pick('baseline', 'p99'), cpu: pick('baseline', 'serverCpuUsPerRequest') },
    ratio,
    ratios,
    cpuRatio: median(rounds.map((r) => r[name].cpuRatio)),
    target,
    met: ratio >= target,
  };
}

function render(report) {
  const { info, build, stores, memory, floods } = report;
  const lines = [];
  const push = (...more) => lines.push(...more);
  push(
    '# blockid-otp benchmarks',
    '',
    `Generated by \`npm run bench\` (bench/run.mjs) on ${info.date}.`,
    '',
    `- Machine: ${info.cpus} × ${info.model} (os.cpus().length = ${info.cpus}), ${info.memory}, ${info.platform}`,
    `- Node ${info.node}; package built with tsup (ESM, target node20) from ${build}`,
    `- autocannon, ${CONNECTIONS} connections, ${DURATION} s per measurement after a ${WARMUP_FIRST} s (first round) / ${WARMUP} s warm-up, ` +
      `${ROUNDS} rounds alternating which of scenario/baseline goes first; figures are medians over the rounds, the ratio is the median of the per-round ratios`,
    '- Each server is its own child process; the load generator is the parent process. Redis (127.0.0.1:6379) shares the same 2 cores.',
    `- Whole run: ${report.elapsedSeconds.toFixed(0)} s`,
    '',
    '## Scenario vs baseline',
    '',
    '| store | scenario | req/s | p50 ms | p99 ms | server CPU µs/req | baseline | req/s | p50 ms | p99 ms | server CPU µs/req | ratio (req/s) | per round | target | met | CPU-cost ratio |',
    '|---|---|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|---|--:|---|--:|',
  );
  for (const row of report.rows) {
    push(
      `| ${row.store} | ${row.label.scenario} | ${fmt(row.scenario.rps)} | ${fmt(row.scenario.p50)} | ${fmt(row.scenario.p99)} | ${fmt(row.scenario.cpu)} | ${row.label.baseline} | ${fmt(row.baseline.rps)} | ${fmt(row.baseline.p50)} | ${fmt(row.baseline.p99)} | ${fmt(row.baseline.cpu)} | **${fmt(row.ratio, 2)}×** | ${row.ratios.map((r) => fmt(r, 2)).join(' / ')} | ≥ ${row.target}× | ${row.met ? 'yes' : '**no**'} | ${fmt(row.cpuRatio, 2)}× |`,
    );
  }
  push(
    '',
    '*ratio (req/s)* is the target figure: scenario throughput ÷ baseline throughput. *server CPU µs/req* is the server process\'s user + system CPU time (all threads, from /proc) divided by the requests it answered; *CPU-cost ratio* = baseline CPU per request ÷ scenario CPU per request, a figure that other load on the machine disturbs less than req/s does.',
    '',
  );
  if (report.noisy.length > 0) {
    push(
      `Measurements during which other processes on the machine used more than ${NOISY} of a core on average (the figures above include them): ` +
        report.noisy.map((n) => `${n.label} (${fmt(n.otherCores, 2)})`).join('; ') + '.',
      '',
    );
  } else {
    push(`No measurement saw other processes use more than ${NOISY} of a core on average.`, '');
  }
  push('Scenarios:', '');
  push(
    '- **guard**: `GET /data` behind `requireOtp()` with a session verified by a real send + verify, vs the same app (plugin mounted, same verified session) with the route unguarded.',
    '- **send**: `POST /otp/send`, a new username on every request (no cookie, so every request also creates a session), `resolveUser` returns an SMS number and an email address for everyone (both channels, no-op senders), quotas raised to 1,000,000, `smsPerHour`/`smsPerDay` off; vs `POST /write`: `express.json()` and one session write, same body, same fresh sessions.',
    `- **verify**: \`POST /otp/verify\` with a wrong code, cycling through ${report.verifyUsers.toLocaleString('en-US')} users that each have a pending code issued from their own session (the request carries that session's cookie), \`maxAttempts\` 10, \`failedVerifications\` 91 (the most the package accepts with \`maxAttempts\` 10: it keeps failedVerifications + maxAttempts − 1 within NIST’s 100); vs \`POST /write\` on the baseline cycling through as many existing sessions (load + write).`,
    '',
  );
  for (const [store, data] of Object.entries(stores)) {
    const outcomes = data.rounds.map((r) => r.verifyOutcomes);
    push(`Verify outcomes on ${store} (from the plugin's \`failed\` events, per round, warm-ups included): ${outcomes.map((o) => JSON.stringify(o)).join(', ')}; guesses used ${data.verifyUsed.toLocaleString('en-US')} of a budget of ${(data.verifyUsers * MAX_ATTEMPTS).toLocaleString('en-US')}.`, '');
  }

  if (report.peer) {
    const { peer } = report;
    push(
      '## Peer: the `passwordless` package (memory)',
      '',
      '`passwordless` 1.1.3 `requestToken` / `acceptToken` (with `allowPost`), numeric 6-digit tokens (`numberToken: { max: 1e6 }`), express-session, express.json(), measured in the same rounds as the memory rows above, against the same baseline.',
      '- *memorystore*: its own memory TokenStore, `passwordless-memorystore` 0.0.1, which hashes tokens with bcryptjs (cost 10, pure JS).',
      `- *hmac*: a bench-written TokenStore (bench/server.mjs) with HMAC-SHA256 and a constant-time compare, the hashing blockid-otp does, to show the framework's own cost. Accept cycles through ${PEER_USERS.memorystore} (memorystore) / ${PEER_USERS.hmac} (hmac) users with a pending token and wrong tokens (passwordless has no attempt budget).`,
      '',
      '| flow | blockid-otp req/s | passwordless memorystore req/s (p50 / p99 ms) | blockid-otp ÷ memorystore | passwordless hmac req/s (p50 / p99 ms) | blockid-otp ÷ hmac | baseline req/s | memorystore ÷ baseline | hmac ÷ baseline |',
      '|---|--:|--:|--:|--:|--:|--:|--:|--:|',
    );
    for (const flow of ['send', 'verify']) {
      const p = peer[flow];
      push(
        `| ${flow === 'send' ? 'send / requestToken' : 'verify (wrong code) / acceptToken'} | ${fmt(p.ours)} | ${fmt(p.memorystore.rps, 1)} (${fmt(p.memorystore.p50)} / ${fmt(p.memorystore.p99)}) | **${fmt(p.ours / p.memorystore.rps, 1)}×** | ${fmt(p.hmac.rps)} (${fmt(p.hmac.p50)} / ${fmt(p.hmac.p99)}) | **${fmt(p.ours / p.hmac.rps, 2)}×** | ${fmt(p.baseline)} | ${fmt(p.memorystore.rps / p.baseline, 3)}× | ${fmt(p.hmac.rps / p.baseline, 2)}× |`,
      );
    }
    push('');
  }

  if (memory) {
    const kib = (bytes) => `${fmt(bytes)} B`;
    const mib = (bytes) => `${fmt(bytes / 2 ** 20, 1)} MiB`;
    push(
      '## Memory (`memoryStore()`)',
      '',
      `Run in a child process with \`--expose-gc\`; heap used after \`gc()\`, before and after. ${memory.count.toLocaleString('en-US')} sends each.`,
      '',
      '| what | heap growth | per pending code |',
      '|---|--:|--:|',
      `| store only: \`memoryStore().issue()\` (code record + cooldown marker) | ${mib(memory.storeOnly.bytes)} | **${kib(memory.storeOnly.perCode)}** |`,
      `| full send: \`otp.generateOtp()\` to SMS + email (record, cooldown, and the per-username, per-destination and per-prefix quota counters, all of which live until their window ends) | ${mib(memory.service.bytes)} | **${kib(memory.service.perCode)}** |`,
      '',
      'Expiry (ttl 1 s, cooldown 1 s):',
      '',
      '| case | heap after the sends | after waiting | waited |',
      '|---|--:|--:|--:|',
    );
    for (const sweep of memory.sweeps) push(`| ${sweep.label} | ${mib(sweep.afterSends)} | ${mib(sweep.afterWait)} | ${fmt(sweep.waitedMs)} ms |`);
    push('');
  }
  if (floods) {
    push(
      '### Flood of sends to unknown users',
      '',
      '`POST /otp/send` with a new unknown username on every request (`resolveUser` returns null, so a decoy record is issued), 10 connections, against a server whose session is a stub (nothing kept), so the heap growth is the plugin\'s. Heap growth over the start, after `gc()`:',
      '',
    );
    for (const flood of floods) {
      push(`**${flood.label}**`, '', '| t (s) | sends so far | heap growth | answers in this step |', '|--:|--:|--:|---|');
      for (const point of flood.points) push(`| ${point.t} | ${point.sends.toLocaleString('en-US')} | ${fmt(point.heapMiB, 1)} MiB | ${JSON.stringify(point.statuses)} |`);
      push('');
    }
  }
  const analysis = path.join(BENCH_DIR, 'analysis.md');
  if (existsSync(analysis)) push(readFileSync(analysis, 'utf8').trim(), '');
  return lines.join('\n');
}

async function main() {
  if (args.has('--render')) {
    // Re-renders bench/RESULTS.md from the last run's figures (bench/.tmp/results.json), e.g. after editing bench/analysis.md.
    const report = JSON.parse(readFileSync(path.join(BENCH_DIR, '.tmp', 'results.json'), 'utf8'));
    writeFileSync(path.join(BENCH_DIR, 'RESULTS.md'), `${render(report)}\n`);
    log('re-rendered bench/RESULTS.md from bench/.tmp/results.json');
    return;
  }
  const info = machine();
  log(`${info.cpus} × ${info.model}, Node ${info.node}`);
  const { dist, label: build } = buildDist({ worktree: args.has('--worktree'), srcRoot: option('src') });
  log(`built ${build}`);

  const stores = {};
  for (const store of STORES) stores[store] = await benchStore(dist, store, store === 'memory' && !args.has('--skip-peer'));

  const rows = [];
  for (const [store, data] of Object.entries(stores)) {
    rows.push(ratioRow(store, 'guard', { scenario: '`requireOtp()` GET', baseline: 'unguarded GET' }, data.rounds, 0.95));
    rows.push(ratioRow(store, 'send', { scenario: '`POST /otp/send`', baseline: 'JSON + session write' }, data.rounds, 0.8));
    rows.push(ratioRow(store, 'verify', { scenario: '`POST /otp/verify` (wrong)', baseline: 'JSON + session write' }, data.rounds, 0.8));
  }

  let peer;
  if (stores.memory?.rounds[0]?.peer) {
    const rounds = stores.memory.rounds;
    const flow = (ours, theirs) => ({
      ours: median(rounds.map((r) => r[ours].scenario.rps)),
      baseline: median(rounds.map((r) => r[ours].baseline.rps)),
      memorystore: Object.fromEntries(['rps', 'p50', 'p99'].map((f) => [f, median(rounds.map((r) => r.peer.memorystore[theirs][f]))])),
      hmac: Object.fromEntries(['rps', 'p50', 'p99'].map((f) => [f, median(rounds.map((r) => r.peer.hmac[theirs][f]))])),
    });
    peer = { send: flow('send', 'send'), verify: flow('verify', 'verify') };
  }

  let memory;
  let floods;
  if (!args.has('--skip-memory')) {
    log('memory: bytes per pending code and expiry');
    memory = await memoryBench(dist);
    log('memory: floods of sends to unknown users');
    const seconds = QUICK ? 4 : 12;
    const step = QUICK ? 2 : 3;
    floods = [
      await floodBench(dist, { label: 'default options, one client IP (the per-IP quota of 30 per hour answers 429)', defaultOptions: true, seconds, step, distinctIps: false }),
      await floodBench(dist, {
        label: 'default options, a new client IP on every request (X-Forwarded-For, trust proxy 1): nothing refuses, every entry lives its full window (record 300 s, per-username and per-IP counters 3600 s)',
        defaultOptions: true,
        trustProxy: true,
        seconds,
        step,
        distinctIps: true,
      }),
      await floodBench(dist, {
        label: 'short lifetimes (ttl 2 s, cooldown 1 s, every quota window 2 s, sweepIntervalMs 500), a new IP on every request: memory levels off at about rate × lifetime',
        otp: {
          ttlSeconds: 2,
          resendCooldownSeconds: 1,
          limits: {
            sendsPerUsername: { points: 1_000_000, windowSeconds: 2 },
            sendsPerDestination: { points: 1_000_000, windowSeconds: 2 },
            sendsPerIp: { points: 1_000_000, windowSeconds: 2 },
            smsPerPrefix: { points: 1_000_000, windowSeconds: 2 },
            smsPerHour: 0,
            smsPerDay: 0,
            failedVerifications: 91,
            lockSeconds: 2,
          },
        },
        memoryStore: { sweepIntervalMs: 500 },
        trustProxy: true,
        seconds,
        step,
        distinctIps: true,
      }),
    ];
  }

  const report = { info, build, stores, rows, peer, memory, floods, noisy, verifyUsers: VERIFY_USERS, elapsedSeconds: (Date.now() - started) / 1000 };
  const markdown = render(report);
  console.log(`\n${markdown}`);
  if (!args.has('--no-write') && option('src') === undefined) {
    writeFileSync(path.join(BENCH_DIR, 'RESULTS.md'), `${markdown}\n`);
    writeFileSync(path.join(BENCH_DIR, '.tmp', 'results.json'), JSON.stringify(report, null, 2));
    log('wrote bench/RESULTS.md');
  }
  log(`done in ${report.elapsedSeconds.toFixed(0)} s`);
}

let interrupted = false;
process.on('SIGINT', () => {
  if (interrupted) process.exit(130);
  interrupted = true;
  log('interrupted: cleaning Redis keys and stopping');
  cleanRedis(RUN_PREFIX)
    .catch(() => undefined)
    .finally(() => process.exit(130));
});

main().catch(async (error) => {
  console.error(error);
  await cleanRedis(RUN_PREFIX).catch(() => undefined);
  process.exit(1);
});
