/**
 * The README and every page of docs/ are checked like code:
 * - every ```` ```ts ```` block type-checks against the package's own types (its subpaths mapped
 *   to the sources); ```` ```ts browser ```` blocks against the DOM's types instead of Node's;
 * - the blocks fenced ```` ```ts test ```` (the "Testing your app" examples) also run: each is a
 *   `node:test` file that must pass;
 * - every link between the README and docs/ points to a file the package ships, and every
 *   `#anchor` to a heading (or `<a id>`) of that file, so the links work on GitHub, on npm and
 *   in node_modules alike; none points into src/, test/ or bench/, which are not published;
 * - the README stays short enough to read on a screen or two.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import tsupConfig from '../../tsup.config.js';

const root = resolve(import.meta.dirname, '..', '..');
const workDir = join(root, 'test', '.readme-snippets');

/** The README and docs/*.md, as paths relative to the repository. */
const pages = [
  'README.md',
  ...readdirSync(join(root, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`),
];

type Kind = 'node' | 'test' | 'browser' | 'quickstart';

interface Snippet {
  page: string;
  kind: Kind;
  source: string;
  file: string;
}

/** Fenced code outside which links and headings are read. */
const fence = /^```[^\n]*\n[\s\S]*?^```$/gm;

function snippetsOf(page: string, markdown: string): Snippet[] {
  const stem = page.replace(/\.md$/, '').replace(/\//g, '-').toLowerCase();
  return [...markdown.matchAll(/^```ts(?: (test|browser|quickstart))?\n([\s\S]*?)^```$/gm)].map((match, index) => ({
    page,
    kind: (match[1] ?? 'node') as Kind,
    source: match[2] ?? '',
    file: `${stem}-${index + 1}.ts`,
  }));
}

/** The package's subpaths, from the build's entries, resolved to the sources (for tsc and, through tsx, for running). */
function subpathsToSources(): Record<string, string[]> {
  const entries = (tsupConfig as { entry: Record<string, string> }).entry;
  return Object.fromEntries(Object.entries(entries).map(([name, source]) => [name === 'index' ? 'blockid-otp' : `blockid-otp/${name}`, [`../../${source}`]]));
}

/**
 * A snippet is a module of its own. It declares what it uses and does not show
 * (`declare const db: …`): there are no ambient placeholders such as `app` or `router`.
 */
const asModule = (source: string) => `${source}\nexport {};\n`;

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  const prose = markdown.replace(fence, '');
  for (const [, text = ''] of prose.matchAll(/^#{1,6} (.+)$/gm)) {
    const slug = text
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    anchors.add(count === 0 ? slug : `${slug}-${count}`);
  }
  for (const [, id = ''] of prose.matchAll(/<a id="([^"]+)"><\/a>/g)) anchors.add(id);
  return anchors;
}

/**
 * Pages that other parts of the project write (one per adapter or feature). Links to them are
 * checked like any other once the page exists; until then the link is reported, not failed.
 */

const run = promisify(execFile);
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

async function typeCheck(project: string): Promise<string> {
  return run(process.execPath, [tsc, '-p', project], { cwd: root, timeout: 240_000 }).then(
    () => '',
    (error: { stdout?: string }) => error.stdout ?? String(error),
  );
}

describe('README and docs/', () => {
  const markdown = new Map(pages.map((page) => [page, readFileSync(join(root, page), 'utf8')]));
  const blocks = pages.flatMap((page) => snippetsOf(page, markdown.get(page) ?? ''));
  const nodeBlocks = blocks.filter((block) => block.kind !== 'browser');
  const browserBlocks = blocks.filter((block) => block.kind === 'browser');

  before(() => {
    rmSync(workDir, { recursive: true, force: true });
    mkdirSync(join(workDir, 'browser'), { recursive: true });
    for (const block of nodeBlocks) writeFileSync(join(workDir, block.file), asModule(block.source));
    for (const block of browserBlocks) writeFileSync(join(workDir, 'browser', block.file), asModule(block.source));
    const compilerOptions = { noEmit: true, noUnusedLocals: false, paths: subpathsToSources() };
    writeFileSync(join(workDir, 'tsconfig.json'), JSON.stringify({ extends: '../../tsconfig.json', compilerOptions, include: ['*.ts'] }));
    // In the page: the DOM's types, none of Node's.
    writeFileSync(
      join(workDir, 'browser', 'tsconfig.json'),
      JSON.stringify({
        extends: '../../../tsconfig.json',
        compilerOptions: { noEmit: true, noUnusedLocals: false, lib: ['ES2023', 'DOM', 'DOM.Iterable'], types: [] },
        include: ['*.ts'],
      }),
    );
  });
  after(() => rmSync(workDir, { recursive: true, force: true }));

  it('has TypeScript snippets on the README and on most pages', () => {
    assert.ok(nodeBlocks.length >= 20, `found ${nodeBlocks.length} snippets`);
    assert.ok(browserBlocks.length >= 2, `found ${browserBlocks.length} browser snippets`);
    assert.equal(blocks.filter((block) => block.kind === 'quickstart' && block.page === 'README.md').length, 1, 'the README has one ```ts quickstart block');
  });

  it('type-checks every ```ts snippet against blockid-otp', { timeout: 240_000 }, async () => {
    const result = await typeCheck(workDir);
    assert.equal(result, '', `snippets do not compile (test/.readme-snippets/<page>-<n>.ts is the n-th ts block of that page):\n${result}`);
  });

  it('type-checks every ```ts browser snippet against the DOM', { timeout: 240_000 }, async () => {
    const result = await typeCheck(join(workDir, 'browser'));
    assert.equal(result, '', `browser snippets do not compile:\n${result}`);
  });

  it('runs the ```ts test snippets, and they pass', { timeout: 180_000 }, async () => {
    const runnable = blocks.filter((block) => block.kind === 'test');
    assert.ok(runnable.length >= 2, `found ${runnable.length} runnable snippets`);
    // A child of the test runner would report to it instead of printing TAP; run it as a fresh test process.
    const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: 'test' };
    delete env.NODE_TEST_CONTEXT;
    delete env.NODE_OPTIONS;
    for (const { file, page } of runnable) {
      // tsx reads tsconfig.json from the working directory: its `paths` map blockid-otp to the sources.
      const output = await run(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', file], { cwd: workDir, env, timeout: 60_000 }).then(
        ({ stdout }) => stdout,
        (error: { stdout?: string; stderr?: string }) => assert.fail(`${file} (${page}) failed:\n${error.stdout ?? ''}\n${error.stderr ?? String(error)}`),
      );
      assert.match(output, /^# pass [1-9]\d*$/m, `${file} ran its tests:\n${output}`);
      assert.match(output, /^# fail 0$/m, `${file}:\n${output}`);
    }
  });

  it('links only to files the package ships, and to anchors that exist', () => {
    const broken: string[] = [];
    let checked = 0;
    for (const [page, text] of markdown) {
      for (const [, target = ''] of text.replace(fence, '').matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z][a-z+.-]*:/i.test(target)) continue; // https:, mailto:
        checked++;
        const [path = '', anchor] = target.split('#');
        const file = path === '' ? page : relative(root, resolve(root, dirname(page), path));
        if (file !== 'README.md' && !(file.startsWith('docs/') && !file.includes('/', 5))) {
          broken.push(`${page}: ${target} leaves README.md and docs/ (not in the published package; describe it instead)`);
          continue;
        }
        if (!existsSync(join(root, file))) {
          broken.push(`${page}: ${target}: no such file`);
          continue;
        }
        if (anchor !== undefined && file.endsWith('.md') && !anchorsOf(readFileSync(join(root, file), 'utf8')).has(anchor)) {
          broken.push(`${page}: ${target}: ${basename(file)} has no heading or <a id> "${anchor}"`);
        }
      }
    }
    assert.ok(checked >= 50, `checked ${checked} links`);
    assert.deepEqual(broken, []);
  });

  it('ships docs/ with the package', () => {
    const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { files: string[] };
    assert.ok(manifest.files.includes('docs'), 'package.json "files" lists docs');
  });

  it('keeps the README under 300 lines', () => {
    const lines = (markdown.get('README.md') ?? '').split('\n').length;
    assert.ok(lines <= 300, `README.md has ${lines} lines`);
  });
});
