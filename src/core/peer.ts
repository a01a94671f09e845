/**
 * Optional peer dependencies (`nodemailer`, `twilio`) are imported only when a sender first
 * sends, so the package loads without them. Whether one is installed is checked when the
 * sender is created: a missing package is a configuration error at start-up, never a
 * delivery that fails quietly after /send has answered 202.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { configError } from './errors.js';

/**
 * Throws a TypeError naming the package to install when `name` cannot be resolved from here,
 * where the later `import()` resolves it from (the CommonJS build gets `import.meta.url`
 * from tsup's shim), nor from the app's folder (a bundler such as Next.js moves this file
 * into its own output, where `import.meta.url` no longer sits above the app's node_modules).
 * Only "not found" counts: any other failure is left to that import.
 */
export function assertPeerInstalled(name: string, factory: string, needs: string): void {
  for (const base of [import.meta.url, pathToFileURL(join(process.cwd(), 'package.json')).href]) {
    try {
      createRequire(base).resolve(name);
      return;
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'MODULE_NOT_FOUND') return;
    }
  }
  throw configError(
    `${factory}: ${needs} needs the optional package "${name}", which is not installed: run \`npm install ${name}\` (or pass your own ${name === 'nodemailer' ? 'transporter' : 'client'}).`,
    'missing-peer-dependency',
  );
}
