/** Small helpers the suites share: waiting, counting answers, medians, and wrong codes. */
import type { Destinations } from '../../src/index.js';

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `{ "202": 10, "429 rate_limited": 40 }`: statuses (with the error code) and how often. */
export function tally(answers: Array<{ status: number; body?: any }>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const answer of answers) {
    const key = answer.body?.error ? `${answer.status} ${answer.body.error}` : String(answer.status);
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

/** A six-digit code that is certainly not `code`. */
export const wrongFor = (code: string | undefined) => (code === '000000' ? '111111' : '000000');

export const round = (ms: number, digits = 2) => Number(ms.toFixed(digits));

/** Valid US numbers in distinct blocks (`+1 415 2xx ....`), one block per index. */
export function numberInBlock(block: number, line = 100): string {
  return `415${String(200 + (block % 800)).padStart(3, '0')}${String(line).padStart(4, '0')}`;
}

/** A map-backed `resolveUser` (no prototype lookups: `__proto__` is just another unknown name). */
export function directory(entries: Iterable<[string, Destinations]>): (username: string) => Destinations | null {
  const users = new Map(entries);
  return (username) => users.get(username) ?? null;
}
