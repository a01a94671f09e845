import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateHOTP, generateTOTP } from '@oslojs/otp';
import { generateSync, verifySync, ScureBase32Plugin } from 'otplib';
import { createTotp, TOTP_PERIOD_SECONDS } from '../../src/core/verify/totp.js';

const SECRET = 'a-test-secret-of-at-least-32-characters!';
const OTHER_SECRET = 'another-test-secret-of-32-characters-or-more';
const base32 = new ScureBase32Plugin();

/** RFC 6238, appendix B, SHA-1 column: the seed is the ASCII string "12345678901234567890". */
const RFC_KEY = new TextEncoder().encode('12345678901234567890');
const RFC_VECTORS: Array<[unixSeconds: number, code: string]> = [
  [59, '94287082'],
  [1111111109, '07081804'],
  [1111111111, '14050471'],
  [1234567890, '89005924'],
  [2000000000, '69279037'],
  [20000000000, '65353130'],
];

/** An enrolled key and the tools to compute its codes with otplib (the independent implementation). */
function enrolled(username = 'alice', options?: Parameters<ReturnType<typeof createTotp>['enroll']>[1]) {
  const totp = createTotp(SECRET);
  const enrollment = totp.enroll(username, options);
  const key = totp.unseal(username, enrollment.sealed);
  assert.ok(key, 'the sealed key opens for its own username');
  const params = new URL(enrollment.uri).searchParams;
  // Feed otplib exactly what an authenticator app reads from the QR code.
  const codeAt = (unixSeconds: number): string =>
    generateSync({
      secret: params.get('secret') as string,
      algorithm: (params.get('algorithm') as string).toLowerCase() as 'sha1',
      digits: Number(params.get('digits')) as 6,
      period: Number(params.get('period')),
      epoch: unixSeconds,
    });
  return { totp, enrollment, key, codeAt };
}

function encodings(key: Uint8Array): string[] {
  const buf = Buffer.from(key);
  const b32 = base32.encode(key, { padding: false });
  const b32padded = base32.encode(key, { padding: true });
  return [
    buf.toString('latin1'),
    buf.toString('hex'),
    buf.toString('hex').toUpperCase(),
    b32,
    b32.toLowerCase(),
    b32padded,
    buf.toString('base64'),
    buf.toString('base64').replace(/=+$/, ''),
    buf.toString('base64url'),
  ];
}

describe('TOTP primitive: RFC 6238 appendix B (SHA-1)', () => {
  for (const [unixSeconds, expected] of RFC_VECTORS) {
    it(`T = ${unixSeconds}: ${expected}`, (t) => {
      const step = Math.floor(unixSeconds / 30);
      // @oslojs/otp (our runtime dependency) at 8 digits, through HOTP at counter = step ...
      assert.equal(generateHOTP(RFC_KEY, BigInt(step), 8), expected);
      // ... and through its own TOTP function, with the clock set to T.
      t.mock.timers.enable({ apis: ['Date'], now: unixSeconds * 1000 });
      assert.equal(generateTOTP(RFC_KEY, 30, 8), expected);
      t.mock.timers.reset();
      // otplib agrees (the second implementation used end to end below).
      assert.equal(generateSync({ secret: RFC_KEY, digits: 8, epoch: unixSeconds }), expected);
      // The 6-digit code is the same truncation mod 10^6: the last six digits.
      const six = expected.slice(-6);
      assert.equal(generateHOTP(RFC_KEY, BigInt(step), 6), six);
      assert.equal(generateSync({ secret: RFC_KEY, digits: 6, epoch: unixSeconds }), six);
      // matchStep finds it at its step, from any moment inside that step.
      const totp = createTotp(SECRET);
      assert.equal(totp.matchStep(RFC_KEY, six, unixSeconds * 1000), step);
      assert.equal(totp.matchStep(RFC_KEY, six, step * 30_000), step);
      assert.equal(totp.matchStep(RFC_KEY, six, step * 30_000 + 29_999), step);
      assert.equal(totp.matchStep(RFC_KEY, expected, unixSeconds * 1000), null, 'only 6 digits are accepted');
    });
  }
});

