import { afterAll, afterEach, expect, it } from 'vitest';
import { describePrivileged, spawnLocal, Topology } from '@flowlb/testkit';
import { LoadBalancer } from './balancer.js';
import type { BalancerEvent } from './events.js';
import { bundlePeerCli } from './test-support/bundle.js';
import { LbProcess } from './test-support/lb-process.js';
import { scenarioMapper } from './test-support/scenario-mapper.js';
import { useLoopbackForwarder } from './test-support/loopback-forwarder.js';
import { EchoBackend, TestClient, waitUntil } from './test-support/udp-peers.js';

// The XDP datapath in this process: a forwarder passed in (as tests and embedders do), and 'auto' deciding.
describePrivileged('XDP datapath with a forwarder passed in', () => {
  const VIP = { address: '127.77.9.1', port: 5000 };
  const target = { address: '127.77.9.2', port: 7000 };
  const bed = useLoopbackForwarder(target);

  it('adopts the flows it finds, never hands out their ports again, and forwards late datagrams from the flow port', async () => {
    const now = process.hrtime.bigint();
    // Three flows of an earlier balancer on this VIP, and one of another VIP that happens to use port 24003
    // towards the same target: its reverse entry makes 24003 unusable for us.
    for (let i = 0; i < 3; i++) {
      bed.forwarder.table.installPair(
        { client: { address: '127.77.9.50', port: 1000 + i }, vip: VIP, snat: { address: VIP.address, port: 24000 + i }, target },
        now,
      );
    }
    bed.forwarder.table.installPair(
      {
        client: { address: '127.77.9.51', port: 1000 },
        vip: { address: '127.77.9.99', port: 5000 },
        snat: { address: VIP.address, port: 24003 },
        target,
      },
      now,
    );
    const events: BalancerEvent[] = [];
    const lb = new LoadBalancer({
      vip: VIP,
      snatPorts: { min: 24000, max: 24999 },
      mapper: scenarioMapper([target]),
      xdp: { forwarder: bed.forwarder },
      onEvent: (e) => events.push(e),
    });
    await lb.start();
    try {
      expect(lb.datapathChoice).toEqual({ kind: 'xdp', reason: 'an XDP forwarder was passed in (xdp.forwarder)' });
      expect(lb.stats().flows.adopted).toBe(3);
      expect(events).toContainEqual({ type: 'flows-adopted', count: 3 });

      const c = await TestClient.open('127.77.9.60');
      bed.clients.push(c);
      await c.send('to:0:one', VIP);
      await waitUntil(() => bed.echo.received.length === 1, 3000, 'the first datagram at the backend');
      expect(bed.echo.received[0]).toEqual({ from: `${VIP.address}:24004`, data: 'to:0:one' });
      expect(events).toContainEqual(
        expect.objectContaining({ type: 'snat-port-quarantined', snat: { address: VIP.address, port: 24003 }, target }),
      );

      // Nothing forwards in the kernel on loopback, so the next datagram reaches the VIP socket: the flow table
      // says where it goes, and it leaves from the flow's own port, and the flow counts as used.
      const forwardKey = { dstAddr: VIP.address, srcAddr: '127.77.9.60', dstPort: VIP.port, srcPort: c.port };
      const installedAt = bed.forwarder.table.get(forwardKey)!.lastUsed;
      await c.send('to:0:two', VIP);
      await waitUntil(() => bed.echo.received.length === 2, 3000, 'the late datagram at the backend');
      expect(bed.echo.received[1]).toEqual({ from: `${VIP.address}:24004`, data: 'to:0:two' });
      expect(bed.forwarder.table.get(forwardKey)!.lastUsed).toBeGreaterThan(installedAt);
      const s = lb.stats();
      expect(s.datagrams.forwardedNew).toBe(1);
      expect(s.datagrams.forwardedLate).toBe(1);
      expect(s.flows.created).toBe(1);
      expect(s.snat.portsInUse).toBe(5);
      expect(s.snat.quarantined).toBe(1);
      expect(s.snat.quarantinedTotal).toBe(1);
      expect(s.xdp).toMatchObject({ fwdHit: 0, revHit: 0 });
    } finally {
      await lb.stop();
    }
    // The forwarder belongs to the caller: still open, flows kept.
    expect(bed.forwarder.table.count()).toBe(10);
  });
});

