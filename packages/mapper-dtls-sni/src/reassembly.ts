export type FragmentAddResult = 'ok' | 'out-of-range' | 'conflict';

/**
 * Fragments kept as views before switching to a byte map. Real clients send a handful (two or three, and the
 * same again when they retransmit); past this, the input is odd enough that bounded per-byte work is the better
 * trade.
 */
const MAX_VIEWS = 8;

/**
 * Reassembled messages are carved out of shared slabs: allocating a typed array of a few hundred bytes costs
 * several times more than parsing the message in it, mostly in the garbage collector. Slabs are never reused, so
 * a message stays valid for as long as anything refers to it; the price is that such a reference keeps its slab
 * (at most {@link SLAB_SIZE} bytes) alive.
 */
const SLAB_SIZE = 16 * 1024;
const SLAB_MAX_PIECE = SLAB_SIZE / 4;
let slab = new Uint8Array(0);
let slabUsed = 0;

function allocate(length: number): Uint8Array {
  if (length > SLAB_MAX_PIECE) return new Uint8Array(length);
  if (slab.length - slabUsed < length) {
    slab = new Uint8Array(SLAB_SIZE);
    slabUsed = 0;
  }
  const piece = slab.subarray(slabUsed, slabUsed + length);
  slabUsed += length;
  return piece;
}

/**
 * Rebuilds one handshake message from fragments that may arrive in any order, repeated, or overlapping.
 *
 * Overlaps are accepted only where the bytes agree: a retransmission legitimately repeats bytes, but two different
 * values for the same byte mean the message cannot be trusted, and picking either would let whoever sent the
 * second copy decide where the flow goes.
 *
 * Allocation is what costs most here, so: a message that arrives whole is kept as a view of its fragment; a few
 * fragments are kept as views and copied once, into one buffer, when they cover the message; only beyond
 * {@link MAX_VIEWS} fragments is a buffer with one "received" flag per byte set up. The caller bounds `length`.
 */
export class MessageReassembler {
  readonly length: number;
  private whole: Uint8Array | undefined;
  /** Fragments held as views, sorted by offset. */
  private readonly offsets: number[] = [];
  private readonly views: Uint8Array[] = [];
  private buffer: Uint8Array | undefined;
  /** One flag per byte of `buffer`: set once the byte has been received. */
  private received: Uint8Array | undefined;
  private receivedCount = 0;

  constructor(length: number) {
    this.length = length;
    if (length === 0) this.whole = new Uint8Array(0);
  }

  get complete(): boolean {
    return this.whole !== undefined;
  }

  /** Distinct bytes received so far (equal to `length` once complete). */
  get receivedBytes(): number {
    return this.whole !== undefined ? this.length : this.receivedCount;
  }

  /** The reassembled message, or undefined while bytes are missing. */
  message(): Uint8Array | undefined {
    return this.whole;
  }

  /**
   * Adds a fragment. 'out-of-range' and 'conflict' leave the state as it was; the bytes must stay unchanged for
   * as long as the reassembler is used, since they may be kept as views.
   */
  add(offset: number, bytes: Uint8Array): FragmentAddResult {
    const n = bytes.length;
    if (offset > this.length || n > this.length - offset) return 'out-of-range';
    if (n === 0) return 'ok';
    const whole = this.whole;
    if (whole !== undefined) {
      for (let i = 0; i < n; i++) if (whole[offset + i] !== bytes[i]) return 'conflict';
      return 'ok';
    }
    if (this.buffer !== undefined) return this.addToBuffer(offset, bytes);
    if (!this.agreesWithViews(offset, bytes)) return 'conflict';
    if (n === this.length) {
      this.whole = bytes;
      this.offsets.length = 0;
      this.views.length = 0;
      return 'ok';
    }
    if (this.views.length === MAX_VIEWS) {
      this.switchToBuffer();
      return this.addToBuffer(offset, bytes);
    }
    let at = this.offsets.length;
    while (at > 0 && this.offsets[at - 1]! > offset) at--;
    this.offsets.splice(at, 0, offset);
    this.views.splice(at, 0, bytes);
    this.receivedCount = this.coverage();
    if (this.receivedCount === this.length) this.joinViews();
    return 'ok';
  }

  private agreesWithViews(offset: number, bytes: Uint8Array): boolean {
    const end = offset + bytes.length;
    for (let v = 0; v < this.views.length; v++) {
      const start = this.offsets[v]!;
      const view = this.views[v]!;
      const from = Math.max(start, offset);
      const to = Math.min(start + view.length, end);
      for (let i = from; i < to; i++) if (view[i - start] !== bytes[i - offset]) return false;
    }
    return true;
  }

  /** Bytes covered by the views, which are sorted by offset. */
  private coverage(): number {
    let covered = 0;
    let reach = 0;
    for (let v = 0; v < this.views.length; v++) {
      const start = this.offsets[v]!;
      const end = start + this.views[v]!.length;
      if (end > reach) {
        covered += end - Math.max(start, reach);
        reach = end;
      }
    }
    return covered;
  }

  private joinViews(): void {
    // Every byte is covered, so the piece needs no clearing.
    const out = allocate(this.length);
    for (let v = 0; v < this.views.length; v++) out.set(this.views[v]!, this.offsets[v]!);
    this.whole = out;
    this.offsets.length = 0;
    this.views.length = 0;
  }

  private switchToBuffer(): void {
    // One allocation for both halves.
    const store = new Uint8Array(this.length * 2);
    const buffer = store.subarray(0, this.length);
    const received = store.subarray(this.length);
    for (let v = 0; v < this.views.length; v++) {
      const start = this.offsets[v]!;
      buffer.set(this.views[v]!, start);
      received.fill(1, start, start + this.views[v]!.length);
    }
    this.buffer = buffer;
    this.received = received;
    this.offsets.length = 0;
    this.views.length = 0;
  }

  private addToBuffer(offset: number, bytes: Uint8Array): FragmentAddResult {
    const buffer = this.buffer!;
    const received = this.received!;
    const n = bytes.length;
    // Check before writing, so a rejected fragment leaves the state as it was.
    for (let i = 0; i < n; i++) {
      const at = offset + i;
      if (received[at] === 1 && buffer[at] !== bytes[i]) return 'conflict';
    }
    let added = 0;
    for (let i = 0; i < n; i++) {
      const at = offset + i;
      if (received[at] === 0) {
        buffer[at] = bytes[i]!;
        received[at] = 1;
        added++;
      }
    }
    this.receivedCount += added;
    if (this.receivedCount === this.length) {
      this.whole = buffer;
      this.buffer = undefined;
      this.received = undefined;
    }
    return 'ok';
  }
}