describe('TOTP end to end against otplib', () => {
  const now = 1_750_000_015; // seconds, in the middle of a step
  const step = Math.floor(now / TOTP_PERIOD_SECONDS);

  it('the enrolled secret and uri give otplib codes that matchStep accepts at the right step', () => {
    const { totp, key, codeAt, enrollment } = enrolled();
    assert.equal(totp.matchStep(key, codeAt(now), now * 1000), step);
    assert.equal(totp.stepAt(now * 1000), step);
    assert.deepEqual(base32.decode(enrollment.secret), key, 'secret is the base32 of the sealed key');
    // And the other way round: otplib verifies the codes of the key we unsealed.
    const ours = generateHOTP(key, BigInt(step), 6);
    assert.deepEqual(verifySync({ secret: enrollment.secret, token: ours, epoch: now }).valid, true);
  });

  it('accepts one step either side, refuses codes two steps away', () => {
    const { totp, key, codeAt } = enrolled();
    const nowMs = now * 1000;
    assert.equal(totp.matchStep(key, codeAt(now - 30), nowMs), step - 1);
    assert.equal(totp.matchStep(key, codeAt(now + 30), nowMs), step + 1);
    const window = new Set([codeAt(now - 30), codeAt(now), codeAt(now + 30)]);
    for (const far of [now - 60, now + 60, now - 90, now - 3600]) {
      if (window.has(codeAt(far))) continue; // a 1-in-a-million collision with the window: not a refusal case
      assert.equal(totp.matchStep(key, codeAt(far), nowMs), null, `code of ${far - now} s is refused`);
    }
  });

  it('at the edges of a step the window moves with the clock', () => {
    const { totp, key, codeAt } = enrolled();
    const start = step * 30; // first second of the step
    const previous = codeAt(start - 1); // last second of step - 1
    assert.equal(totp.matchStep(key, previous, start * 1000), step - 1, 'one step old at the start of a step');
    assert.equal(totp.matchStep(key, previous, (start + 29) * 1000), step - 1, 'and at its end');
    const window = [codeAt(start), codeAt(start + 30), codeAt(start + 60)];
    if (!window.includes(previous)) {
      assert.equal(totp.matchStep(key, previous, (start + 30) * 1000), null, 'two steps old once the clock enters step + 1');
    }
  });

  it('afterStep: a step at or before the last accepted one is never matched again', () => {
    const { totp, key, codeAt } = enrolled();
    const nowMs = now * 1000;
    const code = codeAt(now);
    const accepted = totp.matchStep(key, code, nowMs);
    assert.equal(accepted, step);
    assert.equal(totp.matchStep(key, code, nowMs, accepted ?? undefined), null, 'the same code is refused a second time');
    assert.equal(totp.matchStep(key, code, nowMs + 30_000, step), null, 'also one step later');
    assert.equal(totp.matchStep(key, codeAt(now + 30), nowMs, step), step + 1, 'the next step still works');
    assert.equal(totp.matchStep(key, codeAt(now - 30), nowMs, step), null, 'an older step does not');
    assert.equal(totp.matchStep(key, codeAt(now - 30), nowMs, step - 2), step - 1);
  });

  it('refuses anything but exactly six ASCII digits', () => {
    const { totp, key, codeAt } = enrolled();
    const code = codeAt(now);
    const nowMs = now * 1000;
    for (const bad of [
      code.slice(1),
      `${code}0`,
      ` ${code}`,
      `${code} `,
      `${code.slice(0, 3)} ${code.slice(3)}`,
      `${code}\n`,
      code.replace(/[0-9]/g, (d) => String.fromCharCode(0x0660 + Number(d))), // Arabic-Indic digits
      code.replace(/[0-9]/g, (d) => String.fromCharCode(0xff10 + Number(d))), // full-width digits
      Number(code),
      null,
      undefined,
      {},
      [code],
      '',
    ]) {
      assert.equal(totp.matchStep(key, bad, nowMs), null, `refuses ${JSON.stringify(bad)}`);
    }
  });

  it('rejects programming errors with a TypeError', () => {
    const totp = createTotp(SECRET);
    assert.throws(() => totp.matchStep(new Uint8Array(0), '123456', Date.now()), TypeError);
    assert.throws(() => totp.matchStep('key' as unknown as Uint8Array, '123456', Date.now()), TypeError);
    assert.throws(() => totp.matchStep(RFC_KEY, '123456', Number.NaN), TypeError);
    assert.throws(() => totp.matchStep(RFC_KEY, '123456', -1), TypeError);
    assert.throws(() => createTotp('too short'), TypeError);
    assert.throws(() => createTotp(undefined as unknown as string), TypeError);
  });
});

