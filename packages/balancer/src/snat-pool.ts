import type { Endpoint } from '@flowlb/flow-table';
import { assertPortRange, type PortRange } from './ephemeral-range.js';

const INITIAL_QUEUE = 64;

/**
 * The SNAT ports of one (SNAT address, target) pair. Allocation prefers freed ports, the one freed longest ago
 * first, then ports never handed out: the ports in use stay few and contiguous, and of the freed ones the port that
 * has rested longest (and so is least likely to meet a straggling packet of its old flow) comes back first.
 *
 * Memory: two bitmaps (held, queued) of one bit per port, and a ring of freed ports that grows on demand up to two
 * bytes per port: a pool of 20,000 ports costs 5 KB, plus at most 40 KB once every port has been freed once.
 * `alloc`, `free` and `take` are O(1) amortised: every queued port is dequeued once, and the cursor over never-used
 * ports only moves forward.
 */
export class SnatPortPool {
  readonly min: number;
  readonly max: number;
  readonly size: number;
  /** Bit i: port min+i is handed out. */
  readonly #held: Uint32Array;
  /** Bit i: port min+i sits in the ring (possibly taken meanwhile; then it is skipped when it comes up). */
  readonly #queued: Uint32Array;
  #ring: Uint16Array;
  #head = 0;
  #queueLength = 0;
  /** Offsets at and beyond this have never been handed out by `alloc`. */
  #fresh = 0;
  #inUse = 0;

  constructor(range: PortRange) {
    assertPortRange(range, 'SnatPortPool range');
    this.min = range.min;
    this.max = range.max;
    this.size = range.max - range.min + 1;
    const words = Math.ceil(this.size / 32);
    this.#held = new Uint32Array(words);
    this.#queued = new Uint32Array(words);
    this.#ring = new Uint16Array(Math.min(INITIAL_QUEUE, this.size));
  }

  get inUse(): number {
    return this.#inUse;
  }

  get available(): number {
    return this.size - this.#inUse;
  }

  /** Bytes of typed arrays this pool holds. */
  get footprint(): number {
    return this.#held.byteLength + this.#queued.byteLength + this.#ring.byteLength;
  }

  /** Whether `port` is handed out. */
  has(port: number): boolean {
    const off = this.#offset(port);
    return off !== undefined && bit(this.#held, off);
  }

  /** A free port, now held; undefined when every port is held. */
  alloc(): number | undefined {
    if (this.#inUse === this.size) return undefined;
    while (this.#queueLength > 0) {
      const off = this.#dequeue();
      if (!bit(this.#held, off)) return this.#hold(off);
    }
    while (this.#fresh < this.size) {
      const off = this.#fresh++;
      if (!bit(this.#held, off)) return this.#hold(off);
    }
    // Unreachable while the invariants hold: every free port below the cursor is in the ring.
    return undefined;
  }

  /** Claims a specific port (an existing flow found at start, or one a mapper asked for). False if held or outside. */
  take(port: number): boolean {
    const off = this.#offset(port);
    if (off === undefined || bit(this.#held, off)) return false;
    this.#hold(off);
    return true;
  }

  /** Gives a port back. False (and nothing changes) when it was not held or is outside the range. */
  free(port: number): boolean {
    const off = this.#offset(port);
    if (off === undefined || !bit(this.#held, off)) return false;
    clearBit(this.#held, off);
    this.#inUse--;
    // A port beyond the cursor is found by the cursor; one below it must be queued or it would never come back.
    if (off < this.#fresh && !bit(this.#queued, off)) this.#enqueue(off);
    return true;
  }

  #offset(port: number): number | undefined {
    if (!Number.isInteger(port) || port < this.min || port > this.max) return undefined;
    return port - this.min;
  }

  #hold(off: number): number {
    setBit(this.#held, off);
    this.#inUse++;
    return this.min + off;
  }

  #enqueue(off: number): void {
    if (this.#queueLength === this.#ring.length) this.#grow();
    this.#ring[(this.#head + this.#queueLength) % this.#ring.length] = off;
    this.#queueLength++;
    setBit(this.#queued, off);
  }

  #dequeue(): number {
    const off = this.#ring[this.#head]!;
    this.#head = (this.#head + 1) % this.#ring.length;
    this.#queueLength--;
    clearBit(this.#queued, off);
    return off;
  }

  #grow(): void {
    // Distinct offsets only (the queued bitmap sees to that), so the ring never needs more than `size` slots.
    const next = new Uint16Array(Math.min(this.#ring.length * 2, this.size));
    for (let i = 0; i < this.#queueLength; i++) next[i] = this.#ring[(this.#head + i) % this.#ring.length]!;
    this.#ring = next;
    this.#head = 0;
  }
}

function bit(words: Uint32Array, i: number): boolean {
  return (words[i >>> 5]! & (1 << (i & 31))) !== 0;
}

function setBit(words: Uint32Array, i: number): void {
  words[i >>> 5]! |= 1 << (i & 31);
}

function clearBit(words: Uint32Array, i: number): void {
  words[i >>> 5]! &= ~(1 << (i & 31));
}

/**
 * One {@link SnatPortPool} per (SNAT address, target): the reverse entry is keyed by (SNAT, T.ip, P, T.port), so the
 * same port can serve every target at once. A pool is created on first use and dropped when its last port is
 * freed, so targets that come and go leave nothing behind.
 */
export class SnatPortPools {
  readonly range: PortRange;
  readonly #pools = new Map<string, SnatPortPool>();
  #inUse = 0;

  constructor(range: PortRange) {
    assertPortRange(range, 'SnatPortPools range');
    this.range = { min: range.min, max: range.max };
  }

  /** Ports held over all pools. */
  get inUse(): number {
    return this.#inUse;
  }

  /** Pools that hold at least one port. */
  get poolCount(): number {
    return this.#pools.size;
  }

  /** Bytes of typed arrays held by all pools. */
  get footprint(): number {
    let n = 0;
    for (const p of this.#pools.values()) n += p.footprint;
    return n;
  }

  alloc(snatAddress: string, target: Endpoint): number | undefined {
    const key = poolKey(snatAddress, target);
    const pool = this.#pools.get(key) ?? new SnatPortPool(this.range);
    const port = pool.alloc();
    if (port === undefined) return undefined;
    this.#pools.set(key, pool);
    this.#inUse++;
    return port;
  }

  take(snatAddress: string, target: Endpoint, port: number): boolean {
    const key = poolKey(snatAddress, target);
    const pool = this.#pools.get(key) ?? new SnatPortPool(this.range);
    if (!pool.take(port)) return false;
    this.#pools.set(key, pool);
    this.#inUse++;
    return true;
  }

  free(snatAddress: string, target: Endpoint, port: number): boolean {
    const key = poolKey(snatAddress, target);
    const pool = this.#pools.get(key);
    if (!pool?.free(port)) return false;
    this.#inUse--;
    if (pool.inUse === 0) this.#pools.delete(key);
    return true;
  }

  has(snatAddress: string, target: Endpoint, port: number): boolean {
    return this.#pools.get(poolKey(snatAddress, target))?.has(port) ?? false;
  }

  /** Ports still free for this target. */
  available(snatAddress: string, target: Endpoint): number {
    return this.#pools.get(poolKey(snatAddress, target))?.available ?? this.range.max - this.range.min + 1;
  }

  clear(): void {
    this.#pools.clear();
    this.#inUse = 0;
  }
}

function poolKey(snatAddress: string, target: Endpoint): string {
  return `${snatAddress}>${target.address}:${target.port}`;
}
