/** A code's tag: short, and only what the core puts there (channel names, area codes). */
export function checkTag(tag: string | undefined): string {
  if (tag === undefined) return '';
  if (typeof tag !== 'string' || !/^[a-z0-9:,]{0,64}$/.test(tag)) throw new TypeError('code tag must be at most 64 characters of a-z, 0-9, ":" and ","');
  return tag;
}
