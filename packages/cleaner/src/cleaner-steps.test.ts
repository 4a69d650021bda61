import {
  BpfMapFlowTable,
  MemoryFlowTable,
  flowKeyId,
  forwardEntry,
  reverseEntry,
} from '@flowlb/flow-table';
import type {
  BpfMapLike,
  BpfPackedBatchResult,
  FlowKey,
  FlowPair,
  FlowTable,
  IdleScanBatch,
  ScanCursor,
  UpdateFlag,
} from '@flowlb/flow-table';
import { afterEach, describe, expect, it } from 'vitest';
import { Cleaner } from './cleaner.js';
import type { CleanerOptions } from './cleaner.js';

const MS = 1_000_000n;
const TTL_MS = 30_000;
const TTL_NS = BigInt(TTL_MS) * MS;
/** Well above 2^32 ns, so that both 32-bit halves of last_used take part in every comparison. */
const START = 5_000_000n * MS;

function pair(i: number): FlowPair {
  return {
    client: { address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 40000 + (i % 20000) },
    vip: { address: '192.0.2.10', port: 443 },
    snat: { address: '192.0.2.10', port: 1024 + (i % 60000) },
    target: { address: `10.200.${(i >> 16) & 255}.${1 + (i % 250)}`, port: 8443 },
  };
}

function errno(code: string): Error {
  return Object.assign(new Error(code), { code });
}

/**
 * A BPF hash map in memory that offers only the packed batch read, as xdp-core's maps do, so that a sweep over a
 * BpfMapFlowTable takes the path that compares last_used on the raw bytes. Batches continue after the cursor's key
 * in key order, which survives the deletions a sweep makes.
 */
class PackedMap implements BpfMapLike {
  readonly keySize = 16;
  readonly valueSize = 24;
  readonly store = new Map<string, Buffer>();
  packedReads = 0;
  #sorted: string[] | undefined;

  constructor(readonly maxEntries: number) {}

  lookup(key: Uint8Array): Buffer | undefined {
    const v = this.store.get(Buffer.from(key).toString('hex'));
    return v && Buffer.from(v);
  }

  update(key: Uint8Array, value: Uint8Array, flag: UpdateFlag = 'any'): void {
    const id = Buffer.from(key).toString('hex');
    const exists = this.store.has(id);
    if (flag === 'noexist' && exists) throw errno('EEXIST');
    if (flag === 'exist' && !exists) throw errno('ENOENT');
    if (!exists && this.store.size >= this.maxEntries) throw errno('E2BIG');
    if (!exists) this.#sorted = undefined;
    this.store.set(id, Buffer.from(value));
  }

  delete(key: Uint8Array): boolean {
    return this.store.delete(Buffer.from(key).toString('hex'));
  }

  *keys(): IterableIterator<Buffer> {
    for (const id of this.store.keys()) yield Buffer.from(id, 'hex');
  }

  *entries(): IterableIterator<[Buffer, Buffer]> {
    for (const [id, v] of this.store) yield [Buffer.from(id, 'hex'), Buffer.from(v)];
  }

