/**
 * The quick starts of docs/fetch.md, docs/bun-deno.md and docs/nextjs.md as written: each
 * ```` ```ts quickstart <where> ```` block is a complete file. Node's, Bun's and Deno's run
 * on their runtime against the BUILT package (`blockid-otp` resolves to `dist/` by the
 * package's own name) and a sign-in goes through them over HTTP; the Next.js ones must be the
 * example's files, which test/e2e/next-app.test.ts builds and runs.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { builtPackage, repoRoot } from '../helpers/built.js';
import { Client } from '../helpers/client.js';
import { runtimeBinary, startRuntimeApp, type RuntimeApp, type RuntimeName } from '../helpers/runtimes.js';

/** Inside the repository, so that `blockid-otp` resolves to this package (gitignored, removed after). */
const workDir = join(repoRoot, 'test', '.docs-quickstarts');

function quickstarts(doc: string): Array<{ where: string; source: string }> {
  const markdown = readFileSync(join(repoRoot, 'docs', doc), 'utf8');
  return [...markdown.matchAll(/```tsx? quickstart (\S+)\n([\s\S]*?)```/g)].map((match) => ({ where: match[1]!, source: match[2]! }));
}

/** Signs `ada` in through a quick-start server: 401 before, the code from its dev outbox, 200 after. */
async function signIn(url: string) {
  const client = new Client(url);
  const before = await client.get('/account');
  assert.equal(before.status, 401);
  assert.equal((await client.get('/account', 'text/html')).headers.get('location'), '/login');
  const sent = await client.post('/otp/send', { username: 'ada' });
  assert.equal(sent.status, 202, sent.text);
  let code: string | undefined;
  for (let tries = 0; code === undefined && tries < 500; tries++) {
    const entries = (await (await fetch(`${url}/dev/outbox`)).json()) as Array<{ to: string; text: string }>;
    code = /\b(\d{6})\b/.exec(entries.find((entry) => entry.to === 'ada@example.com')?.text ?? '')?.[1];
    if (code === undefined) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.ok(code, 'a code in the dev outbox');
  const verified = await client.post('/otp/verify', { username: 'ada', code });
  assert.equal(verified.status, 200, verified.text);
  const account = await client.get('/account');
  assert.equal(account.status, 200);
  assert.deepEqual(account.body, { hello: 'ada' });
}

describe('docs quick starts', () => {
  const apps: RuntimeApp[] = [];
  before(async () => {
    await builtPackage();
    rmSync(workDir, { recursive: true, force: true });
    mkdirSync(workDir, { recursive: true });
  });
  after(async () => {
    for (const app of apps) await app.close();
    rmSync(workDir, { recursive: true, force: true });
  });

  const runnable: Array<[string, RuntimeName | 'node']> = [
    ['fetch.md', 'node'],
    ['bun-deno.md', 'bun'],
    ['bun-deno.md', 'deno'],
  ];
  for (const [doc, runtime] of runnable) {
    const skip = runtime !== 'node' && runtimeBinary(runtime) === undefined && `${runtime} is not installed`;
    it(`runs the ${runtime} quick start of docs/${doc} as written, and signs in through it`, { skip, timeout: 120_000 }, async () => {
      const block = quickstarts(doc).find((entry) => entry.where === runtime);
      assert.ok(block, `a \`\`\`ts quickstart ${runtime} block in docs/${doc}`);
      const file = join(workDir, `${runtime}-server.ts`);
      writeFileSync(file, block.source);
      const app = await startRuntimeApp(runtime, file, { PORT: '0' }, /listening on http:\/\/localhost:(\d+)/);
      apps.push(app);
      await signIn(app.url);
    });
  }

  it('type-checks the Node quick start of docs/fetch.md against the built package', { timeout: 180_000 }, async () => {
    const block = quickstarts('fetch.md').find((entry) => entry.where === 'node');
    assert.ok(block);
    const dir = join(workDir, 'typecheck');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'server.ts'), block.source);
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        extends: '../../../tsconfig.json',
        compilerOptions: { noEmit: true, exactOptionalPropertyTypes: true },
        include: ['server.ts'],
        exclude: [],
      }),
    );
    const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = await promisify(execFile)(process.execPath, [tsc, '-p', dir], { cwd: repoRoot }).then(
      () => '',
      (error: { stdout?: string }) => error.stdout ?? String(error),
    );
    assert.equal(result, '', `the quick start does not compile:\n${result}`);
  });

  it('shows the Next.js example files as they are in example-app/next', () => {
    const blocks = quickstarts('nextjs.md');
    assert.ok(blocks.length >= 3, `found ${blocks.length}`);
    for (const { where, source } of blocks) {
      assert.match(where, /^next:/);
      assert.equal(source, readFileSync(join(repoRoot, 'example-app', 'next', where.slice('next:'.length)), 'utf8'), where);
    }
  });
});
