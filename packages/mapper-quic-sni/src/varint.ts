/** The largest value a QUIC variable-length integer holds (RFC 9000 §16): 2^62 - 1. */
export const MAX_VARINT = 2 ** 62 - 1;

/**
 * Reads QUIC variable-length integers and plain bytes from `bytes[pos, end)`, for the header and frame parsers.
 *
 * Values come back as JavaScript numbers: exact up to 2^53, rounded above. Nothing here needs more: every value
 * the parsers read is either a length checked against the bytes that remain or an offset checked against a limit
 * far below 2^53, and a rounded value fails those checks exactly as the true one would.
 *
 * A read past `end` returns -1 and leaves `pos` where it was, so a caller checks once and every input stays a
 * value, never an exception.
 */
export class Cursor {
  bytes: Uint8Array;
  pos: number;
  end: number;

  constructor(bytes: Uint8Array, pos = 0, end = bytes.length) {
    this.bytes = bytes;
    this.pos = pos;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  /** One byte, or -1 at the end. */
  u8(): number {
    if (this.pos >= this.end) return -1;
    return this.bytes[this.pos++]!;
  }

  /** A big-endian 32-bit unsigned integer, or -1 when fewer than 4 bytes remain. */
  u32(): number {
    const p = this.pos;
    if (this.end - p < 4) return -1;
    const b = this.bytes;
    this.pos = p + 4;
    return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
  }

  /** A variable-length integer (1, 2, 4 or 8 bytes, length in the two top bits), or -1 when it is cut off. */
  varint(): number {
    const p = this.pos;
    if (p >= this.end) return -1;
    const b = this.bytes;
    const first = b[p]!;
    const length = 1 << (first >> 6);
    if (this.end - p < length) return -1;
    this.pos = p + length;
    let v = first & 0x3f;
    if (length === 1) return v;
    if (length === 2) return (v << 8) | b[p + 1]!;
    if (length === 4) return ((v << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
    // 8 bytes: 62 bits do not fit in 32-bit integer arithmetic, so the high half is scaled.
    const high = ((v << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
    const low = ((b[p + 4]! << 24) | (b[p + 5]! << 16) | (b[p + 6]! << 8) | b[p + 7]!) >>> 0;
    return high * 0x1_0000_0000 + low;
  }

  /** A view of the next `n` bytes, or undefined when fewer remain (or `n` is not a count). */
  take(n: number): Uint8Array | undefined {
    const p = this.pos;
    if (!(n >= 0 && n <= this.end - p)) return undefined;
    this.pos = p + n;
    return this.bytes.subarray(p, p + n);
  }

  /** Skips `n` bytes; false (and nothing skipped) when fewer remain or `n` is not a count. */
  skip(n: number): boolean {
    if (!(n >= 0 && n <= this.end - this.pos)) return false;
    this.pos += n;
    return true;
  }
}

/** The bytes of `value` as a variable-length integer, in the shortest encoding unless `length` asks for a longer one. */
export function encodeVarint(value: number, length?: 1 | 2 | 4 | 8): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`not a varint value: ${value}`);
  const n = length ?? (value < 0x40 ? 1 : value < 0x4000 ? 2 : value < 0x4000_0000 ? 4 : 8);
  const limit = n === 1 ? 0x40 : n === 2 ? 0x4000 : n === 4 ? 0x4000_0000 : 2 ** 62;
  if (value >= limit) throw new RangeError(`${value} does not fit a ${n}-byte varint`);
  const out = new Uint8Array(n);
  let v = value;
  for (let i = n - 1; i >= 0; i--) {
    out[i] = v % 256;
    v = Math.floor(v / 256);
  }
  out[0]! |= (n === 1 ? 0 : n === 2 ? 1 : n === 4 ? 2 : 3) << 6;
  return out;
}
