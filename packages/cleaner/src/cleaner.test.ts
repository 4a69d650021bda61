import { MemoryFlowTable, flowKeyId, forwardEntry, isReverse, reverseEntry, snatPortOf } from '@flowlb/flow-table';
import type { FlowKey, FlowPair, ScanBatch, ScanCursor } from '@flowlb/flow-table';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Cleaner, createCleaner } from './cleaner.js';
import type { CleanerOptions, SweepStats } from './cleaner.js';
import type { ExpiredFlow } from './expire-flow.js';
import { TimeoutSet } from './timeout-set.js';

const MS = 1_000_000n;
const TTL_MS = 30_000;

function pair(i: number): FlowPair {
  return {
    client: { address: `198.51.${(i >> 8) & 255}.${i & 255}`, port: 40000 + (i % 20000) },
    vip: { address: '192.0.2.10', port: 443 },
    snat: { address: '192.0.2.10', port: 1024 + (i % 60000) },
    target: { address: `10.0.${(i >> 16) & 255}.${1 + (i % 250)}`, port: 8443 },
  };
}

/** Records every scan and delete in one log, and refuses writes once armed, so a zombie shows up. */
class RecordingTable extends MemoryFlowTable {
  readonly log: string[] = [];
  frozen = false;

  override set(...args: Parameters<MemoryFlowTable['set']>): void {
    if (this.frozen) throw new Error('the cleaner wrote to the table');
    super.set(...args);
  }

  override delete(key: FlowKey): boolean {
    const value = this.get(key);
    this.log.push(`delete ${value && isReverse(value) ? 'reverse' : 'forward'}`);
    return super.delete(key);
  }

  override scan(batchSize: number, cursor?: ScanCursor): ScanBatch {
    this.log.push('scan');
    return super.scan(batchSize, cursor);
  }
}

function fakeClock(start = 1_000_000n * MS) {
  let now = start;
  return {
    clock: () => now,
    advanceMs: (ms: number) => {
      now += BigInt(ms) * MS;
    },
    get now() {
      return now;
    },
  };
}

const cleaners: Cleaner[] = [];
function make(table: ConstructorParameters<typeof Cleaner>[0], options: Partial<CleanerOptions> = {}): Cleaner {
  const c = new Cleaner(table, { ttlMs: TTL_MS, ...options });
  cleaners.push(c);
  return c;
}
afterEach(async () => {
  await Promise.all(cleaners.splice(0).map((c) => c.stop()));
});

