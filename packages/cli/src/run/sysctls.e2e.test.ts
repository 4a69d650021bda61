import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { describePrivileged, runUdpClient, startUdpEcho, twoArmedTopology, type TwoArmed, type UdpEcho } from '@flowlb/testkit';
import { runCli } from '../test-support/cli.js';
import { LbProcess } from '../test-support/lb-process.js';
import { forwardAllMapper, twoArmedConfigLines } from '../test-support/two-armed-run.js';

const PORT = 4433;
const BACKEND_PORT = 7000;

// `flowlb run` on a host that forwards nothing and filters reverse paths strictly: what it sets, what `sysctls: false`
// leaves alone, and what `flowlb detach` puts back.
describePrivileged('flowlb run and the sysctls of its interfaces', () => {
  let net: TwoArmed;
  let bpffs: string;
  let dir: string;
  let echo: UdpEcho;
  let lb: LbProcess | undefined;

  const conf = async (iface: string): Promise<string> => {
    const keys = ['forwarding', 'accept_local', 'rp_filter'].map((k) => `net.ipv4.conf.${iface}.${k}`);
    const { stdout } = await net.topology.exec(net.lb.ns, 'sysctl', ['-n', ...keys]);
    // forwarding/accept_local/rp_filter
    return stdout.trim().split('\n').join('/');
  };
  const baseline = async (): Promise<void> => {
    await net.topology.sysctl(net.lb.ns, {
      'net.ipv4.ip_forward': 0,
      'net.ipv4.conf.front.forwarding': 0,
      'net.ipv4.conf.back.forwarding': 0,
      'net.ipv4.conf.all.accept_local': 0,
      'net.ipv4.conf.front.accept_local': 0,
      'net.ipv4.conf.back.accept_local': 0,
      'net.ipv4.conf.all.rp_filter': 1,
      'net.ipv4.conf.front.rp_filter': 0,
      'net.ipv4.conf.back.rp_filter': 1,
    });
  };
  const writeConfig = (name: string, extra: string[]): string => {
    const file = join(dir, name);
    writeFileSync(file, [...twoArmedConfigLines(net, PORT), ...extra, ''].join('\n'));
    return file;
  };
  const stateFiles = (): string[] => (existsSync(join(dir, 'sysctls')) ? readdirSync(join(dir, 'sysctls')) : []);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flowlb-sysctls-'));
    net = await twoArmedTopology({ prefix: 'clisys', xdpPassOnPeers: 'native' });
    bpffs = await net.topology.mountBpffs();
    const b = net.backends[0]!;
    echo = await startUdpEcho(net.topology, b.ns, { addr: b.addr, port: BACKEND_PORT });
    writeFileSync(join(dir, 'mapper.mjs'), forwardAllMapper({ address: b.addr, port: BACKEND_PORT }));
  }, 60_000);

  afterEach(async () => {
    if (lb) await lb.proc.stop(2000);
    lb = undefined;
  });

  afterAll(async () => {
    await echo?.stop().catch(() => undefined);
    await net?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('with sysctls: false writes nothing, and logs what loses packets', async () => {
    await baseline();
    const config = writeConfig('off.yaml', [`pin_path: ${bpffs}/off`, 'sysctls: false']);
    lb = new LbProcess(net.topology, net.lb.ns, ['--config', config, '--mapper', join(dir, 'mapper.mjs'), '--detach-on-exit'], { FLOWLB_RUN_DIR: dir });
    await lb.running();
    expect(await conf('front')).toBe('0/0/0');
    expect(await conf('back')).toBe('0/0/1');
    const warned = lb.lines.filter((l) => l.level === 'warn' && l.sysctls === false).map((l) => l.msg);
    expect(warned).toEqual([
      'net.ipv4.conf.front.forwarding is not 1: packets of known flows that arrive on front and are passed to the kernel are not forwarded',
      'net.ipv4.conf.front.accept_local is not 1: rewritten packets passed to the kernel are dropped as martians',
      'net.ipv4.conf.front.rp_filter is strict (1, the larger of conf/all and conf/front): rewritten packets passed to the kernel are dropped as martians; 2 (loose) lets them through',
      'net.ipv4.conf.back.forwarding is not 1: packets of known flows that arrive on back and are passed to the kernel are not forwarded',
      'net.ipv4.conf.back.accept_local is not 1: rewritten packets passed to the kernel are dropped as martians',
      'net.ipv4.conf.back.rp_filter is strict (1, the larger of conf/all and conf/back): rewritten packets passed to the kernel are dropped as martians; 2 (loose) lets them through',
    ]);
    lb.signal('SIGTERM');
    expect(await lb.exit()).toEqual({ code: 0, signal: null });
    expect(await conf('front')).toBe('0/0/0');
    expect(await conf('back')).toBe('0/0/1');
    expect(stateFiles()).toEqual([]);
  }, 60_000);

  it('sets what each interface needs, keeps it while the links outlive the run, and `flowlb detach` puts it back', async () => {
    await baseline();
    const pinPath = `${bpffs}/on`;
    lb = new LbProcess(net.topology, net.lb.ns, ['--config', writeConfig('on.yaml', [`pin_path: ${pinPath}`]), '--mapper', join(dir, 'mapper.mjs')], {
      FLOWLB_RUN_DIR: dir,
    });
    await lb.running();
    expect(await conf('front')).toBe('1/1/2');
    expect(await conf('back')).toBe('1/1/2');
    const { stdout } = await net.topology.exec(net.lb.ns, 'sysctl', ['-n', 'net.ipv4.ip_forward', 'net.ipv4.conf.all.rp_filter']);
    expect(stdout.trim().split('\n')).toEqual(['0', '1']);
    expect(lb.lines.filter((l) => l.sysctls === false)).toEqual([]);
    expect(stateFiles()).toHaveLength(1);

    // Through the balancer, the first datagram of each direction by way of the kernel (no neighbour entries yet).
    const r = await runUdpClient(net.topology, net.client.ns, {
      target: { address: net.lb.front.addr, port: PORT },
      bind: `${net.client.addr}:40000`,
      count: 4,
      lockstep: true,
      timeoutMs: 1500,
    });
    expect(r.lostSeqs).toEqual([]);

    lb.signal('SIGTERM');
    expect(await lb.exit()).toEqual({ code: 0, signal: null });
    // The pinned links keep forwarding, and need them still.
    expect(await conf('front')).toBe('1/1/2');
    expect(stateFiles()).toHaveLength(1);

    // From outside the balancer's namespace, as an operator's shell may be.
    const detached = await runCli(['detach', '--pin-path', pinPath], { env: { FLOWLB_RUN_DIR: dir } });
    expect(detached).toMatchObject({ code: 0, stderr: '' });
    expect(await conf('front')).toBe('0/0/0');
    expect(await conf('back')).toBe('0/0/1');
    expect(stateFiles()).toEqual([]);
  }, 60_000);
});
