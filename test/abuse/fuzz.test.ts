/**
 * Property-based fuzzing (fast-check) of /otp/send and /otp/verify bodies over one keep-alive
 * connection: numbers, arrays, objects, `__proto__`, null, empty and 10 KB strings, Unicode
 * digits, broken JSON. Nothing may verify and nothing may answer 5xx.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { Destinations } from '../../src/index.js';
import { expressApp, type TestApp } from '../helpers/apps.js';
import { captureSenders } from '../helpers/capture.js';
import { Client, closeAgents, type Reply as Answer } from '../helpers/client.js';
import { directory, tally } from '../helpers/util.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 10_000);

const users: Array<[string, Destinations]> = [
  ['john.smith', { smsTo: '4155550100', emailTo: 'john.smith@example.com' }],
  ['ada', { emailTo: 'ada@example.com' }],
  ['grace', { smsTo: '(613) 555-0100' }],
  ['bad.phone', { smsTo: '1234567890', emailTo: 'not an address' }],
  ['jamaica', { smsTo: '876 555 0100' }],
  // Not in the fuzzed names: the live-code property needs its quotas and lock untouched.
  ['target.user', { smsTo: '4155550199' }],
];
const usernames = [
  ...users.map(([name]) => name).filter((name) => name !== 'target.user'),
  'nobody',
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  ' John.Smith ',
];

/** Six-digit strings in scripts other than ASCII: Arabic-Indic, Extended Arabic-Indic, Devanagari, Bengali, fullwidth, math bold, NKo, Thai. */
const digitZeros = [0x660, 0x6f0, 0x966, 0x9e6, 0xff10, 0x1d7ce, 0x7c0, 0xe50];
const inScript = (digits: string, zero: number) => [...digits].map((d) => String.fromCodePoint(zero + Number(d))).join('');
const unicodeDigits = fc.tuple(fc.stringMatching(/^[0-9]{6}$/), fc.constantFrom(...digitZeros)).map(([digits, zero]) => inScript(digits, zero));

const tenKb = fc.constantFrom('a', '1', 'é', '\u0661', ' ', '\u0000').map((c) => c.repeat(10 * 1024));
const strings = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: 'grapheme', maxLength: 300 }),
  fc.constantFrom('', ' ', '\t\n', '__proto__', 'constructor', '[object Object]', 'null', '000000', '1e6'),
  fc.stringMatching(/^[0-9 -]{0,12}$/),
  unicodeDigits,
  tenKb,
);
const values: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: strings },
  { weight: 2, arbitrary: fc.constantFrom(...usernames) },
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.oneof(strings, fc.integer()), { maxLength: 4 }),
  fc.object({ maxDepth: 2 }),
  fc.jsonValue({ maxDepth: 3 }),
);

/** JSON text for a body: a record of odd fields, any JSON value, `__proto__` keys, duplicate keys, or text that is not JSON. */
function bodies(fields: string[]): fc.Arbitrary<string> {
  const record = fc.record(Object.fromEntries([...fields, 'channel', 'extra'].map((field) => [field, values])), { requiredKeys: [] });
  const json = (value: unknown) => JSON.stringify(value) ?? 'null';
  // Nearly right bodies too, so the fuzz also gets past validation into quotas, stores and senders.
  const plausible = fc.record(
    {
      username: fc.oneof(fc.constantFrom(...usernames), values),
      channel: fc.oneof(fc.constantFrom('sms', 'email', 'both', 'SMS', 'fax', ''), values),
      code: fc.oneof(fc.stringMatching(/^[0-9]{6}$/), fc.stringMatching(/^[0-9]{3}[ -][0-9]{3}$/), unicodeDigits, values),
    },
    { requiredKeys: ['username'] },
  );
  return fc.oneof(
    {
      weight: 4,
      arbitrary: plausible.map((body) => json(Object.fromEntries(Object.entries(body).filter(([key]) => fields.includes(key) || key === 'channel')))),
    },
    { weight: 4, arbitrary: record.map(json) },
    { weight: 1, arbitrary: fc.jsonValue().map(json) },
    { weight: 1, arbitrary: fc.tuple(values, record).map(([proto, rest]) => `{"__proto__":${json(proto)},${json(rest).slice(1)}`.replace(',}', '}')) },
    { weight: 1, arbitrary: fc.tuple(values, values).map(([a, b]) => `{"${fields[0]}":${json(a)},"${fields[0]}":${json(b)}}`) },
    {
      weight: 1,
      arbitrary: fc.constantFrom('', '{', '{"username":', 'null', '[]', '"john.smith"', '{"username":"john.smith",}', '\u0000', '{"a":'.repeat(2000)),
    },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
  );
}

let app: TestApp;
let session: Client;
const senders = captureSenders();
let verified = 0;
const seen: Answer[] = [];

