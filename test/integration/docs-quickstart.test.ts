/**
 * The quick starts of docs/hono.md and docs/fastify.md (the block fenced as ```` ```ts quickstart ````)
 * type-check and run as written: each is started as its own process, importing `blockid-otp`
 * from the sources, and a client signs in over HTTP with the code from its development outbox.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Client } from '../helpers/client.js';

const root = resolve(import.meta.dirname, '..', '..');
const workDir = join(root, 'test', '.docs-quickstart');
const pages = ['hono', 'fastify'] as const;

/** The package's subpaths, resolved to the sources (for tsc and, through tsx, for running). */
const paths = {
  'blockid-otp': ['../../src/index.ts'],
  'blockid-otp/hono': ['../../src/hono.ts'],
  'blockid-otp/fastify': ['../../src/fastify.ts'],
};

function quickstart(page: string): string {
  const markdown = readFileSync(join(root, 'docs', `${page}.md`), 'utf8');
  const blocks = [...markdown.matchAll(/```ts quickstart\n([\s\S]*?)```/g)];
  assert.equal(blocks.length, 1, `docs/${page}.md has one quick start`);
  return blocks[0]?.[1] ?? '';
}

const children: ChildProcess[] = [];

before(() => {
  rmSync(workDir, { recursive: true, force: true });
  mkdirSync(workDir, { recursive: true });
  for (const page of pages) writeFileSync(join(workDir, `${page}.ts`), quickstart(page));
  writeFileSync(
    join(workDir, 'tsconfig.json'),
    JSON.stringify({ extends: '../../tsconfig.json', compilerOptions: { noEmit: true, noUnusedLocals: true, paths }, include: ['*.ts'] }),
  );
});

after(() => {
  for (const child of children) child.kill();
  rmSync(workDir, { recursive: true, force: true });
});

/** Starts `file` with tsx (whose tsconfig `paths` map blockid-otp to the sources) and waits for its "listening on <url>" line. */
function start(file: string): Promise<string> {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: 'development', PORT: '0', OTP_SECRET: 'docs-quickstart-secret-0123456789abcdef' };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, ['--import', 'tsx', file], { cwd: workDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`${file} did not start:\n${output}`)), 30_000);
    const read = (chunk: Buffer) => {
      output += chunk.toString();
      const url = /listening on (http:\/\/\S+)/.exec(output)?.[1];
      if (url !== undefined) {
        clearTimeout(timer);
        resolvePromise(url);
      }
    };
    child.stdout?.on('data', read);
    child.stderr?.on('data', read);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${file} exited with ${code}:\n${output}`));
    });
  });
}

describe('docs quick starts', () => {
  it('type-check against blockid-otp', { timeout: 120_000 }, async () => {
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = await promisify(execFile)(process.execPath, [tsc, '-p', workDir], { cwd: root }).then(
      () => '',
      (error: { stdout?: string }) => error.stdout ?? String(error),
    );
    assert.equal(result, '', `the quick starts do not compile:\n${result}`);
  });

  for (const page of pages) {
    it(`docs/${page}.md: the server starts as written, and a client signs in with the code from its outbox`, { timeout: 60_000 }, async () => {
      const client = new Client(await start(`${page}.ts`));
      const before = await client.get('/account', 'application/json');
      assert.equal(before.status, 401, before.text);
      assert.equal(before.body.error, 'otp_required');

      assert.equal((await client.post('/otp/send', { username: 'ada' })).status, 202);
      let code: string | undefined;
      for (let tries = 0; code === undefined && tries < 50; tries += 1) {
        const outbox = await client.get('/dev/outbox');
        code = (outbox.body as Array<{ to: string; text: string }>).map((entry) => /\b(\d{6})\b/.exec(entry.text)?.[1]).find((found) => found !== undefined);
        if (code === undefined) await new Promise((wait) => setTimeout(wait, 100));
      }
      assert.ok(code, 'the outbox shows the email with its code');

      const verified = await client.post('/otp/verify', { username: 'ada', code });
      assert.equal(verified.status, 200, verified.text);
      const account = await client.get('/account', 'application/json');
      assert.equal(account.status, 200, account.text);
      assert.deepEqual(account.body, { signedInAs: 'ada' });

      assert.equal((await client.request('POST', '/sign-out')).status, 204);
      assert.equal((await client.get('/account', 'application/json')).status, 401, 'signed out');
    });
  }
});
