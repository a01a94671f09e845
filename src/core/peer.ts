/**
 * Optional peer dependencies (`nodemailer`, `twilio`) are imported only when a sender first
 * sends, so the package loads without them. Whether one is installed is checked when the
 * sender is created: a missing package is a configuration error at start-up, never a
 * delivery that fails quietly after /send has answered 202.
 */
import { createRequire } from 'node:module';
import { configError } from './errors.js';

/** A resolver rooted where this file is, as the later `import()` resolves (CommonJS build: its own `require`). */
function resolver(): NodeJS.Require {
  return typeof require === 'function' ? require : createRequire(import.meta.url);
}

/** Throws a TypeError naming the package to install when `name` cannot be resolved. */
export function assertPeerInstalled(name: string, factory: string, needs: string): void {
  try {
    resolver().resolve(name);
  } catch {
    throw configError(
      `${factory}: ${needs} needs the optional package "${name}", which is not installed: run \`npm install ${name}\` (or pass a ready-made client).`,
      'missing-peer-dependency',
    );
  }
}
