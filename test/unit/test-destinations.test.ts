import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseTestDestinationsEnv, resolveTestDestinations, type ResolveTestDestinationsContext } from '../../src/core/send/test-destinations.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const NOW = Date.now();
const dev: ResolveTestDestinationsContext = { codeLength: 6, factory: 'blockidOtp', env: 'test', nowMs: NOW };
const prod: ResolveTestDestinationsContext = { ...dev, env: 'production' };
const resolve = (value: unknown, expireAt?: unknown, context: Partial<ResolveTestDestinationsContext> = {}) =>
  resolveTestDestinations(value, expireAt, { ...dev, ...context });

/** The codes used as values in this file (bar the invalid-key case): none may appear in an error message. */
const CODES = ['123456', '000000', '654321', '1234567890', '12345', '1234567', '12345a', '１２３４５６', '987650'];

/** Asserts a TypeError whose message starts with the factory, names `name`, and holds none of `codes`. */
function assertRefused(run: () => unknown, name: RegExp, factory = 'blockidOtp', codes = CODES) {
  assert.throws(run, (error: Error) => {
    assert.equal(error.name, 'TypeError');
    assert.ok(error.message.startsWith(`${factory}: `), error.message);
    assert.match(error.message, name);
    for (const code of codes) assert.ok(!error.message.includes(code), `the message holds a code: ${error.message}`);
    return true;
  });
}

