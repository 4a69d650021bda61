import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { BpfMapFlowTable } from './bpf-map-table.js';
import { flowKeyId } from './key-id.js';
import { MemoryFlowTable } from './memory-table.js';
import { forwardEntry, reverseEntry } from './pair.js';
import type { FlowPairRecord, FlowTable, ScanCursor } from './table.js';
import { examplePair, flowKey, flowValue } from './testing/arbitraries.js';
import { FakeBpfMap } from './testing/fake-bpf-map.js';
import type { FlowEntry, FlowKey, FlowValue } from './types.js';

/* The same behaviour from every FlowTable: in memory, and over a BPF map with and without batch lookups. */
const implementations: Array<[string, (maxEntries?: number) => FlowTable]> = [
  ['MemoryFlowTable', (maxEntries) => new MemoryFlowTable({ maxEntries: maxEntries ?? 4096 })],
  ['BpfMapFlowTable (batch)', (maxEntries) => new BpfMapFlowTable(new FakeBpfMap({ maxEntries: maxEntries ?? 4096 }))],
  [
    'BpfMapFlowTable (packed batch)',
    (maxEntries) => new BpfMapFlowTable(new FakeBpfMap({ maxEntries: maxEntries ?? 4096, packed: true })),
  ],
  [
    'BpfMapFlowTable (iteration)',
    (maxEntries) => new BpfMapFlowTable(new FakeBpfMap({ maxEntries: maxEntries ?? 4096, batch: 'absent' })),
  ],
];

const key: FlowKey = { dstAddr: '192.0.2.10', srcAddr: '198.51.100.7', dstPort: 443, srcPort: 51000 };
const value: FlowValue = { dstAddr: '10.0.0.2', srcAddr: '192.0.2.10', dstPort: 8443, srcPort: 20001, flags: 0, lastUsed: 7n };

function scanAll(table: FlowTable, batchSize: number, between?: (batch: FlowEntry[]) => void): FlowEntry[] {
  const seen: FlowEntry[] = [];
  let cursor: ScanCursor | undefined;
  let calls = 0;
  do {
    const batch = table.scan(batchSize, cursor);
    expect(batch.entries.length).toBeLessThanOrEqual(batchSize);
    seen.push(...batch.entries);
    between?.(batch.entries);
    cursor = batch.cursor;
    if (++calls > 100_000) throw new Error('scan does not end');
  } while (cursor);
  return seen;
}

