/** The BlockID SDK's destination rules (US and Canada numbers, one plain address), case by case. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { normalizeEmail, normalizePhone, OtpError } from '../../src/index.js';

const refusedWith = (code: string) => (error: unknown) => error instanceof OtpError && error.code === code && error.status === 400;

describe('phone numbers: United States and Canada only', () => {
  const accepted: Array<[string, string | undefined, string]> = [
    ['4155550100', '1', '+14155550100'],
    ['(415) 555-0100', '1', '+14155550100'],
    ['415-555-0100', '+1', '+14155550100'],
    ['415.555.0100', undefined, '+14155550100'],
    ['+1 415 555 0100', '1', '+14155550100'],
    ['1 415 555 0100', '1', '+14155550100'],
    ['(613) 555-0100', '1', '+16135550100'], // Ottawa, Canada
    ['604-555-0199', '+1', '+16045550199'], // Vancouver, Canada
  ];
  for (const [smsTo, isd, e164] of accepted) {
    it(`accepts ${smsTo} (ISD ${isd ?? 'default'}) as ${e164}`, () => {
      assert.equal(normalizePhone(smsTo, isd), e164);
    });
  }

  const refused: Array<[string, string, string]> = [
    ['1234567890', '1', 'an invalid number'],
    ['876-555-0100', '1', 'Jamaica (876)'],
    ['809-555-0100', '1', 'the Dominican Republic (809)'],
    ['+1 242 555 0100', '1', 'the Bahamas (242)'],
    ['900-555-0100', '1', 'a premium-rate number (900)'],
    ['+44 20 7946 0958', '1', 'a UK number'],
    ['4155550100', '44', 'ISD code 44'],
    ['4155550100', '91', 'ISD code 91'],
    ['415-555-0100 x12', '1', 'an extension'],
    ['1-800-FLOWERS', '1', 'letters'],
    ['', '1', 'an empty string'],
    ['5550100', '1', 'too few digits'],
    ['4'.repeat(40), '1', 'a 40-digit string'],
  ];
  for (const [smsTo, isd, why] of refused) {
    it(`refuses ${why} with INVALID_PHONE`, () => {
      assert.throws(() => normalizePhone(smsTo, isd), refusedWith('INVALID_PHONE'));
    });
  }

  it('refuses values that are not strings', () => {
    for (const value of [4155550100, null, undefined, ['4155550100'], { number: '4155550100' }]) {
      assert.throws(() => normalizePhone(value), refusedWith('INVALID_PHONE'));
    }
    assert.throws(() => normalizePhone('4155550100', 1 as unknown as string), refusedWith('INVALID_PHONE'));
  });
});

describe('email: one plain address', () => {
  for (const [input, expected] of [
    ['john.smith@example.com', 'john.smith@example.com'],
    ['  John.Smith@Example.COM ', 'John.Smith@example.com'],
    ['a+tag@sub.example.co.uk', 'a+tag@sub.example.co.uk'],
    ["o'brien@example.ca", "o'brien@example.ca"],
  ]) {
    it(`accepts ${JSON.stringify(input)}`, () => {
      assert.equal(normalizeEmail(input), expected);
    });
  }
  for (const [input, why] of [
    ['"john smith"@example.com', 'a quoted local part'],
    ['"john@smith"@example.com', 'a quoted local part with @'],
    ['john(comment)@example.com', 'a comment'],
    ['john@example.com (John)', 'a trailing comment'],
    ['John Smith <john@example.com>', 'a display name'],
    ['<john@example.com>', 'angle brackets'],
    ['a@example.com, b@example.com', 'a list'],
    ['a@example.com;b@example.com', 'a semicolon list'],
    ['john@[127.0.0.1]', 'an IP literal'],
    ['john@localhost', 'a bare host'],
    ['john..smith@example.com', 'two dots in a row'],
    ['.john@example.com', 'a leading dot'],
    ['john@', 'no domain'],
    ['@example.com', 'no local part'],
    ['john smith@example.com', 'a space'],
    ['john@exa mple.com', 'a space in the domain'],
    ['john@example.com\r\nBcc: x@evil.test', 'a header injection'],
    ['', 'an empty string'],
    [`${'a'.repeat(65)}@example.com`, 'a 65-character local part'],
  ]) {
    it(`refuses ${why} with INVALID_EMAIL`, () => {
      assert.throws(() => normalizeEmail(input), refusedWith('INVALID_EMAIL'));
    });
  }
  it('refuses values that are not strings', () => {
    for (const value of [null, 42, ['a@example.com'], { emailTo: 'a@example.com' }]) assert.throws(() => normalizeEmail(value), refusedWith('INVALID_EMAIL'));
  });
});