describe('Cleaner.sweep', () => {
  it('keeps a flow with server-to-client traffic only, and removes it once that stops', async () => {
    const time = fakeClock();
    const table = new MemoryFlowTable();
    const p = pair(1);
    table.installPair(p, time.now);
    const expired: FlowPair[] = [];
    const cleaner = make(table, { clock: time.clock, onExpire: (x) => expired.push(x) });

    // The backend keeps talking, the client is silent: only the reverse entry is refreshed.
    for (let i = 0; i < 5; i++) {
      time.advanceMs(20_000);
      table.touch(reverseEntry(p)[0], time.now);
      expect((await cleaner.sweep()).expired).toBe(0);
    }
    expect(table.count()).toBe(2);

    time.advanceMs(TTL_MS + 1);
    expect(await cleaner.sweep()).toMatchObject({ expired: 1, halfPairs: 0, scanned: 2, completed: true });
    expect(expired).toEqual([p]);
    expect(table.count()).toBe(0);
  });

  it('with unconfirmedTtlMs, removes early a flow whose client never spoke again, and only such a flow', async () => {
    const time = fakeClock();
    const table = new RecordingTable();
    const [silent, talking] = [pair(3), pair(4)];
    table.installPair(silent, time.now);
    table.installPair(talking, time.now);
    const onExpire = vi.fn<(pair: FlowPair, flow: ExpiredFlow) => void>();
    const cleaner = make(table, { clock: time.clock, onExpire, unconfirmedTtlMs: TTL_MS / 4 });
    time.advanceMs(TTL_MS / 8);
    // The client of one flow speaks again; the backends of both keep answering.
    table.touch(forwardEntry(talking)[0], time.now);
    time.advanceMs(TTL_MS / 8 + 1);
    for (const p of [silent, talking]) table.touch(reverseEntry(p)[0], time.now);
    expect(await cleaner.sweep()).toMatchObject({ expired: 1 });
    expect(onExpire).toHaveBeenCalledWith(silent, expect.objectContaining({ kind: 'pair', unconfirmed: true }));
    expect(table.get(forwardEntry(talking)[0])).toBeDefined();
    expect(() => make(table, { unconfirmedTtlMs: 0 })).toThrow(/unconfirmedTtlMs 0/);
  });

  it('removes a flow idle in both directions: forward first, onExpire once, nothing written', async () => {
    const time = fakeClock();
    const table = new RecordingTable();
    const p = pair(2);
    table.installPair(p, time.now);
    table.frozen = true;
    const onExpire = vi.fn<(pair: FlowPair, flow: ExpiredFlow) => void>();
    const cleaner = make(table, { clock: time.clock, onExpire });

    time.advanceMs(TTL_MS);
    expect((await cleaner.sweep()).expired).toBe(0);
    time.advanceMs(1);
    const stats = await cleaner.sweep();
    expect(stats).toMatchObject({ scanned: 2, expired: 1, halfPairs: 0 });
    expect(table.log.filter((l) => l.startsWith('delete'))).toEqual(['delete forward', 'delete reverse']);
    expect(onExpire).toHaveBeenCalledTimes(1);
    expect(onExpire).toHaveBeenCalledWith(p, { pair: p, kind: 'pair', lastUsed: time.now - BigInt(TTL_MS) * MS - MS, idleNs: BigInt(TTL_MS) * MS + MS, unconfirmed: false });

    // Touches after removal, as the datapath might still send, find nothing and create nothing.
    expect(table.touch(forwardEntry(p)[0], time.now)).toBe(false);
    expect((await cleaner.sweep()).expired).toBe(0);
    expect(onExpire).toHaveBeenCalledTimes(1);
    expect(table.count()).toBe(0);
  });

  it('with owns, removes only the flows it looks after: two cleaners share a table by SNAT port', async () => {
    const time = fakeClock();
    const table = new MemoryFlowTable();
    const pairs = Array.from({ length: 10 }, (_, i) => pair(i));
    for (const p of pairs) table.installPair(p, time.now);
    const expired: FlowPair[][] = [[], []];
    const byParity = [0, 1].map((parity) =>
      make(table, {
        clock: time.clock,
        owns: (key, value) => snatPortOf(key, value) % 2 === parity,
        onExpire: (p) => expired[parity]!.push(p),
      }),
    );
    time.advanceMs(TTL_MS + 1);
    expect((await byParity[0]!.sweep()).expired).toBe(5);
    expect(expired[0]!.map((p) => p.snat.port % 2)).toEqual([0, 0, 0, 0, 0]);
    expect(table.count()).toBe(10);
    expect((await byParity[1]!.sweep()).expired).toBe(5);
    expect(new Set([...expired[0]!, ...expired[1]!].map((p) => p.snat.port))).toEqual(new Set(pairs.map((p) => p.snat.port)));
    expect(table.count()).toBe(0);
  });

  it('reports and removes idle halves, and keeps fresh ones', async () => {
    const time = fakeClock();
    const table = new MemoryFlowTable();
    const [a, b, c] = [pair(3), pair(4), pair(5)];
    for (const p of [a, b, c]) table.installPair(p, time.now);
    table.delete(reverseEntry(a)[0]);
    table.delete(forwardEntry(b)[0]);
    table.delete(reverseEntry(c)[0]);
    time.advanceMs(TTL_MS + 1);
    table.touch(forwardEntry(c)[0], time.now);
    const flows: ExpiredFlow[] = [];
    const stats = await make(table, { clock: time.clock, onExpire: (_, f) => flows.push(f) }).sweep();
    expect(stats).toMatchObject({ scanned: 3, expired: 2, halfPairs: 2 });
    expect(flows.map((f) => [f.kind, f.pair])).toEqual(
      expect.arrayContaining([
        ['forward-only', a],
        ['reverse-only', b],
      ]),
    );
    expect([...table.entries()].map(([k]) => flowKeyId(k))).toEqual([flowKeyId(forwardEntry(c)[0])]);
  });

  it('sweeps a large table in batches and lets the event loop run between every two', async () => {
    const time = fakeClock();
    const table = new RecordingTable();
    const flows = 50_000;
    for (let i = 0; i < flows; i++) table.installPair(pair(i), time.now);
    table.frozen = true;
    // Half the flows stay active.
    time.advanceMs(TTL_MS + 1);
    for (let i = 0; i < flows; i += 2) table.touch(forwardEntry(pair(i))[0], time.now);

    let ticking = true;
    const tick = () => {
      table.log.push('tick');
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    let timerFired = false;
    setTimeout(() => {
      timerFired = true;
    }, 0);

    const expired = new Set<string>();
    const stats = await make(table, {
      clock: time.clock,
      batchSize: 1000,
      onExpire: (p) => expired.add(flowKeyId(forwardEntry(p)[0])),
    }).sweep();
    ticking = false;

    expect(stats.completed).toBe(true);
    expect(stats.expired).toBe(flows / 2);
    expect(expired.size).toBe(flows / 2);
    expect(table.count()).toBe(flows);
    expect(stats.batches).toBeGreaterThanOrEqual(50);
    expect(timerFired).toBe(true);
    const events = table.log.filter((l) => l === 'scan' || l === 'tick');
    const scans = events.flatMap((e, i) => (e === 'scan' ? [i] : []));
    expect(scans).toHaveLength(stats.batches);
    for (let i = 1; i < scans.length; i++) {
      expect(events.slice(scans[i - 1]! + 1, scans[i]), `between scan ${i} and ${i + 1}`).toContain('tick');
    }
  });

  it('runs one sweep at a time: calls during a sweep share it', async () => {
    const time = fakeClock();
    const table = new RecordingTable();
    for (let i = 0; i < 100; i++) table.installPair(pair(i), time.now);
    time.advanceMs(TTL_MS + 1);
    const onExpire = vi.fn();
    const onSweep = vi.fn();
    const cleaner = make(table, { clock: time.clock, batchSize: 10, onExpire, onSweep });

    const first = cleaner.sweep();
    expect(cleaner.sweeping).toBe(true);
    const second = cleaner.sweep();
    expect(second).toBe(first);
    const [a, b] = await Promise.all([first, second]);
    expect(a).toBe(b);
    expect(a.expired).toBe(100);
    expect(onExpire).toHaveBeenCalledTimes(100);
    expect(onSweep).toHaveBeenCalledTimes(1);
    expect(table.log.filter((l) => l === 'scan')).toHaveLength(a.batches);
    expect(cleaner.sweeping).toBe(false);
    expect(cleaner.lastSweep).toBe(a);

    const third = await cleaner.sweep();
    expect(third).not.toBe(a);
    expect(third.expired).toBe(0);
  });

  it('keeps going when a callback throws, and reports the error', async () => {
    const time = fakeClock();
    const table = new MemoryFlowTable();
    for (let i = 0; i < 5; i++) table.installPair(pair(i), time.now);
    time.advanceMs(TTL_MS + 1);
    const errors: unknown[] = [];
    const stats = await make(table, {
      clock: time.clock,
      onExpire: () => {
        throw new Error('port pool broke');
      },
      onSweep: () => Promise.reject(new Error('metrics down')),
      onError: (e) => errors.push(e),
    }).sweep();
    await new Promise((r) => setImmediate(r));
    expect(stats.expired).toBe(5);
    expect(table.count()).toBe(0);
    expect(errors.map((e) => (e as Error).message)).toEqual([...Array(5).fill('port pool broke'), 'metrics down']);
  });

  it('rejects the sweep when the table fails, and can sweep again afterwards', async () => {
    const table = new MemoryFlowTable();
    table.installPair(pair(1), 0n);
    const scan = vi.spyOn(table, 'scan').mockImplementationOnce(() => {
      throw Object.assign(new Error('bpf: EPERM'), { code: 'EPERM' });
    });
    const cleaner = make(table, { clock: () => 0n });
    await expect(cleaner.sweep()).rejects.toThrow(/EPERM/);
    expect(cleaner.sweeping).toBe(false);
    expect((await cleaner.sweep()).scanned).toBe(2);
    expect(scan).toHaveBeenCalledTimes(2);
  });

  it('expires pending clients on the same beat through expirePending', async () => {
    const time = fakeClock();
    const pending = new TimeoutSet<string, bigint>();
    pending.add('198.51.100.1:5000', time.now + 5_000n * MS);
    pending.add('198.51.100.2:5000', time.now + 15_000n * MS);
    const dropped: string[] = [];
    const cleaner = make(new MemoryFlowTable(), {
      clock: time.clock,
      expirePending: (now) => {
        const keys = pending.expire(now);
        dropped.push(...keys);
        return keys.length;
      },
    });
    expect((await cleaner.sweep()).pendingExpired).toBe(0);
    time.advanceMs(10_000);
    expect((await cleaner.sweep()).pendingExpired).toBe(1);
    expect(dropped).toEqual(['198.51.100.1:5000']);
    expect(pending.size).toBe(1);
  });

  it('uses process.hrtime.bigint(), CLOCK_MONOTONIC as last_used, by default', async () => {
    const table = new MemoryFlowTable();
    const now = process.hrtime.bigint();
    table.installPair(pair(1), now);
    table.installPair(pair(2), now - 60_000n * MS);
    const expired: FlowPair[] = [];
    await make(table, { onExpire: (p) => expired.push(p) }).sweep();
    expect(expired).toEqual([pair(2)]);
  });
});

describe('Cleaner.start / stop', () => {
  it('sweeps on an interval until stopped', async () => {
    const time = fakeClock();
    const table = new MemoryFlowTable();
    const sweeps: SweepStats[] = [];
    let third!: () => void;
    const reachedThree = new Promise<void>((r) => (third = r));
    const cleaner = make(table, {
      clock: time.clock,
      onSweep: (s) => {
        sweeps.push(s);
        if (sweeps.length === 3) third();
      },
    });
    table.installPair(pair(1), time.now);
    time.advanceMs(TTL_MS + 1);
    cleaner.start(2);
    expect(cleaner.started).toBe(true);
    await reachedThree;
    await cleaner.stop();
    expect(cleaner.started).toBe(false);
    const count = sweeps.length;
    expect(sweeps[0]!.expired).toBe(1);
    await new Promise((r) => setTimeout(r, 30));
    expect(sweeps.length).toBe(count);
  });

  it('stop ends a running sweep after its current batch', async () => {
    const time = fakeClock();
    const table = new MemoryFlowTable();
    for (let i = 0; i < 1000; i++) table.installPair(pair(i), time.now);
    time.advanceMs(TTL_MS + 1);
    const cleaner = make(table, { clock: time.clock, batchSize: 10 });
    const running = cleaner.sweep();
    await cleaner.stop();
    const stats = await running;
    expect(stats.completed).toBe(false);
    expect(stats.batches).toBe(1);
    expect(table.count()).toBe(2000 - stats.expired * 2);
    // A later sweep finishes the job.
    expect((await cleaner.sweep()).completed).toBe(true);
    expect(table.count()).toBe(0);
  });

  it('keeps its schedule after a failing sweep and reports the failure', async () => {
    const table = new MemoryFlowTable();
    vi.spyOn(table, 'scan').mockImplementationOnce(() => {
      throw new Error('map gone');
    });
    const errors: unknown[] = [];
    let sweptOk!: () => void;
    const ok = new Promise<void>((r) => (sweptOk = r));
    const cleaner = make(table, { clock: () => 0n, onError: (e) => errors.push(e), onSweep: () => sweptOk() });
    cleaner.start(1);
    await ok;
    expect(errors.map((e) => (e as Error).message)).toEqual(['map gone']);
  });

  it('validates its options', () => {
    const t = new MemoryFlowTable();
    expect(() => new Cleaner(t, { ttlMs: 0 })).toThrow(/ttlMs 0/);
    expect(() => new Cleaner(t, { ttlMs: Number.POSITIVE_INFINITY })).toThrow(/ttlMs/);
    expect(() => new Cleaner(t, { ttlMs: 1, batchSize: 0 })).toThrow(/batchSize 0/);
    expect(() => make(t).start(0)).toThrow(/intervalMs 0/);
    expect(createCleaner(t, { ttlMs: 1 })).toBeInstanceOf(Cleaner);
  });
});
