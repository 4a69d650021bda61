import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describePrivileged, startUdpEcho, twoArmedTopology, type TwoArmed } from '@flowlb/testkit';
import { XDP_PASS_BPF_OBJECT } from '@flowlb/xdp-core';
import { cliBin } from '../test-support/cli.js';
import type { CheckReport } from './types.js';

async function checkIn(net: TwoArmed, config: string, json = true): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = net.topology.spawn(net.lb.ns, process.execPath, [cliBin(), 'check', '--config', config, ...(json ? ['--json'] : [])]);
  const status = await Promise.race([proc.closed, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000))]);
  if (status === 'timeout') {
    await proc.stop();
    throw new Error('flowlb check did not finish within 30 s');
  }
  return { code: status.code, ...proc.output() };
}

// `flowlb check` run inside the balancer's namespace of a real topology, where some things are right and some not.
describePrivileged('flowlb check in a network namespace', () => {
  let net: TwoArmed;
  let dir: string;
  let config: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flowlb-check-'));
    config = join(dir, 'config.yaml');
    net = await twoArmedTopology({ prefix: 'clichk' });
    // Only the backend side gets the XDP program on its peer; the client side's peer has none.
    await net.topology.attachXdpPass(net.back.lbPeer.ns, net.back.lbPeer.ifname);
    await net.topology.sysctl(net.lb.ns, {
      'net.ipv4.conf.all.accept_local': 0,
      'net.ipv4.conf.front.accept_local': 0,
      // Strict through conf/all, loose on back: the larger of the two counts.
      'net.ipv4.conf.all.rp_filter': 1,
      'net.ipv4.conf.back.rp_filter': 2,
    });
    // A sender on the client side with checksum offload on, as veth has it by default.
    await net.topology.exec(net.client.ns, 'ethtool', ['-K', 'eth0', 'tx', 'on']);
    writeFileSync(
      config,
      [
        'port: 4433',
        `addr: ${net.lb.front.addr}`,
        'interface: front',
        'interfaces: [back, missing0]',
        `snat_addr: ${net.lb.back.addr}`,
        // Inside the default ephemeral range 32768-60999 and not reserved.
        'snat_ports: 40000-40099',
        '',
      ].join('\n'),
    );
  }, 60_000);

  afterAll(async () => {
    await net?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('gives each check its verdict and exits 3 when one fails', async () => {
    const r = await checkIn(net, config);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(3);
    const report = JSON.parse(r.stdout) as CheckReport;
    expect(report.ok).toBe(false);
    expect(report.config).toBe(config);
    expect(report.checks.map((c) => [c.id, c.verdict])).toEqual([
      ['kernel', 'ok'],
      ['btf', 'ok'],
      ['privileges', 'ok'],
      ['xdp-program', 'ok'],
      // `ip netns exec` remounts /sys, so /sys/fs/bpf is a plain sysfs folder there.
      ['bpffs', 'warn'],
      ['address:addr', 'ok'],
      ['address:snat_addr', 'ok'],
      ['interface:front', 'ok'],
      ['forwarding:front', 'ok'],
      ['accept_local:front', 'warn'],
      ['rp_filter:front', 'warn'],
      ['veth-peer:front', 'fail'],
      ['tx-checksum:front', 'warn'],
      ['interface:back', 'ok'],
      ['forwarding:back', 'ok'],
      ['accept_local:back', 'ok'],
      ['rp_filter:back', 'ok'],
      ['veth-peer:back', 'ok'],
      ['tx-checksum:back', 'ok'],
      ['interface:missing0', 'fail'],
      ['snat-ports', 'fail'],
      ['snat-ports-free', 'ok'],
    ]);
    const byId = new Map(report.checks.map((c) => [c.id, c]));
    const clientNs = net.client.ns;
    expect(byId.get('veth-peer:front')).toEqual({
      id: 'veth-peer:front',
      title: 'veth peer front',
      verdict: 'fail',
      detail: `front is a veth whose peer eth0 in namespace ${clientNs} has no XDP program: frames the XDP program sends out of front (XDP_TX or redirect) are lost`,
      fix: `attach the XDP_PASS program that @flowlb/xdp-core ships (${XDP_PASS_BPF_OBJECT}) to eth0 in native mode; or run with mode: userspace`,
      command: `ip -n ${clientNs} link set dev eth0 xdpdrv obj ${XDP_PASS_BPF_OBJECT} sec xdp`,
    });
    expect(byId.get('veth-peer:back')?.detail).toMatch(
      new RegExp(`^its peer eth0 in namespace ${net.backends[0]!.ns} has an XDP program \\(id \\d+, native\\)$`),
    );
    expect(byId.get('accept_local:front')).toEqual({
      id: 'accept_local:front',
      title: 'accept_local front',
      verdict: 'warn',
      detail:
        "net.ipv4.conf.front.accept_local is 0: a rewritten packet that the XDP program passes to the kernel carries the balancer's own address as source and is dropped as a martian",
      fix: '`flowlb run` sets it when it attaches (and puts it back when it detaches); or: sysctl -w net.ipv4.conf.front.accept_local=1',
    });
    expect(byId.get('accept_local:back')?.detail).toBe('accept_local is on for back');
    expect(byId.get('rp_filter:front')).toMatchObject({
      verdict: 'warn',
      detail: expect.stringMatching(/^net\.ipv4\.conf\.front\.rp_filter is 0, net\.ipv4\.conf\.all\.rp_filter 1, so reverse path filtering is strict for front /),
      fix: '`flowlb run` sets it when it attaches (and puts it back when it detaches); or: sysctl -w net.ipv4.conf.front.rp_filter=2',
    });
    expect(byId.get('rp_filter:back')?.detail).toBe('reverse path filtering is loose for back (net.ipv4.conf.back.rp_filter is 2, net.ipv4.conf.all.rp_filter 1)');
    expect(byId.get('forwarding:front')?.detail).toBe('net.ipv4.conf.front.forwarding is 1');
    expect(byId.get('tx-checksum:front')?.fix).toBe(`ip netns exec ${clientNs} ethtool -K eth0 tx off (on every veth of the senders)`);
    expect(byId.get('interface:missing0')?.detail).toBe('missing0 does not exist in this network namespace');
    expect(byId.get('snat-ports')).toMatchObject({
      verdict: 'fail',
      detail:
        "SNAT ports 40000-40099 overlap the kernel's ephemeral range 32768-60999 and 40000-40099 not reserved: the kernel may give them to other sockets; `flowlb run` refuses to start",
      fix: 'choose SNAT ports outside 32768-60999, or sysctl -w net.ipv4.ip_local_reserved_ports=40000-40099, or set reserve_snat_ports: true',
    });
  }, 60_000);

  it('prints the same as text, with what to do under each problem', async () => {
    const r = await checkIn(net, config, false);
    expect(r.code).toBe(3);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe(`flowlb check (config ${config})`);
    const failIdx = lines.findIndex((l) => l.startsWith('  FAIL  veth peer front'));
    expect(failIdx).toBeGreaterThan(0);
    expect(lines[failIdx + 1]).toMatch(/^ {8}\s+fix: attach the XDP_PASS program that @flowlb\/xdp-core ships \(\S+\) to eth0 in native mode/);
    expect(lines[failIdx + 2]).toMatch(new RegExp(`^ {8}\\s+run: ip -n ${net.client.ns} link set dev eth0 xdpdrv obj \\S+/xdp_pass\\.bpf\\.o sec xdp$`));
    expect(lines.at(-2)).toBe('15 ok, 4 warnings, 3 failures: this machine cannot run the XDP datapath as configured');
  }, 60_000);

  it('with mode: userspace, reports what only the XDP datapath needs as not needed, and passes', async () => {
    // The front peer still has no XDP program, and bpffs is still missing: neither matters without XDP.
    const userspace = join(dir, 'userspace.yaml');
    writeFileSync(
      userspace,
      `port: 4433\naddr: ${net.lb.front.addr}\ninterface: front\ninterfaces: [back]\nsnat_addr: ${net.lb.back.addr}\nmode: userspace\n`,
    );
    const r = await checkIn(net, userspace);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as CheckReport;
    expect(report).toMatchObject({ ok: true, datapath: 'userspace' });
    const verdicts = Object.fromEntries(report.checks.map((c) => [c.id, c.verdict]));
    expect(verdicts).toMatchObject({
      kernel: 'skip',
      btf: 'skip',
      privileges: 'skip',
      'xdp-program': 'skip',
      bpffs: 'skip',
      'address:addr': 'ok',
      'address:snat_addr': 'ok',
      'interface:front': 'skip',
      'interface:back': 'skip',
      'snat-ports': 'ok',
    });
    expect(Object.keys(verdicts).filter((id) => /^(veth-peer|forwarding|accept_local|rp_filter|vlan|tx-checksum):/.test(id))).toEqual([]);
    const text = await checkIn(net, userspace, false);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^ {2}skip {2}interface front\s+not needed with mode: userspace: no XDP program is attached to front, /m);
    expect(text.stdout.split('\n').at(-2)).toMatch(/, 0 failures: this machine can run the userspace datapath$/);
  }, 60_000);

  it('passes once the problems are fixed, with the commands it prints', async () => {
    // A generic-mode program on the peer is not enough, and the kernel refuses a native one beside it.
    await net.topology.attachXdpPass(net.front.lbPeer.ns, net.front.lbPeer.ifname, { mode: 'generic' });
    const before = JSON.parse((await checkIn(net, config)).stdout) as CheckReport;
    const veth = before.checks.find((c) => c.id === 'veth-peer:front');
    const ip = `ip -n ${net.front.lbPeer.ns} link set dev ${net.front.lbPeer.ifname}`;
    expect(veth).toMatchObject({ verdict: 'fail', command: `${ip} xdpgeneric off && ${ip} xdpdrv obj ${XDP_PASS_BPF_OBJECT} sec xdp` });
    // Pasted into a shell where the check ran.
    await net.topology.exec(net.lb.ns, 'sh', ['-c', veth!.command!]);
    expect((await net.topology.link(net.front.lbPeer.ns, net.front.lbPeer.ifname)).xdp).toMatchObject({ mode: 'native', progName: 'xdp_pass' });
    await net.topology.sysctl(net.lb.ns, { 'net.ipv4.conf.front.accept_local': 1 });
    // As the fix says.
    const rp = before.checks.find((c) => c.id === 'rp_filter:front')!.fix!.split('or: ')[1]!;
    await net.topology.exec(net.lb.ns, 'sh', ['-c', rp]);
    writeFileSync(config, `port: 4433\naddr: ${net.lb.front.addr}\ninterface: front\ninterfaces: [back]\nsnat_addr: ${net.lb.back.addr}\n`);
    const r = await checkIn(net, config);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as CheckReport;
    expect(report.ok).toBe(true);
    expect(report.checks.filter((c) => c.verdict !== 'ok').map((c) => c.id)).toEqual(['bpffs', 'tx-checksum:front']);
  }, 60_000);

  it('names a socket that listens inside the SNAT range on the SNAT address, and the process that holds it', async () => {
    const echo = await startUdpEcho(net.topology, net.lb.ns, { addr: net.lb.back.addr, port: 20000 });
    try {
      const r = await checkIn(net, config);
      expect(r.code).toBe(0);
      const found = (JSON.parse(r.stdout) as CheckReport).checks.find((c) => c.id === 'snat-ports-free');
      expect(found?.verdict).toBe('warn');
      const addr = net.lb.back.addr.replace(/\./g, '\\.');
      const pid = echo.process.child.pid;
      expect(found?.detail).toMatch(new RegExp(`^1 port inside the SNAT ports 10000-29999 on ${addr} is in use — port 20000: \\S+ \\(pid ${pid}\\) listens on ${addr}:20000\\. `));
      expect(found?.fix).toContain('snat_ports: "10000-19999"');
    } finally {
      await echo.stop();
    }
  }, 60_000);
});

