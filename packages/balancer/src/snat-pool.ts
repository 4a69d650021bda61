import type { Endpoint } from '@flowlb/flow-table';
import { endpointKey } from '@flowlb/mapper-api';
import { assertPortRange, type PortRange } from './ephemeral-range.js';

const INITIAL_QUEUE = 64;
/** A VIP bound to every address holds its port on the SNAT address too. */
const ANY_ADDRESS = '0.0.0.0';

/**
 * Worker `index` of `count` balancer processes sharing one SNAT range: it owns the ports min+index, min+index+count,
 * min+index+2·count and so on, so that no two processes ever hand out the same port, with no coordination.
 */
export interface PortSlice {
  index: number;
  count: number;
}

export interface SnatPortPoolOptions {
  /**
   * Ports of the range never to hand out: a flow's socket on one of them would collide with something that is
   * known to live there (the target itself, the VIP). Ports outside the range are ignored.
   */
  exclude?: Iterable<number>;
  /** Only this slice of the range is the pool's. Default: all of it. */
  slice?: PortSlice;
}

/** Checks a slice; throws a RangeError that names `what`. */
export function assertPortSlice(slice: PortSlice, what: string): void {
  const { index, count } = slice;
  if (!Number.isSafeInteger(count) || count < 1 || !Number.isSafeInteger(index) || index < 0 || index >= count) {
    throw new RangeError(`${what}: index ${String(index)} of count ${String(count)} is not a slice (0 ≤ index < count)`);
  }
}

/** Whether `port` of the range starting at `min` is in `slice`. */
export function inSlice(port: number, min: number, slice: PortSlice | undefined): boolean {
  return slice === undefined || (port - min) % slice.count === slice.index;
}

/**
 * The SNAT ports of one (SNAT address, target) pair. Allocation hands out ports never used before first, and only
 * then freed ports, the one freed longest ago first: a port comes back as late as the range allows, so a new client
 * does not get the SNAT:P that a previous client has just left, for which the target may still hold state (a DTLS
 * session, say) and a straggling packet of the old flow may still be on its way.
 *
 * Memory: two bitmaps (held, queued) of one bit per port, and a ring of freed ports that grows on demand up to two
 * bytes per port: a pool of 20,000 ports costs 5 KB, plus at most 40 KB once every port has been freed once.
 * `alloc`, `free` and `take` are O(1) amortised: every queued port is dequeued once, and the cursor over never-used
 * ports only moves forward.
 */
export class SnatPortPool {
  readonly min: number;
  readonly max: number;
  /** Ports this pool can hand out: the range without the excluded ports. */
  readonly size: number;
  /** The excluded ports inside the range, ascending. */
  readonly excluded: readonly number[];
  /** Bit i: port min+i is handed out, or excluded (which `#excluded` tells apart). */
  readonly #held: Uint32Array;
  readonly #excluded: ReadonlySet<number>;
  /** Ports of the slice, excluded ones included: the offsets run from 0 to this. */
  readonly #span: number;
  /** Offset o is port #first + o·#stride. */
  readonly #first: number;
  readonly #stride: number;
  /** Bit i: port min+i sits in the ring (possibly taken meanwhile; then it is skipped when it comes up). */
  readonly #queued: Uint32Array;
  #ring: Uint16Array;
  #head = 0;
  #queueLength = 0;
  /** Offsets at and beyond this have never been handed out by `alloc`. */
  #fresh = 0;
  #inUse = 0;

