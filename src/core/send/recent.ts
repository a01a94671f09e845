/**
 * A bounded memo of recent values in two generations: lookups check the current map, then
 * the previous one (moving a hit forward); when the current map is full it becomes the
 * previous one and the oldest generation is dropped whole. At most `2 × size` entries, O(1)
 * per call. (Evicting a Map's oldest entry one by one is not O(1) in V8: `keys().next()`
 * walks over the holes that earlier deletions left at the front of the table.)
 */
export class RecentValues<V> {
  private current = new Map<string, V>();
  private previous = new Map<string, V>();

  constructor(private readonly size: number) {}

  get(key: string): V | undefined {
    const found = this.current.get(key);
    if (found !== undefined) return found;
    const old = this.previous.get(key);
    if (old !== undefined) this.set(key, old);
    return old;
  }

  set(key: string, value: V): void {
    if (this.current.size >= this.size) {
      this.previous = this.current;
      this.current = new Map();
    }
    this.current.set(key, value);
  }
}