describe('flowlb check without a namespace', () => {
  it("with --mappings, warns about a mapping target on the SNAT address inside the SNAT range; a bad file is a usage error", async () => {
    const { runCli } = await import('../test-support/cli.js');
    const dir = mkdtempSync(join(tmpdir(), 'flowlb-check-'));
    try {
      writeFileSync(join(dir, 'c.yaml'), 'port: 17000\naddr: 127.0.0.1\nmode: userspace\n');
      writeFileSync(join(dir, 'm.yaml'), 'sniMappings:\n  - fqdn: one.example\n    ipv4: 127.0.0.1\n    port: 17001\n');
      const r = await runCli(['check', '--config', join(dir, 'c.yaml'), '--mappings', join(dir, 'm.yaml'), '--json']);
      expect(r.stderr).toBe('');
      const found = (JSON.parse(r.stdout) as CheckReport).checks.find((c) => c.id === 'snat-ports-free');
      expect(found?.verdict).toBe('warn');
      expect(found?.detail).toMatch(/port 17001: .*one\.example/);

      writeFileSync(join(dir, 'bad.yaml'), 'sniMappings:\n  - fqdn: one.example\n    port: 17001\n');
      const bad = await runCli(['check', '--config', join(dir, 'c.yaml'), '--mappings', join(dir, 'bad.yaml')]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain(join(dir, 'bad.yaml'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an invalid config is a usage error (exit 2)', async () => {
    const { runCli } = await import('../test-support/cli.js');
    const dir = mkdtempSync(join(tmpdir(), 'flowlb-check-'));
    try {
      writeFileSync(join(dir, 'c.yaml'), 'port: 0\naddr: 10.0.0.1\n');
      const r = await runCli(['check', '--config', join(dir, 'c.yaml')]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(`flowlb: ${join(dir, 'c.yaml')}:1:7: port: expected an integer from 1 to 65535, got 0\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
