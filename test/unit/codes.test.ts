// The keyed hashes every store key and code hash comes from: the fast HMAC must give exactly
// the bytes of Node's createHmac, for every secret and message (it falls back where it cannot).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { hashCode, hashKey, hmac, randomToken } from '../../src/core/codes.js';

const reference = (secret: string, message: string) => createHmac('sha256', secret).update(message).digest('base64url');

test('hmac() is HMAC-SHA256 in base64url (RFC 4231, test case 2)', () => {
  const expected = Buffer.from('5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843', 'hex').toString('base64url');
  assert.equal(hmac('Jefe', 'what do ya want for nothing?'), expected);
  assert.equal(hmac('sécret-0123456789', 'Jöhn Smïth 🙂'), reference('sécret-0123456789', 'Jöhn Smïth 🙂'), 'UTF-8 secret and message');
});

test('hmac() equals createHmac for ASCII, long and non-ASCII secrets and any UTF-8 message', () => {
  const secrets = [
    'x'.repeat(32),
    randomBytes(32).toString('hex'), // 64 ASCII characters: one block exactly
    randomBytes(33).toString('hex'), // longer than a block: hashed first (createHmac path)
    randomBytes(24).toString('base64'),
    'sécret-with-a-non-ASCII-letter-0123456789',
    '\u007f'.repeat(40),
  ];
  const messages = ['', 'key\0user\0john.smith', 'code\x00abc\x00004217', 'Jöhn Smïth 🙂', '\ud800 lone surrogate', 'x'.repeat(1000), '\0'.repeat(70)];
  let compared = 0;
  for (const secret of secrets) {
    for (const message of messages) {
      assert.equal(
        hmac(secret, message),
        reference(secret, message),
        `secret ${JSON.stringify(secret.slice(0, 8))}…, message ${JSON.stringify(message.slice(0, 12))}`,
      );
      compared += 1;
    }
    for (let i = 0; i < 50; i++) {
      const message = randomBytes(1 + (i % 90)).toString('latin1');
      assert.equal(hmac(secret, message), reference(secret, message));
      compared += 1;
    }
  }
  assert.equal(compared, secrets.length * (messages.length + 50));
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

test('RecentValues keeps at most two generations and moves a hit of the older one forward', async () => {
  const { RecentValues } = await import('../../src/core/send/recent.js');
  const recent = new RecentValues<number>(3);
  for (let i = 0; i < 3; i++) recent.set(`k${i}`, i);
  recent.set('k3', 3); // k0..k2 become the previous generation
  assert.equal(recent.get('k0'), 0); // found there, and moved into the current one
  recent.set('k4', 4);
  recent.set('k5', 5); // the current one (k3, k0, k4) is full: it becomes the previous, k1 and k2 are dropped
  assert.equal(recent.get('k1'), undefined);
  assert.equal(recent.get('k2'), undefined);
  for (const [key, value] of [
    ['k0', 0],
    ['k3', 3],
    ['k4', 4],
    ['k5', 5],
  ] as const)
    assert.equal(recent.get(key), value);
});