describePrivileged("datapath 'auto'", () => {
  let topo: Topology | undefined;
  let bundle: { script: string; dispose: () => void } | undefined;

  afterEach(async () => {
    await topo?.destroy();
    topo = undefined;
  });
  afterAll(() => bundle?.dispose());

  const vethNamespace = async (): Promise<string> => {
    topo = new Topology({ prefix: 'lbauto' });
    const ns = await topo.addNamespace('auto');
    await topo.addVethPair(ns, 'a0', ns, 'a1');
    return ns;
  };

  it('chooses XDP where it can load and attach it, says why, and detaches on stop', async () => {
    const ns = await vethNamespace();
    const { withNetns, xdpAttachment } = await import('@flowlb/xdp-core');
    const lb = new LoadBalancer({
      vip: { address: '127.77.9.10', port: 5000 },
      mapper: scenarioMapper([]),
      interfaces: ['a0'],
      xdp: { netns: ns, mode: 'native', flowsMaxEntries: 256 },
    });
    await lb.start();
    try {
      expect(lb.datapath).toBe('xdp');
      expect(lb.datapathChoice!.reason).toMatch(/^auto: the process has CAP_NET_ADMIN and CAP_BPF\/CAP_SYS_ADMIN, @flowlb\/xdp-core loads \(libbpf [\d.]+\), interfaces a0$/);
      expect(Object.keys(lb.stats().xdp!)).toContain('fwdHit');
      expect(lb.table!.maxEntries).toBe(256);
      withNetns(ns, () => expect(xdpAttachment('a0').mode).toBe('native'));
    } finally {
      await lb.stop();
    }
    withNetns(ns, () => expect(xdpAttachment('a0').progId).toBe(0));
  });

  it.each([
    ['detaches on stop by default', undefined, false],
    ['leaves the program attached with detachOnStop: false', false, true],
  ] as const)('attaches a passed-in forwarder to the interfaces, reports how, and %s', async (_name, detachOnStop, attachedAfter) => {
    const ns = await vethNamespace();
    const { XdpForwarder, withNetns, xdpAttachment } = await import('@flowlb/xdp-core');
    const forwarder = await XdpForwarder.load({ netns: ns, flowsMaxEntries: 256 });
    const events: BalancerEvent[] = [];
    try {
      const lb = new LoadBalancer({
        vip: { address: '127.77.9.12', port: 5000 },
        mapper: scenarioMapper([]),
        interfaces: ['a0'],
        xdp: { forwarder, mode: 'native', ...(detachOnStop === undefined ? {} : { detachOnStop }) },
        onEvent: (e) => events.push(e),
      });
      await lb.start();
      const progId = withNetns(ns, () => xdpAttachment('a0').progId);
      expect(progId).toBe(forwarder.program.id);
      expect(events).toContainEqual({ type: 'xdp-attached', attachments: [{ iface: 'a0', how: 'created' }] });
      await lb.stop();
      expect(withNetns(ns, () => xdpAttachment('a0').progId)).toBe(attachedAfter ? progId : 0);
    } finally {
      forwarder.close();
    }
    // The forwarder's own links end with it.
    expect(withNetns(ns, () => xdpAttachment('a0').progId)).toBe(0);
  });

  it('refuses to start when an interface does not exist, naming it, and leaves the VIP free', async () => {
    const ns = await vethNamespace();
    const vip = { address: '127.77.9.11', port: 5000 };
    const lb = new LoadBalancer({ vip, mapper: scenarioMapper([]), interfaces: ['nope0'], xdp: { netns: ns } });
    await expect(lb.start()).rejects.toThrow(/cannot attach the XDP program to nope0 \(auto mode\): ENODEV/);
    expect(lb.state).toBe('stopped');
    const again = new LoadBalancer({ vip, mapper: scenarioMapper([]), datapath: 'userspace' });
    await again.start();
    await again.stop();
  });

  it('falls back to userspace in a process without the capabilities, says why, and forwards all the same', async () => {
    bundle ??= await bundlePeerCli();
    const vip = { address: '127.77.9.20', port: 5000 };
    const target = { address: '127.77.9.21', port: 7000 };
    const echo = await EchoBackend.start('t', target.address, target.port);
    const client = await TestClient.open('127.77.9.22');
    // Still uid 0, but with an empty bounding set the child's effective capabilities are empty.
    const lb = await LbProcess.launch(
      (args) =>
        spawnLocal('setpriv', ['--bounding-set=-all', '--inh-caps=-all', '--ambient-caps=-all', '--', process.execPath, ...args], {
          stdin: true,
        }),
      bundle.script,
      { vip, targets: [target], datapath: 'auto', interfaces: ['lo'] },
    );
    try {
      const started = lb.events.find((e) => e.type === 'datapath');
      expect(started).toEqual({
        type: 'datapath',
        kind: 'userspace',
        reason: 'auto: the process lacks CAP_NET_ADMIN and CAP_BPF (or CAP_SYS_ADMIN)',
      });
      expect((await client.request('to:0:hi', vip))).toEqual({ from: '127.77.9.20:5000', data: 't|to:0:hi' });
    } finally {
      await lb.stop();
      client.close();
      echo.close();
    }
  });
});