  constructor(range: PortRange, options: SnatPortPoolOptions = {}) {
    assertPortRange(range, 'SnatPortPool range');
    const slice = options.slice ?? { index: 0, count: 1 };
    assertPortSlice(slice, 'SnatPortPool slice');
    this.min = range.min;
    this.max = range.max;
    this.#first = range.min + slice.index;
    this.#stride = slice.count;
    const span = this.#first > range.max ? 0 : Math.floor((range.max - this.#first) / slice.count) + 1;
    this.#span = span;
    const words = Math.ceil(span / 32);
    this.#held = new Uint32Array(words);
    this.#queued = new Uint32Array(words);
    const excluded = new Set<number>();
    for (const port of options.exclude ?? []) {
      const off = this.#offset(port);
      if (off === undefined) continue;
      excluded.add(off);
      // Held for good: alloc, take and the cursor step over it as over any held port, at no cost per call.
      setBit(this.#held, off);
    }
    this.#excluded = excluded;
    this.excluded = [...excluded].sort((x, y) => x - y).map((off) => this.#port(off));
    this.size = span - excluded.size;
    this.#ring = new Uint16Array(Math.max(1, Math.min(INITIAL_QUEUE, this.size)));
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

  /** Whether `port` belongs to this pool's slice of the range. */
  owns(port: number): boolean {
    return this.#offset(port) !== undefined;
  }

  /** Whether `port` is handed out. */
  has(port: number): boolean {
    const off = this.#offset(port);
    return off !== undefined && bit(this.#held, off) && !this.#excluded.has(off);
  }

  /** A free port, now held; undefined when every port is held. */
  alloc(): number | undefined {
    if (this.#inUse === this.size) return undefined;
    while (this.#fresh < this.#span) {
      const off = this.#fresh++;
      if (!bit(this.#held, off)) return this.#hold(off);
    }
    while (this.#queueLength > 0) {
      const off = this.#dequeue();
      if (!bit(this.#held, off)) return this.#hold(off);
    }
    // Unreachable while the invariants hold: every free port below the cursor is in the ring.
    return undefined;
  }

  /**
   * Claims a specific port (an existing flow found at start, or one a mapper asked for). False if held, excluded or
   * outside the range.
   */
  take(port: number): boolean {
    const off = this.#offset(port);
    if (off === undefined || bit(this.#held, off)) return false;
    this.#hold(off);
    return true;
  }

  /** Gives a port back. False (and nothing changes) when it was not held, is excluded or is outside the range. */
  free(port: number): boolean {
    const off = this.#offset(port);
    if (off === undefined || !bit(this.#held, off) || this.#excluded.has(off)) return false;
    clearBit(this.#held, off);
    this.#inUse--;
    // A port beyond the cursor is found by the cursor; one below it must be queued or it would never come back.
    if (off < this.#fresh && !bit(this.#queued, off)) this.#enqueue(off);
    return true;
  }

  #offset(port: number): number | undefined {
    if (!Number.isInteger(port) || port < this.#first || port > this.max) return undefined;
    const d = port - this.#first;
    return d % this.#stride === 0 ? d / this.#stride : undefined;
  }

  #port(off: number): number {
    return this.#first + off * this.#stride;
  }

  #hold(off: number): number {
    setBit(this.#held, off);
    this.#inUse++;
    return this.#port(off);
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
    // Distinct offsets of ports that can be held (the queued bitmap and the exclusions see to that), so the ring
    // never needs more than `size` slots.
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

export interface SnatPortPoolsOptions {
  /** The balancer's VIP: on the SNAT address its port is never handed out. */
  vip?: Endpoint;
  /**
   * Pools that hold no port kept for when their target comes back, so that its ports go on resting in turn;
   * beyond this the one emptied longest ago is dropped. Default 256.
   */
  maxIdlePools?: number;
  /** This process's slice of the range, when several balancer processes share it. Default: all of it. */
  slice?: PortSlice;
}

const DEFAULT_MAX_IDLE_POOLS = 256;

/**
 * One {@link SnatPortPool} per (SNAT address, target): the reverse entry is keyed by (SNAT, T.ip, P, T.port), so the
 * same port can serve every target at once. A pool is created on first use; once its last port is freed it is kept
 * idle, so that a target whose clients come and go keeps its place in the range, and the idle pools beyond
 * `maxIdlePools` are dropped, the one emptied longest ago first: targets that come and go leave a bounded trace.
 *
 * A pool never hands out the target's own port when the target lives on the SNAT address (the flow's socket would
 * be connected to itself, and the target would never hear from it), nor the VIP's port on the VIP's address.
 */
export class SnatPortPools {
  readonly range: PortRange;
  readonly vip: Endpoint | undefined;
  readonly slice: PortSlice | undefined;
  readonly #pools = new Map<string, SnatPortPool>();
  /** Keys of the pools that hold no port, the one emptied longest ago first. */
  readonly #idle = new Set<string>();
  readonly #maxIdle: number;
  #inUse = 0;
  /** Ports held towards each target (`ip:port`), over every SNAT address: its active flows. */
  readonly #byTarget = new Map<string, number>();

  constructor(range: PortRange, options: SnatPortPoolsOptions = {}) {
    assertPortRange(range, 'SnatPortPools range');
    this.range = { min: range.min, max: range.max };
    this.vip = options.vip && { address: options.vip.address, port: options.vip.port };
    if (options.slice) assertPortSlice(options.slice, 'SnatPortPools slice');
    this.slice = options.slice && { index: options.slice.index, count: options.slice.count };
    const maxIdle = options.maxIdlePools ?? DEFAULT_MAX_IDLE_POOLS;
    if (!Number.isSafeInteger(maxIdle) || maxIdle < 0) {
      throw new RangeError(`SnatPortPools: maxIdlePools ${String(maxIdle)} is not an integer ≥ 0`);
    }
    this.#maxIdle = maxIdle;
  }

  /** Ports held over all pools. */
  get inUse(): number {
    return this.#inUse;
  }

  /** Ports held towards each target that holds any, keyed `ip:port`. */
  inUseByTarget(): ReadonlyMap<string, number> {
    return this.#byTarget;
  }

  /** Pools that hold at least one port. */
  get poolCount(): number {
    return this.#pools.size - this.#idle.size;
  }

  /** Pools kept while they hold no port. */
  get idlePoolCount(): number {
    return this.#idle.size;
  }

  /** Bytes of typed arrays held by all pools. */
  get footprint(): number {
    let n = 0;
    for (const p of this.#pools.values()) n += p.footprint;
    return n;
  }

  alloc(snatAddress: string, target: Endpoint): number | undefined {
    const key = poolKey(snatAddress, target);
    const pool = this.#pools.get(key) ?? this.#newPool(snatAddress, target);
    const port = pool.alloc();
    if (port === undefined) return undefined;
    this.#held(key, pool, target);
    return port;
  }

  take(snatAddress: string, target: Endpoint, port: number): boolean {
    const key = poolKey(snatAddress, target);
    const pool = this.#pools.get(key) ?? this.#newPool(snatAddress, target);
    if (!pool.take(port)) return false;
    this.#held(key, pool, target);
    return true;
  }

  free(snatAddress: string, target: Endpoint, port: number): boolean {
    const key = poolKey(snatAddress, target);
    const pool = this.#pools.get(key);
    if (!pool?.free(port)) return false;
    this.#inUse--;
    const t = endpointKey(target);
    const n = (this.#byTarget.get(t) ?? 1) - 1;
    if (n > 0) this.#byTarget.set(t, n);
    else this.#byTarget.delete(t);
    if (pool.inUse === 0) {
      this.#idle.add(key);
      if (this.#idle.size > this.#maxIdle) {
        const oldest = this.#idle.values().next().value as string;
        this.#idle.delete(oldest);
        this.#pools.delete(oldest);
      }
    }
    return true;
  }

  /** Whether `port` is this process's to hand out: in the range and in its slice. */
  owns(port: number): boolean {
    return port >= this.range.min && port <= this.range.max && inSlice(port, this.range.min, this.slice);
  }

  has(snatAddress: string, target: Endpoint, port: number): boolean {
    return this.#pools.get(poolKey(snatAddress, target))?.has(port) ?? false;
  }

  /** Ports still free for this target. */
  available(snatAddress: string, target: Endpoint): number {
    const pool = this.#pools.get(poolKey(snatAddress, target));
    if (pool) return pool.available;
    return this.#newPool(snatAddress, target).size;
  }

  /** The ports of the range that the pool towards `target` never hands out, ascending. */
  excluded(snatAddress: string, target: Endpoint): number[] {
    const ports = new Set<number>();
    if (target.address === snatAddress) ports.add(target.port);
    const vip = this.vip;
    if (vip && (vip.address === snatAddress || vip.address === ANY_ADDRESS)) ports.add(vip.port);
    return [...ports]
      .filter((p) => p >= this.range.min && p <= this.range.max && inSlice(p, this.range.min, this.slice))
      .sort((x, y) => x - y);
  }

  clear(): void {
    this.#pools.clear();
    this.#idle.clear();
    this.#byTarget.clear();
    this.#inUse = 0;
  }

  #held(key: string, pool: SnatPortPool, target: Endpoint): void {
    this.#pools.set(key, pool);
    this.#idle.delete(key);
    this.#inUse++;
    const t = endpointKey(target);
    this.#byTarget.set(t, (this.#byTarget.get(t) ?? 0) + 1);
  }

  #newPool(snatAddress: string, target: Endpoint): SnatPortPool {
    return new SnatPortPool(this.range, {
      exclude: this.excluded(snatAddress, target),
      ...(this.slice ? { slice: this.slice } : {}),
    });
  }
}

function poolKey(snatAddress: string, target: Endpoint): string {
  return `${snatAddress}>${endpointKey(target)}`;
}
