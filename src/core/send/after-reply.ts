/**
 * When an HTTP send's delivery starts. Run at once after the 202, a known user's delivery
 * (composing the messages, the provider SDK's synchronous part) would sit on the event loop
 * in the very window where a cheap second request (`GET /otp/status` on another connection)
 * is served, and its delay would tell known users from unknown ones. So delivery starts
 * after a random pause of a few hundred milliseconds, unrelated to the reply, and decoys and
 * stand-ins do the same composing work at that moment (see service.ts).
 */
import { randomInt } from 'node:crypto';

/** The pause before an HTTP send's delivery starts: uniform in [min, max) milliseconds. */
export const DELIVERY_PAUSE_MS = { min: 150, max: 450 } as const;

/** Runs `work` after a random pause (see above); its result, or its rejection, when it has run. */
export function afterRandomPause<T>(work: () => Promise<T>, pause = DELIVERY_PAUSE_MS): Promise<T> {
  return new Promise<void>((resolve) => {
    setTimeout(resolve, randomInt(pause.min, pause.max));
  }).then(work);
}
