import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FlowPair } from '@flowlb/flow-table';
import {
  Topology,
  describePrivileged,
  runUdpClient,
  startUdpEcho,
  twoArmedTopology,
  type TwoArmed,
  type UdpEcho,
} from '@flowlb/testkit';
import { XdpForwarder, type XdpStats } from './index.js';

const VIP_PORT = 5000;
const BACKEND_PORT = 7000;

function delta(after: XdpStats, before: XdpStats): Partial<XdpStats> {
  const d: Partial<XdpStats> = {};
  for (const k of Object.keys(after) as (keyof XdpStats)[]) if (after[k] !== before[k]) d[k] = after[k] - before[k];
  return d;
}

/** A datagram of about `size` bytes whose every byte depends on its sequence number, so a mixed-up fragment shows. */
function bigPayload(seq: number, size: number): string {
  const head = `#${seq}:`;
  let body = '';
  for (let i = 0; body.length < size - head.length; i++) body += String.fromCharCode(97 + ((seq * 7 + i) % 26));
  return head + body;
}

// Paths of a known flow's packets other than the plain hit: real datagrams between network namespaces.
describePrivileged('XdpForwarder: fragments and egress interfaces without XDP', () => {
  describe('datagrams larger than the MTU, both directions', () => {
    let net: TwoArmed;
    let fwd: XdpForwarder;
    let echo: UdpEcho;

    beforeAll(async () => {
      net = await twoArmedTopology({ clients: 1, backends: 1, xdpPassOnPeers: 'native', staticNeighbors: true });
      fwd = await XdpForwarder.load({ netns: net.lb.ns, flowsMaxEntries: 1024 });
      fwd.attach([net.lb.front.ifname, net.lb.back.ifname], { mode: 'native' });
      const b = net.backends[0]!;
      // The reply is the datagram again with a prefix: each one 4,000 bytes and more, three fragments on a 1500 MTU.
      echo = await startUdpEcho(net.topology, b.ns, { addr: b.addr, port: BACKEND_PORT, prefix: 'reply:' });
    });

    afterAll(async () => {
      await echo?.stop().catch(() => {});
      fwd?.close();
      await net?.destroy();
    });

    it('a backend\'s 4,000-byte replies reach the client whole, forwarded fragment by fragment in the kernel', async () => {
      const vip = { address: net.lb.front.addr, port: VIP_PORT };
      const pair: FlowPair = {
        client: { address: net.client.addr, port: 42000 },
        vip,
        snat: { address: net.lb.back.addr, port: 22000 },
        target: { address: net.backends[0]!.addr, port: BACKEND_PORT },
      };
      fwd.table.installPair(pair, process.hrtime.bigint());
      const count = 10;
      const payloads = Array.from({ length: count }, (_, i) => bigPayload(i, 4000));
      const before = fwd.stats();
      const r = await runUdpClient(net.topology, net.client.ns, {
        target: vip,
        bind: `${net.client.addr}:${pair.client.port}`,
        payloads,
        lockstep: true,
        timeoutMs: 3000,
      });

      expect(r.lostSeqs).toEqual([]);
      expect(r.replies.length).toBe(count);
      r.replies.forEach((reply, i) => {
        expect(reply.from).toBe(`${vip.address}:${VIP_PORT}`);
        expect(reply.data.length).toBe(6 + payloads[i]!.length);
        expect(reply.data).toBe(`reply:${payloads[i]}`);
      });
      // The backend got every datagram whole too, from the flow's SNAT address and port.
      const lines = echo.lines();
      expect(lines.length).toBe(count);
      for (const l of lines) expect(l.from).toBe(`${pair.snat.address}:${pair.snat.port}`);

      const d = delta(fwd.stats(), before);
      // 4,000 bytes of UDP payload make three fragments at 1500, so do the 4,006-byte replies: six a round trip,
      // every one forwarded by the program; none went up to the kernel, which would have kept the replies (no
      // socket is bound to SNAT:P).
      const { notIpv4Udp, ...udp } = d;
      expect(udp).toEqual({ fragmentFwd: 6 * count });
      expect(notIpv4Udp ?? 0).toBeLessThanOrEqual(4);
    });
  });

  describe('a backend behind a bridge on the balancer', () => {
    const topo = new Topology({ prefix: 'fbr' });
    let fwd: XdpForwarder | undefined;
    let echo: UdpEcho | undefined;
    let ns: { client: string; lb: string; backend: string };
    const addr = { client: '10.211.1.2', front: '10.211.1.1', bridge: '10.211.2.1', backend: '10.211.2.10' };
    let ifs: { front: string; port: string };

    beforeAll(async () => {
      ns = { client: await topo.addNamespace('cl'), lb: await topo.addNamespace('lb'), backend: await topo.addNamespace('be') };
      ifs = { front: topo.uniqueIfname('fr'), port: topo.uniqueIfname('pt') };
      await topo.addVethPair(ns.lb, ifs.front, ns.client, 'eth0', { addrA: `${addr.front}/24`, addrB: `${addr.client}/24` });
      await topo.addVethPair(ns.lb, ifs.port, ns.backend, 'eth0', { addrB: `${addr.backend}/24` });
      const br = await topo.addBridge(ns.lb, 'br0');
      await topo.addBridgePort(ns.lb, br.ifname, ifs.port);
      await topo.addAddress(ns.lb, br.ifname, `${addr.bridge}/24`);
      await topo.addRoute(ns.client, 'default', { via: addr.front });
      await topo.addRoute(ns.backend, 'default', { via: addr.bridge });
      // The client's side receives frames the program sends out of the front interface.
      await topo.attachXdpPass(ns.client, 'eth0');
      fwd = await XdpForwarder.load({ netns: ns.lb, flowsMaxEntries: 1024 });
      // The bridge port too: the backend's replies come in there, before the bridge sees them. The route to the
      // backend leaves by br0, which takes no XDP frames.
      fwd.attach([ifs.front, ifs.port], { mode: 'native' });
      echo = await startUdpEcho(topo, ns.backend, { addr: addr.backend, port: BACKEND_PORT, prefix: 'reply:' });
    });

    afterAll(async () => {
      await echo?.stop().catch(() => {});
      fwd?.close();
      const report = await topo.destroy();
      if (report.errors.length > 0) throw new Error(`cleanup: ${report.errors.join('; ')}`);
    });

    it('datagrams to it are handed to the kernel rewritten and delivered; its replies come back through the program', async () => {
      const f = fwd!;
      const vip = { address: addr.front, port: VIP_PORT };
      const pair: FlowPair = {
        client: { address: addr.client, port: 43000 },
        vip,
        snat: { address: addr.bridge, port: 23000 },
        target: { address: addr.backend, port: BACKEND_PORT },
      };
      f.table.installPair(pair, process.hrtime.bigint());
      const before = f.stats();
      const count = 20;
      const r = await runUdpClient(topo, ns.client, {
        target: vip,
        bind: `${addr.client}:${pair.client.port}`,
        count,
        lockstep: true,
        timeoutMs: 2000,
        payload: 'via the bridge #{seq}',
      });
      expect(r.lostSeqs).toEqual([]);
      for (const reply of r.replies) expect(reply.from).toBe(`${vip.address}:${VIP_PORT}`);
      for (const l of echo!.lines()) expect(l.from).toBe(`${pair.snat.address}:${pair.snat.port}`);

      const d = delta(f.stats(), before);
      // Every client datagram went the kernel's way out of br0 (the first may have waited for ARP instead); every
      // reply came back through the program, which may also have left the first to the kernel's ARP.
      expect((d.egressNoXdp ?? 0) + (d.fibNoNeigh ?? 0)).toBe(2 * count - (d.revHit ?? 0));
      expect(d.egressNoXdp).toBeGreaterThanOrEqual(count - 1);
      expect(d.revHit).toBeGreaterThanOrEqual(count - 1);
      expect(d.fwdHit ?? 0).toBe(0);
    });
  });
});
