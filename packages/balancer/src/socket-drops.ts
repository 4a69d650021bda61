import { readFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import type { UdpEndpoint } from '@flowlb/mapper-api';

/** /proc/net/udp writes an IPv4 address as the hex of its four bytes read as a host-order (little-endian) u32. */
function procAddress(address: string): string {
  return address
    .split('.')
    .reverse()
    .map((b) => Number(b).toString(16).padStart(2, '0'))
    .join('')
    .toUpperCase();
}

/**
 * Datagrams the kernel dropped for the UDP sockets bound to `local` because their receive buffer was full: the last
 * column of their lines in /proc/net/udp (of the caller's network namespace), summed over the sockets that share
 * the port (the workers of one VIP). Undefined when it cannot be read (not Linux, not IPv4, no such socket). Node does not expose SO_RXQ_OVFL, and these drops happen before the balancer
 * sees the datagram, so this is the only way to count them.
 */
export function udpSocketDrops(local: UdpEndpoint, table = '/proc/net/udp'): number | undefined {
  if (!isIPv4(local.address)) return undefined;
  let text: string;
  try {
    text = readFileSync(table, 'utf8');
  } catch {
    return undefined;
  }
  const want = `${procAddress(local.address)}:${local.port.toString(16).padStart(4, '0').toUpperCase()}`;
  let total: number | undefined;
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[1] !== want) continue;
    const drops = Number(fields[fields.length - 1]);
    if (Number.isFinite(drops)) total = (total ?? 0) + drops;
  }
  return total;
}
