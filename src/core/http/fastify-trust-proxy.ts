/**
 * Refuses a Fastify `trustProxy` that trusts any number of hops from anywhere (`true`, every
 * IPv4 range, a function that always says yes): with it any client picks its own
 * `request.ip` through X-Forwarded-For and escapes the per-IP send quota. Fastify keeps the
 * setting to itself, so this asks Fastify's own `ip` getter about a made-up request: a public
 * peer forwarding ten public hops. Checked once per request class (one per Fastify instance).
 */
import { trustAllProxiesError } from './adapter.js';

const checked = new WeakSet<object>();
const FORWARDED = Array.from({ length: 10 }, (_, hop) => `203.0.113.${hop + 1}`).join(', ');

function ipGetter(request: object): ((this: unknown) => unknown) | undefined {
  for (let proto = Object.getPrototypeOf(request); proto !== null; proto = Object.getPrototypeOf(proto)) {
    const getter = Object.getOwnPropertyDescriptor(proto, 'ip')?.get;
    if (getter !== undefined) return getter;
  }
  return undefined;
}

export function checkFastifyTrustProxy(request: object): void {
  const proto = Object.getPrototypeOf(request) as object;
  if (checked.has(proto)) return;
  const getter = ipGetter(request);
  if (getter !== undefined) {
    for (const peer of ['198.51.100.7', '2001:db8::7']) {
      const socket = { remoteAddress: peer };
      const raw = { headers: { 'x-forwarded-for': FORWARDED }, socket, connection: socket };
      if (getter.call({ raw, socket }) === '203.0.113.1') {
        throw trustAllProxiesError('Fastify({ trustProxy }) set to trust every hop', "Fastify({ trustProxy: '10.0.0.1' }) with your proxy's address");
      }
    }
  }
  checked.add(proto);
}
