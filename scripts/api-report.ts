// The public API report: every entry of package.json `exports`, each exported name with its
// declaration as the built .d.ts gives it (comments left out, so a doc change needs no
// refresh), written to etc/api/<entry>.api.md. A change to the public surface then shows in
// review as a change to those files; `npm test` fails while they differ from the build.
//
// Usage: `npm run api-report` builds the package (or reuses the build the package tests
// made for the same sources) and rewrites etc/api/; test/integration/api-report.test.ts compares.
//
// The entries come from package.json `exports`: adding an entry there is all it takes.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const reportDir = join(repo, 'etc', 'api');
export const refreshCommand = 'npm run api-report';

/** `{ entry, subpath, esm, cjs }` for each subpath of package.json `exports` that has types (paths relative to the package). */
export interface Entry {
  entry: string;
  subpath: string;
  esm: string;
  cjs: string | undefined;
}

type Conditions = string | { import?: { types?: string }; require?: { types?: string } };

export function entriesOf(manifest: { exports: Record<string, Conditions> }): Entry[] {
  return Object.entries(manifest.exports).flatMap(([subpath, conditions]): Entry[] => {
    const esm = typeof conditions === 'string' ? undefined : conditions.import?.types;
    const cjs = typeof conditions === 'string' ? undefined : conditions.require?.types;
    if (typeof esm !== 'string') return [];
    const entry = subpath === '.' ? 'index' : subpath.replace(/^\.\//, '');
    return [{ entry, subpath, esm, cjs }];
  });
}

const printer = ts.createPrinter({ removeComments: true, newLine: ts.NewLineKind.LineFeed });

/** The declarations behind an export, followed through `export { x as y }` aliases. */
function declarationsOf(checker: ts.TypeChecker, symbol: ts.Symbol): ts.Declaration[] {
  const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
  return target.declarations ?? [];
}

/** The statement that declares `node` (a variable's whole `declare const` statement). */
function statementOf(node: ts.Node): ts.Node {
  let current = node;
  while (current.parent !== undefined && !ts.isSourceFile(current.parent)) current = current.parent;
  return current;
}

/** A declaration as source text without comments, its `export`/`declare` keywords and local chunk names left as tsup wrote them. */
function printDeclaration(node: ts.Node): string {
  const statement = statementOf(node);
  const text = printer.printNode(ts.EmitHint.Unspecified, statement, statement.getSourceFile());
  return text.replace(/^(export )?(declare )?/, '');
}

/** Top-level declarations of a .d.ts, by node. */
function topLevelDeclarations(sourceFile: ts.SourceFile): ts.Statement[] {
  return sourceFile.statements.filter(
    (s) =>
      ts.isInterfaceDeclaration(s) ||
      ts.isTypeAliasDeclaration(s) ||
      ts.isClassDeclaration(s) ||
      ts.isFunctionDeclaration(s) ||
      ts.isEnumDeclaration(s) ||
      ts.isVariableStatement(s) ||
      // A namespace, not an augmentation of another package's module (`declare module 'fastify'`).
      (ts.isModuleDeclaration(s) && !ts.isStringLiteral(s.name)),
  );
}

/**
 * Reads the built declarations in `dist` (a package folder holding package.json's files)
 * and returns `{ reports: { [entry]: markdown }, unexported: string[], mismatches: string[] }`:
 * `unexported` lists declarations a public signature uses that no entry exports;
 * `mismatches` the entries whose .d.cts exports other names than their .d.ts.
 */
export interface Reports {
  reports: Record<string, string>;
  unexported: string[];
  mismatches: string[];
}

export function buildReports(packageDir: string): Reports {
  const manifest = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8'));
  const entries = entriesOf(manifest);
  const files = entries.flatMap(({ esm, cjs }) => [esm, ...(cjs === undefined ? [] : [cjs])].map((file) => join(packageDir, file)));
  const program = ts.createProgram(files, {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    noEmit: true,
    types: ['node'],
    skipLibCheck: true,
  });
  const checker = program.getTypeChecker();
  const reached = new Set<ts.Node>();
  const exportsOf = (file: string): ts.Symbol[] => {
    const sourceFile = program.getSourceFile(file);
    const moduleSymbol = sourceFile && checker.getSymbolAtLocation(sourceFile);
    if (moduleSymbol === undefined) throw new Error(`${file}: not a module (was the package built?)`);
    return checker.getExportsOfModule(moduleSymbol).sort((a, b) => a.name.localeCompare(b.name));
  };

  const reports: Record<string, string> = {};
  const mismatches: string[] = [];
  for (const { entry, subpath, esm, cjs } of entries) {
    const symbols = exportsOf(join(packageDir, esm));
    const sections = symbols.map((symbol) => {
      const declarations = declarationsOf(checker, symbol);
      for (const declaration of declarations) reached.add(statementOf(declaration));
      const text = [...new Set(declarations.map(printDeclaration))].join('\n');
      return `### \`${symbol.name}\`\n\n\`\`\`ts\n${text}\n\`\`\`\n`;
    });
    if (cjs !== undefined) {
      const cjsSymbols = exportsOf(join(packageDir, cjs));
      for (const symbol of cjsSymbols) for (const declaration of declarationsOf(checker, symbol)) reached.add(statementOf(declaration));
      const names = (list: ts.Symbol[]) => list.map((s) => s.name).join(', ');
      if (names(cjsSymbols) !== names(symbols)) mismatches.push(`${subpath}: ${cjs} exports ${names(cjsSymbols)}; ${esm} exports ${names(symbols)}`);
    }
    reports[entry] = [
      `# API report: \`${manifest.name}${subpath === '.' ? '' : subpath.slice(1)}\``,
      '',
      `Generated by \`${refreshCommand}\` from \`${esm}\`${cjs ? ` (\`${cjs}\` exports the same names)` : ''}. Do not edit by hand.`,
      '',
      ...sections,
    ].join('\n');
  }

  const unexported: string[] = [];
  for (const sourceFile of program.getSourceFiles()) {
    if (!sourceFile.fileName.startsWith(packageDir)) continue;
    for (const statement of topLevelDeclarations(sourceFile)) {
      if (reached.has(statement)) continue;
      const name = ts.isVariableStatement(statement)
        ? statement.declarationList.declarations.map((d) => d.name.getText()).join(', ')
        : ((statement as ts.DeclarationStatement).name?.getText() ?? '(unnamed)');
      unexported.push(`${name} (${basename(sourceFile.fileName)})`);
    }
  }
  return { reports, unexported: [...new Set(unexported)].sort(), mismatches };
}

/** The committed reports, by entry. */
export function committedReports(): Record<string, string> {
  if (!existsSync(reportDir)) return {};
  return Object.fromEntries(
    readdirSync(reportDir)
      .filter((file) => file.endsWith('.api.md'))
      .map((file) => [file.slice(0, -'.api.md'.length), readFileSync(join(reportDir, file), 'utf8')]),
  );
}

/** What differs between the built surface and the committed reports, one line per entry; empty when they agree. */
export function compareReports(built: Record<string, string>): string[] {
  const committed = committedReports();
  const problems: string[] = [];
  for (const [entry, text] of Object.entries(built)) {
    if (committed[entry] === undefined) problems.push(`etc/api/${entry}.api.md is missing`);
    else if (committed[entry] !== text) problems.push(`etc/api/${entry}.api.md differs from the build`);
  }
  for (const entry of Object.keys(committed)) if (built[entry] === undefined) problems.push(`etc/api/${entry}.api.md is for no entry of package.json exports`);
  return problems;
}

function writeReports(reports: Record<string, string>): void {
  rmSync(reportDir, { recursive: true, force: true });
  mkdirSync(reportDir, { recursive: true });
  for (const [entry, text] of Object.entries(reports)) writeFileSync(join(reportDir, `${entry}.api.md`), text);
}

async function main(): Promise<void> {
  // The package tests' build, reused when the sources are the same.
  const { packedPackage } = await import('../test/helpers/packed.js');
  const { packageDir } = await packedPackage();
  const { reports, unexported, mismatches } = buildReports(packageDir);
  for (const line of mismatches) console.error(`api-report: ${line}`);
  for (const name of unexported) console.error(`api-report: ${name} appears in a public signature but no entry exports it`);
  writeReports(reports);
  console.log(`api-report: wrote ${Object.keys(reports).length} reports to etc/api/`);
  if (unexported.length + mismatches.length > 0) process.exitCode = 1;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
