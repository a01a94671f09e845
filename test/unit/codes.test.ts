// The keyed hashes every store key and code hash comes from: HMAC-SHA256 exactly, for every
// secret and message (store keys and hashes must not change between releases).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { hashCode, hashKey, hmac, randomToken } from '../../src/core/codes.js';

const reference = (secret: string, message: string) => createHmac('sha256', secret).update(message).digest('base64url');

test('hmac() is HMAC-SHA256 in base64url (RFC 4231, test case 2)', () => {
  const expected = Buffer.from('5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843', 'hex').toString('base64url');
  assert.equal(hmac('Jefe', 'what do ya want for nothing?'), expected);
  assert.equal(hmac('sécret-0123456789', 'Jöhn Smïth 🙂'), reference('sécret-0123456789', 'Jöhn Smïth 🙂'), 'UTF-8 secret and message');
});

test('hashKey and hashCode keep their formats: 27 and 43 base64url characters, keyed by the secret', () => {
  const secret = 'y'.repeat(40);
  assert.equal(hashKey(secret, 'user', 'john'), reference(secret, 'key\0user\0john').slice(0, 27));
  assert.equal(hashCode(secret, 'rec', '123456'), reference(secret, 'code\x00rec\x00123456'));
  assert.match(hashCode(secret, 'rec', '123456'), /^[A-Za-z0-9_-]{43}$/);
  assert.notEqual(hashKey(secret, 'user', 'john'), hashKey('z'.repeat(40), 'user', 'john'));
});

test('randomToken() never repeats', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) seen.add(randomToken());
  assert.equal(seen.size, 2000);
  for (const token of seen) assert.match(token, /^[A-Za-z0-9_-]{24}$/);
  assert.match(randomToken(9), /^[A-Za-z0-9_-]{12}$/);
});
