import { isIPv4, isIPv6 } from 'node:net';

/**
 * The quota key for a client address: IPv4 as is (IPv4-mapped IPv6 counts as IPv4),
 * IPv6 by its /56 prefix, since one subscriber commonly holds a whole /56 or /48.
 */
export function ipQuotaKey(ip: string | undefined): string {
  if (ip === undefined || ip === '') return 'unknown';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped?.[1] !== undefined) return mapped[1];
  if (isIPv4(ip)) return ip;
  const bare = ip.split('%')[0] ?? ip;
  if (!isIPv6(bare)) return 'unknown';
  const groups = expandIPv6(bare);
  // 56 bits = three full groups and the high byte of the fourth.
  return `${groups.slice(0, 3).join(':')}:${(groups[3] ?? '0000').slice(0, 2)}00::/56`;
}

function expandIPv6(address: string): string[] {
  const [head = '', tail] = address.split('::');
  const parse = (part: string) => (part === '' ? [] : part.split(':'));
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  const missing = 8 - left.length - right.length;
  return [...left, ...Array.from({ length: Math.max(missing, 0) }, () => '0'), ...right].map((group) => group.padStart(4, '0').toLowerCase());
}
