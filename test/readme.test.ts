/**
 * Every TypeScript snippet in the README type-checks against the package's own types, and the
 * ones fenced as ```` ```ts test ```` (the "Testing your app" examples) also run: each is a
 * `node:test` file that must pass, importing `blockid-otp` from the sources.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';

const root = resolve(import.meta.dirname, '..');
const workDir = join(root, 'test', '.readme-snippets');

/** Names the snippets use without defining: the reader's own code. */
const ambient: Record<string, string> = {
  app: 'any',
  users: '{ find(username: string): Promise<{ smsTo?: string; smsISDCode?: string; emailTo?: string } | null> }',
  handler: 'import("express").RequestHandler',
  router: '{ get(path: string, ...handlers: Array<(ctx: any, next: any) => unknown>): void; post(path: string, ...handlers: Array<(ctx: any, next: any) => unknown>): void }',
  transfer: 'any',
  alerting: '{ notify(event: unknown): void }',
  secret: 'string',
  sms: 'import("blockid-otp").SmsSender',
  email: 'import("blockid-otp").EmailSender',
  code: 'string',
};

interface Snippet {
  source: string;
  /** Fenced as ```` ```ts test ````: a test file that is run, not only compiled. */
  run: boolean;
}

function snippets(markdown: string): Snippet[] {
  return [...markdown.matchAll(/```ts( test)?\n([\s\S]*?)```/g)].map((match) => ({ source: match[2] ?? '', run: match[1] !== undefined }));
}

/** The package's subpaths, resolved to the sources (for tsc and, through tsx, for running). */
const paths = {
  'blockid-otp': ['../../src/index.ts'],
  'blockid-otp/koa': ['../../src/koa.ts'],
  'blockid-otp/otp-provider': ['../../src/otp-provider.ts'],
  'blockid-otp/testing': ['../../src/testing.ts'],
  'blockid-otp/metrics': ['../../src/metrics.ts'],
  'blockid-otp/postgres': ['../../src/postgres.ts'],
  'blockid-otp/hono': ['../../src/hono.ts'],
  'blockid-otp/fastify': ['../../src/fastify.ts'],
};

function withAmbient(source: string): string {
  const declared = (name: string) =>
    new RegExp(`\\b(const|let|var|function|class|interface|type)\\s+${name}\\b`).test(source) ||
    new RegExp(`^import[^;]*\\b${name}\\b[^;]*from`, 'm').test(source);
  const declarations = Object.entries(ambient)
    .filter(([name]) => !declared(name) && new RegExp(`\\b${name}\\b`).test(source))
    .map(([name, type]) => `declare const ${name}: ${type};`);
  return `${source}\n${declarations.join('\n')}\nexport {};\n`;
}

const run = promisify(execFile);

describe('README', () => {
  const blocks = snippets(readFileSync(join(root, 'README.md'), 'utf8'));
  const file = (index: number) => `snippet-${index + 1}.ts`;

  before(() => {
    rmSync(workDir, { recursive: true, force: true });
    mkdirSync(workDir, { recursive: true });
    blocks.forEach((block, index) => writeFileSync(join(workDir, file(index)), withAmbient(block.source)));
    writeFileSync(
      join(workDir, 'tsconfig.json'),
      JSON.stringify({
        extends: '../../tsconfig.json',
        compilerOptions: { noEmit: true, noUnusedLocals: false, paths },
        include: ['*.ts'],
      }),
    );
  });
  after(() => rmSync(workDir, { recursive: true, force: true }));

  it('has TypeScript snippets that compile against blockid-otp', async () => {
    assert.ok(blocks.length >= 10, `found ${blocks.length} snippets`);
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = await run(process.execPath, [tsc, '-p', workDir], { cwd: root }).then(
      () => '',
      (error: { stdout?: string }) => error.stdout ?? String(error),
    );
    assert.equal(result, '', `README snippets do not compile:\n${result}`);
  });

  it('runs the "Testing your app" snippets, and they pass', { timeout: 120_000 }, async () => {
    const runnable = blocks.flatMap((block, index) => (block.run ? [file(index)] : []));
    assert.ok(runnable.length >= 2, `found ${runnable.length} runnable snippets`);
    // A child of the test runner would report to it instead of printing TAP; run it as a fresh test process.
    const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: 'test' };
    delete env.NODE_TEST_CONTEXT;
    delete env.NODE_OPTIONS;
    for (const name of runnable) {
      // tsx reads tsconfig.json from the working directory: its `paths` map blockid-otp to the sources.
      const output = await run(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', name], { cwd: workDir, env, timeout: 60_000 }).then(
        ({ stdout }) => stdout,
        (error: { stdout?: string; stderr?: string }) => assert.fail(`${name} failed:\n${error.stdout ?? ''}\n${error.stderr ?? String(error)}`),
      );
      assert.match(output, /^# pass [1-9]\d*$/m, `${name} ran its tests:\n${output}`);
      assert.match(output, /^# fail 0$/m, `${name}:\n${output}`);
    }
  });
});
