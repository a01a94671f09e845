// Runs every test file under test/ with Node's test runner (through tsx) and the TAP
// reporter (test/reporter.mjs lists the failures just before the summary), whose closing
// lines (`# pass N`, `# fail N`) CI reads.
// Usage: npm test [-- file-filter ...]
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const filters = process.argv.slice(2);
const files = readdirSync('test', { recursive: true })
  .map(String)
  .filter((file) => file.endsWith('.test.ts'))
  .filter((file) => filters.length === 0 || filters.some((f) => file.includes(f)))
  .sort()
  .map((file) => join('test', file));

const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=./test/reporter.mjs', '--test-concurrency=1', ...files], {
  stdio: 'inherit',
  env: { ...process.env, NODE_ENV: process.env.NODE_ENV ?? 'test' },
});
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
