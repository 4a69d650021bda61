import { endianness } from 'node:os';

/** One line of /proc/net/udp or /proc/net/udp6. */
export interface UdpSocketEntry {
  family: 4 | 6;
  /** Dotted quad for IPv4 and for IPv4-mapped IPv6 (`::ffff:a.b.c.d` comes out as `a.b.c.d` with family 6); `::` for the IPv6 wildcard. */
  local: { address: string; port: number };
  remote: { address: string; port: number };
  /** The kernel's socket state: 7 (TCP_CLOSE) for an unconnected UDP socket, 1 (ESTABLISHED) for a connected one. */
  state: number;
  uid: number;
  inode: number;
}

export interface ProcNetOptions {
  /** Byte order the kernel printed the address words in: this host's (default). */
  littleEndian?: boolean;
}

const ENDPOINT = /^([0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})$/;

/**
 * Parses /proc/net/udp or /proc/net/udp6. Lines that do not have the expected shape (the header, a truncated last
 * line, fields a future kernel appends) are skipped or read as far as they go, never guessed at.
 */
export function parseProcNetUdp(text: string, options: ProcNetOptions = {}): UdpSocketEntry[] {
  const le = options.littleEndian ?? endianness() === 'LE';
  const out: UdpSocketEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !/^\d+:$/.test(f[0]!)) continue;
    const local = parseEndpoint(f[1]!, le);
    const remote = parseEndpoint(f[2]!, le);
    const state = /^[0-9A-Fa-f]{1,2}$/.test(f[3]!) ? Number.parseInt(f[3]!, 16) : NaN;
    const uid = /^\d+$/.test(f[7]!) ? Number(f[7]) : NaN;
    const inode = /^\d+$/.test(f[9]!) ? Number(f[9]) : NaN;
    if (!local || !remote || local.family !== remote.family || Number.isNaN(state) || Number.isNaN(uid) || Number.isNaN(inode)) continue;
    out.push({ family: local.family, local: local.endpoint, remote: remote.endpoint, state, uid, inode });
  }
  return out;
}

/** Whether the socket is bound but talks to nobody in particular: a server waiting for datagrams. */
export function isListening(entry: UdpSocketEntry): boolean {
  return entry.remote.port === 0;
}

function parseEndpoint(text: string, le: boolean): { family: 4 | 6; endpoint: { address: string; port: number } } | undefined {
  const m = ENDPOINT.exec(text);
  if (!m) return undefined;
  const hex = m[1]!;
  const bytes: number[] = [];
  for (let i = 0; i < hex.length; i += 8) bytes.push(...wordBytes(hex.slice(i, i + 8), le));
  const port = Number.parseInt(m[2]!, 16);
  if (bytes.length === 4) return { family: 4, endpoint: { address: bytes.join('.'), port } };
  return { family: 6, endpoint: { address: formatIpv6(bytes), port } };
}

/** The kernel prints each 32-bit word of the address as the host reads it from memory: undo that. */
function wordBytes(hex: string, le: boolean): number[] {
  const b = Buffer.alloc(4);
  const v = Number.parseInt(hex, 16);
  if (le) b.writeUInt32LE(v);
  else b.writeUInt32BE(v);
  return [...b];
}

function formatIpv6(bytes: readonly number[]): string {
  if (bytes.every((b) => b === 0)) return '::';
  const mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (mapped) return bytes.slice(12).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(':');
}
