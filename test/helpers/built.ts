/**
 * The package as users get it: `npm run build` into the checkout's `dist/`, done once for
 * every test file that needs it (Bun, Deno, Next.js). A stamp in `dist/` holds a hash of what
 * the build reads (src/, the tsup config, package.json); while it matches, the build is
 * skipped. Test files run one at a time (test/run.mjs), so no two builds overlap.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const dist = join(repoRoot, 'dist');
const stamp = join(dist, '.build-hash');

/** A hash of every input of the build, so a changed source means a new build. */
function sourceHash(): string {
  const hash = createHash('sha256');
  const files = readdirSync(join(repoRoot, 'src'), { recursive: true })
    .map(String)
    .map((file) => join('src', file))
    .sort();
  for (const file of [...files, 'tsup.config.ts', 'package.json']) {
    const path = join(repoRoot, file);
    try {
      hash.update(file).update(readFileSync(path));
    } catch {
      // a directory
    }
  }
  return hash.digest('hex');
}

let building: Promise<string> | undefined;

/** Builds the package unless `dist/` is already the build of this source; resolves with the `dist/` path. */
export function builtPackage(): Promise<string> {
  building ??= (async () => {
    const hash = sourceHash();
    if (existsSync(stamp) && readFileSync(stamp, 'utf8') === hash) return dist;
    await new Promise<void>((done, fail) => {
      const child = spawn('npm', ['run', 'build'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (chunk) => (output += chunk));
      child.stderr.on('data', (chunk) => (output += chunk));
      child.on('error', fail);
      child.on('exit', (code) => (code === 0 ? done() : fail(new Error(`npm run build failed (${code}):\n${output.slice(-4000)}`))));
    });
    writeFileSync(stamp, hash);
    return dist;
  })();
  return building;
}
