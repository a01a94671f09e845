#!/usr/bin/env node
/**
 * The CPU one send costs inside the package, without HTTP: `requestCode` (resolve, admit,
 * issue) and the delivery after it, on `memoryStore()`, to an SMS number and an email address
 * (no-op senders), a new username and session slot every time, as in the bench's send scenario.
 * Prints the median and the lowest of 8 batches of 20,000 sends (µs of process CPU per send).
 *
 *   node bench/send-cost.mjs [--mode=full|nodeliver|email] [--dist=path/to/index.js] [--src=DIR]
 *
 * Builds the working tree's src/ unless --dist names a build (e.g. an older commit's).
 */
import { pathToFileURL } from 'node:url';
import { buildDist, median } from './lib.mjs';

const option = (name, fallback) => process.argv.slice(2).find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const mode = option('mode', 'full');
const src = option('src');
const dist = option('dist') ?? buildDist(src === undefined ? { worktree: true } : { srcRoot: src }).dist;
const { createOtpService, memoryStore } = await import(pathToFileURL(dist).href);

const noop = { async send() {} };
const high = { points: 1_000_000, windowSeconds: 3600 };
/** The bench server's destinations: 10,000 numbers, one address per user. */
function destinationsFor(username) {
  let n = 0;
  for (let i = 0; i < username.length; i++) n = (n * 31 + username.charCodeAt(i)) % 10_000;
  return { smsTo: `415555${String(n).padStart(4, '0')}`, smsISDCode: '1', emailTo: `${username}@example.com` };
}
const otp = createOtpService({
  secret: 'bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz',
  store: memoryStore({ maxEntries: 5_000_000 }),
  resolveUser: (username) => destinationsFor(username),
  sms: noop,
  email: noop,
  ttlSeconds: 600,
  limits: { sendsPerUsername: high, sendsPerDestination: high, sendsPerIp: high, smsPerPrefix: high, smsPerHour: 0, smsPerDay: 0 },
});

let sent = 0;
async function send() {
  const username = `u-${sent++}`;
  const binding = otp.bindingHash(`sid:${username}-abcdefghijklmnopqrstuvwxyz`);
  const accepted = await otp.requestCode(username, mode === 'email' ? 'email' : 'both', { binding, ip: '127.0.0.1', req: {} });
  if (mode !== 'nodeliver') await accepted.deliver();
}
const BATCH = 20_000;
const perSend = [];
for (let batch = 0; batch < 8; batch++) {
  const before = process.cpuUsage();
  for (let i = 0; i < BATCH; i++) await send();
  const used = process.cpuUsage(before);
  perSend.push((used.user + used.system) / BATCH);
}
console.log(`${mode}: ${median(perSend).toFixed(1)} µs of CPU per send (median of 8 × ${BATCH}; lowest ${Math.min(...perSend).toFixed(1)}) — ${dist}`);
