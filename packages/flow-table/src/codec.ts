import { assertPort, formatIPv4, parseIPv4 } from './ipv4.js';
import {
  FLOW_KEY_OFFSETS as K,
  FLOW_KEY_SIZE,
  FLOW_VALUE_OFFSETS as V,
  FLOW_VALUE_SIZE,
  HOST_LITTLE_ENDIAN,
} from './layout.js';
import type { FlowKey, FlowValue } from './types.js';

const U64_MAX = (1n << 64n) - 1n;

/*
 * Byte-wise reads and writes rather than a DataView per call: the codec runs for every entry of every cleaner
 * sweep, and a view object per entry is measurable there.
 */

function putU32BE(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = (v >>> 16) & 255;
  b[at + 2] = (v >>> 8) & 255;
  b[at + 3] = v & 255;
}

function putU16BE(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 8;
  b[at + 1] = v & 255;
}

function putU32Host(b: Uint8Array, at: number, v: number): void {
  if (HOST_LITTLE_ENDIAN) {
    b[at] = v & 255;
    b[at + 1] = (v >>> 8) & 255;
    b[at + 2] = (v >>> 16) & 255;
    b[at + 3] = v >>> 24;
  } else {
    putU32BE(b, at, v);
  }
}

function getU32BE(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

function getU16BE(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}

function getU32Host(b: Uint8Array, at: number): number {
  return HOST_LITTLE_ENDIAN
    ? ((b[at + 3]! << 24) | (b[at + 2]! << 16) | (b[at + 1]! << 8) | b[at]!) >>> 0
    : getU32BE(b, at);
}

function putU64Host(b: Uint8Array, at: number, v: bigint): void {
  const lo = Number(v & 0xffffffffn);
  const hi = Number(v >> 32n);
  putU32Host(b, HOST_LITTLE_ENDIAN ? at : at + 4, lo);
  putU32Host(b, HOST_LITTLE_ENDIAN ? at + 4 : at, hi);
}

function getU64Host(b: Uint8Array, at: number): bigint {
  const lo = getU32Host(b, HOST_LITTLE_ENDIAN ? at : at + 4);
  const hi = getU32Host(b, HOST_LITTLE_ENDIAN ? at + 4 : at);
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/** Validates a key and returns its addresses as numbers. */
export function checkKey(key: FlowKey): [dst: number, src: number] {
  const dst = parseIPv4(key.dstAddr, 'dstAddr');
  const src = parseIPv4(key.srcAddr, 'srcAddr');
  assertPort(key.dstPort, 'dstPort');
  assertPort(key.srcPort, 'srcPort');
  return [dst, src];
}

/** Validates a value, exactly as encoding it would, and returns its addresses as numbers. */
export function checkValue(value: FlowValue): [dst: number, src: number] {
  const addresses = checkKey(value);
  const { flags } = value;
  if (typeof flags !== 'number' || !Number.isInteger(flags) || flags < 0 || flags > 0xffffffff) {
    throw new RangeError(`flags: ${String(flags)} is not a 32-bit unsigned integer`);
  }
  assertLastUsed(value.lastUsed);
  return addresses;
}

/*
 * struct flow_key and struct flow_val both start with dst_addr, src_addr, dst_port, src_port at the same offsets (the
 * layout test holds both to flowlb.h): the 4-tuple of the packet, or the one it is rewritten to.
 */

function putTuple(b: Uint8Array, at: number, [dst, src]: [number, number], t: FlowKey): void {
  putU32BE(b, at + K.dstAddr, dst);
  putU32BE(b, at + K.srcAddr, src);
  putU16BE(b, at + K.dstPort, t.dstPort);
  putU16BE(b, at + K.srcPort, t.srcPort);
}

function getTuple(b: Uint8Array, at: number): FlowKey {
  return {
    dstAddr: formatIPv4(getU32BE(b, at + K.dstAddr)),
    srcAddr: formatIPv4(getU32BE(b, at + K.srcAddr)),
    dstPort: getU16BE(b, at + K.dstPort),
    srcPort: getU16BE(b, at + K.srcPort),
  };
}

export function assertLastUsed(lastUsed: bigint): void {
  if (typeof lastUsed !== 'bigint' || lastUsed < 0n || lastUsed > U64_MAX) {
    throw new RangeError(`lastUsed: ${String(lastUsed)} is not a 64-bit unsigned bigint`);
  }
}

/**
 * Encodes `key` as a `struct flow_key`. Without `out` a new Buffer is returned; with it, the 16 bytes are written
 * at `offset` and `out` is returned. Every field is checked before anything is written.
 */
export function encodeKey(key: FlowKey): Buffer;
export function encodeKey<T extends Uint8Array>(key: FlowKey, out: T, offset?: number): T;
export function encodeKey(key: FlowKey, out?: Uint8Array, offset = 0): Uint8Array {
  const addresses = checkKey(key);
  const target = out ?? Buffer.alloc(FLOW_KEY_SIZE);
  checkRoom(target, offset, FLOW_KEY_SIZE, 'encodeKey');
  putTuple(target, offset, addresses, key);
  putU32BE(target, offset + K.pad, 0);
  return target;
}

/**
 * Reads a `struct flow_key` at `offset`. `pad` is not checked: the kernel compares all 16 bytes, so an entry with a
 * non-zero pad is unreachable by packets, but a reader that threw on it would stop a whole scan on one bad entry.
 */
export function decodeKey(bytes: Uint8Array, offset = 0): FlowKey {
  checkRoom(bytes, offset, FLOW_KEY_SIZE, 'decodeKey');
  return getTuple(bytes, offset);
}

/** Encodes `value` as a `struct flow_val`; `out` and `offset` as for `encodeKey`. */
export function encodeValue(value: FlowValue): Buffer;
export function encodeValue<T extends Uint8Array>(value: FlowValue, out: T, offset?: number): T;
export function encodeValue(value: FlowValue, out?: Uint8Array, offset = 0): Uint8Array {
  const addresses = checkValue(value);
  const target = out ?? Buffer.alloc(FLOW_VALUE_SIZE);
  checkRoom(target, offset, FLOW_VALUE_SIZE, 'encodeValue');
  putTuple(target, offset, addresses, value);
  putU32Host(target, offset + V.flags, value.flags);
  putU64Host(target, offset + V.lastUsed, value.lastUsed);
  return target;
}

export function decodeValue(bytes: Uint8Array, offset = 0): FlowValue {
  checkRoom(bytes, offset, FLOW_VALUE_SIZE, 'decodeValue');
  return {
    ...getTuple(bytes, offset),
    flags: getU32Host(bytes, offset + V.flags),
    lastUsed: getU64Host(bytes, offset + V.lastUsed),
  };
}

/**
 * A `last_used` bound to test encoded values against without decoding them: `isBefore(bytes, offset)` is
 * `decodeValue(bytes, offset).lastUsed < bound` for a well-sized buffer, without a BigInt or an object per value. A
 * sweep over a table where nearly every flow is active then costs one comparison per entry, not a decode.
 */
export class LastUsedBound {
  readonly bound: bigint;
  readonly #hi: number;
  readonly #lo: number;
  readonly #hiAt: number;
  readonly #loAt: number;

  constructor(bound: bigint) {
    if (typeof bound !== 'bigint') throw new TypeError(`LastUsedBound: ${String(bound)} is not a bigint`);
    this.bound = bound;
    // A bound at or below 0 admits no u64 and one above U64_MAX admits every u64; a high word of 2^32, which no
    // stored word reaches, expresses the latter without a separate case in the hot loop.
    const clamped = bound < 0n ? 0n : bound > U64_MAX ? 1n << 64n : bound;
    this.#hi = Number(clamped >> 32n);
    this.#lo = Number(clamped & 0xffffffffn);
    this.#hiAt = V.lastUsed + (HOST_LITTLE_ENDIAN ? 4 : 0);
    this.#loAt = V.lastUsed + (HOST_LITTLE_ENDIAN ? 0 : 4);
  }

  /** Whether the `struct flow_val` at `offset` has `last_used < bound`. The caller checks that it fits. */
  isBefore(bytes: Uint8Array, offset: number): boolean {
    const hi = getU32Host(bytes, offset + this.#hiAt);
    return hi < this.#hi || (hi === this.#hi && getU32Host(bytes, offset + this.#loAt) < this.#lo);
  }
}

function checkRoom(bytes: Uint8Array, offset: number, size: number, op: string): void {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`${op}: expected a Buffer or Uint8Array`);
  if (!Number.isInteger(offset) || offset < 0 || offset + size > bytes.length) {
    throw new RangeError(`${op}: needs ${size} bytes at offset ${offset}, the buffer has ${bytes.length}`);
  }
}
