import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { CommandError, run } from './exec.js';
import { Topology, listNamespaces, withTopology } from './netns.js';
import { describePrivileged } from './privileges.js';
import { macForIpv4, oneArmedTopology, twoArmedTopology } from './topologies.js';
import { runUdpClient, startUdpEcho } from './udp.js';
import { writePrebuiltXdpPass } from './xdp-pass.js';

function pidAlive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function expectGone(names: readonly string[]): Promise<void> {
  expect(names.length).toBeGreaterThan(0);
  const present = await listNamespaces();
  expect(present.filter((n) => names.includes(n))).toEqual([]);
}

describePrivileged('network topologies', () => {
  // Anything a failing test leaves behind still goes, and the suite then checks nothing leaked.
  const created: Topology[] = [];
  afterAll(async () => {
    await Promise.all(created.map((t) => t.destroy()));
  });

  it('forwards through a two-armed LB with plain kernel routing', async () => {
    const t = await twoArmedTopology({ prefix: 'tkt' });
    created.push(t.topology);
    const names = [...t.topology.namespaces];
    try {
      const { topology, client, lb } = t;
      const backend = t.backends[0]!;
      expect(t.backends.length).toBe(1);
      expect(client).toMatchObject({ ifname: 'eth0', addr: '10.201.1.2', cidr: '10.201.1.2/24', gateway: '10.201.1.1' });
      expect(lb.front).toMatchObject({ ifname: 'front', addr: '10.201.1.1', mac: macForIpv4('10.201.1.1') });
      expect(lb.back).toMatchObject({ ifname: 'back', addr: '10.201.2.1', mac: macForIpv4('10.201.2.1') });
      expect(backend).toMatchObject({ addr: '10.201.2.10', gateway: '10.201.2.1', mac: macForIpv4('10.201.2.10') });
      expect(await topology.ifindex(lb.ns, 'back')).toBe(lb.back.ifindex);
      expect(await topology.mac(client.ns, 'eth0')).toBe(client.mac);
      expect(t.front.lbPeer).toEqual({ ns: client.ns, ifname: 'eth0' });
      expect(t.back.lbPeer).toEqual({ ns: backend.ns, ifname: 'eth0' });
      expect(topology.peerOf(lb.ns, 'back')).toEqual(t.back.lbPeer);
      for (const ns of names) expect(ns.length).toBeGreaterThan(0);

      expect(await topology.readSysctl(lb.ns, 'net.ipv4.ip_forward')).toBe('1');
      expect(await topology.readSysctl(lb.ns, 'net.ipv4.conf.front.accept_local')).toBe('1');
      expect(await topology.readSysctl(lb.ns, 'net.ipv4.conf.back.accept_local')).toBe('1');
      expect(await topology.readSysctl(client.ns, 'net.ipv6.conf.all.disable_ipv6')).toBe('1');
      const { stdout: offload } = await topology.exec(client.ns, 'ethtool', ['-k', 'eth0']);
      expect(offload).toMatch(/^tx-checksumming: off/m);

      const echo = await startUdpEcho(topology, backend.ns, { addr: backend.addr, port: 7000, prefix: 'b0:' });
      const summary = await runUdpClient(topology, client.ns, {
        target: `${backend.addr}:7000`,
        bind: client.addr,
        count: 10,
        timeoutMs: 3000,
      });
      expect(summary.sent).toBe(10);
      expect(summary.lostSeqs).toEqual([]);
      expect(summary.replies.every((r) => r.from === `${backend.addr}:7000` && r.data.startsWith('b0:ping '))).toBe(true);
      // Routed, not translated: the backend sees the client's own address.
      const seen = await echo.waitForCount(10, 2000);
      expect(new Set(seen.map((r) => r.from))).toEqual(new Set([summary.local]));
      expect(summary.local.startsWith(`${client.addr}:`)).toBe(true);
    } finally {
      await t.destroy();
    }
    await expectGone(names);
  });

  it('removes everything when the test throws midway', async () => {
    let names: string[] = [];
    let pid: number | undefined;
    let bpffs = '';
    await expect(
      withTopology(async (topo) => {
        created.push(topo);
        const a = await topo.addNamespace('a');
        const b = await topo.addNamespace('b');
        await topo.addVethPair(a, 'va', b, 'vb', { addrA: '10.203.0.1/30', addrB: '10.203.0.2/30' });
        pid = topo.spawn(a, 'sleep', ['30']).pid;
        bpffs = await topo.mountBpffs();
        names = [...topo.namespaces];
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    await expectGone(names);
    expect(pidAlive(pid)).toBe(false);
    expect(readFileSync('/proc/mounts', 'utf8')).not.toContain(bpffs);

    // The same with a ready-made topology and a running echo, cleaned up from a finally block.
    const t = await twoArmedTopology({ prefix: 'tkt' });
    created.push(t.topology);
    const more = [...t.topology.namespaces];
    let echoPid: number | undefined;
    await expect(
      (async () => {
        try {
          const b = t.backends[0]!;
          const echo = await startUdpEcho(t.topology, b.ns, { addr: b.addr, port: 7001 });
          echoPid = echo.process.pid;
          throw new Error('midway');
        } finally {
          const report = await t.destroy();
          expect(report.errors).toEqual([]);
        }
      })(),
    ).rejects.toThrow('midway');
    await expectGone(more);
    expect(pidAlive(echoPid)).toBe(false);
    // destroy() is idempotent and never throws.
    await expect(t.destroy()).resolves.toEqual({ errors: [] });
  });

  it('reaches several backends behind a switch, with static neighbours', async () => {
    const t = await twoArmedTopology({ prefix: 'tkt', backends: 2, clients: 2, staticNeighbors: true });
    created.push(t.topology);
    try {
      expect(t.back.switch).toBeDefined();
      expect(t.front.switch).toBeDefined();
      expect(t.back.lbPeer).toEqual({ ns: t.back.switch!.ns, ifname: 'p-lb' });
      const { stdout: neigh } = await t.topology.ip(t.lb.ns, 'neigh', 'show', 'dev', 'back');
      expect(neigh).toMatch(/10\.201\.2\.10 lladdr 02:00:0a:c9:02:0a PERMANENT/);
      const echoes = await Promise.all(
        t.backends.map((b, i) => startUdpEcho(t.topology, b.ns, { addr: b.addr, port: 7000, prefix: `b${i}:` })),
      );
      // Client i talks to backend i: every client and every backend takes part.
      const results = await Promise.all(
        t.clients.map((c, i) =>
          runUdpClient(t.topology, c.ns, { target: `${t.backends[i]!.addr}:7000`, bind: c.addr, count: 3, timeoutMs: 3000 }),
        ),
      );
      results.forEach((r, i) => {
        expect(r.lostSeqs).toEqual([]);
        expect(r.replies.every((x) => x.data.startsWith(`b${i}:`))).toBe(true);
      });
      for (const [i, e] of echoes.entries()) {
        const seen = await e.waitForCount(3, 2000);
        expect(new Set(seen.map((r) => r.from.split(':')[0]))).toEqual(new Set([t.clients[i]!.addr]));
      }
    } finally {
      await t.destroy();
    }
  });

  it('forwards back out of the single interface of a one-armed LB', async () => {
    const t = await oneArmedTopology({ prefix: 'tkt', backends: 2 });
    created.push(t.topology);
    try {
      const { topology, client, lb } = t;
      const [b0, b1] = t.backends as [(typeof t.backends)[0], (typeof t.backends)[0]];
      expect(lb.iface).toMatchObject({ ifname: 'eth0', addr: '10.202.0.1' });
      expect(client.addr).toBe('10.202.0.2');
      expect([b0.addr, b1.addr]).toEqual(['10.202.0.10', '10.202.0.11']);
      expect(t.lbPeer).toEqual({ ns: t.switch.ns, ifname: 'p-lb' });
      const nf = await topology.readSysctl(t.switch.ns, 'net.bridge.bridge-nf-call-iptables');
      if (nf !== undefined) expect(nf).toBe('0');

      const [e0, e1] = await Promise.all([
        startUdpEcho(topology, b0.ns, { addr: b0.addr, port: 7000, prefix: 'b0:' }),
        startUdpEcho(topology, b1.ns, { addr: b1.addr, port: 7000, prefix: 'b1:' }),
      ]);
      // Directly on the segment.
      const direct = await runUdpClient(topology, client.ns, { target: `${b0.addr}:7000`, count: 2, timeoutMs: 3000 });
      expect(direct.lostSeqs).toEqual([]);
      // Via the LB: it receives the packet on eth0 and routes it back out of eth0.
      await topology.addRoute(client.ns, `${b1.addr}/32`, { via: lb.iface.addr });
      const before = await lbForwarded(topology, lb.ns);
      const via = await runUdpClient(topology, client.ns, { target: `${b1.addr}:7000`, count: 3, timeoutMs: 3000 });
      expect(via.lostSeqs).toEqual([]);
      expect(via.replies[0]?.data).toMatch(/^b1:/);
      expect((await lbForwarded(topology, lb.ns)) - before).toBeGreaterThanOrEqual(3);
      await e0.waitForCount(2);
      await e1.waitForCount(3);
    } finally {
      await t.destroy();
    }
  });

  it('attaches XDP_PASS programs in native and generic mode', async () => {
    const t = await twoArmedTopology({ prefix: 'tkt', xdpPassOnPeers: true });
    created.push(t.topology);
    const dir = mkdtempSync(join(tmpdir(), 'tk-xdp-'));
    try {
      const { topology, client, lb } = t;
      const peer = await topology.link(t.back.lbPeer.ns, t.back.lbPeer.ifname);
      expect(peer.xdp).toMatchObject({ mode: 'native', progName: 'xdp_pass' });
      const gen = await topology.attachXdpPass(lb.ns, 'front', { mode: 'generic' });
      expect(gen.mode).toBe('generic');
      // The object shipped for machines without clang loads as well.
      const prebuilt = join(dir, 'pass.o');
      writePrebuiltXdpPass(prebuilt);
      await topology.ip(lb.ns, 'link', 'set', 'dev', 'back', 'xdpdrv', 'obj', prebuilt, 'sec', 'xdp');
      expect((await topology.link(lb.ns, 'back')).xdp?.mode).toBe('native');
      // Traffic still flows with pass programs everywhere.
      const backend = t.backends[0]!;
      await startUdpEcho(topology, backend.ns, { addr: backend.addr, port: 7000 });
      const s = await runUdpClient(topology, client.ns, { target: `${backend.addr}:7000`, count: 3, timeoutMs: 3000 });
      expect(s.lostSeqs).toEqual([]);
      await topology.detachXdp(lb.ns, 'front', 'generic');
      expect((await topology.link(lb.ns, 'front')).xdp).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await t.destroy();
    }
  });

  it('validates names, times commands out and mounts bpffs', async () => {
    await withTopology(async (topo) => {
      created.push(topo);
      const ns = await topo.addNamespace('misc');
      await expect(topo.addVethPair(ns, 'sixteen-chars-xx', ns, 'ok', {})).rejects.toThrow(/invalid interface name/);
      const name = topo.uniqueIfname('veth');
      expect(name.length).toBeLessThanOrEqual(15);
      expect(topo.uniqueIfname('veth')).not.toBe(name);
      // Names that ip would read as keywords work as well.
      const pair = await topo.addVethPair(ns, 'a', ns, 'b', { addrA: '10.204.0.1/30', addrB: '10.204.0.2/30', macA: '02:aa:00:00:00:01' });
      expect(pair.a.mac).toBe('02:aa:00:00:00:01');
      expect(pair.b.ifindex).not.toBe(pair.a.ifindex);
      await topo.sysctl(ns, { 'net.ipv4.conf.a.accept_local': 1, 'net.does.not.exist': 1 }, { ignoreMissing: true });
      expect(await topo.readSysctl(ns, 'net.ipv4.conf.a.accept_local')).toBe('1');
      await expect(topo.sysctl(ns, { 'net.does.not.exist': 1 })).rejects.toThrow(CommandError);
      const t0 = Date.now();
      const err = await topo.exec(ns, 'sleep', ['5'], { timeoutMs: 200 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CommandError);
      expect((err as CommandError).timedOut).toBe(true);
      expect(Date.now() - t0).toBeLessThan(3000);
      const dir = await topo.mountBpffs();
      const { stdout } = await run('stat', ['-f', '-c', '%T', dir]);
      expect(stdout.trim()).toBe('bpf_fs');
    });
  });

  it('cleans up when the process exits or is killed without destroy()', async () => {
    const mod = process.env.FLOWLB_TEST_NETNS_MODULE;
    expect(mod).toBeTruthy();
    const script = `
      const { Topology } = await import(${JSON.stringify(mod)});
      const t = new Topology({ prefix: 'tkx' });
      const a = await t.addNamespace('a');
      const b = await t.addNamespace('b');
      await t.addVethPair(a, 'x0', b, 'x1');
      t.spawn(a, 'sleep', ['30']);
      console.log(JSON.stringify({ names: t.namespaces }));
      if (process.argv[1] === 'exit') process.exit(3);
      setTimeout(() => {}, 30000);
    `;
    const runChild = async (mode: 'exit' | 'SIGTERM' | 'SIGINT'): Promise<void> => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.setEncoding('utf8');
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (d: string) => (err += d));
      const names = await new Promise<string[]>((resolve, reject) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`child printed nothing: ${out} ${err}`));
        }, 20_000);
        child.stdout.on('data', (d: string) => {
          out += d;
          const line = out.split('\n').find((l) => l.startsWith('{'));
          if (line) {
            clearTimeout(timer);
            resolve((JSON.parse(line) as { names: string[] }).names);
          }
        });
      });
      expect(names.length).toBe(2);
      if (mode !== 'exit') child.kill(mode);
      const code = await new Promise<number | null>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
        else child.once('exit', (c) => resolve(c));
      });
      if (mode === 'exit') expect(code).toBe(3);
      await expectGone(names);
    };
    await Promise.all((['exit', 'SIGTERM', 'SIGINT'] as const).map(runChild));
  });
});

async function lbForwarded(topology: Topology, ns: string): Promise<number> {
  const { stdout } = await topology.exec(ns, 'cat', ['/proc/net/snmp']);
  const lines = stdout.split('\n').filter((l) => l.startsWith('Ip:'));
  const header = lines[0]?.split(/\s+/) ?? [];
  const values = lines[1]?.split(/\s+/) ?? [];
  return Number(values[header.indexOf('ForwDatagrams')]);
}
