/**
 * The package as npm would publish it: built with the project's tsup config (into a temporary
 * folder, never the checkout's `dist/`) and packed with `npm pack`, once per test process.
 * `installPacked()` then puts it into a consumer app's node_modules the way `npm install` would,
 * offline: the tarball unpacked as a real copy, and the packages the consumer needs (its peers,
 * tools, and the package's own dependencies) linked from this repository's node_modules.
 */
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '..', '..');

interface Manifest {
  name: string;
  files: string[];
  dependencies: Record<string, string>;
}

export interface PackedPackage {
  /** The `.tgz` file. */
  tarball: string;
  /** The paths inside the tarball (`package/` stripped), as `npm pack --json` lists them. */
  files: string[];
  manifest: Manifest;
}

let packing: Promise<PackedPackage> | undefined;
let workDir: string | undefined;

/** Builds and packs the package, the first time it is called in this process. */
export function packedPackage(): Promise<PackedPackage> {
  packing ??= pack();
  return packing;
}

async function pack(): Promise<PackedPackage> {
  const manifest = JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')) as Manifest;
  workDir = await mkdtemp(join(tmpdir(), 'blockid-otp-packed-'));
  process.once('exit', () => {
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });
  const stage = join(workDir, 'package');
  await run('npx', ['tsup', '--out-dir', join(stage, 'dist')], { cwd: repo, timeout: 180_000 });
  // What `files` lists (dist was just built), plus what npm always ships.
  for (const entry of [...manifest.files.filter((file) => file !== 'dist'), 'package.json', 'LICENSE', 'CHANGELOG.md']) {
    if (existsSync(join(repo, entry))) await cp(join(repo, entry), join(stage, entry), { recursive: true });
  }
  const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', workDir], { cwd: stage, timeout: 60_000 });
  const [packed] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  if (!packed) throw new Error(`npm pack reported no tarball:\n${stdout}`);
  return { tarball: join(workDir, packed.filename), files: packed.files.map((file) => file.path), manifest };
}

/**
 * Installs the packed package into `appDir/node_modules` (a real copy) next to `packages`
 * (links into this repository's node_modules) and the package's own dependencies. Returns the
 * installed package's folder.
 */
export async function installPacked(appDir: string, packages: readonly string[]): Promise<string> {
  const { tarball, manifest } = await packedPackage();
  const modules = join(appDir, 'node_modules');
  await mkdir(modules, { recursive: true });
  const unpack = await mkdtemp(join(appDir, '.unpack-'));
  await run('tar', ['-xzf', tarball, '-C', unpack]);
  const target = join(modules, manifest.name);
  await rm(target, { recursive: true, force: true });
  await rename(join(unpack, 'package'), target);
  await rm(unpack, { recursive: true, force: true });
  for (const name of new Set([...Object.keys(manifest.dependencies), ...packages])) {
    const link = join(modules, name);
    if (existsSync(link)) continue;
    await mkdir(dirname(link), { recursive: true });
    await symlink(join(repo, 'node_modules', name), link, 'dir');
  }
  if (!existsSync(join(appDir, 'package.json'))) await writeFile(join(appDir, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
  return target;
}