before(async () => {
  app = await expressApp({
    capture: senders,
    otp: {
      resolveUser: directory(users),
      resendCooldownSeconds: 0,
      // The per-IP quota would answer 429 before anything else: lift it so the fuzz reaches every layer.
      limits: { sendsPerIp: { points: 1_000_000, windowSeconds: 3600 } },
    },
  });
  app.service.on('verified', () => {
    verified += 1;
  });
  session = new Client(app.url, { keepAlive: 1 });
});
after(async () => {
  await app.close();
  closeAgents();
});

/** The contract's answer shape: a JSON object; errors `{ error, message }`; never 5xx. */
function assertWellFormed(answer: Answer, allowed: number[]): void {
  assert.ok(answer.status < 500, `${answer.status} ${answer.text}`);
  assert.ok(allowed.includes(answer.status), `${answer.status} ${answer.text}`);
  assert.ok(answer.body !== null && typeof answer.body === 'object', answer.text);
  if (answer.status >= 400) assert.ok(typeof answer.body.error === 'string' && typeof answer.body.message === 'string', answer.text);
}

describe(`fuzzing request bodies (${RUNS} cases per route)`, () => {
  it('POST /otp/send: never 5xx, always a contract answer', async () => {
    const started = Date.now();
    await fc.assert(
      fc.asyncProperty(bodies(['username']), async (raw) => {
        const answer = await session.postRaw('/otp/send', raw);
        seen.push(answer);
        assertWellFormed(answer, [202, 400, 413, 429]);
      }),
      { numRuns: RUNS },
    );
    const answers = seen.slice(-RUNS);
    console.log(`# send: ${RUNS} cases in ${Date.now() - started} ms: ${JSON.stringify(tally(answers))}`);
    assert.ok(answers.some((a) => a.status === 202) && answers.some((a) => a.status === 400), 'the fuzz reached both valid and invalid bodies');
  });

  it('POST /otp/verify: never 5xx, never verified', async () => {
    const started = Date.now();
    await fc.assert(
      fc.asyncProperty(bodies(['username', 'code']), async (raw) => {
        const answer = await session.postRaw('/otp/verify', raw);
        seen.push(answer);
        assertWellFormed(answer, [400, 401, 413, 429]);
      }),
      { numRuns: RUNS },
    );
    const answers = seen.slice(-RUNS);
    console.log(`# verify: ${RUNS} cases in ${Date.now() - started} ms: ${JSON.stringify(tally(answers))}; verified ${verified}`);
    assert.equal(verified, 0);
    assert.ok(answers.some((a) => a.status === 401) && answers.some((a) => a.status === 400));
  });

  it('the live code itself, in every other shape (Unicode digits, number, array, object, padded, cut), never verifies; then it still does', async () => {
    const fresh = new Client(app.url, { keepAlive: 64 });
    const before = senders.calls.length;
    assert.equal((await fresh.post('/otp/send', { username: 'target.user' })).status, 202);
    for (let i = 0; i < 300 && senders.calls.length < before + 1; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    const code = senders.calls.at(-1)?.code ?? '';
    assert.match(code, /^\d{6}$/);
    const shapes = fc.oneof(
      fc.constantFrom(...digitZeros.filter((zero) => zero !== 0x30)).map((zero) => inScript(code, zero)),
      fc.constantFrom(
        Number(code),
        [code],
        { code },
        `${code}0`,
        code.slice(1),
        `${code}\u0000`,
        `\u200b${code}`,
        `${code}x`,
        `０${code.slice(1)}`,
        code.split('').join('\u200b'),
      ),
      fc.nat({ max: 5 }).map((i) => code.slice(0, i) + inScript(code[i] ?? '0', 0x660) + code.slice(i + 1)),
    );
    let cases = 0;
    await fc.assert(
      fc.asyncProperty(shapes, fc.constantFrom('target.user', ' Target.User '), async (shape, username) => {
        cases += 1;
        const answer = await fresh.post('/otp/verify', { username, code: shape });
        assertWellFormed(answer, [400, 401]);
      }),
      { numRuns: 2_000 },
    );
    console.log(`# ${cases} other shapes of the live code: verified ${verified}`);
    assert.equal(verified, 0);
    const right = await fresh.post('/otp/verify', { username: 'target.user', code });
    assert.equal(right.status, 200, 'the code was live (and unspent) throughout');
  });

  it('no answer carried a code', () => {
    const codes = senders.codes();
    assert.ok(codes.size > 20, `codes sent: ${codes.size}`);
    // Every six-digit window of every digit run in every body and header (the session cookie
    // aside: it is random base64url, where six digits in a row turn up by chance).
    for (const answer of seen) {
      const headers = Object.fromEntries([...answer.headers].filter(([name]) => name !== 'set-cookie'));
      for (const run of (answer.text + JSON.stringify(headers)).match(/\d{6,}/g) ?? []) {
        for (let i = 0; i + 6 <= run.length; i++) assert.ok(!codes.has(run.slice(i, i + 6)), `a code in an answer: ${answer.status} ${answer.text}`);
      }
    }
  });
});
