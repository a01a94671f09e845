/**
 * Option objects treat a property set to `undefined` as one left out (`{ ttlSeconds: undefined }`
 * is `{}`), as TypeScript's `prop?: T | undefined` promises: this drops those keys before an
 * object is spread over its defaults.
 */
export function definedOnly<T extends object>(value: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, entry]) => entry !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}
