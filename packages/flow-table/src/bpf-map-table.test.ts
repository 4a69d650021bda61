import { describe, expect, it } from 'vitest';
import { BpfMapFlowTable, isBatchUnsupported } from './bpf-map-table.js';
import { encodeKey, encodeValue } from './codec.js';
import { flowKeyId } from './key-id.js';
import { forwardEntry, reverseEntry } from './pair.js';
import type { ScanCursor } from './table.js';
import { examplePair } from './testing/arbitraries.js';
import { FakeBpfMap } from './testing/fake-bpf-map.js';
import type { FlowKey } from './types.js';

function filled(map: FakeBpfMap, n: number): BpfMapFlowTable {
  const t = new BpfMapFlowTable(map);
  for (let i = 0; i < n; i++) t.set(...forwardEntry(examplePair(i), BigInt(i)));
  map.calls.length = 0;
  return t;
}

function scanIds(t: BpfMapFlowTable, size: number, after?: (keys: FlowKey[]) => void): string[] {
  const ids: string[] = [];
  let cursor: ScanCursor | undefined;
  do {
    const batch = t.scan(size, cursor);
    ids.push(...batch.entries.map(([k]) => flowKeyId(k)));
    after?.(batch.entries.map(([k]) => k));
    cursor = batch.cursor;
  } while (cursor);
  return ids;
}

