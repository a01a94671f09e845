/**
 * Decoys "behave exactly like a real user from the outside": one script of sends,
 * resends inside the cooldown, wrong guesses up to the burned code and the timed lock, the
 * per-username quota and a session without a code, played step by step for a known and an
 * unknown username (interleaved, so both see the same clock), over real HTTP on Express and
 * Koa, memory, Redis and Redis Cluster. Every answer must match: status, the body's text,
 * the header names, and Retry-After.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { appOn, FRAMEWORKS, generousLimits, type TestApp } from '../helpers/apps.js';
import { browserClient, type Client, type Reply as Answer } from '../helpers/client.js';
import { storeBackends } from '../helpers/store-matrix.js';
import { wrongFor } from '../helpers/util.js';

const backends = await storeBackends();
const KNOWN = 'known.user';
const UNKNOWN = 'nobody.here';

type Kind = 'send' | 'wrong' | 'nocode' | 'malformed';

/** Sessions 0..4: 0 and 1 hold codes, 2 sends late, 3 is over the quota, 4 never sends. */
const script: Array<[string, Kind, number]> = [
  ['S0 send', 'send', 0],
  ['S0 resend', 'send', 0],
  ['S1 send', 'send', 1],
  ['S1 resend', 'send', 1],
  ...Array.from({ length: 6 }, (_, g): [string, Kind, number] => [`S1 wrong ${g + 1}`, 'wrong', 1]),
  ['S0 wrong 1', 'wrong', 0],
  ['S0 wrong 2 (7th failure)', 'wrong', 0],
  ['S0 wrong 3 (locked)', 'wrong', 0],
  ['S2 send', 'send', 2],
  ['S3 send (over sendsPerUsername)', 'send', 3],
  ['S2 wrong (locked)', 'wrong', 2],
  ['S4 guess without a code', 'nocode', 4],
  ['S4 malformed code', 'malformed', 4],
];

/** What an observer can compare: status, body text, header names, Retry-After. */
type Observable = { status: number; text: string; headerNames: string; retryAfter: string | undefined };
const observable = (answer: Answer): Observable => ({
  status: answer.status,
  text: answer.text,
  headerNames: [...new Set(answer.headers.keys())]
    .filter((name) => name !== 'date')
    .sort()
    .join(','),
  retryAfter: answer.headers.get('retry-after') ?? undefined,
});

/**
 * `unknown` with its Retry-After (header and body) taken as `known`'s when the two are one
 * second apart: the unknown username's step runs a few milliseconds after the known one's, so
 * a window's remaining seconds can round to either side of a second. Anything more differs.
 */
function alike(unknown: Observable, known: Observable): Observable {
  const [a, b] = [Number(unknown.retryAfter), Number(known.retryAfter)];
  if (!Number.isInteger(a) || !Number.isInteger(b) || Math.abs(a - b) !== 1) return unknown;
  return { ...unknown, retryAfter: known.retryAfter, text: unknown.text.replaceAll(String(a), String(b)) };
}

for (const backend of backends) {
  describe(`known and unknown usernames answer alike (${backend.name} store)`, { concurrency: true }, () => {
    for (const framework of FRAMEWORKS) {
      it(`${framework}: ${script.length} steps across 5 sessions give the same answers`, async () => {
        const app: TestApp = await appOn(framework, {
          collectEvents: true,
          store: backend.make(),
          otp: {
            resolveUser: (u) => (u === KNOWN ? { smsTo: '4155550100', emailTo: 'known@example.com' } : null),
            limits: { ...generousLimits, sendsPerUsername: { points: 3, windowSeconds: 3600 }, failedVerifications: 7, lockSeconds: 60 },
          },
        });
        const sessions: Record<string, Client[]> = {
          [KNOWN]: Array.from({ length: 5 }, () => browserClient(app.url)),
          [UNKNOWN]: Array.from({ length: 5 }, () => browserClient(app.url)),
        };
        /** The code each of the known user's sessions holds (the unknown user's have none that could verify). */
        const codes = new Map<number, string>();
        const play = (username: string, kind: Kind, i: number): Promise<Answer> => {
          const browser = sessions[username]![i]!;
          if (kind === 'send') return browser.send(username);
          if (kind === 'wrong') return browser.verify(username, wrongFor(codes.get(i) ?? '000000'));
          return browser.verify(username, kind === 'nocode' ? '123456' : '12ab');
        };
        const rows: Array<{ step: string; known: ReturnType<typeof observable>; unknown: ReturnType<typeof observable> }> = [];
        for (const [step, kind, i] of script) {
          const mark = app.capture.calls.length;
          const known = await play(KNOWN, kind, i);
          // The unknown username's step right after the known one's, before waiting for the delivery
          // (which starts after a random pause): both scripts keep the same pace, so Retry-After agrees.
          const unknown = await play(UNKNOWN, kind, i);
          if (kind === 'send' && known.status === 202) codes.set(i, await app.capture.codeAfter(KNOWN, mark));
          rows.push({ step, known: observable(known), unknown: observable(unknown) });
        }
        const summary = rows.map((r) => `${r.known.status}${r.known.retryAfter ? `/${r.known.retryAfter}` : ''}`).join(' ');
        const same = rows.filter((r) => JSON.stringify(r.known) === JSON.stringify(alike(r.unknown, r.known))).length;
        console.log(`# ${framework}/${backend.name}: ${same}/${rows.length} steps identical (status, body, header names, Retry-After): ${summary}`);
        for (const row of rows) assert.deepEqual(alike(row.unknown, row.known), row.known, row.step);
        // The script really reached each state (so "identical" is not identical errors).
        assert.deepEqual(
          rows.map((r) => r.known.status),
          [202, 429, 202, 429, 401, 401, 401, 401, 401, 429, 401, 401, 429, 202, 429, 429, 401, 401],
        );
        assert.equal(rows[1]!.known.retryAfter, '30');
        assert.equal(rows[12]!.known.retryAfter, '60');
        assert.ok(Number(rows[14]!.known.retryAfter) > 3500, 'sendsPerUsername');
        assert.equal(rows[9]!.known.retryAfter, undefined, 'a burned code: 429 without Retry-After');
        await app.close();
      });
    }
  });
}