describe('resolveTestDestinations', () => {
  it('is undefined when the option is not given or empty', () => {
    assert.equal(resolve(undefined), undefined);
    assert.equal(resolve(undefined, '2000-01-01'), undefined);
    assert.equal(resolve({}), undefined);
    assert.equal(resolveTestDestinations({}, undefined, prod), undefined, 'an empty map is no test mode, even in production');
  });

  it('normalizes phone keys in any accepted writing to E.164, for every phone channel', () => {
    for (const key of ['+14155550123', '4155550123', '(415) 555-0123', '415-555-0123', '+1 415 555 0123', '1 415.555.0123']) {
      const test = resolve({ [key]: '123456' });
      assert.ok(test, key);
      assert.equal(test.size, 1);
      for (const channel of ['sms', 'whatsapp', 'voice'] as const)
        assert.equal(test.codeFor({ channel, to: '+14155550123' }), '123456', `${key} on ${channel}`);
      assert.equal(test.codeFor({ channel: 'email', to: '+14155550123' }), undefined, 'a phone test destination is not an email one');
      assert.equal(test.codeFor({ channel: 'sms', to: '+14155550124' }), undefined);
    }
    assert.equal(resolve({ '(613) 555-0123': '000000' })?.codeFor({ channel: 'sms', to: '+16135550123' }), '000000', 'Canada');
  });

  it('normalizes email keys (domain lower-cased) and matches only the email channel', () => {
    const test = resolve({ ' QA@Example.COM ': '000000' });
    assert.ok(test);
    assert.equal(test.codeFor({ channel: 'email', to: 'QA@example.com' }), '000000');
    assert.equal(test.codeFor({ channel: 'email', to: 'QA@EXAMPLE.com' }), '000000');
    assert.equal(test.codeFor({ channel: 'email', to: 'qa@example.com' }), undefined, 'the local part is kept as written, like normalizeEmail');
    assert.equal(test.codeFor({ channel: 'sms', to: 'QA@example.com' }), undefined);
  });

  it('refuses a key that breaks the phone or email rules, naming the option and the key', () => {
    for (const key of [
      '876-555-0100',
      '+1 809 555 0100',
      '900-555-0100',
      '1234567890',
      '+44 20 7946 0958',
      'not a number',
      '"qa"@example.com',
      'Q A <qa@example.com>',
      'qa@localhost',
    ]) {
      // The key is named in full (it is the thing to fix); its code is not.
      assertRefused(
        () => resolve({ [key]: '987650' }),
        new RegExp(`option "testDestinations": key ${escapeRegExp(JSON.stringify(key))} is not an accepted destination`),
        'blockidOtp',
        ['987650'],
      );
    }
    assertRefused(() => resolve({ '876-555-0100': '123456' }), /another \+1 country/);
  });

  it('refuses a code that is not exactly codeLength ASCII digits, without repeating it', () => {
    for (const code of ['12345', '1234567', '12345a', '１２３４５６', 123456, null, undefined, ['123456']]) {
      assertRefused(
        () => resolve({ '+14155550123': code }),
        /option "testDestinations": the code for "\+14155550123" must be a string of exactly 6 ASCII digits/,
      );
    }
    assert.equal(resolve({ '+14155550123': '1234567890' }, undefined, { codeLength: 10 })?.codeFor({ channel: 'sms', to: '+14155550123' }), '1234567890');
    assertRefused(() => resolve({ '+14155550123': '123456' }, undefined, { codeLength: 10 }), /exactly 10 ASCII digits/);
  });

  it('refuses a value that is not a plain object', () => {
    for (const value of [null, 'x', 42, [['+14155550123', '123456']], new Map([['+14155550123', '123456']])]) {
      assertRefused(() => resolve(value), /option "testDestinations" must be an object/);
    }
  });

  it('refuses two writings of one destination with different codes, and accepts the same code twice', () => {
    assertRefused(() => resolve({ '4155550123': '123456', '+1 415 555 0123': '654321' }), /two keys name the destination \+1\*{6}0123/);
    assert.equal(resolve({ '4155550123': '123456', '+1 415 555 0123': '123456' })?.size, 1);
  });

  it('takes testDestinationsExpireAt as a Date or an ISO 8601 string', () => {
    const at = new Date(NOW + DAY_MS);
    assert.equal(resolve({ '+14155550123': '123456' }, at)?.expiresAtMs, at.getTime());
    assert.equal(resolve({ '+14155550123': '123456' }, at.toISOString())?.expiresAtMs, at.getTime());
    assert.equal(resolve({ '+14155550123': '123456' }, '2030-01-31')?.expiresAtMs, Date.UTC(2030, 0, 31));
    assert.equal(resolve({ '+14155550123': '123456' }, '2030-01-31T12:00:00+02:00')?.expiresAtMs, Date.UTC(2030, 0, 31, 10));
    assert.equal(resolve({ '+14155550123': '123456' })?.expiresAtMs, null);
    for (const bad of ['tomorrow', 'January 31, 2030', '2030-02-31', '2030-13-01', '2030-01-31T12:00:00', '', new Date(Number.NaN), NOW + DAY_MS, {}]) {
      assertRefused(() => resolve({ '+14155550123': '123456' }, bad), /option "testDestinationsExpireAt" must be a Date or an ISO 8601 string/);
    }
  });

  it('under NODE_ENV=production, demands an expiry at most 30 days ahead', () => {
    const value = { '+14155550123': '123456', 'qa@example.com': '000000' };
    assertRefused(
      () => resolveTestDestinations(value, undefined, prod),
      /option "testDestinations" is refused without option "testDestinationsExpireAt" unless NODE_ENV is "development" or "test" \(NODE_ENV is "production"\)/,
    );
    assertRefused(
      () => resolveTestDestinations(value, new Date(NOW + 31 * DAY_MS), prod),
      /option "testDestinations" is refused with option "testDestinationsExpireAt" more than 30 days ahead/,
    );
    assert.ok(resolveTestDestinations(value, new Date(NOW + 30 * DAY_MS), prod), 'exactly 30 days is allowed');
    assert.ok(resolveTestDestinations(value, new Date(NOW + 7 * DAY_MS).toISOString(), prod));
    assert.ok(resolveTestDestinations(value, new Date(NOW - DAY_MS), prod), 'a past expiry is allowed (test mode is simply over)');
    assert.ok(resolveTestDestinations(value, new Date(NOW + 365 * DAY_MS), dev), 'under development any expiry is allowed');
    assert.ok(resolveTestDestinations(value, undefined, dev), 'and none');
  });

  it('reads NODE_ENV from the environment by default', () => {
    const saved = process.env.NODE_ENV;
    try {
      process.env.NODE_ENV = 'production';
      assertRefused(
        () => resolveTestDestinations({ '+14155550123': '123456' }, undefined, { codeLength: 6, factory: 'blockidOtpKoa' }),
        /NODE_ENV is "production"/,
        'blockidOtpKoa',
      );
      process.env.NODE_ENV = 'development';
      assert.ok(resolveTestDestinations({ '+14155550123': '123456' }, undefined, { codeLength: 6, factory: 'blockidOtpKoa' }));
    } finally {
      if (saved === undefined) delete process.env.NODE_ENV;
      else process.env.NODE_ENV = saved;
    }
  });

  it('after the expiry, test destinations are ordinary destinations (checked at call time)', async () => {
    const past = resolve({ '+14155550123': '123456', 'qa@example.com': '000000' }, new Date(NOW - 1000));
    assert.ok(past);
    assert.equal(past.codeFor({ channel: 'sms', to: '+14155550123' }), undefined);
    assert.equal(past.codeFor({ channel: 'email', to: 'qa@example.com' }), undefined);
    assert.equal(past.codeForTargets([{ channel: 'sms', to: '+14155550123' }]), undefined);
    assert.match(past.describe(), /^test mode expired at .*: 2 test destinations \(\+1\*{6}0123, q\*{3}@example\.com\) are ordinary destinations again\.$/);

    const soon = resolve({ '+14155550123': '123456' }, new Date(Date.now() + 40));
    assert.ok(soon);
    assert.equal(soon.codeFor({ channel: 'voice', to: '+14155550123' }), '123456');
    await new Promise((done) => setTimeout(done, 60));
    assert.equal(soon.codeFor({ channel: 'voice', to: '+14155550123' }), undefined, 'expired while running');
  });

  it('codeForTargets: the fixed code only when every target is a test destination', () => {
    const test = resolve({ '+14155550123': '123456', 'qa@example.com': '000000' });
    assert.ok(test);
    const phone = { channel: 'sms', to: '+14155550123' } as const;
    assert.equal(test.codeForTargets([phone]), '123456');
    assert.equal(test.codeForTargets([phone, { channel: 'whatsapp', to: '+14155550123' }]), '123456');
    assert.equal(test.codeForTargets([phone, { channel: 'email', to: 'real@example.com' }]), undefined, 'a mixed send is an ordinary send');
    assert.equal(test.codeForTargets([{ channel: 'email', to: 'real@example.com' }, phone]), undefined);
    assert.equal(test.codeForTargets([phone, { channel: 'email', to: 'qa@example.com' }]), '123456', 'different fixed codes: the first one');
    assert.equal(test.codeForTargets([]), undefined);
  });

  it('describe() masks the destinations, states the expiry, and never holds a code', () => {
    const forever = resolve({ '+14155550123': '123456', 'qa@example.com': '000000' });
    assert.equal(forever?.describe(), 'test mode: 2 test destinations (+1******0123, q***@example.com) get a fixed code and no delivery; no expiry.');
    const until = resolve({ '+14155550123': '654321' }, '2099-01-31');
    assert.equal(until?.describe(), 'test mode: 1 test destination (+1******0123) gets a fixed code and no delivery until 2099-01-31T00:00:00.000Z.');
  });

  it('names other options or variables when asked (otp-provider)', () => {
    const names = { destinations: 'OTP_TEST_DESTINATIONS', expireAt: 'OTP_TEST_DESTINATIONS_EXPIRE_AT' };
    assertRefused(
      () => resolveTestDestinations({ '+14155550123': '123456' }, undefined, { ...prod, factory: 'otp-provider', names }),
      /^otp-provider: OTP_TEST_DESTINATIONS is refused without OTP_TEST_DESTINATIONS_EXPIRE_AT unless NODE_ENV is "development" or "test"/,
      'otp-provider',
    );
    assertRefused(
      () => resolveTestDestinations({ '+14155550123': '12345' }, undefined, { ...dev, factory: 'otp-provider', names }),
      /OTP_TEST_DESTINATIONS: the code/,
      'otp-provider',
    );
  });
});

