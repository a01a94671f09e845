/**
 * The bench's scripts (bench/*.mjs) type-check: `tsc -p bench` (allowJs + checkJs, strict,
 * JSDoc where inference is not enough), as `npm run typecheck` runs it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { it } from 'node:test';
import { promisify } from 'node:util';

const root = resolve(import.meta.dirname, '..');

it('bench/*.mjs type-check (tsc -p bench)', { timeout: 180_000 }, async () => {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const result = await promisify(execFile)(process.execPath, [tsc, '-p', 'bench'], { cwd: root }).then(
    () => ({ code: 0, output: '' }),
    (error: { code?: number; stdout?: string; stderr?: string }) => ({ code: error.code ?? 1, output: `${error.stdout ?? ''}${error.stderr ?? ''}` }),
  );
  assert.equal(result.code, 0, result.output);
});
