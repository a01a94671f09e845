/**
 * Memory cost of pending codes in memoryStore(), run by bench/run.mjs as
 * `node --expose-gc bench/memory.mjs <dist/index.js>`; prints one JSON line.
 */
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';

/**
 * @typedef {import('../src/store.js').OtpStore} OtpStore
 * @typedef {{ bytes: number, perCode: number }} HeapGrowth
 * @typedef {{ label: string, afterSends: number, afterWait: number, waitedMs: number }} Sweep
 * @typedef {{ count: number, storeOnly?: HeapGrowth, service?: HeapGrowth, sweeps: Sweep[] }} MemoryReport what this script prints (bench/run.mjs reads it)
 */

if (typeof globalThis.gc !== 'function') throw new Error('run with --expose-gc');
const gc = globalThis.gc;
const distPath = process.argv[2];
if (distPath === undefined) throw new Error('usage: node --expose-gc bench/memory.mjs <dist/index.js>');
/** @type {typeof import('../src/index.js')} the package's main entry, built from src/ */
const dist = await import(pathToFileURL(distPath).href);
const COUNT = Number(process.env.BENCH_MEMORY_COUNT ?? 100_000);
const SECRET = 'bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz';
const sleep = (/** @type {number} */ ms) => new Promise((resolve) => setTimeout(resolve, ms));
const noop = { async send() {} };

async function heap() {
  await sleep(0);
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** Strings of the sizes the core hands the store: 27-char keys (username, session binding), a 43-char code hash. */
const token = (/** @type {number} */ length) =>
  randomBytes(Math.ceil((length * 3) / 4))
    .toString('base64url')
    .slice(0, length);

/**
 * The store alone: `COUNT` admitted send plans as an HTTP send from a new session makes them
 * (a new username, its session's slot, a resend cooldown), with no quota counters, so what
 * stays is one code record and one cooldown marker per send.
 *
 * @param {OtpStore} store
 * @param {{ ttlMs: number, cooldownMs: number }} lifetimes
 */
async function sendPlans(store, { ttlMs, cooldownMs }) {
  for (let i = 0; i < COUNT; i++) {
    const decision = await store.send({
      user: token(27),
      space: 'user',
      slot: token(27),
      cooldownMs,
      perUser: null,
      request: [],
      targets: [],
      code: { hash: token(43), ttlMs, issuedAtMs: Date.now() },
    });
    if (!decision.ok) throw new Error(`send plan refused: ${JSON.stringify(decision)}`);
  }
}

/** @param {{ ttlSeconds: number, resendCooldownSeconds: number, windowSeconds: number, store: OtpStore }} options */
function plugin({ ttlSeconds, resendCooldownSeconds, windowSeconds, store }) {
  const quota = { points: 1_000_000, windowSeconds };
  return dist.blockidOtp({
    secret: SECRET,
    resolveUser: () => null,
    sms: noop,
    email: noop,
    store,
    ttlSeconds,
    resendCooldownSeconds,
    limits: {
      sendsPerUsername: quota,
      sendsPerDestination: quota,
      sendsPerIp: quota,
      smsPerPrefix: quota,
      smsPerHour: 0,
      smsPerDay: 0,
      failedVerifications: 91,
      lockSeconds: windowSeconds,
    },
  });
}

/**
 * @param {import('../src/index.js').BlockidOtpMiddleware} otp
 * @param {string} tag
 */
async function sendMany(otp, tag) {
  const batch = 1000;
  for (let start = 0; start < COUNT; start += batch) {
    const work = [];
    for (let i = start; i < Math.min(start + batch, COUNT); i++) {
      work.push(otp.generateOtp(`${tag}-user-${i}`, { smsTo: `415555${String(i % 10_000).padStart(4, '0')}`, emailTo: `${tag}-user-${i}@example.com` }));
    }
    await Promise.all(work);
  }
}

/** @type {MemoryReport} */
const report = { count: COUNT, sweeps: [] };

// 1. Bytes per pending code: the store alone, then a full send through the plugin.
{
  const store = dist.memoryStore();
  const before = await heap();
  await sendPlans(store, { ttlMs: 300_000, cooldownMs: 30_000 });
  const after = await heap();
  report.storeOnly = { bytes: after - before, perCode: (after - before) / COUNT };
  await store.close?.();
}
{
  const store = dist.memoryStore();
  const otp = plugin({ ttlSeconds: 300, resendCooldownSeconds: 30, windowSeconds: 3600, store });
  const before = await heap();
  await sendMany(otp, 'full');
  const after = await heap();
  report.service = { bytes: after - before, perCode: (after - before) / COUNT };
  await store.close?.();
}
await heap();

// 2. Expired codes are swept: ttl 1 s, sweep every 500 ms; and the control without a sweep in time.
/** @type {Array<[string, number]>} */
const sweepCases = [
  ['store only, `memoryStore({ sweepIntervalMs: 500 })`', 500],
  ['store only, `memoryStore({ sweepIntervalMs: 3_600_000 })` (control: no sweep in time)', 3_600_000],
];
for (const [label, sweepIntervalMs] of sweepCases) {
  const store = dist.memoryStore({ sweepIntervalMs });
  const before = await heap();
  await sendPlans(store, { ttlMs: 1000, cooldownMs: 1000 });
  const afterSends = await heap();
  const waitedMs = 2000;
  await sleep(waitedMs);
  const afterWait = await heap();
  report.sweeps.push({ label, afterSends: afterSends - before, afterWait: afterWait - before, waitedMs });
  await store.close?.();
}
{
  const store = dist.memoryStore({ sweepIntervalMs: 500 });
  const otp = plugin({ ttlSeconds: 1, resendCooldownSeconds: 1, windowSeconds: 1, store });
  const before = await heap();
  const sendStarted = Date.now();
  await sendMany(otp, 'sweep');
  const afterSends = await heap();
  const waitedMs = 2500;
  await sleep(waitedMs);
  const afterWait = await heap();
  report.sweeps.push({
    label: `full sends through \`generateOtp()\`, every quota window 1 s, \`sweepIntervalMs: 500\` (the sends took ${Date.now() - sendStarted - waitedMs} ms, so the earliest had already expired)`,
    afterSends: afterSends - before,
    afterWait: afterWait - before,
    waitedMs,
  });
  await store.close?.();
}

console.log(JSON.stringify(report));
