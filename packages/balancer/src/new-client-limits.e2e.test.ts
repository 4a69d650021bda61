import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged } from '@flowlb/testkit';
import { startXdpBed, type XdpBed } from './test-support/xdp-bed.js';

// A host that opens new clients faster than its limit loses the excess in the XDP program: the balancer never sees it.
describePrivileged('new-client limits on the XDP datapath', () => {
  let bed: XdpBed | undefined;

  beforeAll(async () => {
    bed = await startXdpBed('lbr', {
      snatPorts: { min: 22000, max: 22999 },
      // A burst of three, then one new client a second: five sent at once leave two beyond the limit.
      newClientLimits: { perSource: { rate: 1, burst: 3 } },
      dropHoldMs: 0,
    });
  }, 120_000);

  afterAll(async () => {
    await bed?.stop();
  });

  it("drops a source's new clients beyond its burst in the kernel, while its flows and other sources go on", async () => {
    const { lb, net, vip } = bed!;
    const before = await lb.stats();
    // Five new clients of one address at once, well within a second.
    const burst = await bed!.peer<{ clients: { port: number; replies: (unknown | null)[] }[] }>(0, 'clients', {
      address: net.clients[0]!.addr,
      target: vip,
      ports: [41000, 41001, 41002, 41003, 41004],
      payload: 'to:0:{port}',
      requests: 1,
      timeoutMs: 1000,
    });
    expect(burst.clients.filter((c) => c.replies[0] !== null)).toHaveLength(3);
    // The clients it let through keep talking, through their flows; another source is not held back.
    const through = burst.clients.find((c) => c.replies[0] !== null)!.port;
    expect((await bed!.send(0, through, ['to:0:more', 'to:0:again'], 100)).received.map((r) => r.data)).toEqual(['b|to:0:more', 'b|to:0:again']);
    expect((await bed!.send(1, 41000, ['to:0:other'], 100)).received.map((r) => r.data)).toEqual(['b|to:0:other']);
    const after = await lb.stats();
    expect(after.xdp!.rateLimited! - (before.xdp!.rateLimited ?? 0)).toBe(2);
    // Nothing of the dropped clients reached the balancer.
    expect(after.datagrams.slowPathIn - before.datagrams.slowPathIn).toBe(4);
    expect(after.flows.created).toBe(4);
  }, 60_000);
});
