/** Helpers shared by the bench's runners (run.mjs, ab.mjs, frameworks.mjs, pg-cost.mjs) and servers. */
import { execFileSync, fork } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

export const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(BENCH_DIR, '..');
export const TMP = path.join(BENCH_DIR, '.tmp');

/**
 * Builds the package's ESM entry with tsup, the way `npm run build` does, into bench/.tmp.
 * By default from the committed tree (`git archive HEAD src`), so the figures belong to a
 * commit even while others edit src/; `worktree: true` builds the working tree instead, and
 * `ref` another commit (e.g. the old build of an A/B).
 *
 * @param {{ worktree?: boolean, srcRoot?: string, ref?: string }} [options]
 * @returns {{ dist: string, label: string }}
 */
export function buildDist({ worktree = false, srcRoot: experiment, ref = 'HEAD' } = {}) {
  const commit = execFileSync('git', ['rev-parse', '--short', `${ref}^{commit}`], { cwd: ROOT, encoding: 'utf8' }).trim();
  const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: ROOT, encoding: 'utf8' }).trim() !== '';
  if (experiment !== undefined) {
    // An experimental copy of src/ (e.g. a proposed fix under bench/.tmp), never committed figures.
    const out = path.join(TMP, 'build-experiment');
    tsup(path.resolve(experiment), path.join(out, 'dist'));
    return { dist: path.join(out, 'dist', 'index.js'), label: `EXPERIMENT ${experiment} (not the committed package)` };
  }
  const label = worktree ? `worktree${dirty ? ' (uncommitted changes in src/)' : ''} on ${commit}` : `commit ${commit}`;
  const out = path.join(TMP, worktree ? 'build-worktree' : `build-${commit}`);
  let srcRoot = ROOT;
  rmSync(out, { recursive: true, force: true });
  if (!worktree) {
    // The .ts copy goes outside the repository, where `tsc` (whose include covers bench/) does not see it.
    srcRoot = extractTree(commit, ['src'], `src-${commit}`);
  }
  const distDir = path.join(out, 'dist');
  tsup(srcRoot, distDir);
  return { dist: path.join(distDir, 'index.js'), label };
}

/**
 * `git archive ref paths` unpacked into a fresh folder of the OS temp folder (outside the
 * repository, where `tsc` does not see it), with a link to this repository's node_modules so
 * scripts in it resolve their imports; returns the folder.
 *
 * @param {string} ref
 * @param {string[]} paths
 * @param {string} name
 */
