/**
 * Set-up (real sends and verifies through HTTP) and autocannon request specs for each
 * scenario; shared by bench/run.mjs and bench/ab.mjs.
 */
import { pool, request, sleep } from './lib.mjs';

/**
 * @typedef {import('autocannon').Request} CannonRequest
 * @typedef {{ username: string, cookie: string | undefined, wrong: string }} VerifyUser a session with a pending code, and a wrong code for it
 */

const JSON_HEADERS = { 'content-type': 'application/json' };

/**
 * A session verified the real way: POST /otp/send, the code from the capture sender, POST /otp/verify.
 *
 * @param {string} url the server's origin
 * @param {string} username
 */
export async function verifiedCookie(url, username) {
  const sent = await request(`${url}/otp/send`, { method: 'POST', json: { username } });
  if (sent.status !== 202 || sent.cookie === undefined) throw new Error(`send for the verified session answered ${sent.status}`);
  const code = await waitForCode(url, username);
  const verified = await request(`${url}/otp/verify`, { method: 'POST', headers: { cookie: sent.cookie }, json: { username, code } });
  if (verified.status !== 200 || verified.cookie === undefined) throw new Error(`verify answered ${verified.status}`);
  const guarded = await request(`${url}/data`, { headers: { cookie: verified.cookie } });
  if (guarded.status !== 200) throw new Error(`the verified session got ${guarded.status} on /data`);
  return verified.cookie;
}

/**
 * @param {string} url
 * @param {string} username
 * @returns {Promise<string>}
 */
async function waitForCode(url, username) {
  for (let i = 0; i < 100; i++) {
    const { body } = await request(`${url}/__bench/code?u=${encodeURIComponent(username)}`);
    if (body.code) return body.code;
    await sleep(10);
  }
  throw new Error(`no code captured for ${username}`);
}

/**
 * Fetches every captured code once those of `usernames` have all arrived (delivery runs after the 202 and a random pause).
 *
 * @param {string} url
 * @param {string[]} usernames
 * @returns {Promise<Record<string, string>>} codes by username
 */
async function capturedCodes(url, usernames) {
  for (let i = 0; i < 200; i++) {
    const { body } = await request(`${url}/__bench/codes`);
    if (usernames.every((username) => body.codes[username] !== undefined)) return body.codes;
    await sleep(25);
  }
  throw new Error(`only some codes were captured at ${url}`);
}

/**
 * `count` users, each with a pending code sent from its own session: [{ username, cookie, wrong }],
 * where `wrong` is a well-formed code that is not the user's (so every verify is a real mismatch).
 *
 * @param {string} url
 * @param {{ count: number, tag: string, path?: string, codeDigits?: number, concurrency?: number }} options
 * @returns {Promise<VerifyUser[]>}
 */
export async function pendingCodeUsers(url, { count, tag, path = '/otp/send', codeDigits = 6, concurrency = 32 }) {
  const users = await pool(count, concurrency, async (index) => {
    const username = `v-${tag}-${index}`;
    const sent = await request(`${url}${path}`, { method: 'POST', json: { username } });
    if (sent.status !== 202) throw new Error(`setup send for ${username} answered ${sent.status}`);
    return { username, cookie: sent.cookie };
  });
  const codes = await capturedCodes(
    url,
    users.map((user) => user.username),
  );
  return users.map((user) => {
    const code = codes[user.username];
    if (code === undefined) throw new Error(`no code for ${user.username}`);
    const wrong = (Number(code) + 1) % 10 ** codeDigits;
    return { ...user, wrong: codeDigits === 6 && path === '/otp/send' ? String(wrong).padStart(6, '0') : String(wrong) };
  });
}

/**
 * `count` sessions on the baseline server, each made by one POST /write.
 *
 * @param {string} url
 * @param {{ count: number, tag: string, concurrency?: number }} options
 * @returns {Promise<VerifyUser[]>}
 */
export async function baselineSessions(url, { count, tag, concurrency = 32 }) {
  return pool(count, concurrency, async (index) => {
    const username = `v-${tag}-${index}`;
    const written = await request(`${url}/write`, { method: 'POST', json: { username } });
    if (written.status !== 202 || written.cookie === undefined) throw new Error(`baseline setup answered ${written.status}`);
    return { username, cookie: written.cookie, wrong: '000000' };
  });
}

/**
 * GET `path` with one cookie.
 *
 * @param {string} url
 * @param {string} path
 * @param {string} cookie
 */
export function getSpec(url, path, cookie) {
  return { url: `${url}${path}`, headers: { cookie } };
}

/**
 * POST `path` with `{ username }`, a fresh username on every request (no cookie: a new session each time).
 *
 * @param {string} url
 * @param {string} path
 * @param {string} tag
 */
export function uniqueSendSpec(url, path, tag) {
  let n = 0;
  return {
    url,
    /** @type {CannonRequest[]} */
    requests: [
      {
        method: 'POST',
        path,
        headers: JSON_HEADERS,
        setupRequest: (req) => ({ ...req, body: `{"username":"s-${tag}-${++n}"}` }),
      },
    ],
    sent: () => n,
  };
}

/**
 * POST `path` with `{ username, code }` and that user's session cookie, cycling through `users`.
 * `budget` guesses per user (the plugin's maxAttempts); `exhausted()` tells whether the cycle
 * went past it (then later guesses were answered without comparing).
 *
 * @param {string} url
 * @param {string} path
 * @param {VerifyUser[]} users
 * @param {{ budget?: number }} [options]
 */
export function cyclingVerifySpec(url, path, users, { budget = Infinity } = {}) {
  let n = 0;
  return {
    url,
    /** @type {CannonRequest[]} */
    requests: [
      {
        method: 'POST',
        path,
        headers: JSON_HEADERS,
        setupRequest: (req) => {
          const user = users[n++ % users.length];
          if (user === undefined) throw new Error('cyclingVerifySpec: no users');
          // autocannon writes the value as text: `undefined` when the send set no cookie.
          return { ...req, headers: { ...req.headers, cookie: String(user.cookie) }, body: `{"username":"${user.username}","code":"${user.wrong}"}` };
        },
      },
    ],
    exhausted: () => n > users.length * budget,
    used: () => n,
  };
}
