import { mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { describePrivileged, runUdpClient, startUdpEcho, twoArmedTopology, type Spawned, type TwoArmed, type UdpEcho } from '@flowlb/testkit';
import { runCliIn } from '../test-support/cli.js';
import { LbProcess } from '../test-support/lb-process.js';
import { forwardAllMapper, twoArmedConfigLines } from '../test-support/two-armed-run.js';

const PORT = 4433;
const BACKEND_PORT = 7000;

/** Waits for `text` on the process's stdout; fails when the process ends first or `timeoutMs` passes. */
function stdoutShows(proc: Spawned, text: string, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (error?: Error): void => {
      clearTimeout(timer);
      proc.child.stdout?.removeListener('data', onData);
      proc.child.removeListener('exit', onExit);
      if (error) reject(error);
      else resolve();
    };
    const onData = (): void => {
      if (proc.output().stdout.includes(text)) done();
    };
    const onExit = (): void => done(new Error(`the process ended before printing ${JSON.stringify(text)}: ${JSON.stringify(proc.output())}`));
    const timer = setTimeout(() => done(new Error(`${JSON.stringify(text)} not printed within ${timeoutMs} ms`)), timeoutMs);
    proc.child.stdout?.on('data', onData);
    proc.child.once('exit', onExit);
    onData();
  });
}

