import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { FlowPair } from '@flowlb/flow-table';
import { describePrivileged, runUdpClient, startUdpEcho, twoArmedTopology, type TwoArmed, type UdpEcho } from '@flowlb/testkit';
import { BpfMap, Program, STAT_NAMES, XdpForwarder, xdpAttachment, withNetns, type XdpStats } from './index.js';
import { sumPerCpu } from './stats.js';

const VIP_PORT = 5000;
const BACKEND_PORT = 7000;
const CLIENT_PORT = 40000;

// Links pinned next to the maps keep the program attached without any process, and a later forwarder takes them over.
describePrivileged('XdpForwarder with pinned links', () => {
  let net: TwoArmed;
  let echo: UdpEcho;
  let pinDir: string;
  let front: string;
  let back: string;
  let pair: FlowPair;
  /** Every forwarder a test loaded, closed in afterAll whatever happened. */
  const loaded: XdpForwarder[] = [];

  const load = async (): Promise<XdpForwarder> => {
    const f = await XdpForwarder.load({ netns: net.lb.ns, pinDir, pinLinks: true, flowsMaxEntries: 1024 });
    loaded.push(f);
    return f;
  };
  const onIface = (iface: string) => withNetns(net.lb.ns, () => xdpAttachment(iface));
  /** The counters as any process reads them: from the pinned map. */
  const pinnedStats = (): XdpStats => {
    const map = BpfMap.openPinned(join(pinDir, 'stats'));
    try {
      const key = Buffer.alloc(4);
      const out = {} as XdpStats;
      STAT_NAMES.forEach((name, i) => {
        key.writeUInt32LE(i);
        out[name] = sumPerCpu([map.lookup(key)]);
      });
      return out;
    } finally {
      map.close();
    }
  };
  const exchange = (count: number, opts: { intervalMs?: number } = {}) =>
    runUdpClient(net.topology, net.client.ns, {
      target: { address: net.lb.front.addr, port: VIP_PORT },
      bind: `${net.client.addr}:${CLIENT_PORT}`,
      count,
      payload: 'n {seq}',
      timeoutMs: 2000,
      ...(opts.intervalMs ? { intervalMs: opts.intervalMs } : { lockstep: true }),
    });

  beforeAll(async () => {
    net = await twoArmedTopology({ prefix: 'xpin', clients: 1, backends: 1, xdpPassOnPeers: 'native', staticNeighbors: true });
    pinDir = join(await net.topology.mountBpffs(), 'inst');
    front = net.lb.front.ifname;
    back = net.lb.back.ifname;
    const b = net.backends[0]!;
    echo = await startUdpEcho(net.topology, b.ns, { addr: b.addr, port: BACKEND_PORT });
    pair = {
      client: { address: net.client.addr, port: CLIENT_PORT },
      vip: { address: net.lb.front.addr, port: VIP_PORT },
      snat: { address: net.lb.back.addr, port: 20000 },
      target: { address: b.addr, port: BACKEND_PORT },
    };
  }, 60_000);

  afterAll(async () => {
    for (const f of loaded) {
      try {
        f.close();
      } catch {
        // already closed, or its interface is gone
      }
    }
    try {
      if (pinDir) XdpForwarder.removePins(pinDir);
    } catch {
      // unmounting the bpffs below drops the pins anyway
    }
    await echo?.stop().catch(() => undefined);
    await net?.destroy();
  });

  let first: XdpForwarder;
  let linkIds: number[];

  it('pins each link and the program next to the maps', async () => {
    first = await load();
    const added = first.attach([front, back], { mode: 'native' });
    expect(added.map((a) => [a.iface, a.how, a.pinPath])).toEqual([
      [front, 'created', join(pinDir, `link-${front}`)],
      [back, 'created', join(pinDir, `link-${back}`)],
    ]);
    expect(readdirSync(pinDir).sort()).toEqual(['flows', `link-${back}`, `link-${front}`, 'nexthop_ctl', 'prog', 'stats', 'target_slots', 'target_stats'].sort());
    const pinned = XdpForwarder.pinnedLinks(pinDir);
    expect(pinned.map((l) => [l.iface, l.ifindex, l.progId])).toEqual(
      [
        [back, net.lb.back.ifindex, first.program.id],
        [front, net.lb.front.ifindex, first.program.id],
      ].sort(),
    );
    linkIds = pinned.map((l) => l.linkId);
    const prog = Program.openPinned(join(pinDir, 'prog'));
    expect(prog.id).toBe(first.program.id);
    prog.close();

    first.table.installPair(pair, process.hrtime.bigint());
    const r = await exchange(5);
    expect(r.lostSeqs).toEqual([]);
  });

  it('close() leaves the pinned links attached, forwarding into the pinned counters', async () => {
    const id = first.program.id;
    first.close();
    expect(onIface(front).progId).toBe(id);
    expect(onIface(back).progId).toBe(id);
    const before = pinnedStats();
    const r = await exchange(10);
    expect(r.lostSeqs).toEqual([]);
    const after = pinnedStats();
    expect(after.fwdHit - before.fwdHit).toBe(10);
    expect(after.revHit - before.revHit).toBe(10);
  });

  it('a second forwarder takes the pinned links over while traffic flows, without losing a datagram', async () => {
    const oldId = XdpForwarder.pinnedLinks(pinDir)[0]!.progId;
    const before = pinnedStats();
    const received = echo.lines().length;
    // 300 datagrams over about a second; the takeover happens in the middle.
    const stream = exchange(300, { intervalMs: 3 });
    // Awaited below; a failure before that point must not surface as an unhandled rejection.
    stream.catch(() => undefined);
    await echo.waitForCount(received + 50, 5000);

    const second = await load();
    // The flows map is the pinned one, with the flow the first forwarder installed.
    expect([...second.table.pairs()].map((p) => p.pair.snat.port)).toEqual([20000]);
    const added = second.attach([front, back], { mode: 'native' });
    expect(added.map((a) => [a.iface, a.how, a.previousProgId])).toEqual([
      [front, 'updated', oldId],
      [back, 'updated', oldId],
    ]);
    expect(second.program.id).not.toBe(oldId);
    expect(onIface(front).progId).toBe(second.program.id);
    expect(onIface(back).progId).toBe(second.program.id);
    // The same links, now running the new program.
    expect(XdpForwarder.pinnedLinks(pinDir).map((l) => l.linkId)).toEqual(linkIds);
    const prog = Program.openPinned(join(pinDir, 'prog'));
    expect(prog.id).toBe(second.program.id);
    prog.close();

    const r = await stream;
    expect(echo.lines().length - received).toBe(300);
    expect(r.lostSeqs).toEqual([]);
    // Both programs counted into the one pinned map.
    const s = second.stats();
    expect(s.fwdHit - before.fwdHit).toBe(300);
    expect(s.revHit - before.revHit).toBe(300);
    second.close();
  });

  it('a pinned link whose interface is gone is replaced, and one in another mode than asked for too', async () => {
    await net.topology.addVethPair(net.lb.ns, 'extra0', net.lb.ns, 'extra1');
    const third = await load();
    third.attach([front, back, 'extra0'], { mode: 'native', sysctls: false });
    third.close();
    await net.topology.ip(net.lb.ns, 'link', 'del', 'extra0');
    const gone = XdpForwarder.pinnedLinks(pinDir).find((l) => l.iface === 'extra0');
    expect(gone).toMatchObject({ ifindex: 0 });

    const { a: extra0 } = await net.topology.addVethPair(net.lb.ns, 'extra0', net.lb.ns, 'extra1');
    const fourth = await load();
    const added = fourth.attach([front, back, 'extra0'], { mode: 'native', sysctls: false });
    expect(added.map((a) => [a.iface, a.how])).toEqual([
      [front, 'updated'],
      [back, 'updated'],
      ['extra0', 'replaced'],
    ]);
    expect(added[2]!.replaced).toBe('its interface is gone (the link is defunct)');
    expect(XdpForwarder.pinnedLinks(pinDir).find((l) => l.iface === 'extra0')).toMatchObject({
      ifindex: extra0.ifindex,
      progId: fourth.program.id,
    });
    fourth.close();

    const fifth = await load();
    fifth.attach([front, back], { mode: 'native', sysctls: false });
    const switched = fifth.attach(['extra0'], { mode: 'generic', sysctls: false });
    expect(switched[0]).toMatchObject({ how: 'replaced', replaced: 'it runs in native mode, generic was asked for' });
    expect(onIface('extra0')).toMatchObject({ mode: 'generic', progId: fifth.program.id });
    fifth.close();
  });

  it('prunePins() ends the pinned links of interfaces no longer attached', async () => {
    const sixth = await load();
    sixth.attach([front, back], { mode: 'native', sysctls: false });
    const pruned = sixth.prunePins();
    expect(pruned.map((l) => l.iface)).toEqual(['extra0']);
    expect(onIface('extra0').progId).toBe(0);
    expect(existsSync(join(pinDir, 'link-extra0'))).toBe(false);

    // detach() ends a pinned link too, and removes its pin.
    sixth.detach([back]);
    expect(onIface(back).progId).toBe(0);
    expect(existsSync(join(pinDir, `link-${back}`))).toBe(false);

    const removed = sixth.destroy();
    expect(removed).toMatchObject({ folderRemoved: true, leftover: [] });
    expect(removed!.links.map((l) => l.iface)).toEqual([front]);
    expect(removed!.removed.map((p) => p.slice(pinDir.length + 1)).sort()).toEqual(['flows', `link-${front}`, 'nexthop_ctl', 'prog', 'stats', 'target_slots', 'target_stats']);
    expect(existsSync(pinDir)).toBe(false);
    expect(onIface(front).progId).toBe(0);
  });

  it('removePins() cleans up after a forwarder that is gone, and finds nothing to do twice', async () => {
    const seventh = await load();
    seventh.attach([front, back], { mode: 'native', sysctls: false });
    seventh.close();
    expect(onIface(front).progId).toBe(seventh.program.id);
    const removed = XdpForwarder.removePins(pinDir);
    expect(removed.links.map((l) => [l.iface, l.progId])).toEqual(
      [
        [back, seventh.program.id],
        [front, seventh.program.id],
      ].sort(),
    );
    expect(removed.folderRemoved).toBe(true);
    expect(onIface(front).progId).toBe(0);
    expect(onIface(back).progId).toBe(0);
    expect(XdpForwarder.removePins(pinDir)).toEqual({ pinDir, links: [], removed: [], folderRemoved: false, leftover: [] });
  });

  it('without pinning, links end with the forwarder as before', async () => {
    const plain = await XdpForwarder.load({ netns: net.lb.ns, flowsMaxEntries: 64 });
    loaded.push(plain);
    expect(plain.attach([front], { mode: 'native', sysctls: false })[0]).toMatchObject({ how: 'created' });
    expect(plain.attachments[0]!.pinPath).toBeUndefined();
    plain.close();
    expect(onIface(front).progId).toBe(0);
    await expect(XdpForwarder.load({ pinLinks: true })).rejects.toThrow('pinLinks needs pinDir');
  });
});
