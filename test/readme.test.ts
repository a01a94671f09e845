/** Every TypeScript snippet in the README type-checks against the package's own types. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
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

function snippets(markdown: string): string[] {
  return [...markdown.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1] ?? '');
}

function withAmbient(source: string): string {
  const declared = (name: string) =>
    new RegExp(`\\b(const|let|var|function|class|interface|type)\\s+${name}\\b`).test(source) ||
    new RegExp(`^import[^;]*\\b${name}\\b[^;]*from`, 'm').test(source);
  const declarations = Object.entries(ambient)
    .filter(([name]) => !declared(name) && new RegExp(`\\b${name}\\b`).test(source))
    .map(([name, type]) => `declare const ${name}: ${type};`);
  return `${source}\n${declarations.join('\n')}\nexport {};\n`;
}

describe('README', () => {
  after(() => rmSync(workDir, { recursive: true, force: true }));

  it('has TypeScript snippets that compile against blockid-otp', async () => {
    const blocks = snippets(readFileSync(join(root, 'README.md'), 'utf8'));
    assert.ok(blocks.length >= 8, `found ${blocks.length} snippets`);
    rmSync(workDir, { recursive: true, force: true });
    mkdirSync(workDir, { recursive: true });
    blocks.forEach((block, index) => writeFileSync(join(workDir, `snippet-${index + 1}.ts`), withAmbient(block)));
    writeFileSync(
      join(workDir, 'tsconfig.json'),
      JSON.stringify({
        extends: '../../tsconfig.json',
        compilerOptions: {
          noEmit: true,
          noUnusedLocals: false,
          paths: {
            'blockid-otp': ['../../src/index.ts'],
            'blockid-otp/koa': ['../../src/koa.ts'],
            'blockid-otp/otp-provider': ['../../src/otp-provider.ts'],
          },
        },
        include: ['*.ts'],
      }),
    );
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const run = promisify(execFile);
    const result = await run(process.execPath, [tsc, '-p', workDir], { cwd: root }).then(
      () => '',
      (error: { stdout?: string }) => error.stdout ?? String(error),
    );
    assert.equal(result, '', `README snippets do not compile:\n${result}`);
  });
});
