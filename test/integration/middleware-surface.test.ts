/**
 * What a middleware object lets anyone holding it reach: the programmatic API and nothing
 * else of the service. An app that logs `app._router`, a debug endpoint that dumps the
 * middleware stack, or a dependency that walks it must not find the secret there.
 */
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { describe, it } from 'node:test';
import { blockidOtp, createOtpService, memoryStore } from '../../src/index.js';
import { blockidOtpKoa } from '../../src/koa.js';
import { createOtpHandler } from '../../src/fetch.js';
import { serviceOf } from '../../src/core/http/adapter.js';
import { captureSenders } from '../helpers/capture.js';

const SECRET = 'surface-secret-that-must-stay-hidden-0123456789';

/** Built-in prototypes end the walk: what they hold is the runtime's, not ours. */
const builtins = new Set<unknown>([
  Object.prototype,
  Function.prototype,
  Object.getPrototypeOf(async () => {}),
  Object.getPrototypeOf(function* () {}),
  Object.getPrototypeOf(async function* () {}),
  Array.prototype,
  Map.prototype,
  Set.prototype,
  Promise.prototype,
]);

interface Finding {
  path: string;
  what: string;
}

/**
 * Every value reachable from `root` through own properties (string and symbol keys, getters
 * read too) and prototypes. Function closures cannot be walked from JavaScript, and neither
 * can a bound function's target: those are out of any caller's reach as well.
 */
function walk(root: unknown, secret: string): Finding[] {
  const findings: Finding[] = [];
  const seen = new Set<unknown>();
  const visit = (value: unknown, path: string): void => {
    if (typeof value === 'string') {
      if (value.includes(secret)) findings.push({ path, what: 'the secret' });
      return;
    }
    if ((typeof value !== 'object' && typeof value !== 'function') || value === null) return;
    if (seen.has(value) || builtins.has(value)) return;
    seen.add(value);
    for (const key of Reflect.ownKeys(value)) {
      const name = typeof key === 'symbol' ? `[${key.toString()}]` : key;
      if (key === 'service' || key === 'options') findings.push({ path: `${path}.${name}`, what: `a "${name}" property` });
      const descriptor = Reflect.getOwnPropertyDescriptor(value, key);
      if (descriptor === undefined) continue;
      let child: unknown = descriptor.value;
      if (descriptor.get !== undefined) {
        try {
          child = descriptor.get.call(value);
        } catch {
          continue;
        }
      }
      visit(child, `${path}.${name}`);
    }
    visit(Object.getPrototypeOf(value), `${path}.__proto__`);
  };
  visit(root, '<middleware>');
  return findings;
}

const options = () => {
  const capture = captureSenders();
  return { secret: SECRET, store: memoryStore(), sms: capture.sms, email: capture.email, resolveUser: () => null };
};

describe('the middleware object (and the programmatic service)', () => {
  for (const [name, make] of [
    ['blockidOtp', () => blockidOtp(options())],
    ['blockidOtpKoa', () => blockidOtpKoa(options())],
    ['createOtpHandler', () => createOtpHandler(options())],
    ['createOtpService', () => createOtpService(options())],
  ] as const) {
    it(`${name}(): carries the programmatic API and neither the service, the options nor the secret`, () => {
      const middleware = make();
      for (const method of ['generateOtp', 'verifyOtp', 'unlock', 'on', 'off'] as const) assert.equal(typeof middleware[method], 'function', method);
      assert.equal(typeof middleware.totp.enroll, 'function');
      assert.equal(typeof middleware.totp.confirm, 'function');
      assert.equal(typeof middleware.recoveryCodes.generate, 'function');

      // The walk itself must be able to fail: it finds the secret on an object that holds it.
      assert.equal(walk({ nested: [{ options: { secret: SECRET } }] }, SECRET).length, 2, 'the walk finds an "options" key and the secret');

      assert.deepEqual(walk(middleware, SECRET), []);
      assert.doesNotMatch(inspect(middleware, { showHidden: true, depth: Infinity, getters: true }), new RegExp(SECRET));
    });

    it(`${name}(): on() and off() chain on the middleware, never hand out the service`, () => {
      const middleware = make();
      const listener = () => {};
      assert.equal(middleware.on('sent', listener), middleware);
      assert.equal(middleware.off('sent', listener), middleware);
      const { on } = middleware;
      assert.equal(on('sent', listener), middleware, 'also called detached');
      assert.deepEqual(walk(middleware.on('sent', listener), SECRET), []);
    });

    it(`${name}(): changing the carried totp and recoveryCodes objects leaves the service's own alone`, async () => {
      const middleware = make();
      const replaced = async () => {
        throw new Error('replaced');
      };
      Object.assign(middleware.totp, { enroll: replaced });
      Object.assign(middleware.recoveryCodes, { generate: replaced });
      const service = serviceOf(middleware);
      assert.notEqual(service.totp.enroll, replaced);
      assert.match((await service.totp.enroll('ada')).uri, /^otpauth:\/\/totp\//);
      assert.equal((await service.recoveryCodes.generate({ count: 2 })).codes.length, 2);
    });
  }
});
