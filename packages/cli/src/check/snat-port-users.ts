import { formatRange, subtractRanges, type PortRange } from '@flowlb/balancer';
import type { UdpEndpoint } from '@flowlb/mapper-api';
import type { MappingTable } from '@flowlb/mapper-dtls-sni';
import { DEFAULTS, type FlowlbConfig } from '../config/index.js';
import { isListening, parseProcNetUdp, type UdpSocketEntry } from './proc-net-udp.js';
import type { SocketOwner, SystemProbe } from './probe.js';
import type { CheckResult } from './types.js';

/** A backend the mapper may send flows to, and where it was named. */
export interface NamedTarget {
  target: UdpEndpoint;
  /** e.g. `sniMappings[0] (a.example)`. */
  source: string;
}

/** Every target of a DTLS SNI mappings table, each with the entry that names it. */
export function mappingTargets(table: MappingTable): NamedTarget[] {
  const out: NamedTarget[] = [];
  for (const rule of table.rules) {
    for (const target of rule.targets) out.push({ target, source: `sniMappings[${rule.index}] (${rule.fqdn})` });
  }
  for (const target of table.defaultTargets ?? []) out.push({ target, source: 'default' });
  return out;
}

const LISTED = 6;

const isLoopback = (address: string): boolean => address.startsWith('127.');

/** One port inside the SNAT range and everything found on it. */
interface PortUse {
  port: number;
  uses: string[];
}

/**
 * Ports inside the SNAT range that something else uses on the SNAT address: a UDP socket listening there (or on
 * the wildcard), or a mapping target on that address. flowlb finds a taken port when it binds and sets it aside,
 * and never sends a target flows from the target's own port; but a backend that starts after flowlb can find its
 * port held by a flow, and every port set aside is a warning in the log. Without a config the SNAT address is
 * unknown, so only wildcard sockets are looked for, in the default range.
 */
export function checkSnatPortUsers(probe: SystemProbe, config: FlowlbConfig | undefined, targets?: readonly NamedTarget[]): CheckResult {
  const base = { id: 'snat-ports-free', title: 'SNAT ports free' };
  const range: PortRange = config?.snatPorts ?? { ...DEFAULTS.snatPorts };
  const snat = config?.snatAddr;
  const inRange = (port: number): boolean => port >= range.min && port <= range.max;
  const uses = new Map<number, string[]>();
  const note = (port: number, what: string): void => void uses.set(port, [...(uses.get(port) ?? []), what]);

  const sockets = [4, 6].flatMap((family) => {
    const text = probe.readFile(family === 4 ? '/proc/net/udp' : '/proc/net/udp6');
    return text === undefined ? [] : parseProcNetUdp(text);
  });
  const blocking = sockets.filter((s) => isListening(s) && inRange(s.local.port) && blocksAddress(s, snat));
  const owners = blocking.length > 0 ? (probe.socketOwners?.(blocking.map((s) => s.inode)) ?? new Map()) : new Map<number, SocketOwner>();
  for (const s of blocking) note(s.local.port, `${describeOwner(s, owners.get(s.inode))} listens on ${describeLocal(s)}`);

  if (snat !== undefined) {
    for (const { target, source } of targets ?? []) {
      const sameHost = target.address === snat || (isLoopback(target.address) && isLoopback(snat));
      if (sameHost && inRange(target.port)) note(target.port, `${source} sends flows to ${target.address}:${target.port}`);
    }
  }

  const r = formatRange(range);
  if (uses.size === 0) {
    const detail =
      snat === undefined
        ? `no UDP socket listens on 0.0.0.0 inside ${r} (without a config the SNAT address is unknown)`
        : targets === undefined
          ? `no UDP socket listens on ${snat} or 0.0.0.0 inside ${r} (mapping targets not checked: no mappings given)`
          : `no UDP socket listens on ${snat} or 0.0.0.0 inside ${r}, and no mapping target is there`;
    return { ...base, verdict: 'ok', detail };
  }

  const found: PortUse[] = [...uses].map(([port, u]) => ({ port, uses: [...new Set(u)] })).sort((a, b) => a.port - b.port);
  const listed = found.slice(0, LISTED).map((f) => `port ${f.port}: ${f.uses.join('; ')}`);
  if (found.length > LISTED) listed.push(`and ${found.length - LISTED} more`);
  const count = found.length === 1 ? '1 port' : `${found.length} ports`;
  return {
    ...base,
    verdict: 'warn',
    detail:
      `${count} inside the SNAT ports ${r}${snat === undefined ? '' : ` on ${snat}`} ${found.length === 1 ? 'is' : 'are'} in use — ${listed.join('; ')}. ` +
      'flowlb sets a port that another socket holds aside when it meets it (with a warning in its log), but a backend ' +
      'that starts after flowlb can find its port taken by a flow',
    fix: suggestRange(range, found.map((f) => f.port)),
  };
}

/** Whether a socket bound like this stops a bind of `snat`:port; undefined `snat` asks about wildcards only. */
function blocksAddress(s: UdpSocketEntry, snat: string | undefined): boolean {
  const a = s.local.address;
  if (a === '0.0.0.0' || a === '::') return true;
  return snat !== undefined && a === snat;
}

function describeLocal(s: UdpSocketEntry): string {
  if (s.family === 4) return `${s.local.address}:${s.local.port}`;
  if (s.local.address === '::') return `[::]:${s.local.port} (IPv6 and, unless it set IPV6_V6ONLY, IPv4)`;
  return `[::ffff:${s.local.address}]:${s.local.port}`;
}

function describeOwner(s: UdpSocketEntry, owner: SocketOwner | undefined): string {
  return owner ? `${owner.command} (pid ${owner.pid})` : `a socket of uid ${s.uid} (inode ${s.inode}; its process is not visible here)`;
}

/** The largest part of the range that none of the ports is in, as the key to write. */
function suggestRange(range: PortRange, taken: readonly number[]): string {
  const free = subtractRanges(
    range,
    taken.map((p) => ({ min: p, max: p })),
  ).sort((a, b) => b.max - b.min - (a.max - a.min))[0];
  const move = 'or move those sockets and backends out of the range';
  if (!free) return `choose SNAT ports (snat_ports, or snat_port_min and snat_port_max) that none of them is in, ${move}`;
  return (
    `move the SNAT range off them, e.g. snat_ports: "${free.min}-${free.max}" ` +
    `(or snat_port_min: ${free.min} and snat_port_max: ${free.max}), ${move}`
  );
}