// Inside `ip netns exec` /sys/fs/bpf is a plain sysfs folder: `flowlb run` mounts bpffs there for its pins, and a
// shell that stays in that mount namespace sees them for `flowlb flows`, `flowlb stats` and the next run.
describePrivileged('flowlb run mounts bpffs where `ip netns exec` has none', () => {
  let net: TwoArmed;
  let dir: string;
  let echo: UdpEcho;
  let vip: string;
  let instance: string;
  let config: string;
  let env: NodeJS.ProcessEnv;
  let lb: LbProcess | undefined;
  let hostBpffsType: number;

  const send = (port: number) =>
    runUdpClient(net.topology, net.client.ns, { target: vip, bind: `${net.client.addr}:${port}`, count: 4, payload: 'hello {seq}', lockstep: true, timeoutMs: 1500 });

  beforeAll(async () => {
    hostBpffsType = statfsSync('/sys/fs/bpf').type;
    dir = mkdtempSync(join(tmpdir(), 'flowlb-bpffs-'));
    net = await twoArmedTopology({ prefix: 'clibpf', xdpPassOnPeers: 'native' });
    vip = `${net.lb.front.addr}:${PORT}`;
    instance = `${net.lb.front.addr.replace(/\./g, '_')}-${PORT}`;
    echo = await startUdpEcho(net.topology, net.backends[0]!.ns, { addr: net.backends[0]!.addr, port: BACKEND_PORT, prefix: 'b|' });
    writeFileSync(join(dir, 'mapper.mjs'), forwardAllMapper({ address: net.backends[0]!.addr, port: BACKEND_PORT }));
    // No pin_path: the default, /sys/fs/bpf/flowlb/<instance>, is the one that needs a mount.
    config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      [...twoArmedConfigLines(net, PORT), 'metrics_addr: "127.0.0.1:0"', ''].join('\n'),
    );
    env = { FLOWLB_RUN_DIR: join(dir, 'run'), FLOWLB_PIN_ROOT: undefined };
  }, 60_000);

  afterEach(async () => {
    if (lb) await lb.proc.stop(2000);
    lb = undefined;
  });

  afterAll(async () => {
    await echo?.stop().catch(() => undefined);
    // Destroying the topology ends every process in the test's mount namespaces, and with them the mounts.
    await net?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('pins there, and flows, stats and a restart from the same mount namespace find the pins', async () => {
    // The shell an operator would start with `ip netns exec lb bash`: it holds the mount namespace.
    const shell = net.topology.spawn(net.lb.ns, 'sh', ['-c', 'echo ready; exec sleep 600']);
    await stdoutShows(shell, 'ready');
    const inShell = ['nsenter', '-t', String(shell.pid), '-m', '--'];
    const fsTypeInShell = async (): Promise<string> =>
      (await net.topology.exec(net.lb.ns, 'nsenter', ['-t', String(shell.pid), '-m', '--', 'stat', '-f', '-c', '%T', '/sys/fs/bpf'])).stdout.trim();
    try {
      expect(await fsTypeInShell()).toBe('sysfs');

      lb = new LbProcess(net.topology, net.lb.ns, ['--config', config, '--mapper', join(dir, 'mapper.mjs')], env, inShell);
      const running = await lb.running();
      const pinPath = `/sys/fs/bpf/flowlb/${instance}`;
      expect(running.pinPath).toBe(pinPath);
      expect(lb.lines.find((l) => l.msg === 'mounted bpffs for the pins')).toMatchObject({ mountPoint: '/sys/fs/bpf', pinPath });
      // The shell keeps the namespace, so there is nothing to warn about.
      expect(lb.lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual([]);
      expect(await fsTypeInShell()).toBe('bpf_fs');
      const metricsUrl = lb.lines.find((l) => l.msg.startsWith('metrics, health'))?.url as string;

      const first = await send(40000);
      expect(first.lostSeqs).toEqual([]);
      expect(first.replies.map((r) => r.data)).toEqual([0, 1, 2, 3].map((i) => `b|hello ${i}`));

      const flows = await runCliIn(net.topology, net.lb.ns, ['flows', '--json'], { env, prefix: inShell });
      expect(flows.stderr).toBe('');
      const listed = JSON.parse(flows.stdout) as { pinPath: string; count: number; flows: Array<{ client: { port: number }; kind: string }> };
      expect(listed).toMatchObject({ pinPath, count: 1, flows: [{ client: { address: net.client.addr, port: 40000 }, kind: 'pair' }] });

      const stats = await runCliIn(net.topology, net.lb.ns, ['stats', '--json'], { env, prefix: inShell });
      expect(stats.stderr).toBe('');
      const s = JSON.parse(stats.stdout) as {
        xdpSource: string;
        xdp: { fwdHit: number; fibNoNeigh: number; revHit: number };
        balancer: { flows: { active: number } };
      };
      expect(s.xdpSource).toBe(`${pinPath}/stats`);
      expect(s.xdp.fwdHit + s.xdp.fibNoNeigh).toBeGreaterThanOrEqual(3);
      expect(s.xdp.revHit).toBeGreaterThanOrEqual(3);
      expect(s.balancer.flows.active).toBe(1);

      // Another `ip netns exec` has a mount namespace of its own, without these pins: the run answers over HTTP.
      const elsewhere = await runCliIn(net.topology, net.lb.ns, ['flows', '--json'], { env });
      expect(elsewhere.stderr).toBe('');
      expect(JSON.parse(elsewhere.stdout)).toMatchObject({ pinPath, source: `${metricsUrl}/flows`, datapath: 'xdp', count: 1 });

      // A crash: nothing is cleaned up, and the next run, from the same shell, takes the pins over.
      lb.signal('SIGKILL');
      expect(await lb.exit()).toEqual({ code: null, signal: 'SIGKILL' });
      lb = new LbProcess(net.topology, net.lb.ns, ['--config', config, '--mapper', join(dir, 'mapper.mjs'), '--detach-on-exit'], env, inShell);
      await lb.running();
      expect(lb.lines.find((l) => l.msg === 'mounted bpffs for the pins')).toBeUndefined();
      expect(lb.lines.find((l) => l.msg === 'flows adopted from the pinned map')?.count).toBe(1);
      expect(lb.lines.filter((l) => l.msg.startsWith('took over the pinned XDP link')).map((l) => l.iface)).toEqual(['front', 'back']);
      const again = await send(40000);
      expect(again.replies.map((r) => r.data)).toEqual([0, 1, 2, 3].map((i) => `b|hello ${i}`));

      lb.signal('SIGTERM');
      expect(await lb.exit()).toEqual({ code: 0, signal: null });
      lb = undefined;
      const none = await runCliIn(net.topology, net.lb.ns, ['flows'], { env, prefix: inShell });
      expect(none.code).toBe(1);
      expect(none.stderr).toMatch(/^flowlb: no flowlb instance has maps pinned under \/sys\/fs\/bpf\/flowlb, /);
    } finally {
      await net.topology.exec(net.lb.ns, 'nsenter', [...inShell.slice(1, -1), '--', 'umount', '/sys/fs/bpf']).catch(() => undefined);
      await shell.stop();
    }
    // The mount stayed in the test's namespace.
    expect(statfsSync('/sys/fs/bpf').type).toBe(hostBpffsType);
  }, 120_000);

  it('warns when the mount namespace, and so the pins, end with the run', async () => {
    // `ip netns exec` starting flowlb itself: its mount namespace has no other process.
    lb = new LbProcess(net.topology, net.lb.ns, ['--config', config, '--mapper', join(dir, 'mapper.mjs')], env);
    await lb.running();
    expect(lb.lines.find((l) => l.msg === 'mounted bpffs for the pins')).toMatchObject({ mountPoint: '/sys/fs/bpf' });
    const warning = lb.lines.find((l) => l.msg.startsWith('no other process is in this mount namespace'));
    expect(warning).toMatchObject({ level: 'warn' });
    expect(warning?.msg).toContain('ends with this run, and with it the pins, the flows and the attached XDP program');
    expect(warning?.msg).toContain('mount -t bpf bpf /run/flowlb/bpffs');
    // Its pins are out of reach of any other `ip netns exec`, its counters are not.
    const metricsUrl = lb.lines.find((l) => l.msg.startsWith('metrics, health'))?.url as string;
    expect((await send(40001)).replies.map((r) => r.data)).toEqual([0, 1, 2, 3].map((i) => `b|hello ${i}`));
    const stats = await runCliIn(net.topology, net.lb.ns, ['stats', '--json'], { env });
    expect(stats.stderr).toBe('');
    const s = JSON.parse(stats.stdout) as { pinPath: string; xdpSource: string; xdp: { revHit: number }; balancerSource: string };
    expect(s).toMatchObject({ pinPath: `/sys/fs/bpf/flowlb/${instance}`, xdpSource: `${metricsUrl}/stats`, balancerSource: `${metricsUrl}/stats` });
    expect(s.xdp.revHit).toBeGreaterThanOrEqual(3);
    lb.signal('SIGTERM');
    expect(await lb.exit()).toEqual({ code: 0, signal: null });
    // The usual promise that the program stays attached would not hold.
    expect(lb.lines.find((l) => l.msg.startsWith('the XDP program stays attached'))).toBeUndefined();
    expect(lb.lines.find((l) => l.msg.startsWith('the XDP program is detached as this run ends'))).toMatchObject({
      level: 'warn',
      interfaces: ['front', 'back'],
    });
    lb = undefined;
    expect(statfsSync('/sys/fs/bpf').type).toBe(hostBpffsType);
  }, 60_000);

  it('without CAP_SYS_ADMIN says what is missing: a configured pin_path refuses to start, the default runs unpinned', async () => {
    const noSysAdmin = ['setpriv', '--bounding-set=-sys_admin'];
    const configured = join(dir, 'pinned.yaml');
    writeFileSync(configured, `${readFileSync(config, 'utf8')}pin_path: /sys/fs/bpf/flowlb/lb9\n`);
    const refused = new LbProcess(net.topology, net.lb.ns, ['--config', configured, '--mapper', join(dir, 'mapper.mjs')], env, noSysAdmin);
    lb = refused;
    expect(await refused.exit()).toEqual({ code: 3, signal: null });
    expect(refused.proc.output().stderr).toBe(
      'flowlb: pin_path /sys/fs/bpf/flowlb/lb9: /sys/fs/bpf/flowlb/lb9 is not on a bpffs mount (/sys/fs/bpf has filesystem ' +
        "type 0x62656572), and mounting one on /sys/fs/bpf failed: EPERM: operation not permitted, mount '/sys/fs/bpf' " +
        '(mounting bpffs needs CAP_SYS_ADMIN: run as root, or have it mounted beforehand with mount -t bpf bpf /sys/fs/bpf)\n',
    );

    lb = new LbProcess(net.topology, net.lb.ns, ['--config', config, '--mapper', join(dir, 'mapper.mjs')], env, noSysAdmin);
    const running = await lb.running();
    expect(running.pinPath).toBeNull();
    expect(lb.lines.find((l) => l.msg === 'cannot mount bpffs for the pins')).toMatchObject({
      level: 'warn',
      error: expect.stringContaining('EPERM: operation not permitted, mount \'/sys/fs/bpf\' (mounting bpffs needs CAP_SYS_ADMIN'),
    });
    lb.signal('SIGTERM');
    expect(await lb.exit()).toEqual({ code: 0, signal: null });
    lb = undefined;
  }, 60_000);
});
