/**
 * One way every factory (`blockidOtp`, `requireOtp`, the stores, the senders, the metrics)
 * reports a bad option, in the same words: the factory, the option, what it must be, and
 * what it got, by type (`the string "300"`), so the fix is plain from the message alone.
 */

import { configError, type DocsAnchor } from './errors.js';

/** The section of docs/errors.md for a factory's configuration errors. */
function anchorFor(factory: string): DocsAnchor {
  if (/^requireOtp/.test(factory)) return 'invalid-guard-options';
  if (/Store$/.test(factory)) return 'invalid-store-options';
  if (/^(twilio|nodemailer)/.test(factory)) return 'invalid-sender-options';
  if (factory === 'prometheusMetrics') return 'invalid-metrics-options';
  return 'invalid-options';
}

/** A value as a message names it: its type, and the value when it is short and safe to show. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'string':
      return value.length <= 40 ? `the string ${JSON.stringify(value)}` : `a string of ${value.length} characters`;
    case 'number':
      return `the number ${String(value)}`;
    case 'boolean':
      return `the boolean ${String(value)}`;
    case 'bigint':
      return `the bigint ${String(value)}n`;
    case 'function':
      return 'a function';
    case 'symbol':
      return 'a symbol';
    default:
      return 'an object';
  }
}

/** `factory: option "name" must be <what> (got <value>).` */
export function optionError(factory: string, name: string, what: string, value: unknown): TypeError {
  return configError(`${factory}: option "${name}" must be ${what} (got ${describeValue(value)}).`, anchorFor(factory));
}

/**
 * The options object of `factory`, after refusing anything that is not an object and any
 * name not in `known` (with the nearest known name as a "did you mean").
 */
export function checkOptions(factory: string, options: unknown, known: readonly string[], example: string, kind = 'option'): Record<string, unknown> {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw configError(`${factory}: expected an options object, e.g. ${example} (got ${describeValue(options)}).`, anchorFor(factory));
  }
  for (const name of Object.keys(options)) {
    if (!known.includes(name)) throw unknownOptionError(factory, name, known, kind);
  }
  return options as Record<string, unknown>;
}

/** `factory: unknown option "ttl": did you mean "ttlSeconds"?`, or the list of options when nothing is near. */
export function unknownOptionError(factory: string, name: string, known: readonly string[], kind = 'option'): TypeError {
  const suggestion = closest(name, known);
  const list = known.map((candidate) => `"${candidate}"`).join(', ');
  return configError(
    `${factory}: unknown ${kind} "${name}"${suggestion ? `: did you mean "${suggestion}"?` : `; the ${kind}s are ${list}.`}`,
    anchorFor(factory),
  );
}

/** A whole number from `min` to `max`, or the error that says so; `note` explains a special value (e.g. "0 turns it off"). */
export function wholeNumber(factory: string, name: string, value: unknown, min: number, max: number, note?: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw optionError(factory, name, `a whole number from ${min} to ${max}${note ? `; ${note}` : ''}`, value);
  }
  return value;
}

/** `true` or `false`, or the error that says so. */
export function booleanOption(factory: string, name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw optionError(factory, name, 'true or false', value);
  return value;
}

/** The known name a typo most likely meant: the same prefix, or within 3 edits. */
function closest(name: string, known: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  const byPrefix = known.find((candidate) => candidate.toLowerCase().startsWith(lower) || lower.startsWith(candidate.toLowerCase()));
  if (byPrefix) return byPrefix;
  // "timeoutMs" for "commandTimeoutMs": the name without its qualifier.
  const bySuffix = lower.length >= 4 ? known.find((candidate) => candidate.toLowerCase().endsWith(lower)) : undefined;
  if (bySuffix) return bySuffix;
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance <= 3 && (best === undefined || distance < best.distance)) best = { candidate, distance };
  }
  return best?.candidate;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
