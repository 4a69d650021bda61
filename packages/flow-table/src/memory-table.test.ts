import { describe, expect, it } from 'vitest';
import { FLOWS_MAX_DEFAULT } from './layout.js';
import { MemoryFlowTable } from './memory-table.js';
import { forwardEntry, reverseEntry } from './pair.js';
import { examplePair } from './testing/arbitraries.js';

describe('MemoryFlowTable', () => {
  it('defaults to the size of the kernel map', () => {
    expect(new MemoryFlowTable().maxEntries).toBe(FLOWS_MAX_DEFAULT);
  });

  it('rejects a maxEntries that is not a positive integer', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      expect(() => new MemoryFlowTable({ maxEntries: bad })).toThrow(/maxEntries/);
    }
  });

  it('touch refreshes last_used of an existing entry only', () => {
    const t = new MemoryFlowTable();
    const pair = examplePair(1);
    t.installPair(pair, 10n);
    const [fwdKey] = forwardEntry(pair);
    expect(t.touch({ ...fwdKey }, 20n)).toBe(true);
    expect(t.get(fwdKey)?.lastUsed).toBe(20n);
    expect(t.get(reverseEntry(pair)[0])?.lastUsed).toBe(10n);
  });

  it('touch never brings a deleted entry back', () => {
    const t = new MemoryFlowTable();
    const pair = examplePair(2);
    t.installPair(pair, 10n);
    t.removePair(pair);
    expect(t.touch(forwardEntry(pair)[0], 30n)).toBe(false);
    expect(t.touch(reverseEntry(pair)[0], 30n)).toBe(false);
    expect(t.count()).toBe(0);
  });

  it('touch rejects an invalid timestamp and keeps the old one', () => {
    const t = new MemoryFlowTable();
    const [k, v] = forwardEntry(examplePair(3), 10n);
    t.set(k, v);
    expect(() => t.touch(k, -1n)).toThrow(/lastUsed/);
    expect(t.get(k)?.lastUsed).toBe(10n);
  });

  it('exposes size and clear', () => {
    const t = new MemoryFlowTable();
    t.installPair(examplePair(4), 1n);
    expect(t.size).toBe(2);
    t.clear();
    expect(t.size).toBe(0);
    expect([...t.entries()]).toEqual([]);
  });

  it('keeps an entry at its place in a running scan when it is replaced', () => {
    const t = new MemoryFlowTable();
    for (let i = 0; i < 6; i++) t.set(...forwardEntry(examplePair(i), 1n));
    const first = t.scan(3);
    // Replacing an entry already handed out must not move it ahead of the cursor.
    for (const [k, v] of first.entries) t.set(k, { ...v, lastUsed: 2n });
    const rest = t.scan(10, first.cursor);
    expect(rest.entries.map(([, v]) => v.lastUsed)).toEqual([1n, 1n, 1n]);
    expect(rest.cursor).toBeUndefined();
  });

  it('keeps scans on one table independent of each other', () => {
    const t = new MemoryFlowTable();
    for (let i = 0; i < 4; i++) t.set(...forwardEntry(examplePair(i), 1n));
    const a = t.scan(2);
    const b = t.scan(3);
    expect(t.scan(10, a.cursor).entries).toHaveLength(2);
    expect(t.scan(10, b.cursor).entries).toHaveLength(1);
  });
});
