/** 64 KiB: far beyond any real ClientHello, post-quantum key shares included (those are 1 to 2 KiB). */
export const DEFAULT_MAX_CRYPTO_BYTES = 64 * 1024;

export type CryptoAddResult =
  | 'ok'
  /** The data would end past the limit: nothing was added. */
  | 'too-large'
  /** The data overlaps bytes received before and differs from them: nothing was added. */
  | 'conflict';

/** Smallest buffer set up once a stream needs one: a whole ClientHello without post-quantum key shares fits. */
const MIN_CAPACITY = 1024;

/**
 * Rebuilds the Initial crypto stream from CRYPTO frames (RFC 9000 §19.6), which may come in any order, repeated,
 * overlapping, and spread over packets and datagrams; real clients do all of these (Chrome shuffles its CRYPTO
 * frames on purpose, and every client retransmits).
 *
 * Overlaps are accepted only where the bytes agree: a retransmission repeats bytes exactly, and two different
 * values for one byte mean the stream cannot be trusted; picking either would let whoever sent the second copy
 * decide where the flow goes.
 *
 * The stream is bounded by `limit`: no byte at or past it is ever accepted. Memory follows the highest offset
 * received, not the limit: a first frame at offset 0 is kept as a view of the caller's bytes (a ClientHello in
 * one frame costs no copy, and keeps only its plaintext alive); anything else goes to a buffer with one
 * "received" flag per byte, grown by doubling.
 * Work per frame is proportional to its length. The caller's bytes must not change while the reassembler is used.
 */
export class CryptoReassembler {
  readonly limit: number;
  /** The only data so far, received at offset 0 in one piece, kept as a view. */
  private head: Uint8Array | undefined;
  private buffer: Uint8Array | undefined;
  /** One flag per byte of `buffer`: set once the byte has been received. */
  private have: Uint8Array | undefined;
  private receivedCount = 0;
  private prefixLength = 0;

  constructor(limit: number = DEFAULT_MAX_CRYPTO_BYTES) {
    if (!(Number.isSafeInteger(limit) && limit >= 0)) {
      throw new RangeError(`limit must be a non-negative integer, got ${limit}`);
    }
    this.limit = limit;
  }

  /** Bytes available from offset 0 without a gap. */
  get contiguous(): number {
    return this.prefixLength;
  }

  /** Distinct bytes received. */
  get received(): number {
    return this.receivedCount;
  }

  /** Bytes of memory this reassembler holds: its buffer and flags, or the view it keeps alive. */
  get footprint(): number {
    if (this.buffer !== undefined) return this.buffer.length * 2;
    return this.head === undefined ? 0 : this.head.length;
  }

  /** A view of the stream's first `length` bytes, or undefined while some of them are missing. */
  prefix(length: number): Uint8Array | undefined {
    if (!(length >= 0 && length <= this.prefixLength)) return undefined;
    if (this.head !== undefined) return this.head.subarray(0, length);
    if (this.buffer !== undefined) return this.buffer.subarray(0, length);
    return new Uint8Array(0);
  }

  /** Adds `data` at `offset`. A result other than 'ok' leaves the state as it was. */
  add(offset: number, data: Uint8Array): CryptoAddResult {
    const n = data.length;
    // An empty frame holds nothing to keep or to disagree with, wherever it points.
    if (n === 0) return 'ok';
    if (!(offset >= 0) || offset > this.limit || n > this.limit - offset) return 'too-large';
    const head = this.head;
    if (head === undefined && this.buffer === undefined && offset === 0) {
      this.head = data;
      this.receivedCount = this.prefixLength = n;
      return 'ok';
    }
    if (head !== undefined) {
      const overlap = Math.min(head.length, offset + n) - offset;
      for (let i = 0; i < overlap; i++) if (head[offset + i] !== data[i]) return 'conflict';
      if (overlap === n) return 'ok';
      this.toBuffer(offset + n);
    } else if (!this.agreesWithBuffer(offset, data)) {
      return 'conflict';
    }
    this.write(offset, data);
    return 'ok';
  }

  private agreesWithBuffer(offset: number, data: Uint8Array): boolean {
    const buffer = this.buffer;
    const have = this.have;
    if (buffer === undefined || have === undefined) return true;
    const to = Math.min(buffer.length, offset + data.length);
    for (let at = offset; at < to; at++) if (have[at] === 1 && buffer[at] !== data[at - offset]) return false;
    return true;
  }

  /** Moves the head view into a buffer that can hold `end` bytes. */
  private toBuffer(end: number): void {
    const head = this.head!;
    this.head = undefined;
    this.grow(end);
    this.buffer!.set(head, 0);
    this.have!.fill(1, 0, head.length);
  }

  private grow(end: number): void {
    const old = this.buffer;
    if (old !== undefined && old.length >= end) return;
    let capacity = Math.max(MIN_CAPACITY, old === undefined ? 0 : old.length * 2);
    while (capacity < end) capacity *= 2;
    capacity = Math.min(capacity, Math.max(this.limit, end));
    // One allocation for both halves.
    const store = new Uint8Array(capacity * 2);
    const buffer = store.subarray(0, capacity);
    const have = store.subarray(capacity);
    if (old !== undefined) {
      buffer.set(old);
      have.set(this.have!);
    }
    this.buffer = buffer;
    this.have = have;
  }

  private write(offset: number, data: Uint8Array): void {
    const end = offset + data.length;
    this.grow(end);
    const buffer = this.buffer!;
    const have = this.have!;
    let added = 0;
    for (let at = offset; at < end; at++) {
      if (have[at] === 0) {
        buffer[at] = data[at - offset]!;
        have[at] = 1;
        added++;
      }
    }
    this.receivedCount += added;
    let p = this.prefixLength;
    while (p < buffer.length && have[p] === 1) p++;
    this.prefixLength = p;
  }
}
