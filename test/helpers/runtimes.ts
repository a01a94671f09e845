/**
 * Bun and Deno as the `bun` and `deno` devDependencies install them, and an app started on
 * one. The binaries come from the platform packages (`@oven/bun-<os>-<arch>`,
 * `@deno/<os>-<arch>`), which hold them without any install script; `bun`'s own postinstall,
 * when npm runs it, moves Bun's into `node_modules/bun/bin/`, so both places are looked at.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './built.js';

export type RuntimeName = 'bun' | 'deno';

const modules = join(repoRoot, 'node_modules');

/** A real executable, not the small placeholder a package ships before its postinstall. */
const isBinary = (path: string) => existsSync(path) && statSync(path).size > 1_000_000;

function platformBinaries(scope: string, prefix: string, file: string): string[] {
  const dir = join(modules, scope);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => name.startsWith(prefix))
    .sort() // glibc builds before "-musl" and "-baseline"
    .map((name) => join(dir, name, file));
}

/** The path of the runtime's executable, or undefined when it is not installed for this platform. */
export function runtimeBinary(runtime: RuntimeName): string | undefined {
  const exe = process.platform === 'win32' ? '.exe' : '';
  const candidates =
    runtime === 'bun'
      ? [join(modules, 'bun', 'bin', 'bun.exe'), ...platformBinaries('@oven', `bun-${process.platform}-${process.arch}`, join('bin', `bun${exe}`))]
      : [...platformBinaries('@deno', `${process.platform}-${process.arch}`, `deno${exe}`), join(modules, 'deno', `deno${exe}`)];
  return candidates.find(isBinary);
}

export interface RuntimeApp {
  url: string;
  /** Everything the app wrote to stderr so far. */
  stderr(): string;
  close(): Promise<void>;
}

/**
 * Starts `script` on the runtime (or on Node through tsx) with `env`; resolves once its output
 * matches `ready`, whose first group is the port (default: a `{"listening":<port>}` line).
 */
export function startRuntimeApp(
  runtime: RuntimeName | 'node',
  script: string,
  env: Record<string, string>,
  ready = /\{"listening":(\d+)\}/,
): Promise<RuntimeApp> {
  const binary = runtime === 'node' ? process.execPath : runtimeBinary(runtime);
  if (binary === undefined) throw new Error(`${runtime} is not installed: run npm ci (the "${runtime}" devDependency brings it).`);
  const args =
    runtime === 'node'
      ? ['--import', 'tsx', script]
      : runtime === 'bun'
        ? ['run', script]
        : ['run', '--no-lock', '--no-prompt', '--allow-net', '--allow-env', `--allow-read=${repoRoot}`, script];
  const child = spawn(binary, args, { cwd: repoRoot, env: { ...process.env, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error('did not start within 60 s')), 60_000);
    const fail = (error: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${runtime} app: ${error.message}\nstdout: ${stdout}\nstderr: ${stderr}`));
    };
    const onExit = (code: number | null) => fail(new Error(`exited with ${code}`));
    child.once('exit', onExit);
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      const match = ready.exec(stdout);
      if (match === null) return;
      clearTimeout(timer);
      child.off('exit', onExit);
      resolve({
        url: `http://127.0.0.1:${match[1]}`,
        stderr: () => stderr,
        close: async () => {
          child.kill('SIGTERM');
          await exited;
        },
      });
    });
  });
}
