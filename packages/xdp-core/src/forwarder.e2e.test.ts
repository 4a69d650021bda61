import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FlowPair } from '@flowlb/flow-table';
import {
  describePrivileged,
  listNamespaces,
  oneArmedTopology,
  runUdpClient,
  startUdpEcho,
  twoArmedTopology,
  type OneArmed,
  type TwoArmed,
  type UdpEcho,
} from '@flowlb/testkit';
import { XdpForwarder, xdpAttachment, withNetns, type XdpStats } from './index.js';

const VIP_PORT = 5000;
const BACKEND_PORT = 7000;
/** Ten times the program's 100 ms last_used refresh interval. */
const STALE_NS = 1_000_000_000n;

function delta(after: XdpStats, before: XdpStats): Partial<XdpStats> {
  const d: Partial<XdpStats> = {};
  for (const k of Object.keys(after) as (keyof XdpStats)[]) if (after[k] !== before[k]) d[k] = after[k] - before[k];
  return d;
}

// Real datagrams between network namespaces, forwarded by the XDP program with flows installed from TypeScript.
describePrivileged('XdpForwarder end to end', () => {
  const created: string[] = [];
  describe('two-armed: clients on one interface, backends on another (redirect)', () => {
    let net: TwoArmed;
    let fwd: XdpForwarder;
    const echoes: UdpEcho[] = [];

    beforeAll(async () => {
      net = await twoArmedTopology({ clients: 2, backends: 2, xdpPassOnPeers: 'native' });
      created.push(...net.topology.namespaces);
      fwd = await XdpForwarder.load({ netns: net.lb.ns, flowsMaxEntries: 1024 });
      fwd.attach([net.lb.front.ifname, net.lb.back.ifname], { mode: 'native' });
      for (const b of net.backends) {
        echoes.push(await startUdpEcho(net.topology, b.ns, { addr: b.addr, port: BACKEND_PORT, prefix: `${b.addr}:` }));
      }
    });

    afterAll(async () => {
      for (const e of echoes) await e.stop().catch(() => {});
      fwd?.close();
      await net?.destroy();
    });

    it('forwards each client to its backend and the replies back from the VIP', async () => {
      const vip = { address: net.lb.front.addr, port: VIP_PORT };
      const snatAddr = net.lb.back.addr;
      const pairs: FlowPair[] = net.clients.map((c, i) => ({
        client: { address: c.addr, port: 40000 + i },
        vip,
        snat: { address: snatAddr, port: 20000 + i },
        target: { address: net.backends[i]!.addr, port: BACKEND_PORT },
      }));
      // Stamped well past the program's refresh interval, so the first hit in each direction must move the stamp
      // (a fresh stamp may legitimately stay put for traffic shorter than the interval).
      const stamp = process.hrtime.bigint() - STALE_NS;
      for (const p of pairs) fwd.table.installPair(p, stamp);
      const before = fwd.stats();

      const results = await Promise.all(
        net.clients.map((c, i) =>
          runUdpClient(net.topology, c.ns, {
            target: vip,
            bind: `${c.addr}:${pairs[i]!.client.port}`,
            count: 20,
            lockstep: true,
            timeoutMs: 2000,
            payload: `from ${c.addr} #{seq}`,
          }),
        ),
      );

      results.forEach((r, i) => {
        expect(r.lostSeqs).toEqual([]);
        expect(r.received).toBe(20);
        for (const reply of r.replies) {
          // The client hears the VIP, never the backend or the SNAT address.
          expect(reply.from).toBe(`${vip.address}:${VIP_PORT}`);
          expect(reply.data.startsWith(`${net.backends[i]!.addr}:from ${net.clients[i]!.addr} #`)).toBe(true);
        }
      });
      // The backend sees the balancer's SNAT address and the flow's own port.
      echoes.forEach((e, i) => {
        const lines = e.lines();
        expect(lines.length).toBe(20);
        for (const l of lines) expect(l.from).toBe(`${snatAddr}:${20000 + i}`);
      });

      const d = delta(fwd.stats(), before);
      // Without neighbour entries the first datagram of each direction may go through the kernel (fibNoNeigh),
      // which resolves ARP and forwards it; everything after that takes the fast path.
      const slow = d.fibNoNeigh ?? 0;
      expect(slow).toBeLessThanOrEqual(4);
      expect((d.fwdHit ?? 0) + (d.revHit ?? 0) + slow).toBe(80);
      expect(d.fwdHit).toBeGreaterThanOrEqual(38);
      expect(d.revHit).toBeGreaterThanOrEqual(38);
      expect(d.miss ?? 0).toBe(0);

      // last_used moved for both entries of every flow: each saw hits in its own direction.
      for (const rec of fwd.table.pairs()) {
        expect(rec.kind).toBe('pair');
        expect(rec.forwardLastUsed!).toBeGreaterThan(stamp);
        expect(rec.reverseLastUsed!).toBeGreaterThan(stamp);
      }
    });

    it('a datagram of an unknown flow goes up to the kernel and is counted as a miss', async () => {
      const before = fwd.stats();
      const c = net.clients[0]!;
      const r = await runUdpClient(net.topology, c.ns, {
        target: { address: net.lb.front.addr, port: VIP_PORT },
        bind: `${c.addr}:45555`,
        count: 3,
        timeoutMs: 300,
      });
      expect(r.received).toBe(0);
      const d = delta(fwd.stats(), before);
      expect(d.miss).toBe(3);
      expect(d.fwdHit ?? 0).toBe(0);
    });

    it('detaches from every interface on close', async () => {
      fwd.close();
      withNetns(net.lb.ns, () => {
        expect(xdpAttachment(net.lb.front.ifname).progId).toBe(0);
        expect(xdpAttachment(net.lb.back.ifname).progId).toBe(0);
      });
    });
  });

  describe('one-armed: everything on one interface (XDP_TX), like the original', () => {
    let net: OneArmed;
    let fwd: XdpForwarder;
    let echo: UdpEcho;

    beforeAll(async () => {
      net = await oneArmedTopology({ clients: 1, backends: 1, xdpPassOnPeers: 'native', staticNeighbors: true });
      created.push(...net.topology.namespaces);
      fwd = await XdpForwarder.load({ netns: net.lb.ns, flowsMaxEntries: 1024 });
      fwd.attach([net.lb.iface.ifname], { mode: 'native' });
      const b = net.backends[0]!;
      echo = await startUdpEcho(net.topology, b.ns, { addr: b.addr, port: BACKEND_PORT });
    });

    afterAll(async () => {
      await echo?.stop().catch(() => {});
      fwd?.close();
      await net?.destroy();
    });

    it('forwards both directions out of the interface they came in on', async () => {
      const vip = { address: net.lb.iface.addr, port: VIP_PORT };
      const pair: FlowPair = {
        client: { address: net.client.addr, port: 41000 },
        vip,
        snat: { address: net.lb.iface.addr, port: 21000 },
        target: { address: net.backends[0]!.addr, port: BACKEND_PORT },
      };
      fwd.table.installPair(pair, process.hrtime.bigint());
      const before = fwd.stats();
      const r = await runUdpClient(net.topology, net.client.ns, {
        target: vip,
        bind: `${net.client.addr}:41000`,
        count: 25,
        lockstep: true,
        timeoutMs: 2000,
      });
      expect(r.lostSeqs).toEqual([]);
      for (const reply of r.replies) expect(reply.from).toBe(`${vip.address}:${VIP_PORT}`);
      for (const l of echo.lines()) expect(l.from).toBe(`${net.lb.iface.addr}:21000`);
      const d = delta(fwd.stats(), before);
      // Static neighbour entries: every datagram takes the fast path. Other frames on the segment (an ARP probe the
      // kernel sends on its own schedule) pass as not IPv4/UDP.
      const { notIpv4Udp, ...udp } = d;
      expect(udp).toEqual({ fwdHit: 25, revHit: 25 });
      expect(notIpv4Udp ?? 0).toBeLessThanOrEqual(4);
    });
  });

  it('leaves no namespace behind', async () => {
    expect(created.length).toBeGreaterThan(4);
    const left = new Set(await listNamespaces());
    expect(created.filter((n) => left.has(n))).toEqual([]);
  });
});
