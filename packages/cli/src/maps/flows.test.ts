import { describe, expect, it } from 'vitest';
import type { FlowPairRecord } from '@flowlb/flow-table';
import { collectFlows } from './flows.js';

const NOW = 1_000_000_000_000n;
const MS = 1_000_000n;

/** Flow `i`: client port 40000 + i, last used `idleMs` before NOW in both directions. */
function rec(i: number, idleMs: number): FlowPairRecord {
  return {
    pair: {
      client: { address: '203.0.113.5', port: 40000 + i },
      vip: { address: '192.0.2.1', port: 4433 },
      snat: { address: '198.51.100.1', port: 10000 + i },
      target: { address: '10.0.0.10', port: 7000 },
    },
    kind: 'pair',
    forwardLastUsed: NOW - BigInt(idleMs) * MS,
    reverseLastUsed: NOW - BigInt(idleMs) * MS,
  };
}

describe('collectFlows', () => {
  it('keeps the most recently used flows, counts them all', async () => {
    // Idle times 0..999 ms in a scrambled order.
    const records = Array.from({ length: 1000 }, (_, i) => rec(i, (i * 389) % 1000));
    const page = await collectFlows(records, 5, { now: NOW });
    expect(page.count).toBe(1000);
    expect(page.truncated).toBe(true);
    expect(page.flows.map((f) => f.idleMs)).toEqual([0, 1, 2, 3, 4]);
    const all = await collectFlows(records.slice(0, 3), 5, { now: NOW });
    expect(all).toMatchObject({ count: 3, truncated: false });
    expect(all.flows).toHaveLength(3);
  });

  it('stops a walk that started over, and lists a flow seen twice once', async () => {
    // A kernel map walked while entries are deleted restarts from its first key: the same flows come again.
    function* restarting(): Generator<FlowPairRecord> {
      for (;;) for (let i = 0; i < 4; i++) yield rec(i, i * 10);
    }
    const page = await collectFlows(restarting(), 10, { now: NOW, maxRecords: 8 });
    expect(page.count).toBe(8);
    expect(page.flows.map((f) => f.client.port)).toEqual([40000, 40001, 40002, 40003]);
  });

  it('lets the event loop run while it walks', async () => {
    const walk = async (yieldEvery: number): Promise<boolean> => {
      let ran = false;
      let ranBeforeTheEnd = false;
      setImmediate(() => (ran = true));
      function* records(): Generator<FlowPairRecord> {
        for (let i = 0; i < 3000; i++) yield rec(i, 1);
        ranBeforeTheEnd = ran;
      }
      await collectFlows(records(), 10, { now: NOW, yieldEvery });
      await new Promise<void>((resolve) => setImmediate(resolve));
      return ranBeforeTheEnd;
    };
    // What was queued before the walk runs while it is under way; without a yield, only after it.
    expect(await walk(1000)).toBe(true);
    expect(await walk(10_000)).toBe(false);
  });
});
