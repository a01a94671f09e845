/**
 * The bench as a maintainer keeps it:
 * - its scripts (bench/*.mjs) type-check: `tsc -p bench` (allowJs + checkJs, strict, JSDoc
 *   where inference is not enough), as `npm run typecheck` runs it;
 * - every bench script that docs/benchmarks.md tells a reader to run exists.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { it } from 'node:test';
import { promisify } from 'node:util';

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
