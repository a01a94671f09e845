/**
 * The PostgreSQL servers of the tests: the shared one of this machine kind (127.0.0.1:5432,
 * database `test`), checked up front so that a missing server fails a suite at once with what
 * to do; and a throwaway cluster for tests that stop, stall and restart the database without
 * touching the shared server: Debian's `initdb` / `pg_ctl` (run as the `postgres` user when
 * the tests run as root), trust auth, loopback only, on a free port.
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './redis-server.js';

const run = promisify(execFile);

/** The shared server's test database; `PG_TEST_URL` points the tests elsewhere. */
export const testDatabaseUrl = process.env.PG_TEST_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/**
 * Rejects within about 3 s, saying what to do, when `url` does not answer: call it in a
 * suite's `before` so that a missing server is one clear failure, not a suite of 503s.
 */
export async function assertPostgresReachable(url = testDatabaseUrl): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000, query_timeout: 3000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (error) {
    const reason = (error as { code?: string }).code ?? (error as Error).message;
    throw new Error(
      `PostgreSQL is not reachable at ${url} (${reason}). These tests need it: start it ` +
        '(`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, as .ci/run does) or set PG_TEST_URL.',
    );
  } finally {
    await client.end().catch(() => {});
  }
}
const bin = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

/** Why a throwaway cluster cannot be started here, or `null` when it can. */
export function postgresClusterUnavailable(): string | null {
  if (!existsSync(join(bin, 'initdb')) || !existsSync(join(bin, 'pg_ctl'))) return `initdb/pg_ctl not found in ${bin} (set PG_BIN)`;
  if (process.getuid?.() === 0 && !existsSync('/usr/sbin/runuser') && !existsSync('/sbin/runuser')) return 'running as root without runuser';
  return null;
}

export interface PostgresCluster {
  port: number;
  url: string;
  start(): Promise<void>;
  /** `pg_ctl stop -m immediate`: the server goes away at once, as in a crash. */
  stop(): Promise<void>;
  /** The postmaster's pid, for SIGSTOP/SIGCONT. */
  pids(): Promise<number[]>;
  destroy(): Promise<void>;
}

export async function createPostgresCluster(): Promise<PostgresCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'blockid-otp-pg-'));
  const data = join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    chownSync(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  const pg = (tool: string, args: string[]) =>
    asRoot ? run('runuser', ['-u', 'postgres', '--', join(bin, tool), ...args], { cwd: dir }) : run(join(bin, tool), args, { cwd: dir });
  await pg('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  const port = await freePort();
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`;
  const cluster: PostgresCluster = {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async start() {
      await pg('pg_ctl', ['-D', data, '-o', options, '-l', join(dir, 'log'), '-w', '-t', '30', 'start']);
    },
    async stop() {
      await pg('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
    },
    async pids() {
      const postmaster = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
      const { stdout } = await run('ps', ['-o', 'pid=', '--ppid', String(postmaster)]).catch(() => ({ stdout: '' }));
      return [
        postmaster,
        ...stdout
          .split('\n')
          .map((line) => Number(line.trim()))
          .filter((pid) => pid > 0),
      ];
    },
    async destroy() {
      await cluster.stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await cluster.start();
  return cluster;
}
