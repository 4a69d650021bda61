import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { FlowPair } from '@flowlb/flow-table';
import { describePrivileged, runUdpClient, startUdpEcho, twoArmedTopology, type TwoArmed, type UdpEcho } from '@flowlb/testkit';
import { XdpForwarder, readSysctlState, sysctlStateFile, withNetns, xdpAttachment, type SysctlState } from './index.js';

const VIP_PORT = 5000;
const BACKEND_PORT = 7000;

// The kernel's own sysctls, in the balancer's namespace of a real topology: what it needs to forward a packet the
// program passes up, and what attaching sets and detaching puts back.
describePrivileged('sysctls of the interfaces the program is attached to', () => {
  let net: TwoArmed;
  let echo: UdpEcho;
  let runDir: string;
  let pair: FlowPair;
  let front: string;
  let back: string;
  let clientPort = 41000;
  const loaded: XdpForwarder[] = [];
  const savedRunDir = process.env.FLOWLB_RUN_DIR;

  const load = async (options: { pinDir?: string } = {}): Promise<XdpForwarder> => {
    const f = await XdpForwarder.load({ netns: net.lb.ns, flowsMaxEntries: 256, ...(options.pinDir ? { pinDir: options.pinDir, pinLinks: true } : {}) });
    loaded.push(f);
    return f;
  };

  /** Values read with sysctl(8) inside the namespace, by dotted name. */
  const read = async (...keys: string[]): Promise<Record<string, string>> => {
    const { stdout } = await net.topology.exec(net.lb.ns, 'sysctl', ['-n', ...keys]);
    const lines = stdout.trimEnd().split('\n');
    return Object.fromEntries(keys.map((k, i) => [k, lines[i]!.trim()]));
  };
  const confOf = async (iface: string): Promise<Record<string, string>> => {
    const r = await read(`net.ipv4.conf.${iface}.forwarding`, `net.ipv4.conf.${iface}.accept_local`, `net.ipv4.conf.${iface}.rp_filter`);
    return { forwarding: r[`net.ipv4.conf.${iface}.forwarding`]!, accept_local: r[`net.ipv4.conf.${iface}.accept_local`]!, rp_filter: r[`net.ipv4.conf.${iface}.rp_filter`]! };
  };

  /**
   * A balancer host that forwards nothing, accept_local off, reverse path filtering strict through conf/all. Neighbour
   * entries are flushed, so that the first packet of a flow finds no next hop and goes up to the kernel.
   */
  const baseline = async (): Promise<void> => {
    await net.topology.sysctl(net.lb.ns, {
      'net.ipv4.ip_forward': 0,
      // ip_forward copies itself into every interface only when its value changes.
      [`net.ipv4.conf.${front}.forwarding`]: 0,
      [`net.ipv4.conf.${back}.forwarding`]: 0,
      'net.ipv4.conf.all.accept_local': 0,
      [`net.ipv4.conf.${front}.accept_local`]: 0,
      [`net.ipv4.conf.${back}.accept_local`]: 0,
      'net.ipv4.conf.all.rp_filter': 1,
      [`net.ipv4.conf.${front}.rp_filter`]: 0,
      [`net.ipv4.conf.${back}.rp_filter`]: 1,
    });
    await net.topology.ip(net.lb.ns, 'neigh', 'flush', 'dev', back);
  };
  const BASELINE = { forwarding: '0', accept_local: '0' };

  /** Datagrams from the client to the VIP on a fresh client port, through a flow installed for it. */
  const viaFlow = async (fwd: XdpForwarder, count: number, timeoutMs: number) => {
    const port = clientPort++;
    pair = {
      client: { address: net.client.addr, port },
      vip: { address: net.lb.front.addr, port: VIP_PORT },
      snat: { address: net.lb.back.addr, port: port - 20000 },
      target: { address: net.backends[0]!.addr, port: BACKEND_PORT },
    };
    fwd.table.installPair(pair, process.hrtime.bigint());
    const received = echo.lines().length;
    const r = await runUdpClient(net.topology, net.client.ns, {
      target: { address: net.lb.front.addr, port: VIP_PORT },
      bind: `${net.client.addr}:${port}`,
      count,
      payload: 'n {seq}',
      lockstep: true,
      timeoutMs,
    });
    return { client: r, atBackend: echo.lines().length - received };
  };

  /** `in_martian_src` of /proc/net/stat/rt_cache, summed over CPUs: sources the routing refused. */
  const martians = async (): Promise<number> => {
    const { stdout } = await net.topology.exec(net.lb.ns, 'cat', ['/proc/net/stat/rt_cache']);
    const [head, ...rows] = stdout.trim().split('\n');
    const col = head!.trim().split(/\s+/).indexOf('in_martian_src');
    expect(col).toBeGreaterThanOrEqual(0);
    return rows.reduce((sum, row) => sum + parseInt(row.trim().split(/\s+/)[col]!, 16), 0);
  };

  beforeAll(async () => {
    runDir = mkdtempSync(join(tmpdir(), 'flowlb-sysctls-run-'));
    process.env.FLOWLB_RUN_DIR = runDir;
    net = await twoArmedTopology({ prefix: 'xsys', xdpPassOnPeers: 'native' });
    front = net.lb.front.ifname;
    back = net.lb.back.ifname;
    const b = net.backends[0]!;
    echo = await startUdpEcho(net.topology, b.ns, { addr: b.addr, port: BACKEND_PORT });
  }, 60_000);

  afterAll(async () => {
    for (const f of loaded) {
      try {
        f.close();
      } catch {
        // closed already
      }
    }
    await echo?.stop().catch(() => undefined);
    await net?.destroy();
    if (savedRunDir === undefined) delete process.env.FLOWLB_RUN_DIR;
    else process.env.FLOWLB_RUN_DIR = savedRunDir;
    if (runDir) rmSync(runDir, { recursive: true, force: true });
  });

  it('the kernel forwards by the forwarding of the interface a packet arrives on, not the one it leaves by', async () => {
    await baseline();
    const direct = async (): Promise<number> => {
      const received = echo.lines().length;
      await runUdpClient(net.topology, net.client.ns, {
        target: { address: net.backends[0]!.addr, port: BACKEND_PORT },
        bind: `${net.client.addr}:${clientPort++}`,
        count: 3,
        timeoutMs: 300,
      });
      return echo.lines().length - received;
    };
    expect(await direct()).toBe(0);
    // front is where the client's datagrams arrive; back is where they leave.
    await net.topology.sysctl(net.lb.ns, { [`net.ipv4.conf.${front}.forwarding`]: 0, [`net.ipv4.conf.${back}.forwarding`]: 1 });
    expect(await direct()).toBe(0);
    await net.topology.sysctl(net.lb.ns, { [`net.ipv4.conf.${front}.forwarding`]: 1, [`net.ipv4.conf.${back}.forwarding`]: 0 });
    expect(await direct()).toBe(3);
    expect((await read('net.ipv4.ip_forward'))['net.ipv4.ip_forward']).toBe('0');
  });

  it('strict reverse path filtering drops, as a martian, the rewritten packet the program passes up; loose forwards it', async () => {
    await baseline();
    const fwd = await load();
    try {
      fwd.attach([front, back], { mode: 'native', sysctls: false });
      // Everything but rp_filter as attach sets it; rp_filter strict on the interface the client's datagrams arrive on.
      await net.topology.sysctl(net.lb.ns, {
        'net.ipv4.conf.all.rp_filter': 0,
        [`net.ipv4.conf.${front}.forwarding`]: 1,
        [`net.ipv4.conf.${back}.forwarding`]: 1,
        [`net.ipv4.conf.${front}.accept_local`]: 1,
        [`net.ipv4.conf.${back}.accept_local`]: 1,
        [`net.ipv4.conf.${front}.rp_filter`]: 1,
        [`net.ipv4.conf.${back}.rp_filter`]: 2,
      });
      const statsBefore = fwd.stats();
      const martiansBefore = await martians();
      const strict = await viaFlow(fwd, 3, 300);
      expect(strict.atBackend).toBe(0);
      // Each was rewritten and passed up for want of a neighbour entry, and the kernel refused its source.
      expect(fwd.stats().fibNoNeigh - statsBefore.fibNoNeigh).toBe(3);
      expect((await martians()) - martiansBefore).toBeGreaterThanOrEqual(3);

      // Loose on the interface, even with conf/all strict: the larger of the two counts.
      await net.topology.sysctl(net.lb.ns, { 'net.ipv4.conf.all.rp_filter': 1, [`net.ipv4.conf.${front}.rp_filter`]: 2 });
      const before = fwd.stats().fibNoNeigh;
      const loose = await viaFlow(fwd, 3, 1500);
      expect(loose.atBackend).toBe(3);
      expect(loose.client.lostSeqs).toEqual([]);
      // The first went up to the kernel, which forwarded it and so resolved the next hop.
      expect(fwd.stats().fibNoNeigh - before).toBeGreaterThanOrEqual(1);
    } finally {
      fwd.close();
    }
  });

  it('attach sets forwarding, accept_local and loose rp_filter per interface; detach puts back what it changed', async () => {
    await baseline();
    const fwd = await load();
    try {
      const before = fwd.stats().fibNoNeigh;
      fwd.attach([front, back], { mode: 'native' });
      expect(await confOf(front)).toEqual({ forwarding: '1', accept_local: '1', rp_filter: '2' });
      expect(await confOf(back)).toEqual({ forwarding: '1', accept_local: '1', rp_filter: '2' });
      // Nothing global.
      expect(await read('net.ipv4.ip_forward', 'net.ipv4.conf.all.accept_local', 'net.ipv4.conf.all.rp_filter')).toEqual({
        'net.ipv4.ip_forward': '0',
        'net.ipv4.conf.all.accept_local': '0',
        'net.ipv4.conf.all.rp_filter': '1',
      });
      const r = await viaFlow(fwd, 5, 1500);
      expect(r.client.lostSeqs).toEqual([]);
      expect(r.atBackend).toBe(5);
      // The first datagram went through the kernel, which needed all three.
      expect(fwd.stats().fibNoNeigh - before).toBeGreaterThanOrEqual(1);

      fwd.detach([front]);
      expect(await confOf(front)).toEqual({ ...BASELINE, rp_filter: '0' });
      expect(await confOf(back)).toEqual({ forwarding: '1', accept_local: '1', rp_filter: '2' });
      // Someone else's change after the attach is theirs.
      await net.topology.sysctl(net.lb.ns, { [`net.ipv4.conf.${back}.rp_filter`]: 0 });
      // close() runs outside the namespace: the values are put back in the one they were set in.
      fwd.close();
      expect(await confOf(back)).toEqual({ ...BASELINE, rp_filter: '0' });
      expect(existsSync(join(runDir, 'sysctls'))).toBe(false);
    } finally {
      fwd.close();
    }
  });

  it('with sysctls: false nothing is written, and nothing is put back', async () => {
    await baseline();
    const fwd = await load();
    try {
      fwd.attach([front, back], { mode: 'native', sysctls: false });
      expect(await confOf(front)).toEqual({ ...BASELINE, rp_filter: '0' });
      expect(await confOf(back)).toEqual({ ...BASELINE, rp_filter: '1' });
      await net.topology.sysctl(net.lb.ns, { [`net.ipv4.conf.${front}.forwarding`]: 1 });
      fwd.close();
      expect((await confOf(front)).forwarding).toBe('1');
    } finally {
      fwd.close();
    }
  });

  it('an attach that fails puts back what it set, for the interface it failed on too', async () => {
    await baseline();
    // A bridge has no native XDP: attaching there fails after its sysctls were set.
    await net.topology.ip(net.lb.ns, 'link', 'add', 'name', 'br9', 'type', 'bridge');
    try {
      // A new interface starts from conf/default, which the topology made permissive.
      await net.topology.sysctl(net.lb.ns, { 'net.ipv4.conf.br9.accept_local': 0, 'net.ipv4.conf.br9.rp_filter': 1 });
      const fwd = await load();
      try {
        expect(() => fwd.attach([front, 'br9'], { mode: 'native' })).toThrow();
        expect(withNetns(net.lb.ns, () => xdpAttachment(front).progId)).toBe(0);
        expect(await confOf(front)).toEqual({ ...BASELINE, rp_filter: '0' });
        expect(await confOf('br9')).toEqual({ ...BASELINE, rp_filter: '1' });
      } finally {
        fwd.close();
      }
    } finally {
      await net.topology.ip(net.lb.ns, 'link', 'del', 'br9');
    }
  });

  it('pinned links: the previous values wait beside the pins, and go back when whichever process ends the links', async () => {
    await baseline();
    const pinDir = join(await net.topology.mountBpffs(), 'inst');
    try {
      const first = await load({ pinDir });
      first.attach([front, back], { mode: 'native' });
      const file = sysctlStateFile(pinDir, join(runDir, 'sysctls'));
      const recorded = JSON.parse(readFileSync(file, 'utf8')) as SysctlState;
      expect(recorded).toMatchObject({ version: 1, pinDir });
      expect(recorded.interfaces.map((e) => [e.iface, e.ifindex, e.netns.path, e.changes.map((c) => `${c.key}:${c.previous}>${c.written}`)])).toEqual([
        [front, net.lb.front.ifindex, `/run/netns/${net.lb.ns}`, [`conf/${front}/forwarding:0>1`, `conf/${front}/accept_local:0>1`, `conf/${front}/rp_filter:0>2`]],
        [back, net.lb.back.ifindex, `/run/netns/${net.lb.ns}`, [`conf/${back}/forwarding:0>1`, `conf/${back}/accept_local:0>1`, `conf/${back}/rp_filter:1>2`]],
      ]);

      // The process ends; its links keep the program attached, and it needs the values still.
      first.close();
      expect(await confOf(front)).toEqual({ forwarding: '1', accept_local: '1', rp_filter: '2' });
      expect(readSysctlState(pinDir)).toEqual(recorded);

      const second = await load({ pinDir });
      expect(second.attach([front, back], { mode: 'native' }).map((a) => a.how)).toEqual(['updated', 'updated']);
      expect(readSysctlState(pinDir)).toEqual(recorded);
      second.detach([front]);
      expect(await confOf(front)).toEqual({ ...BASELINE, rp_filter: '0' });
      expect(readSysctlState(pinDir)?.interfaces.map((e) => e.iface)).toEqual([back]);
      second.close();
      expect(await confOf(back)).toEqual({ forwarding: '1', accept_local: '1', rp_filter: '2' });

      // As `flowlb detach` does it, from outside the namespace: the file says where the values go back.
      const removed = XdpForwarder.removePins(pinDir);
      expect(removed.links.map((l) => l.iface)).toEqual([back]);
      expect(await confOf(back)).toEqual({ ...BASELINE, rp_filter: '1' });
      expect(existsSync(file)).toBe(false);
    } finally {
      for (const f of loaded) f.close();
      XdpForwarder.removePins(pinDir);
    }
  });
});
