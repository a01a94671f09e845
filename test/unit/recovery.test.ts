import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRecoveryCodes, RECOVERY_CODE_ALPHABET } from '../../src/core/verify/recovery.js';

const SECRET = 'a-test-secret-of-at-least-32-characters!';
const OTHER_SECRET = 'another-test-secret-of-32-characters-or-more';
const CODE = new RegExp(`^[${RECOVERY_CODE_ALPHABET}]{4}-[${RECOVERY_CODE_ALPHABET}]{4}-[${RECOVERY_CODE_ALPHABET}]{4}$`);

describe('recovery codes: generate', () => {
  it('10 codes by default, as many as asked from 1 to 50', () => {
    const recovery = createRecoveryCodes(SECRET);
    assert.equal(recovery.generate().codes.length, 10);
    assert.equal(recovery.generate({}).hashes.length, 10);
    for (const count of [1, 7, 50]) {
      const { codes, hashes } = recovery.generate({ count });
      assert.equal(codes.length, count);
      assert.equal(hashes.length, count);
    }
  });

  it('refuses a count outside 1..50 with a TypeError naming it', () => {
    const recovery = createRecoveryCodes(SECRET);
    for (const count of [0, -1, 51, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '10', null]) {
      assert.throws(() => recovery.generate({ count: count as number }), { name: 'TypeError', message: /count/ }, String(count));
    }
  });

  it('refuses a short app secret', () => {
    assert.throws(() => createRecoveryCodes('short'), TypeError);
    assert.throws(() => createRecoveryCodes(undefined as unknown as string), TypeError);
  });

  it('easy to read: XXXX-XXXX-XXXX from an alphabet without 0, O, 1, I, L, U', () => {
    for (const ambiguous of '0O1ILU') assert.ok(!RECOVERY_CODE_ALPHABET.includes(ambiguous), ambiguous);
    assert.equal(new Set(RECOVERY_CODE_ALPHABET).size, RECOVERY_CODE_ALPHABET.length);
    const { codes } = createRecoveryCodes(SECRET).generate({ count: 50 });
    for (const code of codes) assert.match(code, CODE);
  });

  it('at least 50 bits of entropy each, every symbol used', () => {
    const symbols = CODE.source.match(/\{4\}/g)!.length * 4;
    assert.ok(symbols * Math.log2(RECOVERY_CODE_ALPHABET.length) >= 50);
    const recovery = createRecoveryCodes(SECRET);
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) for (const code of recovery.generate({ count: 50 }).codes) for (const c of code.replace(/-/g, '')) seen.add(c);
    assert.equal(seen.size, RECOVERY_CODE_ALPHABET.length);
  });

  it('all different, within a list and across many', () => {
    const recovery = createRecoveryCodes(SECRET);
    const all = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const { codes } = recovery.generate({ count: 50 });
      assert.equal(new Set(codes).size, 50);
      for (const code of codes) all.add(code);
    }
    assert.equal(all.size, 200 * 50);
  });

  it('hashes are keyed hashes, never the codes', () => {
    const recovery = createRecoveryCodes(SECRET);
    const { codes, hashes } = recovery.generate({ count: 50 });
    assert.equal(new Set(hashes).size, 50);
    for (const hash of hashes) {
      assert.match(hash, /^[A-Za-z0-9_-]{43}$/, 'HMAC-SHA256 in base64url');
      for (const code of codes) {
        const plain = code.replace(/-/g, '');
        for (const form of [code, plain, plain.toLowerCase(), Buffer.from(plain).toString('base64url'), Buffer.from(plain).toString('hex')]) {
          assert.ok(!hash.includes(form), 'no hash contains a code');
        }
      }
    }
    for (const [i, code] of codes.entries()) assert.equal(recovery.hash(code), hashes[i], 'same order, deterministic');
    const other = createRecoveryCodes(OTHER_SECRET);
    for (const [i, code] of codes.entries()) assert.notEqual(other.hash(code), hashes[i], 'keyed by the app secret');
  });
});

describe('recovery codes: find', () => {
  it('finds the hash of each code, in any common writing', () => {
    const recovery = createRecoveryCodes(SECRET);
    const { codes, hashes } = recovery.generate();
    codes.forEach((code, i) => {
      const plain = code.replace(/-/g, '');
      const fullWidth = [...code].map((c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0)).join('');
      for (const writing of [code, plain, code.toLowerCase(), ` ${plain.slice(0, 6)} ${plain.slice(6)} `, code.replace(/-/g, '\u2013'), fullWidth]) {
        assert.equal(recovery.find(writing, hashes), hashes[i], JSON.stringify(writing));
      }
    });
  });

  it('works once per list: once the app deletes the hash, the code is refused', () => {
    const recovery = createRecoveryCodes(SECRET);
    const { codes, hashes } = recovery.generate();
    let stored = [...hashes];
    for (const code of codes) {
      const hash = recovery.find(code, stored);
      assert.ok(hash);
      stored = stored.filter((h) => h !== hash); // what onRecoveryCodeUsed does
      assert.equal(recovery.find(code, stored), null);
    }
    assert.equal(stored.length, 0);
  });

  it('refuses wrong codes, codes of another list and another app secret', () => {
    const recovery = createRecoveryCodes(SECRET);
    const mine = recovery.generate();
    const theirs = recovery.generate();
    for (const code of theirs.codes) assert.equal(recovery.find(code, mine.hashes), null);
    for (const code of mine.codes) assert.equal(createRecoveryCodes(OTHER_SECRET).find(code, mine.hashes), null);
    const first = mine.codes[0] as string;
    const last = first.at(-1) === '2' ? '3' : '2';
    assert.equal(recovery.find(first.slice(0, -1) + last, mine.hashes), null, 'one symbol off');
    assert.equal(recovery.find(first.slice(0, -1), mine.hashes), null, 'one symbol short');
    assert.equal(recovery.find(mine.hashes[0], mine.hashes), null, 'the hash itself is not a code');
  });

  it('bad input gives null, never an exception', () => {
    const recovery = createRecoveryCodes(SECRET);
    const { codes, hashes } = recovery.generate();
    const code = codes[0] as string;
    for (const candidate of [undefined, null, 42, {}, [code], '', '-'.repeat(10), `${code} `.repeat(10)]) {
      assert.equal(recovery.find(candidate, hashes), null, String(candidate));
    }
    for (const list of [undefined, null, [], 'hash', {}, [42, null, {}]]) {
      assert.equal(recovery.find(code, list as unknown as string[]), null, JSON.stringify(list));
    }
    assert.equal(recovery.find(code, [42, null, hashes[0], {}]), hashes[0], 'non-strings in the list are skipped');
  });
});

describe('recovery codes: normalize', () => {
  it('upper-cases and strips spaces and dashes', () => {
    const recovery = createRecoveryCodes(SECRET);
    assert.equal(recovery.normalize(' abcd-efgh jkmn '), 'ABCDEFGHJKMN');
    assert.equal(recovery.normalize('abcd\u2014efgh\tjkmn'), 'ABCDEFGHJKMN');
    assert.equal(recovery.normalize('ＡＢＣＤ'), 'ABCD');
    assert.equal(recovery.normalize(undefined), '');
    assert.equal(recovery.normalize(42), '');
  });
});
