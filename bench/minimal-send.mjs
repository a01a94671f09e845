/**
 * The least work a send must do, written inline for the memory bench (`kind: 'minimal'` in
 * bench/server.mjs): not a product, a yardstick. It keeps every step the contract asks of a
 * send on one process, each done the cheapest way, and nothing else (no options, no errors
 * beyond the happy path, no events, no tracing, no decoys, no message catalog):
 *
 * - the JSON body (express.json(), as the baseline), the username trimmed and lower-cased;
 * - the user's destinations, the number checked as a US/Canada person's number with
 *   libphonenumber (memoized, as the package does) and the address lower-cased;
 * - keyed hashes (HMAC-SHA256, two one-shot hashes with precomputed pads) of the username and
 *   the session binding, and (memoized) of each destination, the number block and the IP;
 * - the per-session cooldown and five quotas, all checked before any is counted: per IP, per
 *   destination and per number block as windowed counters in one Map, per username as a count
 *   in the user's record (never reset here: the bench's quota of 1,000,000 is never reached);
 * - a random 6-digit code and its keyed hash, kept in one object per username with its session
 *   slot (the bench gives every send a new username, so one slot per user is enough here);
 * - 202 with `Cache-Control: no-store`, then, once the reply is written, one SMS text and one
 *   email (subject, text, HTML) composed and handed to no-op senders.
 */
import { hash, randomInt } from 'node:crypto';
import express from 'express';
import { parsePhoneNumberFromString } from 'libphonenumber-js/max';

/**
 * `compute` cached by argument (at most 10,000 entries; cleared when full).
 *
 * @template K, V
 * @param {(value: K) => V} compute
 * @returns {(value: K) => V}
 */
function memo(compute) {
  /** @type {Map<K, V>} */
  const seen = new Map();
  return (value) => {
    let found = seen.get(value);
    if (found === undefined) {
      if (seen.size >= 10_000) seen.clear();
      found = compute(value);
      seen.set(value, found);
    }
    return found;
  };
}

const e164 = memo((/** @type {string} */ number) => {
  const phone = parsePhoneNumberFromString(number, 'US');
  const type = phone?.getType();
  if (!phone || (phone.country !== 'US' && phone.country !== 'CA') || (type !== 'MOBILE' && type !== 'FIXED_LINE_OR_MOBILE' && type !== 'FIXED_LINE'))
    return null;
  return phone.number;
});

const HOUR = 3_600_000;
/** @type {Map<string, { count: number, resetAt: number }>} */
const counters = new Map();
/** @type {Map<string, { sends: number, slot: string, hash: string, expiresAt: number, cooldownUntil: number, attempts: number }>} */
const users = new Map();
/** @param {string} key @param {number} now */
const free = (key, now) => {
  const counter = counters.get(key);
  return counter === undefined || counter.resetAt <= now || counter.count < 1_000_000;
};
/** @param {string} key @param {number} now */
const take = (key, now) => {
  const counter = counters.get(key);
  if (counter === undefined || counter.resetAt <= now) counters.set(key, { count: 1, resetAt: now + HOUR });
  else counter.count += 1;
};

/** A no-op sender. @param {unknown} _message */
const noop = async (_message) => undefined;

/**
 * Mounts the inline send on `app`, with the bench's OTP secret (ASCII, at most 64 bytes: one block of pads) and its `resolveUser` (`destinationsFor`).
 *
 * @param {import('express').Express} app
 * @param {{ secret: string, destinationsFor: (username: string) => { smsTo: string, emailTo: string } }} options
 */
export function minimalSend(app, { secret, destinationsFor }) {
  const pad = (/** @type {number} */ byte) =>
    Buffer.from(Buffer.alloc(64).map((_, i) => (i < secret.length ? secret.charCodeAt(i) : 0) ^ byte)).toString('latin1');
  const inner = pad(0x36);
  const outer = pad(0x5c);
  const hmac = (/** @type {string} */ message) => hash('sha256', Buffer.from(outer + hash('sha256', inner + message, 'binary'), 'latin1'), 'base64url');
  const destKey = memo((/** @type {string} */ value) => `dest:${hmac(`dest\0${value}`)}`);
  const blockKey = memo((/** @type {string} */ value) => `prefix:${hmac(`prefix\0${value}`)}`);
  const ipKey = memo((/** @type {string | undefined} */ value) => `ip:${hmac(`ip\0${value}`)}`);

  app.post('/otp/send', express.json(), (req, res) => {
    const username = String(req.body.username).trim().toLowerCase();
    const destinations = destinationsFor(username);
    const phone = e164(destinations.smsTo);
    if (phone === null) throw new Error(`not a US or Canadian number: ${destinations.smsTo}`);
    const email = destinations.emailTo.toLowerCase();
    const now = Date.now();
    const user = hmac(`user\0${username}`).slice(0, 27);
    const session = /** @type {import('express-session').Session & { blockidOtpBinding?: string }} */ (req.session);
    session.blockidOtpBinding ??= `sid:${req.sessionID}`;
    const slot = hmac(`binding\0${session.blockidOtpBinding}`).slice(0, 27);
    const keys = [ipKey(req.ip), destKey(phone), blockKey(phone.slice(0, -4)), destKey(email)];
    let state = users.get(user);
    if (state === undefined) users.set(user, (state = { sends: 0, slot: '', hash: '', expiresAt: 0, cooldownUntil: 0, attempts: 0 }));
    if ((state.slot === slot && state.cooldownUntil > now) || state.sends >= 1_000_000 || !keys.every((key) => free(key, now))) {
      return res.status(429).json({ error: 'rate_limited' });
    }
    for (const key of keys) take(key, now);
    state.sends += 1;
    const code = String(randomInt(0, 1_000_000)).padStart(6, '0');
    state.slot = slot;
    state.hash = hmac(`code\0${user}\0${code}`);
    state.expiresAt = now + 600_000;
    state.cooldownUntil = now + 30_000;
    state.attempts = 0;
    res.set('Cache-Control', 'no-store');
    res.once('close', () =>
      setImmediate(() => {
        void noop({ to: phone, text: `Your code is ${code}. It expires in 10 minutes.` });
        void noop({
          to: email,
          subject: `Your code: ${code}`,
          text: `Your code is ${code}. It expires in 10 minutes.`,
          html: `<p>Your code is <b>${code}</b>.</p><p>It expires in 10 minutes.</p>`,
        });
      }),
    );
    res.status(202).json({ status: 'sent', expiresIn: 600, resendIn: 30 });
  });
}
