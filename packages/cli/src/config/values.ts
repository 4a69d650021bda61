import { isIP } from 'node:net';
import { parseIPv4 } from '@flowlb/flow-table';

export interface HostPort {
  host: string;
  port: number;
}

/** Canonical dotted quad (no leading zeros: "010" is octal to some tools and decimal to others). */
export function isIPv4(value: string): boolean {
  try {
    parseIPv4(value);
    return true;
  } catch {
    return false;
  }
}

/** Linux interface names: 1 to 15 bytes, no whitespace, no slash, not "." or "..". */
export function isIfName(value: string): boolean {
  return /^[^\s/:]{1,15}$/.test(value) && value !== '.' && value !== '..';
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** `host:port`, `[v6]:port` or `:port` (loopback); port 0 asks the kernel for a free one. */
export function parseHostPort(text: string): HostPort | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  if (m[1] !== undefined) return isIP(m[1]) === 6 ? { host: m[1], port } : undefined;
  const host = m[2] ?? '';
  // A bare `:port` stays on this host: counters and flows are nobody else's business unless asked for.
  if (host === '') return { host: '127.0.0.1', port };
  return isIP(host) === 4 || HOSTNAME.test(host) ? { host, port } : undefined;
}

export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}
