import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BpfMapFlowTable } from './bpf-map-table.js';
import { decodeValue, encodeValue } from './codec.js';
import * as api from './index.js';
import {
  FLOW_F_CONFIRMED,
  FLOW_F_REVERSE,
  FLOW_F_TARGET_MASK,
  FLOW_F_TARGET_SHIFT,
  MAX_TARGET_SLOT,
  targetSlotOf,
  withTargetSlot,
} from './layout.js';
import { MemoryFlowTable } from './memory-table.js';
import { forwardEntry, isConfirmed, isReverse, pairFromEntry, reverseEntry } from './pair.js';
import type { FlowTable } from './table.js';
import { examplePair, flowPair } from './testing/arbitraries.js';
import { FakeBpfMap } from './testing/fake-bpf-map.js';

const slot = fc.integer({ min: 0, max: MAX_TARGET_SLOT });
const u32 = fc.integer({ min: 0, max: 0xffffffff });

describe('target slot bits', () => {
  it('are the 12 bits from bit 16, exported from the package', () => {
    expect(FLOW_F_TARGET_SHIFT).toBe(16);
    expect(FLOW_F_TARGET_MASK).toBe(0x0fff0000);
    expect(MAX_TARGET_SLOT).toBe(4095);
    expect(FLOW_F_TARGET_MASK & (FLOW_F_REVERSE | FLOW_F_CONFIRMED)).toBe(0);
    expect(api).toMatchObject({ FLOW_F_TARGET_SHIFT, FLOW_F_TARGET_MASK, MAX_TARGET_SLOT, targetSlotOf, withTargetSlot });
  });

  it.each([
    [0, 0, 0],
    [0, 1, 0x00010000],
    [0, 3, 0x00030000],
    [FLOW_F_REVERSE, 3, 0x00030001],
    [FLOW_F_REVERSE | FLOW_F_CONFIRMED, MAX_TARGET_SLOT, 0x0fff0003],
    [0xffffffff, 0, 0xf000ffff],
    [0xffffffff, 5, 0xf005ffff],
    [0x00070002, 0, 0x00000002],
  ])('withTargetSlot(%s, %s) is %s', (flags, s, expected) => {
    expect(withTargetSlot(flags, s)).toBe(expected);
    expect(targetSlotOf(expected)).toBe(s);
  });

  it('replaces only the slot: every other bit is kept, and the result is a u32', () => {
    fc.assert(
      fc.property(u32, slot, (flags, s) => {
        const out = withTargetSlot(flags, s);
        expect(out).toBeGreaterThanOrEqual(0);
        expect(out).toBeLessThanOrEqual(0xffffffff);
        expect(targetSlotOf(out)).toBe(s);
        expect((out & ~FLOW_F_TARGET_MASK) >>> 0).toBe((flags & ~FLOW_F_TARGET_MASK) >>> 0);
      }),
    );
  });

  it.each([[-1], [MAX_TARGET_SLOT + 1], [65536], [1.5], [Number.NaN], [Number.POSITIVE_INFINITY], ['3']])(
    'refuses slot %s',
    (bad) => {
      expect(() => withTargetSlot(0, bad as number)).toThrow(RangeError);
      expect(() => withTargetSlot(0, bad as number)).toThrow(/target slot .* is not an integer in 0\.\.4095/);
    },
  );
});

describe('entries with a target slot', () => {
  const pair = examplePair(3);

  it('default to slot 0, the flags they always had', () => {
    expect(forwardEntry(pair)[1].flags).toBe(0);
    expect(reverseEntry(pair)[1].flags).toBe(FLOW_F_REVERSE);
    expect(forwardEntry(pair, 9n)).toEqual(forwardEntry(pair, 9n, 0));
    expect(reverseEntry(pair, 9n)).toEqual(reverseEntry(pair, 9n, 0));
  });

  it('carry the slot in both entries, which stay what they were otherwise', () => {
    fc.assert(
      fc.property(flowPair, slot, (p, s) => {
        const [fk, fv] = forwardEntry(p, 5n, s);
        const [rk, rv] = reverseEntry(p, 6n, s);
        expect(targetSlotOf(fv.flags)).toBe(s);
        expect(targetSlotOf(rv.flags)).toBe(s);
        expect(isReverse(fv)).toBe(false);
        expect(isReverse(rv)).toBe(true);
        expect(isConfirmed(fv)).toBe(false);
        expect([fk, { ...fv, flags: 0 }]).toEqual(forwardEntry(p, 5n));
        expect([rk, { ...rv, flags: FLOW_F_REVERSE }]).toEqual(reverseEntry(p, 6n));
        expect(pairFromEntry(fk, fv)).toEqual(p);
        expect(pairFromEntry(rk, rv)).toEqual(p);
        // The codec keeps the bits.
        expect(decodeValue(encodeValue(fv)).flags).toBe(fv.flags);
      }),
    );
  });

  it('refuse a slot out of range', () => {
    expect(() => forwardEntry(pair, 0n, MAX_TARGET_SLOT + 1)).toThrow(RangeError);
    expect(() => reverseEntry(pair, 0n, -1)).toThrow(RangeError);
  });
});

const tables: Array<[string, () => FlowTable]> = [
  ['MemoryFlowTable', () => new MemoryFlowTable({ maxEntries: 64 })],
  ['BpfMapFlowTable', () => new BpfMapFlowTable(new FakeBpfMap({ maxEntries: 64 }))],
];

describe.each(tables)('%s.installPair with a target slot', (_name, make) => {
  it('writes the slot into both entries', () => {
    const t = make();
    const pair = examplePair(1);
    t.installPair(pair, 77n, 3);
    expect(t.get(forwardEntry(pair)[0])).toEqual(forwardEntry(pair, 77n, 3)[1]);
    expect(t.get(reverseEntry(pair)[0])).toEqual(reverseEntry(pair, 77n, 3)[1]);
    expect(targetSlotOf(t.get(forwardEntry(pair)[0])!.flags)).toBe(3);
    expect(t.get(reverseEntry(pair)[0])!.flags).toBe(0x00030000 | FLOW_F_REVERSE);
  });

  it('without one writes slot 0, as before', () => {
    const t = make();
    const pair = examplePair(2);
    t.installPair(pair, 1n);
    expect(t.get(forwardEntry(pair)[0])!.flags).toBe(0);
    expect(t.get(reverseEntry(pair)[0])!.flags).toBe(FLOW_F_REVERSE);
  });

  it('refuses a slot out of range before writing anything', () => {
    const t = make();
    expect(() => t.installPair(examplePair(3), 1n, MAX_TARGET_SLOT + 1)).toThrow(RangeError);
    expect(t.count()).toBe(0);
  });

  it('removes a pair whatever its slot, and reports it among the pairs', () => {
    const t = make();
    const pair = examplePair(4);
    t.installPair(pair, 1n, MAX_TARGET_SLOT);
    expect([...t.pairs()].map((r) => [r.pair, r.kind])).toEqual([[pair, 'pair']]);
    expect(t.removePair(pair)).toEqual({ forward: true, reverse: true });
    expect(t.count()).toBe(0);
  });
});

describe('MemoryFlowTable.touch', () => {
  it('confirms a forward entry and keeps its slot, as the program does', () => {
    const t = new MemoryFlowTable({ maxEntries: 8 });
    const pair = examplePair(5);
    t.installPair(pair, 1n, 42);
    expect(t.touch(forwardEntry(pair)[0], 2n)).toBe(true);
    const flags = t.get(forwardEntry(pair)[0])!.flags;
    expect(flags).toBe(withTargetSlot(FLOW_F_CONFIRMED, 42));
  });
});