describe.each(implementations)('%s', (_, make) => {
  it('gets, replaces and deletes by key value, not by object', () => {
    const t = make();
    expect(t.get(key)).toBeUndefined();
    t.set(key, value);
    expect(t.get({ ...key })).toEqual(value);
    t.set({ ...key }, { ...value, lastUsed: 8n });
    expect(t.count()).toBe(1);
    expect(t.get(key)?.lastUsed).toBe(8n);
    expect(t.delete({ ...key })).toBe(true);
    expect(t.delete(key)).toBe(false);
    expect(t.get(key)).toBeUndefined();
    expect(t.count()).toBe(0);
  });

  it('hands out copies: changing a returned value changes nothing stored', () => {
    const t = make();
    const v = { ...value };
    t.set(key, v);
    v.dstPort = 1;
    const got = t.get(key)!;
    got.lastUsed = 99n;
    for (const [, stored] of t.entries()) stored.flags = 5;
    expect(t.get(key)).toEqual(value);
  });

  it('honours the update flags with errno codes', () => {
    const t = make();
    expect(() => t.set(key, value, 'exist')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    t.set(key, value, 'noexist');
    expect(() => t.set(key, value, 'noexist')).toThrow(expect.objectContaining({ code: 'EEXIST' }));
    t.set(key, { ...value, lastUsed: 9n }, 'exist');
    expect(t.get(key)?.lastUsed).toBe(9n);
  });

  it('refuses a new entry beyond maxEntries with E2BIG but still replaces existing ones', () => {
    const t = make(2);
    expect(t.maxEntries).toBe(2);
    t.set(key, value);
    t.set({ ...key, srcPort: 1 }, value);
    expect(() => t.set({ ...key, srcPort: 2 }, value)).toThrow(expect.objectContaining({ code: 'E2BIG' }));
    t.set(key, { ...value, lastUsed: 1n });
    expect(t.count()).toBe(2);
  });

  it('rejects invalid keys and values with the field named', () => {
    const t = make();
    expect(() => t.set({ ...key, dstAddr: 'x' }, value)).toThrow(/dstAddr/);
    expect(() => t.set(key, { ...value, srcPort: -1 })).toThrow(/srcPort/);
    expect(() => t.get({ ...key, srcAddr: '1.2.3' })).toThrow(/srcAddr/);
    expect(t.count()).toBe(0);
  });

  it('stores whatever the codec can hold and lists it back', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.tuple(flowKey, flowValue), { maxLength: 40, selector: ([k]) => flowKeyId(k) }), (rows) => {
        const t = make();
        for (const [k, v] of rows) t.set(k, v);
        const listed = new Map([...t.entries()].map(([k, v]) => [flowKeyId(k), v]));
        expect(listed.size).toBe(rows.length);
        for (const [k, v] of rows) expect(listed.get(flowKeyId(k))).toEqual(v);
        expect(t.count()).toBe(rows.length);
      }),
      { numRuns: 50 },
    );
  });

  describe('scan', () => {
    it('returns every entry once in batches of at most batchSize', () => {
      const t = make();
      for (let i = 0; i < 100; i++) t.set({ ...key, srcPort: i }, value);
      for (const size of [1, 7, 100, 1000]) {
        const ids = scanAll(t, size).map(([k]) => flowKeyId(k));
        expect(ids).toHaveLength(100);
        expect(new Set(ids).size).toBe(100);
      }
      expect(scanAll(make(), 10)).toEqual([]);
    });

    it('returns every entry that stays, while the caller deletes and adds between batches', () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 12 }), fc.array(fc.boolean(), { minLength: 30, maxLength: 60 }), (size, doomed) => {
          const t = make();
          doomed.forEach((_, i) => t.set({ ...key, srcPort: i }, value));
          const deleted = new Set<number>();
          let added = 1000;
          const seen = scanAll(t, size, (batch) => {
            // Delete some of what was handed out, and some of what is still ahead, and add new entries.
            for (const [k] of batch) {
              if (doomed[k.srcPort]) {
                t.delete(k);
                deleted.add(k.srcPort);
              }
            }
            const ahead = doomed.findIndex((d, i) => d && !deleted.has(i));
            if (ahead >= 0) {
              t.delete({ ...key, srcPort: ahead });
              deleted.add(ahead);
            }
            if (added < 1010) t.set({ ...key, srcPort: added++ }, value);
          }).map(([k]) => k.srcPort);
          for (let i = 0; i < doomed.length; i++) {
            if (!doomed[i]) expect(seen, `entry ${i}`).toContain(i);
          }
        }),
        { numRuns: 40 },
      );
    });

    it('scanIdle returns what scan would, filtered to lastUsed < idleBefore, and counts what it read', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 12 }),
          fc.array(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { maxLength: 40 }),
          fc.bigInt({ min: -1n, max: 1n << 64n }),
          (size, stamps, idleBefore) => {
            const t = make();
            stamps.forEach((lastUsed, i) => t.set({ ...key, srcPort: i }, { ...value, lastUsed }));
            const idle: FlowEntry[] = [];
            let scanned = 0;
            let cursor: ScanCursor | undefined;
            do {
              const batch = t.scanIdle(size, idleBefore, cursor);
              expect(batch.scanned).toBeLessThanOrEqual(size);
              expect(batch.entries.length).toBeLessThanOrEqual(batch.scanned);
              scanned += batch.scanned;
              idle.push(...batch.entries);
              cursor = batch.cursor;
            } while (cursor);
            expect(scanned).toBe(stamps.length);
            const expected = stamps.flatMap((lastUsed, i) => (lastUsed < idleBefore ? [i] : []));
            expect(idle.map(([k]) => k.srcPort).sort((a, b) => a - b)).toEqual(expected);
            for (const [k, v] of idle) expect(v).toEqual({ ...value, lastUsed: stamps[k.srcPort] });
          },
        ),
        { numRuns: 60 },
      );
    });

    it('continues a scan with scanIdle and a scanIdle with scan', () => {
      const t = make();
      for (let i = 0; i < 30; i++) t.set({ ...key, srcPort: i }, { ...value, lastUsed: BigInt(i) });
      const ids: number[] = [];
      let cursor: ScanCursor | undefined;
      let n = 0;
      do {
        // Every entry is idle before 100, so both methods hand out everything they read.
        const batch = n++ % 2 === 0 ? t.scan(4, cursor) : t.scanIdle(4, 100n, cursor);
        ids.push(...batch.entries.map(([k]) => k.srcPort));
        cursor = batch.cursor;
      } while (cursor);
      expect(new Set(ids).size).toBe(30);
      expect(() => t.scanIdle(0, 1n)).toThrow(/batchSize 0/);
    });

    it('rejects a bad batch size and a cursor from another table', () => {
      const t = make();
      const other = make();
      for (let i = 0; i < 5; i++) other.set({ ...key, srcPort: i }, value);
      const { cursor } = other.scan(2);
      expect(cursor).toBeDefined();
      expect(() => t.scan(2, cursor)).toThrow(/cursor was not returned by this table/);
      expect(() => t.scan(0)).toThrow(/batchSize 0/);
      expect(() => t.scan(1.5)).toThrow(/batchSize/);
    });
  });

  describe('installPair', () => {
    it('writes the reverse entry before the forward entry, both with last_used now', () => {
      const t = make();
      const order: string[] = [];
      const set = t.set.bind(t);
      vi.spyOn(t, 'set').mockImplementation((k, v, flag) => {
        order.push(v.flags ? 'reverse' : 'forward');
        set(k, v, flag);
      });
      const pair = examplePair(1);
      t.installPair(pair, 1234n);
      expect(order).toEqual(['reverse', 'forward']);
      expect(t.get(forwardEntry(pair)[0])).toEqual(forwardEntry(pair, 1234n)[1]);
      expect(t.get(reverseEntry(pair)[0])).toEqual(reverseEntry(pair, 1234n)[1]);
    });

    it('refuses to take over an existing entry, and leaves the table as it was', () => {
      const t = make();
      const a = examplePair(1);
      t.installPair(a, 1n);
      // Same client again: the forward key is taken; the new reverse entry must be rolled back.
      const sameClient = { ...a, snat: { ...a.snat, port: 30001 } };
      expect(() => t.installPair(sameClient, 2n)).toThrow(expect.objectContaining({ code: 'EEXIST' }));
      expect(t.get(reverseEntry(sameClient)[0])).toBeUndefined();
      // Same SNAT port towards the same target: the reverse key is taken.
      const sameSnat = { ...examplePair(2), snat: a.snat, target: a.target };
      expect(() => t.installPair(sameSnat, 2n)).toThrow(expect.objectContaining({ code: 'EEXIST' }));
      expect(t.get(forwardEntry(sameSnat)[0])).toBeUndefined();
      expect(t.count()).toBe(2);
      expect(t.get(reverseEntry(a)[0])).toEqual(reverseEntry(a, 1n)[1]);
    });

    it('rolls the reverse entry back when the table is full', () => {
      const t = make(3);
      t.installPair(examplePair(1), 1n);
      expect(() => t.installPair(examplePair(2), 1n)).toThrow(expect.objectContaining({ code: 'E2BIG' }));
      expect(t.count()).toBe(2);
    });

    it('rejects a pair whose two entries would share one key', () => {
      const t = make();
      const e = { address: '10.0.0.1', port: 5 };
      expect(() => t.installPair({ client: e, vip: e, snat: e, target: e }, 1n)).toThrow(/same key/);
      expect(t.count()).toBe(0);
    });
  });

  describe('removePair', () => {
    it('deletes the forward entry, then the reverse entry', () => {
      const t = make();
      const pair = examplePair(3);
      t.installPair(pair, 1n);
      const order: string[] = [];
      const del = t.delete.bind(t);
      vi.spyOn(t, 'delete').mockImplementation((k) => {
        order.push(flowKeyId(k) === flowKeyId(forwardEntry(pair)[0]) ? 'forward' : 'reverse');
        return del(k);
      });
      expect(t.removePair(pair)).toEqual({ forward: true, reverse: true });
      expect(order).toEqual(['forward', 'reverse']);
      expect(t.count()).toBe(0);
      expect(t.removePair(pair)).toEqual({ forward: false, reverse: false });
    });

    it('leaves an entry that now belongs to another flow', () => {
      const t = make();
      const old = examplePair(4);
      t.installPair(old, 1n);
      t.delete(forwardEntry(old)[0]);
      // The SNAT port was reused for a new client towards the same target: the reverse key is the same.
      const reused = { ...examplePair(5), snat: old.snat, target: old.target };
      t.delete(reverseEntry(old)[0]);
      t.installPair(reused, 2n);
      expect(t.removePair(old)).toEqual({ forward: false, reverse: false });
      expect(t.get(reverseEntry(reused)[0])).toEqual(reverseEntry(reused, 2n)[1]);
    });
  });

  describe('pairs', () => {
    const byClient = (records: FlowPairRecord[]) =>
      new Map(records.map((r) => [`${r.pair.client.address}:${r.pair.client.port}`, r]));

    it('lists each flow once with both last_used, and halves as halves', () => {
      const t = make();
      const whole = examplePair(10);
      const fwdOnly = examplePair(11);
      const revOnly = examplePair(12);
      for (const p of [whole, fwdOnly, revOnly]) t.installPair(p, 100n);
      t.set(...reverseEntry(whole, 150n));
      t.delete(reverseEntry(fwdOnly)[0]);
      t.delete(forwardEntry(revOnly)[0]);

      const records = [...t.pairs()];
      expect(records).toHaveLength(3);
      const map = byClient(records);
      expect(map.get('198.51.0.10:40010')).toEqual({
        pair: whole,
        kind: 'pair',
        forwardLastUsed: 100n,
        reverseLastUsed: 150n,
      });
      expect(map.get('198.51.0.11:40011')).toEqual({
        pair: fwdOnly,
        kind: 'forward-only',
        forwardLastUsed: 100n,
        reverseLastUsed: undefined,
      });
      expect(map.get('198.51.0.12:40012')).toEqual({
        pair: revOnly,
        kind: 'reverse-only',
        forwardLastUsed: undefined,
        reverseLastUsed: 100n,
      });
    });

    it('does not pair a forward entry with a reverse entry of another flow', () => {
      const t = make();
      const a = examplePair(20);
      const b = { ...examplePair(21), snat: a.snat, target: a.target };
      t.set(...forwardEntry(a, 1n));
      t.set(...reverseEntry(b, 2n));
      t.set(...forwardEntry(b, 3n));
      const map = byClient([...t.pairs()]);
      expect(map.get('198.51.0.20:40020')?.kind).toBe('forward-only');
      expect(map.get('198.51.0.21:40021')).toMatchObject({ kind: 'pair', forwardLastUsed: 3n, reverseLastUsed: 2n });
      expect(map.size).toBe(2);
    });

    it('lists a pair written without the reverse flag once', () => {
      const t = make();
      const p = examplePair(30);
      t.set(...forwardEntry(p, 1n));
      const [rk, rv] = reverseEntry(p, 2n);
      t.set(rk, { ...rv, flags: 0 });
      const records = [...t.pairs()];
      expect(records).toHaveLength(1);
      expect(records[0]!.kind).toBe('pair');
    });
  });
});