describe('TOTP enrollment: secret and uri', () => {
  it('a 160-bit key in base32, a fresh one each time', () => {
    const totp = createTotp(SECRET);
    const secrets = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const { secret } = totp.enroll('alice');
      assert.match(secret, /^[A-Z2-7]{32}$/);
      assert.equal(base32.decode(secret).length, 20);
      secrets.add(secret);
    }
    assert.equal(secrets.size, 50);
  });

  it('uri: otpauth://totp/Issuer:account with secret, issuer, SHA1, 6 digits, 30 s', () => {
    const { enrollment } = enrolled('alice', { issuer: 'ACME Co', accountName: 'alice@example.com' });
    assert.ok(enrollment.uri.startsWith('otpauth://totp/ACME%20Co:alice%40example.com?'), enrollment.uri);
    const url = new URL(enrollment.uri);
    assert.equal(url.protocol, 'otpauth:');
    assert.equal(url.host, 'totp');
    assert.equal(decodeURIComponent(url.pathname), '/ACME Co:alice@example.com');
    assert.deepEqual(Object.fromEntries(url.searchParams), { secret: enrollment.secret, issuer: 'ACME Co', algorithm: 'SHA1', digits: '6', period: '30' });
  });

  it('defaults: issuer blockid-otp, account name the username', () => {
    const { enrollment } = enrolled('bob');
    assert.ok(enrollment.uri.startsWith('otpauth://totp/blockid-otp:bob?'), enrollment.uri);
    assert.equal(new URL(enrollment.uri).searchParams.get('issuer'), 'blockid-otp');
    assert.match(new URL(enrollment.uri).searchParams.get('secret') ?? '', /^[A-Z2-7]{32}$/);
  });

  it('refuses labels an authenticator cannot show (":" separates issuer and account)', () => {
    const totp = createTotp(SECRET);
    assert.throws(() => totp.enroll('alice', { issuer: 'A:B' }), /issuer/);
    assert.throws(() => totp.enroll('alice', { accountName: 'x:y' }), /accountName/);
    assert.throws(() => totp.enroll('alice', { issuer: '' }), /issuer/);
    assert.throws(() => totp.enroll('alice', { accountName: 'a'.repeat(257) }), /accountName/);
    assert.throws(() => totp.enroll('', {}), TypeError);
  });
});

describe('TOTP sealed key', () => {
  it('does not contain the key in any encoding', () => {
    for (let i = 0; i < 20; i++) {
      const { enrollment, key } = enrolled();
      assert.match(enrollment.sealed, /^v1\.[A-Za-z0-9_-]+$/);
      for (const encoded of encodings(key)) {
        assert.ok(!enrollment.sealed.includes(encoded), 'key not in the sealed string');
      }
      const blob = Buffer.from(enrollment.sealed.slice(3), 'base64url');
      for (let at = 0; at + 8 <= key.length; at++) {
        assert.equal(blob.indexOf(Buffer.from(key.subarray(at, at + 8))), -1, 'no 8-byte run of the key in the sealed bytes');
      }
    }
  });

  it('sealing twice gives different strings (random IV)', () => {
    const totp = createTotp(SECRET);
    const a = totp.enroll('alice').sealed;
    const b = totp.enroll('alice').sealed;
    assert.notEqual(a, b);
  });

  it("one username's sealed key does not open for another", () => {
    const { totp, enrollment } = enrolled('alice');
    for (const other of ['bob', 'Alice', 'alice ', ' alice', 'alice\0', 'alic']) {
      assert.equal(totp.unseal(other, enrollment.sealed), null, `not for ${JSON.stringify(other)}`);
    }
  });

  it('another app secret does not open it', () => {
    const { enrollment } = enrolled('alice');
    assert.equal(createTotp(OTHER_SECRET).unseal('alice', enrollment.sealed), null);
    assert.ok(createTotp(SECRET).unseal('alice', enrollment.sealed), 'the same secret in a new instance does');
  });

  it('any tampering is refused: every byte of IV, ciphertext and tag', () => {
    const { totp, enrollment } = enrolled('alice');
    const blob = Buffer.from(enrollment.sealed.slice(3), 'base64url');
    for (let at = 0; at < blob.length; at++) {
      const copy = Buffer.from(blob);
      copy[at] = (copy[at] as number) ^ 0x01;
      assert.equal(totp.unseal('alice', `v1.${copy.toString('base64url')}`), null, `byte ${at} flipped`);
    }
    assert.equal(totp.unseal('alice', `v1.${blob.subarray(0, -1).toString('base64url')}`), null, 'truncated');
    assert.equal(totp.unseal('alice', `v1.${Buffer.concat([blob, Buffer.from([0])]).toString('base64url')}`), null, 'extended');
  });

  it('malformed input gives null, never an exception', () => {
    const { totp, enrollment } = enrolled('alice');
    const body = enrollment.sealed.slice(3);
    // Standard base64 differs from base64url only where the bytes hold a `+` or `/` digit (not always).
    const standard = Buffer.from(body, 'base64url').toString('base64');
    const otherAlphabet = standard === body ? [] : [`v1.${standard}`];
    for (const bad of [
      ...otherAlphabet,
      undefined,
      null,
      42,
      {},
      [],
      '',
      'v1.',
      'v1',
      `v2.${body}`,
      body,
      `v1.${body}=`,
      `v1.${body}!`,
      `v1.${'A'.repeat(10_000)}`,
      `v1.${'A'.repeat(20)}`,
      `V1.${body}`,
      ` ${enrollment.sealed}`,
    ]) {
      assert.equal(totp.unseal('alice', bad), null, `null for ${String(bad).slice(0, 40)}`);
    }
    assert.equal(totp.unseal(undefined as unknown as string, enrollment.sealed), null);
  });
});
