import { isIPv4 } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * The quota key for a client address: IPv4 as is, IPv6 by its /56 prefix (one subscriber
 * commonly holds a whole /56 or /48). IPv4-mapped IPv6 in any writing (`::ffff:192.0.2.1`,
 * `::ffff:c000:201`, `0:0:0:0:0:ffff:192.0.2.1`) counts as the IPv4 address, zone ids are
 * dropped, and a port some proxies append (`192.0.2.1:5678`, `[2001:db8::1]:443`) is ignored.
 * IPv6 parsing is ipaddr.js's; anything that is not a dotted-quad IPv4 or an IPv6 address shares the
 * key `unknown` (fail closed: one bucket, not one per writing).
 */
export function ipQuotaKey(ip: string | undefined): string {
  if (typeof ip !== 'string') return 'unknown';
  const address = stripPort(ip.trim());
  if (isIPv4(address)) return address; // the common case, without parsing
  const bare = address.split('%')[0] ?? address;
  if (!ipaddr.IPv6.isValid(bare)) return 'unknown';
  const parsed = ipaddr.IPv6.parse(bare);
  if (parsed.isIPv4MappedAddress()) return parsed.toIPv4Address().toString();
  const hex = parsed.parts.map((group) => group.toString(16).padStart(4, '0'));
  // 56 bits = three full groups and the high byte of the fourth.
  return `${hex.slice(0, 3).join(':')}:${(hex[3] ?? '0000').slice(0, 2)}00::/56`;
}

function stripPort(address: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(address);
  if (bracketed?.[1] !== undefined) return bracketed[1];
  const ipv4WithPort = /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(address);
  return ipv4WithPort?.[1] ?? address;
}
