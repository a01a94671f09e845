/**
 * The leak check that the HTTP, store and log tests share: it must find a code written out anywhere a
 * reader would take it for one, and must not fail a run because a random id happens to hold the same digits.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { holdsCode } from '../helpers/client.js';

describe('holdsCode', () => {
  const code = '482913';

  for (const text of [
    `{"ok":false,"code":"${code}"}`,
    `x-debug: ${code}`,
    `${code}`,
    `location: /done?code%3D${code}`,
    `set-cookie: hint=code%3A%20${code}; path=/`,
    `Your code is ${code}.`,
    `otp=${code}&user=jo`,
    `{"code":${code}}`,
  ]) {
    it(`finds the code in ${JSON.stringify(text)}`, () => assert.equal(holdsCode(text, code), true));
  }

  for (const text of [
    `set-cookie: sid=66da0d9d-fa21-4e18-8f9e-db${code}a3fb; path=/`,
    `{"expiresAt":179637${code}0}`,
    `hash: \\x9f${code}ab`,
    `ab${code}`,
    `${code}7`,
    '',
  ]) {
    it(`leaves ${JSON.stringify(text)} alone: the digits are part of a longer token`, () => assert.equal(holdsCode(text, code), false));
  }

  it('reads a text whose percent-escapes do not decode', () => {
    assert.equal(holdsCode(`%E0%A4%A broken, then code%3D${code}`, code), true);
    assert.equal(holdsCode('%E0%A4%A broken, nothing else', code), false);
  });
});
