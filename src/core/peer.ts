/**
 * Optional peer dependencies (`nodemailer`, `twilio`) are imported only when a sender first
 * sends, so the package loads without them. Whether one is installed is checked when the
 * sender is created: a missing package is a configuration error at start-up, never a
 * delivery that fails quietly after /send has answered 202.
 */
import { createRequire } from 'node:module';
import { configError } from './errors.js';

/**
 * Throws a TypeError naming the package to install when `name` cannot be resolved from here,
 * where the later `import()` resolves it from (the CommonJS build gets `import.meta.url`
 * from tsup's shim). Only "not found" counts: any other failure is left to that import.
 */
export function assertPeerInstalled(name: string, factory: string, needs: string): void {
  try {
    createRequire(import.meta.url).resolve(name);
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'MODULE_NOT_FOUND') return;
    throw configError(
      `${factory}: ${needs} needs the optional package "${name}", which is not installed: run \`npm install ${name}\` (or pass your own ${name === 'nodemailer' ? 'transporter' : 'client'}).`,
      'missing-peer-dependency',
    );
  }
}
