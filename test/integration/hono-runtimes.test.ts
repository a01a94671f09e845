/**
 * `blockid-otp/hono` on Bun (≥ 1.2) and Deno (≥ 2), as the contract promises: the fixture signs in
 * over real HTTP on each runtime's own server and checks that the client address reached the
 * per-IP quota. Bun and Deno are the `bun` and `deno` devDependencies, found by
 * test/helpers/runtimes.ts whether or not npm ran their install scripts.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { runtimeBinary } from '../helpers/runtimes.js';

const root = resolve(import.meta.dirname, '..', '..');
const fixture = 'test/fixtures/hono-runtime-app.ts';

const bun = runtimeBinary('bun');
const deno = runtimeBinary('deno');
const commands: Record<'Bun' | 'Deno', [string | undefined, string[]]> = {
  Bun: [bun, [fixture]],
  Deno: [deno, ['run', '-A', '--unstable-sloppy-imports', fixture]],
};

describe('blockid-otp/hono on other runtimes', () => {
  for (const [runtime, [command, args]] of Object.entries(commands)) {
    it(`${runtime}: sign-in, guard, and the client IP from c.env counted by the per-IP quota`, {
      timeout: 240_000,
      skip: command === undefined && `${runtime} is not installed`,
    }, async () => {
      const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: 'test', NO_COLOR: '1' };
      delete env.NODE_OPTIONS;
      const { stdout } = await promisify(execFile)(command!, args, { cwd: root, env, timeout: 230_000 }).catch((error: { stdout?: string; stderr?: string }) =>
        assert.fail(`${runtime} failed:\n${error.stdout ?? ''}\n${error.stderr ?? String(error)}`),
      );
      const line = stdout.trim().split('\n').at(-1) ?? '';
      assert.deepEqual(JSON.parse(line), { send: 202, verify: 200, account: [200, { username: 'ada' }], anonymous: 401, secondSendSameIp: 429 });
    });
  }
});
