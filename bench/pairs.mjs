/**
 * Short alternating pairs of two OTP servers (or one against its baseline), the measurement
 * behind `node bench/ab.mjs --store=… --scenario=…` and `node bench/pg-yardsticks.mjs`: on a
 * noisy machine the median of many short pairs moves less than a few long runs.
 */
import { cannon, cleanRedis, median, pgPool, startServer } from './lib.mjs';
import { baselineSessions, cyclingVerifySpec, getSpec, pendingCodeUsers, uniqueSendSpec, verifiedCookie } from './scenarios.mjs';

/**
 * @typedef {{
 *   dist: string, store: 'memory' | 'redis' | 'postgres', scenario: 'send' | 'verify' | 'guard',
 *   a?: Record<string, unknown>, b?: Record<string, unknown>,
 *   rounds?: number, duration?: number, warmup?: number, users?: number, log?: (line: string) => void,
 * }} PairOptions
 *   `a`: merged into side a's OTP server config (bench/server.mjs); `b`: side b is then an OTP
 *   server with this config instead of the baseline (for guard: the same app unguarded)
 * @typedef {{ ratio: number, min: number, max: number, rps: { a: number, b: number }, cpu: { a: number, b: number }, ratios: number[], problems: string[] }} PairResult
 *   medians of the rounds: a ÷ b in req/s, and each side's server CPU per request (µs); `problems`:
 *   what makes the figures doubtful (an OTP server's answer other than the scenario's, a verify
 *   cycle that went past the attempt budget, so that codes burned and the work changed)
 */

/** What an OTP server answers in each scenario. */
const EXPECTED = { send: '202', verify: '401', guard: '200' };
/** The plugin's maxAttempts in bench/server.mjs: guesses per user before a code burns. */
const MAX_ATTEMPTS = 10;

/**
 * Side a against side b, `rounds` pairs of `duration` s, the order swapping every round.
 *
 * @param {PairOptions} options
 * @returns {Promise<PairResult>}
 */