export function extractTree(ref, paths, name) {
  const dir = path.join(os.tmpdir(), `blockid-otp-bench-${name}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  execFileSync('sh', ['-c', `git archive "$0" ${paths.map((p) => `"${p}"`).join(' ')} | tar -x -C "$1"`, ref, dir], { cwd: ROOT });
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  return dir;
}

/**
 * The entries the bench imports, built as the package's ESM build is (tsup, target node20):
 * the main entry and the `blockid-otp/metrics` and `blockid-otp/postgres` subpaths, side by
 * side in `distDir` (`index.js`, `metrics.js`, `postgres.js`).
 *
 * @param {string} srcRoot
 * @param {string} distDir
 */
function tsup(srcRoot, distDir) {
  const entries = ['index', 'metrics', 'postgres'].map((name) => path.join(srcRoot, 'src', `${name}.ts`));
  execFileSync('npx', ['tsup', ...entries, '--no-config', '--format', 'esm', '--target', 'node20', '--out-dir', distDir, '--silent'], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  for (const name of ['index', 'metrics', 'postgres']) {
    if (!existsSync(path.join(distDir, `${name}.js`))) throw new Error(`build failed: ${path.join(distDir, `${name}.js`)} missing`);
  }
}

/**
 * A built subpath entry next to the main one: `entry(dist, 'metrics')` is blockid-otp/metrics.
 *
 * @param {string} dist
 * @param {string} name
 */
export const entry = (dist, name) => path.join(path.dirname(dist), `${name}.js`);

export function machine() {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    model: cpus[0]?.model ?? 'unknown',
    node: process.version,
    date: new Date().toISOString(),
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
  };
}

const QUIET = /MemoryStore is not\s+designed for a production environment|will leak memory|scale past a single process/;

/**
 * Starts bench/server.mjs (or `script`, e.g. an older commit's copy of it) in its own process;
 * resolves with { url, child, stop() } once it listens.
 *
 * @param {Record<string, unknown>} config the server's BENCH_SERVER configuration
 * @param {{ execArgv?: string[], script?: string }} [options]
 * @returns {Promise<BenchServer>}
 */
export function startServer(config, { execArgv = [], script = path.join(BENCH_DIR, 'server.mjs') } = {}) {
  const child = fork(script, [], {
    env: { ...process.env, BENCH_SERVER: JSON.stringify(config) },
    execArgv,
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  // stdio 'pipe': the child has a stderr stream.
  const stderr = /** @type {import('node:stream').Readable} */ (child.stderr);
  stderr.setEncoding('utf8');
  stderr.on('data', (/** @type {string} */ text) => {
    const lines = text.split('\n').filter((line) => line.trim() !== '' && !QUIET.test(line));
    if (lines.length > 0) process.stderr.write(`[${config.name ?? config.kind}] ${lines.join('\n')}\n`);
  });
  return new Promise((resolve, reject) => {
    const onExit = (/** @type {number | null} */ code) => reject(new Error(`server ${config.kind} exited early (${code})`));
    child.once('exit', onExit);
    child.once('message', (message) => {
      child.off('exit', onExit);
      const url = `http://127.0.0.1:${/** @type {{ port: number }} */ (message).port}`;
      resolve({
        url,
        child,
        stop: () =>
          new Promise((done) => {
            if (child.exitCode !== null) return done();
            const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
            child.once('exit', () => {
              clearTimeout(timer);
              done();
            });
            child.send('stop');
          }),
      });
    });
  });
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });

/**
 * A small keep-alive HTTP client: { status, body (parsed JSON, untyped, or text), cookie }.
 *
 * @param {string} url
 * @param {{ method?: string, headers?: Record<string, string>, json?: unknown }} [options]
 * @returns {Promise<{ status: number | undefined, body: any, cookie: string | undefined }>}
 */
