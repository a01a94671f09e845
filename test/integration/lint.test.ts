/**
 * The repository's hygiene, as part of the suite: Biome finds nothing to lint or format, and
 * knip finds no unused file, export or dependency (configured in biome.json and knip.json).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const run = (bin: string, args: string[]) => {
  const result = spawnSync(process.execPath, [`node_modules/${bin}`, ...args], { cwd: root, encoding: 'utf8', timeout: 300_000 });
  return { status: result.status, output: `${result.stdout}\n${result.stderr}`.trim() };
};

describe('repository hygiene', () => {
  it('Biome: no lint finding and nothing to format', () => {
    const { status, output } = run('@biomejs/biome/bin/biome', ['check', '--error-on-warnings', '--max-diagnostics=50', '.']);
    assert.equal(status, 0, output);
  });

  it('knip: no unused file, export or dependency', () => {
    const { status, output } = run('knip/bin/knip.js', ['--no-progress']);
    assert.equal(status, 0, output);
  });
});