describe('parseTestDestinationsEnv', () => {
  it('parses destination=code pairs separated by commas', () => {
    assert.deepEqual(parseTestDestinationsEnv('+14155550123=123456,qa@example.com=000000'), { '+14155550123': '123456', 'qa@example.com': '000000' });
    assert.deepEqual(parseTestDestinationsEnv(' +1 415 555 0123 = 123456 ,\n qa+1=x@example.com=000000, '), {
      '+1 415 555 0123': '123456',
      'qa+1=x@example.com': '000000',
    });
    assert.deepEqual(parseTestDestinationsEnv(''), {});
    assert.deepEqual(parseTestDestinationsEnv(undefined), {});
    assert.deepEqual(parseTestDestinationsEnv(' , '), {});
  });

  it('feeds resolveTestDestinations', () => {
    const test = resolveTestDestinations(parseTestDestinationsEnv('4155550123=123456,qa@example.com=000000'), undefined, dev);
    assert.equal(test?.codeFor({ channel: 'sms', to: '+14155550123' }), '123456');
    assert.equal(test?.codeFor({ channel: 'email', to: 'qa@example.com' }), '000000');
  });

  it('refuses malformed entries with a clear TypeError that names the variable and never a code', () => {
    const cases: Array<[string, RegExp]> = [
      ['+14155550123', /^OTP_TEST_DESTINATIONS: entry 1 has no "=": write destination=code/],
      ['+14155550123=123456,654321', /^OTP_TEST_DESTINATIONS: entry 2 has no "="/],
      ['=123456', /^OTP_TEST_DESTINATIONS: entry 1 has no destination before "="/],
      ['qa@example.com=', /^OTP_TEST_DESTINATIONS: entry 1 \("qa@example\.com"\) has no code after "="/],
      ['qa@example.com=123456,qa@example.com=000000', /^OTP_TEST_DESTINATIONS: entry 2: "qa@example\.com" is given twice/],
    ];
    for (const [text, message] of cases) {
      assert.throws(
        () => parseTestDestinationsEnv(text),
        (error: Error) => {
          assert.equal(error.name, 'TypeError');
          assert.match(error.message, message);
          for (const code of CODES) assert.ok(!error.message.includes(code), error.message);
          return true;
        },
      );
    }
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