export function request(url, { method = 'GET', headers = {}, json } = {}) {
  return new Promise((resolve, reject) => {
    const body = json === undefined ? undefined : JSON.stringify(json);
    const req = http.request(
      url,
      {
        method,
        agent,
        headers: { ...headers, ...(body !== undefined && { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => {
          const setCookie = res.headers['set-cookie'];
          const cookie = setCookie?.[0]?.split(';')[0];
          let parsed = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON
          }
          resolve({ status: res.statusCode, body: parsed, cookie });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Runs `count` tasks with at most `concurrency` in flight.
 *
 * @template T
 * @param {number} count
 * @param {number} concurrency
 * @param {(index: number) => Promise<T>} task
 * @returns {Promise<T[]>} the tasks' results, by index
 */
export async function pool(count, concurrency, task) {
  let next = 0;
  /** @type {T[]} */
  const results = new Array(count);
  const worker = async () => {
    while (next < count) {
      const index = next++;
      results[index] = await task(index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return results;
}

const TICK_US = 10_000; // /proc times are in clock ticks of 1/100 s (getconf CLK_TCK)

/**
 * CPU time (user + system, all threads) of a process so far, in µs; 0 once it is gone.
 *
 * @param {number} pid
 */
export function processCpuUs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_US;
  } catch {
    return 0;
  }
}

/** Busy CPU time of the whole machine so far, in µs. */
function machineBusyUs() {
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '')
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  return (user + nice + system + irq + softirq + steal) * TICK_US;
}

/** @type {number | null | undefined} */
let redisPid;
/** The local redis-server's pid, found once through /proc. */
export function redisServerPid() {
  if (redisPid !== undefined) return redisPid;
  redisPid = null;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === 'redis-server') {
        redisPid = Number(entry);
        break;
      }
    } catch {
      // gone
    }
  }
  return redisPid;
}

/**
 * One autocannon run; returns the figures the tables use. With `serverPid`, also the server's
 * CPU time per request and how much CPU everything else on the machine used meanwhile
 * (`otherCores`: other engineers' jobs make figures noisy; redis counts as ours when `withRedis`,
 * and so do `extraPids`, e.g. the PostgreSQL backends serving the bench's own connections).
 *
 * @param {import('autocannon').Options} options autocannon's options (connections 10 unless given)
 * @param {{ serverPid?: number, withRedis?: boolean, extraPids?: number[] }} [context]
 */
export async function cannon(options, { serverPid, withRedis = false, extraPids = [] } = {}) {
  const redis = withRedis ? redisServerPid() : null;
  const storePids = [...(redis ? [redis] : []), ...extraPids];
  const ours = [process.pid, ...(serverPid ? [serverPid] : []), ...storePids];
  const startedAt = process.hrtime.bigint();
  const storeCpuUs = () => storePids.reduce((sum, pid) => sum + processCpuUs(pid), 0);
  const before = { busy: machineBusyUs(), ours: ours.map(processCpuUs), server: serverPid ? processCpuUs(serverPid) : 0, store: storeCpuUs() };
  const result = await autocannon({ connections: 10, ...options });
  const wallUs = Number(process.hrtime.bigint() - startedAt) / 1000;
  const oursUs = ours.map(processCpuUs).reduce((sum, us, i) => sum + us - (before.ours[i] ?? 0), 0);
  const serverUs = serverPid ? processCpuUs(serverPid) - before.server : undefined;
  const storeUs = storePids.length > 0 ? storeCpuUs() - before.store : undefined;
  const otherCores = Math.max(0, machineBusyUs() - before.busy - oursUs) / wallUs;
  const statuses = Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([code, { count }]) => [code, count]));
  return {
    rps: result.requests.total / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    total: result.requests.total,
    errors: result.errors,
    timeouts: result.timeouts,
    statuses,
    serverCpuUsPerRequest: serverUs === undefined || result.requests.total === 0 ? undefined : serverUs / result.requests.total,
    serverCores: serverUs === undefined ? undefined : serverUs / wallUs,
    /** CPU of Redis, or of the PostgreSQL processes counted as ours, per request. */
    storeCpuUsPerRequest: storeUs === undefined || result.requests.total === 0 ? undefined : storeUs / result.requests.total,
    otherCores,
  };
}

/**
 * @param {number[]} values
 * @returns {number} NaN for none
 */
export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const at = (/** @type {number} */ i) => sorted[i] ?? Number.NaN;
  return sorted.length % 2 === 1 ? at(middle) : (at(middle - 1) + at(middle)) / 2;
}

/**
 * Deletes every Redis key under `prefix` (SCAN + UNLINK); returns how many.
 *
 * @param {string} prefix
 */
export async function cleanRedis(prefix) {
  const { createClient } = await import('redis');
  const client = createClient({ url: 'redis://127.0.0.1:6379' });
  await client.connect();
  let removed = 0;
  try {
    for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) {
      if (keys.length > 0) removed += await client.unlink(keys);
    }
  } finally {
    await client.quit();
  }
  return removed;
}

/**
 * The value of `--name=value` among the script's arguments (all of it after the first `=`), or `fallback`.
 *
 * @template {string | undefined} [F=undefined]
 * @param {string} name
 * @param {F} [fallback]
 * @returns {string | F}
 */
export function option(name, fallback) {
  const prefix = `--${name}=`;
  const given = process.argv.slice(2).find((arg) => arg.startsWith(prefix));
  return given === undefined ? /** @type {F} */ (fallback) : given.slice(prefix.length);
}

/** Whether `--name` is among the script's arguments. @param {string} name */
export const flag = (name) => process.argv.slice(2).includes(`--${name}`);

/** @param {number} ms @returns {Promise<void>} */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The PostgreSQL server of this machine (database `test`, trust auth). */
export const PG = { host: '127.0.0.1', port: 5432, database: 'test', user: 'postgres' };
/** `application_name` of every connection the bench opens, so its backends can be told from other engineers'. */
export const PG_APP = 'blockid-bench';

/**
 * A small `pg` Pool on the bench's database (the caller ends it).
 *
 * @param {import('pg').PoolConfig} [options]
 */
export async function pgPool(options = {}) {
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({ ...PG, application_name: PG_APP, max: 4, ...options });
  pool.on('error', () => {}); // an idle client lost when the server restarts: the next query reports it
  return pool;
}

/**
 * One transaction writing `rows` expired rows into the PostgreSQL store's tables (named by
 * `table(name)`), expired between 1 minute and 1 hour ago, with keys shaped like the core's (27
 * base64url-ish characters): what the bounded sweep of the full run has to remove. Only the
 * columns the store's tables require are written, so a change of the schema shows here.
 *
 * @param {(name: 'slots' | 'users' | 'counters') => string} table
 * @param {{ slots: number, users: number, counters: number }} rows
 */
export function expiredRowsSql(table, rows) {
  const ago = "now() - (60 + random() * 3540) * interval '1 second'";
  return `BEGIN;
INSERT INTO ${table('slots')} (user_key, space, slot, code_hash, attempts, issued_at_ms, code_until, cooldown_until, expires_at)
  SELECT left(md5('u' || i), 27), 'user', left(md5('s' || i), 27), md5('h' || i) || left(md5('x' || i), 11), 0, 0, e, e, e
  FROM (SELECT i, ${ago} AS e FROM generate_series(1, ${rows.slots}) i) g;
INSERT INTO ${table('users')} (user_key, space, failures, failures_until, expires_at)
  SELECT left(md5('u' || i), 27), 'user', 1, e, e FROM (SELECT i, ${ago} AS e FROM generate_series(1, ${rows.users}) i) g;
INSERT INTO ${table('counters')} (key, hits, expires_at)
  SELECT 'dest:' || left(md5('c' || i), 27), 1, ${ago} FROM generate_series(1, ${rows.counters}) i;
COMMIT;`;
}

/**
 * The PostgreSQL processes whose CPU counts as the bench's own: the backends of connections
 * named `PG_APP`, and the server's background processes (WAL writer, checkpointer,
 * autovacuum...), which work mostly for the bench's writes while it runs.
 *
 * @param {import('pg').Pool} pool
 */
export async function postgresPids(pool) {
  const { rows } = await pool.query(
    "SELECT pid FROM pg_stat_activity WHERE (application_name = $1 OR backend_type <> 'client backend') AND pid <> pg_backend_pid()",
    [PG_APP],
  );
  return rows.map((/** @type {{ pid: number }} */ row) => Number(row.pid));
}

/** @typedef {{ url: string, child: import('node:child_process').ChildProcess, stop: () => Promise<void> }} BenchServer */
/** @typedef {Awaited<ReturnType<typeof cannon>>} CannonResult what `cannon` returns */

const RESULTS = path.join(BENCH_DIR, 'RESULTS.md');

/** The fixed top of bench/RESULTS.md; everything below it is generated. */
const RESULTS_HEADER = `# blockid-otp benchmarks: generated figures

Written by the bench, not by hand: the full run by \`npm run bench\` (bench/run.mjs), the old
build against the new one by \`npm run bench -- --ab\` (bench/ab.mjs); each rewrites only its own
section. What the scenarios measure, how to read the figures and how to reproduce them:
[docs/benchmarks.md](../docs/benchmarks.md).
`;

/**
 * Replaces one generated section of bench/RESULTS.md (the text between `<!-- name -->` and
 * `<!-- /name -->`), or adds it at the end; the other sections are kept and the header rewritten.
 *
 * @param {string} name
 * @param {string} markdown
 */
export function writeResultsSection(name, markdown) {
  const open = `<!-- ${name} -->`;
  const close = `<!-- /${name} -->`;
  const block = `${open}\n${markdown.trim()}\n${close}`;
  const current = existsSync(RESULTS) ? readFileSync(RESULTS, 'utf8') : '';
  const firstSection = current.indexOf('<!-- ');
  let body = firstSection === -1 ? '' : current.slice(firstSection).trim();
  const from = body.indexOf(open);
  const to = body.indexOf(close);
  body = from !== -1 && to > from ? `${body.slice(0, from)}${block}${body.slice(to + close.length)}` : [body, block].filter(Boolean).join('\n\n');
  writeFileSync(RESULTS, `${RESULTS_HEADER}\n${body.trim()}\n`);
}
