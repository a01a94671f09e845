/**
 * The memory store's bookkeeping: a bound on the number of entries kept at once, shared by
 * several maps, with expired entries dropped when they are next read (lazily) and by a sweep
 * on a timer that does not keep the process alive.
 */

/** An entry with its value and the time it expires; the holder may change `value` in place. */
export interface Expiring<V> {
  value: V;
  expiresAtMs: number;
}

/**
 * Counts the entries of every map (and of any state the caller keeps itself) against
 * `maxEntries`, and runs `sweep` every `sweepIntervalMs`, or early when room is short.
 */
export class EntryBound {
  readonly maxEntries: number;
  #entries = 0;
  #lastSweepMs = 0;
  readonly #sweep: (nowMs: number) => void;
  readonly #timer: NodeJS.Timeout;

  constructor(options: { maxEntries: number; sweepIntervalMs: number; sweep(nowMs: number): void }) {
    this.maxEntries = options.maxEntries;
    this.#sweep = options.sweep;
    this.#timer = setInterval(() => this.sweep(), options.sweepIntervalMs);
    this.#timer.unref();
  }

  /** Counts `count` new entries (already reserved). */
  add(count = 1): void {
    this.#entries += count;
  }

  /** Forgets `count` entries that were dropped. */
  remove(count = 1): void {
    this.#entries -= count;
  }

  /** Drops every expired entry now. */
  sweep(): void {
    const now = Date.now();
    this.#lastSweepMs = now;
    this.#sweep(now);
  }

  /** True when `count` new entries fit, sweeping early (at most once a second) to make room. */
  reserve(count: number): boolean {
    if (count === 0 || this.#entries + count <= this.maxEntries) return true;
    if (Date.now() - this.#lastSweepMs >= 1000) this.sweep();
    return this.#entries + count <= this.maxEntries;
  }

  /** Stops the sweep timer and forgets the count (the caller clears its maps). */
  close(): void {
    clearInterval(this.#timer);
    this.#entries = 0;
  }
}

/** A map of expiring entries, each one counted against `bound`. */
export class ExpiringMap<V> {
  readonly #map = new Map<string, Expiring<V>>();
  readonly #bound: EntryBound;

  constructor(bound: EntryBound) {
    this.#bound = bound;
  }

  get size(): number {
    return this.#map.size;
  }

  /** Whether `key` holds an entry, expired or not. */
  has(key: string): boolean {
    return this.#map.has(key);
  }

  /** The entry of `key`, expired or not (for a key just read with `live` at the same time). */
  get(key: string): Expiring<V> | undefined {
    return this.#map.get(key);
  }

  /** The entry of `key` unless it has expired at `nowMs`; an expired one is dropped. */
  live(key: string, nowMs: number): Expiring<V> | undefined {
    const entry = this.#map.get(key);
    if (entry !== undefined && entry.expiresAtMs <= nowMs) {
      this.#map.delete(key);
      this.#bound.remove();
      return undefined;
    }
    return entry;
  }

  /** Sets `key`; a new key counts one entry, for which the caller has reserved room. */
  set(key: string, value: V, expiresAtMs: number): void {
    if (!this.#map.has(key)) this.#bound.add();
    this.#map.set(key, { value, expiresAtMs });
  }

  /** Drops every entry expired at `nowMs`. */
  sweep(nowMs: number): void {
    for (const [key, entry] of this.#map) {
      if (entry.expiresAtMs <= nowMs) {
        this.#map.delete(key);
        this.#bound.remove();
      }
    }
  }

  /** Empties the map without counting (for `EntryBound.close`). */
  clear(): void {
    this.#map.clear();
  }
}
