import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describePrivileged, twoArmedTopology, type TwoArmed } from '@flowlb/testkit';
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
    await net.topology.sysctl(net.lb.ns, { 'net.ipv4.conf.all.accept_local': 0, 'net.ipv4.conf.front.accept_local': 0 });
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
      ['ip_forward', 'ok'],
      ['interface:front', 'ok'],
      ['accept_local:front', 'warn'],
      ['veth-peer:front', 'fail'],
      ['tx-checksum:front', 'warn'],
      ['interface:back', 'ok'],
      ['accept_local:back', 'ok'],
      ['veth-peer:back', 'ok'],
      ['tx-checksum:back', 'ok'],
      ['interface:missing0', 'fail'],
      ['snat-ports', 'fail'],
    ]);
    const byId = new Map(report.checks.map((c) => [c.id, c]));
    const clientNs = net.client.ns;
    expect(byId.get('veth-peer:front')).toEqual({
      id: 'veth-peer:front',
      title: 'veth peer front',
      verdict: 'fail',
      detail: `front is a veth whose peer eth0 in namespace ${clientNs} has no XDP program: frames the XDP program sends out of front (XDP_TX or redirect) are lost`,
      fix: `attach an XDP program in native mode to eth0 (one returning XDP_PASS is enough), e.g. ip -n ${clientNs} link set dev eth0 xdpdrv obj xdp_pass.o sec xdp; or run with mode: userspace`,
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
      fix: '`flowlb run` sets it when it attaches; or: sysctl -w net.ipv4.conf.front.accept_local=1',
    });
    expect(byId.get('accept_local:back')?.detail).toBe('accept_local is on for back');
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
    expect(lines[failIdx + 1]).toMatch(/^ {8}\s+fix: attach an XDP program in native mode to eth0/);
    expect(lines.at(-2)).toBe('12 ok, 3 warnings, 3 failures: this machine cannot run the XDP datapath as configured');
  }, 60_000);

  it('passes once the problems are fixed', async () => {
    await net.topology.attachXdpPass(net.front.lbPeer.ns, net.front.lbPeer.ifname);
    await net.topology.sysctl(net.lb.ns, { 'net.ipv4.conf.front.accept_local': 1 });
    writeFileSync(config, `port: 4433\naddr: ${net.lb.front.addr}\ninterface: front\ninterfaces: [back]\nsnat_addr: ${net.lb.back.addr}\n`);
    const r = await checkIn(net, config);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as CheckReport;
    expect(report.ok).toBe(true);
    expect(report.checks.filter((c) => c.verdict !== 'ok').map((c) => c.id)).toEqual(['bpffs', 'tx-checksum:front']);
  }, 60_000);
});

describe('flowlb check without a namespace', () => {
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
