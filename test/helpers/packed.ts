/**
 * The package as npm would publish it: built with the project's tsup config and `npm pack`ed,
 * once per content of the sources. Every test file about the published package asks for it
 * here; the first one builds (about a minute) and the others reuse that build, which waits in
 * the temporary folder under a hash of what went into it (sources, build config, manifest).
 *
 * Also here: a consumer folder with the tarball unpacked into its node_modules and chosen
 * packages from the repo's own node_modules beside it (no network), and tsc over it.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, readdir, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';

export const run = promisify(execFile);
export const repo = resolve(import.meta.dirname, '..', '..');

export interface Manifest {
  name: string;
  version: string;
  files: string[];
  dependencies: Record<string, string>;
  exports: Record<string, string | Record<string, Record<string, string>>>;
}

export const manifest = JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')) as Manifest;

export interface PackedPackage {
  /** The folder `npm pack` ran in: package.json, dist/ and the other `files`. */
  packageDir: string;
  /** The .tgz `npm pack` wrote. */
  tarball: string;
  /** The paths inside the tarball, as `npm pack` listed them. */
  files: string[];
}

/** Every file whose content can change the built package, relative to the repo. */
async function buildInputs(): Promise<string[]> {
  const filesUnder = async (folder: string) =>
    (await readdir(join(repo, folder), { recursive: true, withFileTypes: true }))
      .filter((entry) => entry.isFile())
      .map((entry) => relative(repo, join(entry.parentPath, entry.name)));
  const inputs: string[] = await filesUnder('src');
  for (const path of ['package.json', 'tsup.config.ts', 'tsconfig.json', ...manifest.files.filter((file) => file !== 'dist')]) {
    if (!existsSync(join(repo, path))) continue;
    if ((await stat(join(repo, path))).isDirectory()) inputs.push(...(await filesUnder(path)));
    else inputs.push(path);
  }
  return inputs.sort();
}

async function inputsHash(): Promise<string> {
  const hash = createHash('sha256');
  for (const file of await buildInputs())
    hash
      .update(file)
      .update('\0')
      .update(await readFile(join(repo, file)))
      .update('\0');
  return hash.digest('hex').slice(0, 16);
}

let packed: Promise<PackedPackage> | undefined;

/** The packed package for the current sources, built now or reused from an earlier test file. */
export function packedPackage(): Promise<PackedPackage> {
  packed ??= buildAndPack();
  return packed;
}

async function buildAndPack(): Promise<PackedPackage> {
  // One cache folder family per checkout, so parallel checkouts never remove each other's builds.
  const family = `blockid-otp-packed-${createHash('sha256').update(repo).digest('hex').slice(0, 8)}-`;
  const cache = join(tmpdir(), `${family}${await inputsHash()}`);
  const done = join(cache, 'packed.json');
  if (existsSync(done)) return JSON.parse(await readFile(done, 'utf8')) as PackedPackage;

  for (const stale of (await readdir(tmpdir())).filter((name) => name.startsWith(family))) {
    await rm(join(tmpdir(), stale), { recursive: true, force: true });
  }
  const building = `${cache}.${process.pid}.tmp`;
  const packageDir = join(building, 'package');
  await run('npx', ['tsup', '--out-dir', join(packageDir, 'dist')], { cwd: repo, timeout: 180_000 });
  for (const file of ['package.json', ...manifest.files.filter((f) => f !== 'dist')]) {
    if (existsSync(join(repo, file))) await cp(join(repo, file), join(packageDir, file), { recursive: true });
  }
  const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', building], { cwd: packageDir, timeout: 60_000 });
  const [report] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  if (report === undefined) throw new Error('npm pack reported no tarball');
  await rename(building, cache);
  const result: PackedPackage = {
    packageDir: join(cache, 'package'),
    tarball: join(cache, report.filename),
    files: report.files.map((file) => file.path),
  };
  await writeFile(done, JSON.stringify(result));
  return result;
}

/**
 * A fresh consumer app in `dir`: the tarball unpacked into node_modules (a real copy, so its
 * imports resolve from the app, not from the repo), next to `packages` linked from the repo.
 * Returns the installed package's folder.
 */
export async function makeConsumer(dir: string, tarball: string, packages: string[]): Promise<string> {
  const modules = join(dir, 'node_modules');
  await mkdir(modules, { recursive: true });
  await run('tar', ['-xzf', tarball, '-C', modules]);
  const target = join(modules, manifest.name);
  await rename(join(modules, 'package'), target);
  for (const name of packages) {
    await mkdir(join(modules, name, '..'), { recursive: true });
    await symlink(join(repo, 'node_modules', name), join(modules, name), 'dir');
  }
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
  return target;
}

/**
 * Type-checks `files` (written into `dir` first) with the repo's TypeScript; 'ok' or tsc's
 * output. `compilerOptions` go over a strict NodeNext base.
 */
export async function typeCheck(dir: string, files: Record<string, string>, compilerOptions: Record<string, unknown> = {}): Promise<string> {
  await writeFile(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, types: ['node'], ...compilerOptions },
      files: Object.keys(files),
    }),
  );
  for (const [name, source] of Object.entries(files)) await writeFile(join(dir, name), source);
  const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
  return run(process.execPath, [tsc, '-p', dir], { cwd: dir, timeout: 90_000 }).then(
    () => 'ok',
    (error: { stdout?: string }) => error.stdout ?? String(error),
  );
}

/**
 * Installs the packed package into `appDir/node_modules` (a real copy) next to `packages`
 * (links into this repository's node_modules) and the package's own dependencies, the way
 * `npm install` would, offline. Returns the installed package's folder.
 */
export async function installPacked(appDir: string, packages: readonly string[]): Promise<string> {
  const { tarball } = await packedPackage();
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