describe('BpfMapFlowTable', () => {
  it('refuses a map whose key or value size is not the flow layout', () => {
    expect(() => new BpfMapFlowTable(new FakeBpfMap({ keySize: 12 }))).toThrow(/key size is 12 bytes; struct flow_key has 16/);
    expect(() => new BpfMapFlowTable(new FakeBpfMap({ valueSize: 16 }))).toThrow(/value size is 16 bytes; struct flow_val has 24/);
  });

  it('stores exactly the bytes of the codec', () => {
    const map = new FakeBpfMap();
    const t = new BpfMapFlowTable(map);
    const pair = examplePair(7);
    t.installPair(pair, 42n);
    for (const [k, v] of [forwardEntry(pair, 42n), reverseEntry(pair, 42n)]) {
      expect(map.store.get(encodeKey(k).toString('hex'))?.equals(encodeValue(v))).toBe(true);
    }
    expect(map.calls).toEqual(['update:noexist', 'update:noexist']);
  });

  it('passes the map size through', () => {
    expect(new BpfMapFlowTable(new FakeBpfMap({ maxEntries: 77 })).maxEntries).toBe(77);
  });

  it('scans with batch lookups when the map has them', () => {
    const map = new FakeBpfMap();
    const t = filled(map, 25);
    expect(t.usesBatchLookup).toBeUndefined();
    expect(new Set(scanIds(t, 10)).size).toBe(25);
    expect(t.usesBatchLookup).toBe(true);
    expect(map.calls).toEqual(['lookupBatch', 'lookupBatch', 'lookupBatch']);
  });

  it('reads packed batches when the map offers them, and decodes only the idle entries for scanIdle', () => {
    const map = new FakeBpfMap({ packed: true });
    const t = filled(map, 25);
    expect(new Set(scanIds(t, 10)).size).toBe(25);
    expect(map.calls).toEqual(['lookupBatchPacked', 'lookupBatchPacked', 'lookupBatchPacked']);
    // filled() stamps entry i with last_used i.
    const idle: bigint[] = [];
    let scanned = 0;
    let cursor: ScanCursor | undefined;
    do {
      const batch = t.scanIdle(10, 5n, cursor);
      idle.push(...batch.entries.map(([, v]) => v.lastUsed));
      scanned += batch.scanned;
      cursor = batch.cursor;
    } while (cursor);
    expect(scanned).toBe(25);
    expect(idle.sort()).toEqual([0n, 1n, 2n, 3n, 4n]);
  });

  it('uses packed batches from a map that has no other batch lookup', () => {
    const map = new FakeBpfMap({ packed: true });
    delete map.lookupBatch;
    const t = filled(map, 25);
    expect(new Set(scanIds(t, 10)).size).toBe(25);
    expect(t.usesBatchLookup).toBe(true);
    expect(map.calls).toEqual(['lookupBatchPacked', 'lookupBatchPacked', 'lookupBatchPacked']);
  });

  it('falls back from packed batches to iteration when the kernel refuses batch lookups', () => {
    const map = new FakeBpfMap({ packed: true, batch: 'EINVAL' });
    const t = filled(map, 12);
    const batch = t.scanIdle(100, 3n);
    expect(batch.scanned).toBe(12);
    expect(batch.entries.map(([, v]) => v.lastUsed).sort()).toEqual([0n, 1n, 2n]);
    expect(t.usesBatchLookup).toBe(false);
    expect(map.calls.filter((c) => c.startsWith('lookupBatch'))).toEqual(['lookupBatchPacked']);
  });

  it('refuses a packed batch shorter than its count says', () => {
    const map = new FakeBpfMap({ packed: true });
    const t = filled(map, 3);
    const packed = map.lookupBatchPacked!;
    map.lookupBatchPacked = (count, cursor) => ({ ...packed(count, cursor), count: 4 });
    expect(() => t.scanIdle(10, 1n)).toThrow(/batch of 4 entries came with 48 bytes of keys/);
  });

  it('iterates when the map has no batch lookup', () => {
    const map = new FakeBpfMap({ batch: 'absent' });
    const t = filled(map, 25);
    expect(t.usesBatchLookup).toBe(false);
    expect(new Set(scanIds(t, 10)).size).toBe(25);
    expect(map.calls).not.toContain('lookupBatch');
  });

  it.each(['ENOTSUP', 'EOPNOTSUPP', 'EINVAL'])('falls back to iteration, for good, when batch lookup fails with %s', (code) => {
    const map = new FakeBpfMap({ batch: code });
    const t = filled(map, 25);
    expect(new Set(scanIds(t, 10)).size).toBe(25);
    expect(t.usesBatchLookup).toBe(false);
    expect(scanIds(t, 10)).toHaveLength(25);
    expect(map.calls.filter((c) => c === 'lookupBatch')).toHaveLength(1);
  });

  it('starts over by iteration when batch lookup stops working in the middle of a scan', () => {
    const map = new FakeBpfMap({ batch: 'EOPNOTSUPP', batchFailsAfter: 1 });
    const t = filled(map, 25);
    const ids = scanIds(t, 10);
    expect(new Set(ids).size).toBe(25);
    expect(ids).toHaveLength(35);
  });

  it('passes any other batch error on', () => {
    const t = filled(new FakeBpfMap({ batch: 'EPERM' }), 5);
    expect(() => t.scan(10)).toThrow(expect.objectContaining({ code: 'EPERM' }));
    expect(t.usesBatchLookup).toBeUndefined();
  });

  it('keeps its place when the caller deletes the entries it was given, though iteration restarts on a deleted key', () => {
    const map = new FakeBpfMap({ batch: 'absent' });
    const t = filled(map, 30);
    // Deleting the last entry of every batch would send a GET_NEXT_KEY walk back to the first key.
    const ids = scanIds(t, 4, (keys) => {
      const last = keys[keys.length - 1];
      if (last) t.delete(last);
    });
    expect(ids).toHaveLength(30);
    expect(new Set(ids).size).toBe(30);
  });

  it('still reaches every remaining entry when its read-ahead entry is deleted', () => {
    const map = new FakeBpfMap({ batch: 'absent' });
    const t = filled(map, 6);
    const first = t.scan(3);
    // The 4th key in map order is the one read ahead. Deleting it sends GET_NEXT_KEY back to the first key, so the
    // first three come again: allowed by the scan contract, and rare, since callers delete what they were given.
    const ahead = [...map.store.keys()].sort()[3]!;
    expect(map.delete(Buffer.from(ahead, 'hex'))).toBe(true);
    const rest = t.scan(10, first.cursor);
    expect(rest.cursor).toBeUndefined();
    const ids = new Set(rest.entries.map(([k]) => encodeKey(k).toString('hex')));
    expect(ids).toEqual(new Set(map.store.keys()));
    expect(ids.has(ahead)).toBe(false);
  });
});

describe('isBatchUnsupported', () => {
  it('recognises the codes and errno numbers of a missing batch operation', () => {
    for (const code of ['ENOTSUP', 'ENOTSUPP', 'EOPNOTSUPP', 'EINVAL']) expect(isBatchUnsupported({ code })).toBe(true);
    for (const errno of [-95, 95, -524, -22]) expect(isBatchUnsupported({ errno })).toBe(true);
    for (const other of [{ code: 'EPERM' }, { errno: -1 }, new Error('x'), null, 'ENOTSUP']) {
      expect(isBatchUnsupported(other)).toBe(false);
    }
  });
});
