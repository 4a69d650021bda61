import { expect, it } from 'vitest';
import { describePrivileged } from '@flowlb/testkit';
import { bareXdp } from '../systems/bare-xdp.js';
import { flowlbXdp } from '../systems/flowlb.js';
import { measureSystem } from './forwarding.js';

const ctx = { runs: 1, quick: true, log: () => {} };

describePrivileged('forwarding scenario, end to end on the bench topology', () => {
  it('the generator reaches the backend through the bare forwarder', async () => {
    const notes: string[] = [];
    const [cell] = await measureSystem(ctx, bareXdp, [{ flows: 4, payload: 64 }], 0.3, notes);
    expect(cell?.error).toBeUndefined();
    expect(cell?.pps.median).toBeGreaterThan(1000);
    expect(cell?.offeredPps.median).toBeGreaterThan(0);
    expect(notes).toEqual([]);
  }, 60_000);

  it('flowlb run learns every client in the warm-up, then forwards them all in the kernel', async () => {
    const notes: string[] = [];
    const cells = await measureSystem(ctx, flowlbXdp, [{ flows: 50, payload: 64 }, { flows: 50, payload: 1472 }], 0.3, notes);
    for (const cell of cells) {
      expect(cell.error).toBeUndefined();
      expect(cell.pps.median).toBeGreaterThan(1000);
    }
    // A note appears when a warm-up leaves clients on the slow path or measured datagrams missed a flow.
    expect(notes).toEqual([]);
  }, 90_000);
});
