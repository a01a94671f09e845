/**
 * Number types: codes go to a person's phone only. Every other type that libphonenumber
 * knows in the US and Canada is refused with INVALID_PHONE unless allowed by name.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Metadata, type CountryCode } from 'libphonenumber-js/max';
import { normalizePhone, OtpError, PHONE_NUMBER_TYPES, resolveAllowedNumberTypes, type PhoneNumberType } from '../../src/index.js';

const refusedAs = (type: string, description: RegExp) => (error: unknown) => {
  assert.ok(error instanceof OtpError, `expected an OtpError, got ${String(error)}`);
  assert.equal(error.code, 'INVALID_PHONE');
  assert.equal(error.status, 400);
  assert.match(error.message, description);
  assert.ok(error.message.includes(`(${type})`), `the message names ${type}: ${error.message}`);
  return true;
};

describe("number types: a person's phone is accepted", () => {
  // libphonenumber cannot tell fixed lines from mobiles in +1: both are FIXED_LINE_OR_MOBILE.
  const accepted: Array<[string, string, string]> = [
    ['4155550100', '+14155550100', 'San Francisco'],
    ['(212) 555-0100', '+12125550100', 'New York'],
    ['+1 917 555 0100', '+19175550100', 'New York mobile overlay'],
    ['202-555-0123', '+12025550123', 'Washington'],
    ['(613) 555-0100', '+16135550100', 'Ottawa'],
    ['416 555 0100', '+14165550100', 'Toronto'],
    ['514-555-0100', '+15145550100', 'Montréal'],
    ['604-555-0199', '+16045550199', 'Vancouver'],
    ['780.555.0100', '+17805550100', 'Edmonton'],
  ];
  for (const [smsTo, e164, where] of accepted) {
    it(`accepts ${smsTo} (${where}) as ${e164}`, () => {
      assert.equal(normalizePhone(smsTo), e164);
    });
  }
});

describe('number types: every other type is refused with INVALID_PHONE', () => {
  const refused: Array<[string, PhoneNumberType, RegExp, string]> = [
    ['800-234-5678', 'TOLL_FREE', /toll-free/, 'toll-free 800'],
    ['+1 888 234 5678', 'TOLL_FREE', /toll-free/, 'toll-free 888'],
    ['(877) 234-5678', 'TOLL_FREE', /toll-free/, 'toll-free 877'],
    ['866-234-5678', 'TOLL_FREE', /toll-free/, 'toll-free 866'],
    ['855-234-5678', 'TOLL_FREE', /toll-free/, 'toll-free 855'],
    ['844-234-5678', 'TOLL_FREE', /toll-free/, 'toll-free 844'],
    ['833-234-5678', 'TOLL_FREE', /toll-free/, 'toll-free 833'],
    ['900-234-5678', 'PREMIUM_RATE', /premium-rate/, 'premium-rate 900'],
    ['+15002345678', 'PERSONAL_NUMBER', /personal/, 'personal 500'],
    ['+15332345678', 'PERSONAL_NUMBER', /personal/, 'personal 533'],
    ['521-234-5678', 'PERSONAL_NUMBER', /personal/, 'personal 521'],
    ['544-234-5678', 'PERSONAL_NUMBER', /personal/, 'personal 544'],
    ['588-234-5678', 'PERSONAL_NUMBER', /personal/, 'personal 588'],
    ['622-234-5678', 'PERSONAL_NUMBER', /personal/, 'Canadian 622'],
    ['633-234-5678', 'PERSONAL_NUMBER', /personal/, 'Canadian 633'],
    ['600-234-5678', 'VOIP', /VoIP/, 'Canadian 600 (VoIP)'],
    ['310-2345', 'UAN', /universal access/, 'Canadian 310 (7-digit universal access)'],
  ];
  for (const [smsTo, type, description, what] of refused) {
    it(`refuses ${smsTo}, ${what}, as ${type}`, () => {
      assert.throws(() => normalizePhone(smsTo, '1'), refusedAs(type, description));
    });
    it(`accepts ${smsTo} when allowTypes names ${type}`, () => {
      assert.match(normalizePhone(smsTo, '1', { allowTypes: [type] }), /^\+1\d{7,10}$/);
    });
  }

  it("the refused set is every type that is not a person's phone", () => {
    assert.deepEqual([...PHONE_NUMBER_TYPES].sort(), ['PAGER', 'PERSONAL_NUMBER', 'PREMIUM_RATE', 'SHARED_COST', 'TOLL_FREE', 'UAN', 'VOICEMAIL', 'VOIP']);
  });

  // SHARED_COST, PAGER and VOICEMAIL are refused too, but +1 has no numbers of these types to test with.
  for (const type of ['SHARED_COST', 'PAGER', 'VOICEMAIL']) {
    it(`(${type}: libphonenumber has no US or Canada numbers of this type)`, () => {
      for (const country of ['US', 'CA'] as CountryCode[]) {
        const metadata = new Metadata();
        metadata.selectNumberingPlan(country);
        const plan = metadata.numberingPlan as unknown as { type(name: string): { pattern(): string | undefined } | undefined };
        assert.equal(plan.type(type)?.pattern(), undefined, `${country} ${type}`);
      }
      assert.ok(PHONE_NUMBER_TYPES.includes(type as PhoneNumberType));
    });
  }
});

describe('number types: allowTypes', () => {
  it('allows only the types named, as an array or a set', () => {
    assert.equal(normalizePhone('8002345678', '1', { allowTypes: ['TOLL_FREE'] }), '+18002345678');
    assert.equal(normalizePhone('8002345678', '1', { allowTypes: new Set(['TOLL_FREE', 'VOIP']) }), '+18002345678');
    assert.throws(() => normalizePhone('5002345678', '1', { allowTypes: ['TOLL_FREE'] }), refusedAs('PERSONAL_NUMBER', /personal/));
    assert.throws(() => normalizePhone('6002345678', '1', { allowTypes: [] }), refusedAs('VOIP', /VoIP/));
  });

  it('a number accepted under one allow list is still refused under another (the memo is per list)', () => {
    const tollFree = '+1 (888) 234-5678';
    assert.equal(normalizePhone(tollFree, '1', { allowTypes: ['TOLL_FREE'] }), '+18882345678');
    assert.throws(() => normalizePhone(tollFree, '1'), refusedAs('TOLL_FREE', /toll-free/));
    assert.throws(() => normalizePhone(tollFree, '1', { allowTypes: ['VOIP'] }), refusedAs('TOLL_FREE', /toll-free/));
    assert.equal(normalizePhone(tollFree, '1', { allowTypes: ['VOIP', 'TOLL_FREE'] }), '+18882345678');
    assert.throws(() => normalizePhone(tollFree, '1', {}), refusedAs('TOLL_FREE', /toll-free/));
  });

  it('refuses an unknown type with a TypeError naming allowTypes', () => {
    assert.throws(
      () => normalizePhone('4155550100', '1', { allowTypes: ['tollfree'] }),
      /^TypeError: allowTypes has an unknown number type "tollfree"; did you mean "TOLL_FREE"\?/,
    );
  });
});

describe('resolveAllowedNumberTypes (for an allowNumberTypes option)', () => {
  it('returns the types as a set; undefined allows none', () => {
    assert.deepEqual(resolveAllowedNumberTypes(undefined, 'allowNumberTypes'), new Set());
    assert.deepEqual(resolveAllowedNumberTypes(['TOLL_FREE', 'VOIP', 'TOLL_FREE'], 'allowNumberTypes'), new Set(['TOLL_FREE', 'VOIP']));
    assert.deepEqual(resolveAllowedNumberTypes([...PHONE_NUMBER_TYPES], 'allowNumberTypes'), new Set(PHONE_NUMBER_TYPES));
  });

  const refused: Array<[string, unknown, RegExp]> = [
    ['a string', 'TOLL_FREE', /^allowNumberTypes must be an array of number types \(TOLL_FREE, PREMIUM_RATE/],
    ['null', null, /^allowNumberTypes must be an array/],
    ['another spelling', ['toll-free'], /^allowNumberTypes has an unknown number type "toll-free"; did you mean "TOLL_FREE"\?/],
    ['camel case', ['personalNumber'], /did you mean "PERSONAL_NUMBER"\?/],
    ['a type that is always accepted', ['MOBILE'], /unknown number type "MOBILE" \(MOBILE numbers are always accepted\); expected TOLL_FREE/],
    ['a number', [42], /unknown number type 42; expected TOLL_FREE/],
  ];
  for (const [what, value, expected] of refused) {
    it(`refuses ${what} with a TypeError naming the option`, () => {
      assert.throws(
        () => resolveAllowedNumberTypes(value, 'allowNumberTypes'),
        (error: unknown) => {
          assert.ok(error instanceof TypeError);
          assert.match(error.message, expected);
          return true;
        },
      );
    });
  }
});
