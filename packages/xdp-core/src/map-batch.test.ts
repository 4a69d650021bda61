import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { describePrivileged } from '@flowlb/testkit';
import { BpfObject, type BatchWriteError, type BpfMap } from './index.js';
import { FIXTURE_MAPS_SOURCE, compileBpf, type CompiledObjects } from './testing/bpf-fixtures.js';

function u32(i: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(i);
  return b;
}
function u64(i: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(i) * 1000n);
  return b;
}

function thrown(fn: () => unknown): BatchWriteError | undefined {
  try {
    fn();
  } catch (e) {
    return e as BatchWriteError;
  }
  return undefined;
}

describePrivileged('BpfMap.updateBatch that stops part-way', () => {
  let fixture: CompiledObjects;
  let map: BpfMap;

  beforeAll(async () => {
    fixture = compileBpf(FIXTURE_MAPS_SOURCE);
    const obj = BpfObject.open(fixture.objects[0]!);
    try {
      await obj.load();
      map = obj.map('small_hash');
    } finally {
      obj.close();
    }
  });

  afterAll(() => {
    map?.close();
    fixture?.remove();
  });

  beforeEach(() => {
    for (const k of [...map.keys()]) map.delete(k);
  });

  it('a full map: E2BIG, with how many entries went in', () => {
    expect(map.maxEntries).toBe(4);
    const keys = Array.from({ length: 10 }, (_, i) => u32(i + 1));
    const err = thrown(() => map.updateBatch(keys, keys.map((_, i) => u64(i + 1))));
    expect(err).toBeInstanceOf(Error);
    expect(err).toMatchObject({ code: 'E2BIG', errno: -7, syscall: 'bpf_map_update_batch', written: 4 });
    // The first `written` entries, and only they, are in the map.
    expect([...map.keys()].map((k) => k.readUInt32LE(0)).sort((a, b) => a - b)).toEqual([1, 2, 3, 4]);
    expect(map.lookup(u32(4))).toEqual(u64(4));
  });

  it('a map already part full takes what room it has left', () => {
    expect(map.updateBatch([u32(100), u32(101)], [u64(100), u64(101)])).toBe(2);
    const keys = [u32(1), u32(101), u32(2), u32(3), u32(4)];
    // Replacing 101 takes no room: 1, 101 and 2 go in, 3 finds the map full.
    const err = thrown(() => map.updateBatch(keys, keys.map(() => u64(9))));
    expect(err).toMatchObject({ code: 'E2BIG', syscall: 'bpf_map_update_batch', written: 3 });
    expect(map.lookup(u32(101))).toEqual(u64(9));
    expect(map.lookup(u32(3))).toBeUndefined();
  });

  it("flags other than 'any' are the kernel's to refuse for batches: EINVAL, nothing written", () => {
    const err = thrown(() => map.updateBatch([u32(1)], [u64(1)], 'noexist'));
    expect(err).toMatchObject({ code: 'EINVAL', written: 0 });
  });

  it('a batch that fits returns its count', () => {
    const keys = [u32(1), u32(2), u32(3)];
    expect(map.updateBatch(keys, keys.map((_, i) => u64(i)))).toBe(3);
    expect(map.updateBatch([], [])).toBe(0);
  });
});
