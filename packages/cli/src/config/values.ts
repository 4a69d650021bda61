import { isIP } from 'node:net';
import { parseIPv4 } from '@flowlb/flow-table';

export interface PortRange {
  min: number;
  max: number;
}

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

/** `10000-29999` or a single port; undefined when it is neither. */
export function parsePortRange(text: string): PortRange | undefined {
  const m = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$/.exec(text);
  if (!m) return undefined;
  const min = Number(m[1]);
  const max = Number(m[2] ?? m[1]);
  if (min < 1 || max > 65535) return undefined;
  return { min, max };
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** `host:port`, `[v6]:port` or `:port` (all addresses); port 0 asks the kernel for a free one. */
export function parseHostPort(text: string): HostPort | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  if (m[1] !== undefined) return isIP(m[1]) === 6 ? { host: m[1], port } : undefined;
  const host = m[2] ?? '';
  if (host === '') return { host: '0.0.0.0', port };
  return isIP(host) === 4 || HOSTNAME.test(host) ? { host, port } : undefined;
}

export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

export function formatRange(r: PortRange): string {
  return r.min === r.max ? String(r.min) : `${r.min}-${r.max}`;
}
