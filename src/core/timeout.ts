/**
 * `work`, or a rejection with `onTimeout()` once `ms` have passed, whichever comes first. The
 * timer never outlives the race, and a failure of `work` after the timeout is not an unhandled
 * rejection. The one time limit of the package, for provider calls and store round trips (the
 * SDKs and drivers take no `AbortSignal`).
 */
export function withTimeout<T>(work: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  work.catch(() => undefined);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), Math.max(ms, 0));
    timer.unref?.(); // the work, not its time limit, keeps the process alive
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
