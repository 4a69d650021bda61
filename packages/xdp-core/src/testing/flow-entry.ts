/**
 * `struct flow_key` / `struct flow_val` of bpf/include/flowlb.h, encoded by hand for the program's tests. Kept apart
 * from @flowlb/flow-table on purpose: the XDP program is checked against the header, not against another codec that
 * could share a mistake with it.
 */
import { endianness } from 'node:os';
import { parseIpv4 } from '@flowlb/testkit';

export const FLOW_KEY_SIZE = 16;
export const FLOW_VAL_SIZE = 24;
export const FLOWLB_F_REVERSE = 0x1;
export const FLOWLB_F_CONFIRMED = 0x2;
/** `FLOWLB_F_REPLIED` of flowlb.h: the program marks a reverse entry so on the backend's first packet. */
export const FLOWLB_F_REPLIED = 0x4;

export interface Endpoint {
  addr: string;
  port: number;
}

/** The 4-tuple as a packet carries it, and what an entry rewrites it to. */
export interface Tuple {
  src: Endpoint;
  dst: Endpoint;
}

export interface FlowEntry {
  /** The packet the entry matches. */
  match: Tuple;
  /** What the matching packet is rewritten to. */
  to: Tuple;
  flags: number;
  lastUsed: bigint;
}

/** dst_addr, src_addr, dst_port, src_port, pad — network byte order, pad 0. */
export function encodeFlowKey(t: Tuple): Buffer {
  const b = Buffer.alloc(FLOW_KEY_SIZE);
  parseIpv4(t.dst.addr).copy(b, 0);
  parseIpv4(t.src.addr).copy(b, 4);
  b.writeUInt16BE(t.dst.port, 8);
  b.writeUInt16BE(t.src.port, 10);
  return b;
}

const LE = endianness() === 'LE';

/** Rewrite target in network byte order, then flags (u32) and last_used (u64) in host byte order. */
export function encodeFlowVal(e: Pick<FlowEntry, 'to' | 'flags' | 'lastUsed'>): Buffer {
  const b = Buffer.alloc(FLOW_VAL_SIZE);
  parseIpv4(e.to.dst.addr).copy(b, 0);
  parseIpv4(e.to.src.addr).copy(b, 4);
  b.writeUInt16BE(e.to.dst.port, 8);
  b.writeUInt16BE(e.to.src.port, 10);
  if (LE) {
    b.writeUInt32LE(e.flags, 12);
    b.writeBigUInt64LE(e.lastUsed, 16);
  } else {
    b.writeUInt32BE(e.flags, 12);
    b.writeBigUInt64BE(e.lastUsed, 16);
  }
  return b;
}

/** `flags` of an encoded `struct flow_val`, in host byte order. */
export function flagsOf(value: Buffer): number {
  return LE ? value.readUInt32LE(12) : value.readUInt32BE(12);
}

export function lastUsedOf(value: Buffer): bigint {
  return LE ? value.readBigUInt64LE(16) : value.readBigUInt64BE(16);
}

/** The value without last_used, for checking that a hit leaves everything else alone. */
export function withoutLastUsed(value: Buffer): Buffer {
  return Buffer.from(value.subarray(0, 16));
}

/** The reply direction of a tuple. */
export function reversed(t: Tuple): Tuple {
  return { src: t.dst, dst: t.src };
}