  lookupBatchPacked(count: number, cursor?: Buffer): BpfPackedBatchResult {
    this.packedReads++;
    this.#sorted ??= [...this.store.keys()].sort();
    const after = cursor?.toString('hex');
    let i = after === undefined ? 0 : upperBound(this.#sorted, after);
    const ids: string[] = [];
    for (; i < this.#sorted.length && ids.length < count; i++) {
      if (this.store.has(this.#sorted[i]!)) ids.push(this.#sorted[i]!);
    }
    const last = ids.at(-1);
    return {
      count: ids.length,
      keys: Buffer.concat(ids.map((id) => Buffer.from(id, 'hex'))),
      values: Buffer.concat(ids.map((id) => this.store.get(id)!)),
      cursor: i < this.#sorted.length && last !== undefined ? Buffer.from(last, 'hex') : undefined,
    };
  }
}

function upperBound(sorted: string[], x: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function touch(table: FlowTable, key: FlowKey, now: bigint): void {
  const value = table.get(key);
  if (value) table.set(key, { ...value, lastUsed: now }, 'exist');
}

const cleaners: Cleaner[] = [];
function make(table: ConstructorParameters<typeof Cleaner>[0], options: Partial<CleanerOptions> = {}): Cleaner {
  const c = new Cleaner(table, { ttlMs: TTL_MS, clock: () => START, ...options });
  cleaners.push(c);
  return c;
}
afterEach(async () => {
  await Promise.all(cleaners.splice(0).map((c) => c.stop()));
});

/** Collects the flows a cleaner removes, by forward key id. */
function expiredSet(): { ids: Set<string>; onExpire: CleanerOptions['onExpire'] } {
  const ids = new Set<string>();
  return { ids, onExpire: (p) => ids.add(flowKeyId(forwardEntry(p)[0])) };
}

describe('a sweep over a BPF map with packed batch reads', () => {
  it('reads every entry but removes only the flows idle in both directions', async () => {
    const flows = 6000;
    const table = new BpfMapFlowTable(new PackedMap(2 * flows));
    const old = START - TTL_NS - 1n;
    const idle = new Set<number>();
    for (let i = 0; i < flows; i++) {
      const p = pair(i);
      if (i % 100 === 7) {
        // Idle both ways.
        table.installPair(p, old);
        idle.add(i);
      } else if (i % 100 === 8) {
        // The client is silent, the backend is not: the flow stays.
        table.installPair(p, old);
        touch(table, reverseEntry(p)[0], START);
      } else if (i % 100 === 9) {
        table.installPair(p, old);
        touch(table, forwardEntry(p)[0], START - TTL_NS);
      } else {
        table.installPair(p, START - 1000n);
      }
    }
    const map = table.map as PackedMap;
    const { ids, onExpire } = expiredSet();
    const stats = await make(table, { onExpire, batchSize: 1024 }).sweep();

    expect(stats).toMatchObject({ completed: true, expired: idle.size, halfPairs: 0 });
    // An idle flow's second entry is gone before the scan reaches it when its first one came earlier.
    expect(stats.scanned).toBeGreaterThanOrEqual(2 * flows - idle.size);
    expect(stats.scanned).toBeLessThanOrEqual(2 * flows);
    expect(stats.batches).toBeGreaterThanOrEqual(Math.ceil((2 * flows) / 1024));
    expect(map.packedReads).toBe(stats.batches);
    expect(ids).toEqual(new Set([...idle].map((i) => flowKeyId(forwardEntry(pair(i))[0]))));
    expect(table.count()).toBe(2 * (flows - idle.size));
    for (const i of idle) expect(table.get(reverseEntry(pair(i))[0])).toBeUndefined();
  });

  it('decides exactly as on decoded values, at the TTL boundary and across the 32-bit halves of last_used', async () => {
    // Stamps on both sides of the deadline, and ones that differ from it only in the high or the low word.
    const deadline = START - TTL_NS;
    const stamps = [
      0n,
      deadline - 1n,
      deadline,
      deadline + 1n,
      deadline & ~0xffffffffn,
      (deadline & ~0xffffffffn) - 1n,
      deadline - (1n << 32n),
      deadline + (1n << 32n),
      deadline | 0xffffffffn,
      START,
      START + 1_000_000n,
      (1n << 64n) - 1n,
    ];
    const memory = new MemoryFlowTable();
    const kernel = new BpfMapFlowTable(new PackedMap(64));
    stamps.forEach((lastUsed, i) => {
      for (const t of [memory, kernel]) t.installPair(pair(i), lastUsed);
    });
    const fromMemory = expiredSet();
    const fromKernel = expiredSet();
    await make(memory, { onExpire: fromMemory.onExpire }).sweep();
    await make(kernel, { onExpire: fromKernel.onExpire }).sweep();
    const expected = stamps.flatMap((s, i) => (START - s > TTL_NS ? [flowKeyId(forwardEntry(pair(i))[0])] : []));
    expect(expected).toHaveLength(5);
    expect(fromKernel.ids).toEqual(new Set(expected));
    expect(fromMemory.ids).toEqual(fromKernel.ids);
  });
});

describe('a sweep in steps', () => {
  it('lets an interval timer keep firing while it sweeps a large table', async () => {
    const flows = 60_000;
    const table = new BpfMapFlowTable(new PackedMap(2 * flows));
    for (let i = 0; i < flows; i++) table.installPair(pair(i), START);
    let ticks = 0;
    let sweeping = false;
    let ticksDuring = 0;
    const timer = setInterval(() => {
      ticks++;
      if (sweeping) ticksDuring++;
    }, 1);
    try {
      await new Promise((r) => setTimeout(r, 5));
      sweeping = true;
      const stats = await make(table, { batchSize: 2048 }).sweep();
      sweeping = false;
      expect(stats).toMatchObject({ completed: true, scanned: 2 * flows, expired: 0 });
      expect(stats.batches).toBeGreaterThanOrEqual(59);
      expect(ticks).toBeGreaterThan(0);
      expect(ticksDuring).toBeGreaterThanOrEqual(3);
    } finally {
      clearInterval(timer);
    }
  });

  it('yields part-way through a batch that removes many flows, and stop() then ends it there', async () => {
    const flows = 3000;
    let spin = true;
    /** Removals that cost what a system call can, so that one batch of them takes far longer than a step. */
    class SlowTable extends MemoryFlowTable {
      override delete(key: FlowKey): boolean {
        const until = performance.now() + (spin ? 0.05 : 0);
        while (performance.now() < until);
        return super.delete(key);
      }
    }
    const table = new SlowTable();
    for (let i = 0; i < flows; i++) table.installPair(pair(i), START - TTL_NS - 1n);
    const log: string[] = [];
    let ticking = true;
    const tick = () => {
      log.push('tick');
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const cleaner = make(table, {
      batchSize: 2 * flows,
      onExpire: () => {
        log.push('expire');
      },
    });

    const running = cleaner.sweep();
    // Wait until the one batch of the table has been read and the sweep has yielded within it.
    while (!log.includes('tick') || !log.includes('expire')) await new Promise((r) => setImmediate(r));
    await cleaner.stop();
    const stats = await running;
    ticking = false;
    expect(stats.batches).toBe(1);
    expect(stats.completed).toBe(false);
    expect(stats.expired).toBeGreaterThan(0);
    expect(stats.expired).toBeLessThan(flows);
    // With one batch read, a tick followed by a removal happened inside that batch.
    expect(log.lastIndexOf('expire')).toBeGreaterThan(log.indexOf('tick'));
    expect(table.count()).toBe(2 * (flows - stats.expired));

    spin = false;
    const rest = await cleaner.sweep();
    expect(rest).toMatchObject({ completed: true, expired: flows - stats.expired });
    expect(table.count()).toBe(0);
  });

  it('never runs two sweeps at once, on a schedule and on demand', async () => {
    class WatchedTable extends MemoryFlowTable {
      open = 0;
      maxOpen = 0;
      sweeps = 0;
      override scanIdle(batchSize: number, idleBefore: bigint, cursor?: ScanCursor): IdleScanBatch {
        if (cursor === undefined) {
          this.open++;
          this.sweeps++;
          this.maxOpen = Math.max(this.maxOpen, this.open);
        }
        const batch = super.scanIdle(batchSize, idleBefore, cursor);
        if (batch.cursor === undefined) this.open--;
        return batch;
      }
    }
    const table = new WatchedTable();
    for (let i = 0; i < 2000; i++) table.installPair(pair(i), START);
    const cleaner = make(table, { batchSize: 100 });
    cleaner.start(1);
    const manual: Promise<unknown>[] = [];
    for (let i = 0; i < 20; i++) {
      manual.push(cleaner.sweep());
      await new Promise((r) => setTimeout(r, 1));
    }
    await Promise.all(manual);
    await cleaner.stop();
    expect(table.sweeps).toBeGreaterThan(1);
    expect(table.maxOpen).toBe(1);
  });

  it('a sweep started as the stopped one ends is not stopped too', async () => {
    const table = new MemoryFlowTable();
    for (let i = 0; i < 500; i++) table.installPair(pair(i), START);
    const cleaner = make(table, { batchSize: 10 });
    const first = cleaner.sweep();
    // Registered before stop() waits on the same sweep, so it starts the next one before stop() has returned.
    const next = first.then(() => cleaner.sweep());
    await cleaner.stop();
    expect((await first).completed).toBe(false);
    expect(await next).toMatchObject({ completed: true, scanned: 1000 });
  });
});
