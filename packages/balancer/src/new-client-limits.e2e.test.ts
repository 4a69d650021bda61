import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged, startUdpEcho, twoArmedTopology, type TwoArmed, type UdpEcho } from '@flowlb/testkit';
import { bundlePeerCli } from './test-support/bundle.js';
import { LbProcess, runPeer } from './test-support/lb-process.js';

// A host that opens new clients faster than its limit loses the excess in the XDP program: the balancer never sees it.
describePrivileged('new-client limits on the XDP datapath', () => {
  let net: TwoArmed;
  let bundle: { script: string; dispose: () => void } | undefined;
  let lb: LbProcess | undefined;
  let echo: UdpEcho | undefined;

  beforeAll(async () => {
    bundle = await bundlePeerCli();
    net = await twoArmedTopology({ prefix: 'lbr', clients: 2, backends: 1, xdpPassOnPeers: 'native' });
    const backend = net.backends[0]!;
    echo = await startUdpEcho(net.topology, backend.ns, { addr: backend.addr, port: 7000, prefix: 'b|' });
    lb = await LbProcess.start(net.topology, net.lb.ns, bundle.script, {
      vip: { address: net.lb.front.addr, port: 5000 },
      snatAddress: net.lb.back.addr,
      snatPorts: { min: 22000, max: 22999 },
      targets: [{ address: backend.addr, port: 7000 }],
      datapath: 'xdp',
      interfaces: [net.lb.front.ifname, net.lb.back.ifname],
      // A burst of three, then one new client every ten seconds: none more within this test.
      newClientLimits: { perSource: { rate: 1, burst: 3 } },
      dropHoldMs: 0,
    });
  }, 120_000);

  afterAll(async () => {
    await lb?.stop();
    await echo?.stop().catch(() => undefined);
    await net?.destroy();
    bundle?.dispose();
  });

  it("drops a source's new clients beyond its burst in the kernel, while its flows and other sources go on", async () => {
    const send = (i: number, port: number, payloads: string[]) =>
      runPeer<{ received: { from: string; data: string }[] }>(net.topology, net.clients[i]!.ns, bundle!.script, 'send', {
        bind: { address: net.clients[i]!.addr, port },
        target: { address: net.lb.front.addr, port: 5000 },
        payloads,
        gapMs: 100,
        collectMs: 500,
      });
    const before = await lb!.stats();
    // Five new clients of one address at once, well within a second.
    const burst = await runPeer<{ clients: { port: number; replies: (unknown | null)[] }[] }>(
      net.topology,
      net.clients[0]!.ns,
      bundle!.script,
      'clients',
      { address: net.clients[0]!.addr, target: { address: net.lb.front.addr, port: 5000 }, ports: [41000, 41001, 41002, 41003, 41004], payload: 'to:0:{port}', requests: 1, timeoutMs: 1000 },
    );
    expect(burst.clients.filter((c) => c.replies[0] !== null)).toHaveLength(3);
    // The clients it let through keep talking, through their flows; another source is not held back.
    const through = burst.clients.find((c) => c.replies[0] !== null)!.port;
    expect((await send(0, through, ['to:0:more', 'to:0:again'])).received.map((r) => r.data)).toEqual(['b|to:0:more', 'b|to:0:again']);
    expect((await send(1, 41000, ['to:0:other'])).received.map((r) => r.data)).toEqual(['b|to:0:other']);
    const after = await lb!.stats();
    expect(after.xdp!.rateLimited! - (before.xdp!.rateLimited ?? 0)).toBe(2);
    // Nothing of the dropped clients reached the balancer.
    expect(after.datagrams.slowPathIn - before.datagrams.slowPathIn).toBe(4);
    expect(after.flows.created).toBe(4);
  }, 60_000);
});
