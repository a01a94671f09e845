import { isIPv4, isIPv6 } from 'node:net';

/**
 * The quota key for a client address: IPv4 as is, IPv6 by its /56 prefix (one subscriber
 * commonly holds a whole /56 or /48). IPv4-mapped IPv6 in any writing (`::ffff:192.0.2.1`,
 * `::ffff:c000:201`, `0:0:0:0:0:ffff:192.0.2.1`) counts as the IPv4 address, zone ids are
 * dropped, and a port some proxies append (`192.0.2.1:5678`, `[2001:db8::1]:443`) is ignored.
 * Anything else shares the key `unknown` (fail closed: one bucket, not one per writing).
 */
export function ipQuotaKey(ip: string | undefined): string {
  if (typeof ip !== 'string') return 'unknown';
  const address = stripPort(ip.trim());
  if (isIPv4(address)) return address;
  const bare = address.split('%')[0] ?? address;
  if (!isIPv6(bare)) return 'unknown';
  const groups = ipv6Groups(bare);
  if (groups === undefined) return 'unknown';
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff) {
    const [high = 0, low = 0] = groups.slice(6);
    return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
  }
  const hex = groups.map((group) => group.toString(16).padStart(4, '0'));
  // 56 bits = three full groups and the high byte of the fourth.
  return `${hex.slice(0, 3).join(':')}:${(hex[3] ?? '0000').slice(0, 2)}00::/56`;
}

function stripPort(address: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(address);
  if (bracketed?.[1] !== undefined) return bracketed[1];
  const ipv4WithPort = /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(address);
  return ipv4WithPort?.[1] ?? address;
}

/** The eight 16-bit groups of a valid IPv6 address, an embedded dotted IPv4 tail included. */
function ipv6Groups(address: string): number[] | undefined {
  let text = address.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((group) => Number.parseInt(group, 16)));
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  const missing = 8 - left.length - right.length;
  if (missing < 0 || (tail === undefined && missing !== 0)) return undefined;
  const groups = [...left, ...Array.from({ length: missing }, () => 0), ...right];
  return groups.every((group) => Number.isInteger(group) && group >= 0 && group <= 0xffff) ? groups : undefined;
}
