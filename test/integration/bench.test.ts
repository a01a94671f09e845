/**
 * The bench as a maintainer keeps it:
 * - its scripts (bench/*.mjs) type-check: `tsc -p bench` (allowJs + checkJs, strict, JSDoc
 *   where inference is not enough), as `npm run typecheck` runs it;
 * - every bench script that docs/benchmarks.md tells a reader to run exists;
 * - the probe servers its ceilings and yardsticks depend on do what they say;
 * - the expired rows of the full run's sweep measurement fit the PostgreSQL store's tables.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { createClient } from 'redis';
import { builtPackage } from '../helpers/built.js';

const root = resolve(import.meta.dirname, '../..');

it('bench/*.mjs type-check (tsc -p bench)', { timeout: 180_000 }, async () => {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const result = await promisify(execFile)(process.execPath, [tsc, '-p', 'bench'], { cwd: root }).then(
    () => ({ code: 0, output: '' }),
    (error: { code?: number; stdout?: string; stderr?: string }) => ({ code: error.code ?? 1, output: `${error.stdout ?? ''}${error.stderr ?? ''}` }),
  );
  assert.equal(result.code, 0, result.output);
});

it('docs/benchmarks.md names only bench scripts that exist', () => {
  const page = readFileSync(join(root, 'docs', 'benchmarks.md'), 'utf8');
  const named = [...new Set([...page.matchAll(/\bbench\/[\w.-]+\.m?js\b/g)].map((match) => match[0]))];
  assert.ok(named.includes('bench/ab.mjs'), 'the page shows how to run the A/B');
  assert.deepEqual(
    named.filter((file) => !existsSync(join(root, file))),
    [],
    'scripts the page names but the repository lacks',
  );
  assert.match(page, /npm run bench -- --ab/, 'the page shows the old-against-new run');
});

/**
 * The ceilings and yardsticks of "each store against its ceiling": a server with `storeProbe`
 * keeps its codes in memoryStore() and makes its round trip to the database it names; were it
 * to run the real store instead, the store would be compared with itself.
 */
describe('bench/server.mjs storeProbe servers', { timeout: 120_000 }, () => {
  /** The two bench helpers used here (JavaScript, type-checked with the bench). */
  interface BenchHelpers {
    lib: { startServer(config: Record<string, unknown>): Promise<{ url: string; stop(): Promise<void> }> };
    scenarios: { pendingCodeUsers(url: string, options: { count: number; tag: string }): Promise<unknown[]> };
  }
  const bench = async (): Promise<BenchHelpers> => ({
    lib: await import(pathToFileURL(join(root, 'bench', 'lib.mjs')).href),
    scenarios: await import(pathToFileURL(join(root, 'bench', 'scenarios.mjs')).href),
  });

  it("on Redis, 'write' counts one INCR per send in a key of its own, and keeps no code in Redis", async () => {
    const { lib, scenarios } = await bench();
    const dist = join(await builtPackage(), 'index.js');
    const prefix = `blockid-bench-test:${process.pid}:`;
    const server = await lib.startServer({ kind: 'otp', guard: true, dist, store: 'redis', prefix, storeProbe: 'write' });
    const client = createClient({ url: 'redis://127.0.0.1:6379' });
    await client.connect();
    try {
      await scenarios.pendingCodeUsers(server.url, { count: 3, tag: 'probe' });
      const keys = [];
      for await (const batch of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) keys.push(...batch);
      const probes = keys.filter((key) => key.startsWith(`${prefix}probe:`));
      assert.equal(probes.length, 3, `one probe key per user: ${JSON.stringify(keys)}`);
      assert.deepEqual(
        keys.filter((key) => key.startsWith(`${prefix}otp:`)),
        [],
        'the real Redis store ran',
      );
    } finally {
      await server.stop();
      for await (const batch of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) if (batch.length > 0) await client.unlink(batch);
      await client.quit();
    }
  });

  it("on PostgreSQL, 'tables' writes a send's rows into the store's own tables", async () => {
    const { lib, scenarios } = await bench();
    const dist = join(await builtPackage(), 'index.js');
    const schema = `blockid_bench_test_${process.pid}`;
    const admin = new pg.Pool({ host: '127.0.0.1', port: 5432, database: 'test', user: 'postgres', max: 1 });
    await admin.query(`CREATE SCHEMA ${schema}`);
    const server = await lib.startServer({ kind: 'otp', guard: true, dist, store: 'postgres', pgSchema: schema, tablePrefix: 't_', storeProbe: 'tables' });
    try {
      await scenarios.pendingCodeUsers(server.url, { count: 3, tag: 'probe' });
      const count = async (table: string) => Number((await admin.query(`SELECT count(*) AS n FROM ${schema}.${table}`)).rows[0].n);
      assert.equal(await count('t_tables_slots'), 3, 'one code row per send');
      // Per username, per destination (SMS and email), the IP and the number block, shared where the sends share them.
      assert.ok((await count('t_tables_counters')) >= 3 * 3 + 1, 'a row per quota counter');
      const own = await admin.query(`SELECT to_regclass('${schema}.t_slots') AS t`);
      assert.equal(own.rows[0].t, null, 'the real PostgreSQL store ran');
    } finally {
      await server.stop();
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.end();
    }
  });
});

it("the full run's expired rows fit the PostgreSQL store's tables, for its sweep to remove", { timeout: 60_000 }, async () => {
  const lib: { expiredRowsSql(table: (name: string) => string, rows: { slots: number; users: number; counters: number }): string } = await import(
    pathToFileURL(join(root, 'bench', 'lib.mjs')).href
  );
  const { postgresStore } = await import(pathToFileURL(join(await builtPackage(), 'postgres.js')).href);
  const schema = `blockid_bench_sweep_${process.pid}`;
  const admin = new pg.Pool({ host: '127.0.0.1', port: 5432, database: 'test', user: 'postgres', max: 2 });
  try {
    await admin.query(`CREATE SCHEMA ${schema}`);
    const store = postgresStore({ pool: admin, schema, tablePrefix: 'w_', sweepIntervalMs: 0 });
    await store.ready();
    const table = (name: string) => `${schema}.w_${name}`;
    await admin.query(lib.expiredRowsSql(table, { slots: 5, users: 3, counters: 4 }));
    const expired = async (name: string) => Number((await admin.query(`SELECT count(*) AS n FROM ${table(name)} WHERE expires_at < now()`)).rows[0].n);
    assert.deepEqual([await expired('slots'), await expired('users'), await expired('counters')], [5, 3, 4]);
    await store.close();
  } finally {
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
  }
});