export async function measurePairs({
  dist,
  store,
  scenario,
  a: aConfig = {},
  b: bConfig,
  rounds = 16,
  duration = 1.5,
  warmup = 0.5,
  users = 4000,
  log = () => {},
}) {
  const prefix = `blockid-ab:${process.pid}:${Date.now()}:`;
  const schema = `blockid_ab_${process.pid}_${Date.now()}`;
  /** @type {import('pg').Pool | undefined} */
  let admin;
  if (store === 'postgres') admin = await pgPool({ max: 2 });
  /** @param {string} tag @param {Record<string, unknown>} config merged into the server's BENCH_SERVER config */
  const server = (tag, config) => startServer({ name: tag, dist, store, prefix: `${prefix}${tag}:`, pgSchema: schema, tablePrefix: `${tag}_`, ...config });
  /** @type {import('./lib.mjs').BenchServer[]} */
  const started = [];
  try {
    if (admin !== undefined) await admin.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    const a = await server('a', { kind: 'otp', guard: true, ...aConfig });
    started.push(a);
    const b =
      bConfig !== undefined
        ? await server('b', { kind: 'otp', guard: scenario === 'guard', ...bConfig })
        : scenario === 'guard'
          ? await server('b', { kind: 'otp', guard: false, ...aConfig })
          : await server('b', { kind: 'baseline' });
    started.push(b);
    const concurrency = store === 'postgres' ? 10 : 32;
    /** @type {Record<'a' | 'b', (round: number) => import('autocannon').Options>} */
    let specs;
    /** @type {Array<{ exhausted: () => boolean }>} */
    const cycles = [];
    if (scenario === 'send') {
      specs = {
        a: (r) => uniqueSendSpec(a.url, '/otp/send', `a${r}`),
        b: (r) => uniqueSendSpec(b.url, bConfig === undefined ? '/write' : '/otp/send', `b${r}`),
      };
    } else if (scenario === 'verify') {
      const va = cyclingVerifySpec(a.url, '/otp/verify', await pendingCodeUsers(a.url, { count: users, tag: 'ab', concurrency }), { budget: MAX_ATTEMPTS });
      const vb =
        bConfig === undefined
          ? cyclingVerifySpec(b.url, '/write', await baselineSessions(b.url, { count: users, tag: 'ab', concurrency }))
          : cyclingVerifySpec(b.url, '/otp/verify', await pendingCodeUsers(b.url, { count: users, tag: 'ab', concurrency }), { budget: MAX_ATTEMPTS });
      cycles.push(va, ...(bConfig === undefined ? [] : [vb]));
      specs = { a: () => va, b: () => vb };
    } else {
      const [ca, cb] = [await verifiedCookie(a.url, 'bench.user'), await verifiedCookie(b.url, 'bench.user')];
      specs = { a: () => getSpec(a.url, '/data', ca), b: () => getSpec(b.url, '/data', cb) };
    }

    /** @type {number[]} */
    const ratios = [];
    /** @type {Record<'a' | 'b', number[]>} */
    const cpu = { a: [], b: [] };
    /** @type {Record<'a' | 'b', number[]>} */
    const rps = { a: [], b: [] };
    /** @type {string[]} */
    const problems = [];
    for (let round = 0; round < rounds; round++) {
      const result = /** @type {Record<'a' | 'b', import('./lib.mjs').CannonResult & { serverCpuUsPerRequest: number }>} */ ({});
      for (const side of /** @type {Array<'a' | 'b'>} */ (round % 2 === 0 ? ['a', 'b'] : ['b', 'a'])) {
        const target = side === 'a' ? a : b;
        const spec = specs[side](round);
        const options = { url: spec.url, ...(spec.requests && { requests: spec.requests }), ...(spec.headers && { headers: spec.headers }) };
        await cannon({ ...options, duration: round === 0 ? 2 : warmup });
        const measured = await cannon({ ...options, duration }, { serverPid: target.child.pid, withRedis: store === 'redis' });
        const { serverCpuUsPerRequest } = measured;
        if (serverCpuUsPerRequest === undefined) throw new Error(`side ${side}: no server CPU per request (${measured.total} requests)`);
        result[side] = { ...measured, serverCpuUsPerRequest };
        cpu[side].push(serverCpuUsPerRequest);
        rps[side].push(measured.rps);
        const others = Object.keys(measured.statuses).filter((status) => status !== EXPECTED[scenario]);
        if ((side === 'a' || bConfig !== undefined) && others.length > 0)
          problems.push(`round ${round + 1}, side ${side}: answers ${JSON.stringify(measured.statuses)}`);
      }
      ratios.push(result.a.rps / result.b.rps);
      log(
        `round ${String(round + 1).padStart(2)}: ${result.a.rps.toFixed(0)} vs ${result.b.rps.toFixed(0)} req/s = ${(result.a.rps / result.b.rps).toFixed(2)}×;` +
          ` server CPU ${result.a.serverCpuUsPerRequest.toFixed(0)} / ${result.b.serverCpuUsPerRequest.toFixed(0)} µs/req; answers ${JSON.stringify(result.a.statuses)}`,
      );
    }
    if (cycles.some((cycle) => cycle.exhausted())) problems.push(`the verify cycle went past ${MAX_ATTEMPTS} guesses per user (raise users)`);
    return {
      problems,
      ratio: median(ratios),
      min: Math.min(...ratios),
      max: Math.max(...ratios),
      rps: { a: median(rps.a), b: median(rps.b) },
      cpu: { a: median(cpu.a), b: median(cpu.b) },
      ratios,
    };
  } finally {
    for (const s of started) await s.stop();
    if (admin !== undefined) {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await admin.end();
    }
    if (store === 'redis') await cleanRedis(prefix);
  }
}
