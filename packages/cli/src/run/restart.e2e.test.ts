import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BpfMap } from '@flowlb/xdp-core';
import { describePrivileged, runUdpClient, startUdpEcho, twoArmedTopology, type TwoArmed, type UdpEcho } from '@flowlb/testkit';
import { readXdpStats } from '../maps/stats.js';
import { runCli } from '../test-support/cli.js';
import { LbProcess } from '../test-support/lb-process.js';
import { forwardAllMapper, twoArmedConfigLines } from '../test-support/two-armed-run.js';

const PORT = 4433;
const BACKEND_PORT = 7000;
/** The stream: STREAM datagrams, one every INTERVAL_MS, about 200 a second for 10 s: time for a slow machine's restart. */
const STREAM = 2000;
const INTERVAL_MS = 5;
const STREAM_PORT = 40000;

// The control plane dies by SIGKILL in the middle of a stream and comes back: the pinned links keep the program
// forwarding meanwhile, and the new run takes over the program, the flows, their SNAT ports and their expiry.
describePrivileged('flowlb run: restart without losing flows', () => {
  let net: TwoArmed;
  let echo: UdpEcho;
  let bpffs: string;
  let dir: string;
  let pinPath: string;
  let config: string;
  const procs: LbProcess[] = [];

  const start = (...extra: string[]): LbProcess => {
    const p = new LbProcess(net.topology, net.lb.ns, ['--config', config, '--mapper', join(dir, 'mapper.mjs'), ...extra], {
      FLOWLB_RUN_DIR: dir,
    });
    procs.push(p);
    return p;
  };
  const xdpStats = () => {
    const map = BpfMap.openPinned(join(pinPath, 'stats'));
    try {
      return readXdpStats(map);
    } finally {
      map.close();
    }
  };
  const progIds = () => Promise.all(['front', 'back'].map(async (i) => (await net.topology.link(net.lb.ns, i)).xdp?.progId));
  const received = () => echo.lines().length;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flowlb-restart-'));
    net = await twoArmedTopology({ prefix: 'clirst', clients: 2, backends: 1, xdpPassOnPeers: 'native' });
    bpffs = await net.topology.mountBpffs();
    pinPath = `${bpffs}/rst`;
    const backend = net.backends[0]!;
    echo = await startUdpEcho(net.topology, backend.ns, { addr: backend.addr, port: BACKEND_PORT, lifetimeMs: 300_000 });
    writeFileSync(join(dir, 'mapper.mjs'), forwardAllMapper({ address: backend.addr, port: BACKEND_PORT }));
    config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      [
        ...twoArmedConfigLines(net, PORT),
        'mode: xdp',
        `pin_path: ${pinPath}`,
        // Short, so that the restarted run is seen expiring the flow it adopted.
        'conn_ttl_sec: 3',
        'debug: true',
        '',
      ].join('\n'),
    );
  }, 60_000);

  afterAll(async () => {
    for (const p of procs) await p.proc.stop(1000);
    // Whatever the test reached: nothing of the instance may outlive it (unmounting the bpffs would drop the pins too).
    if (pinPath) await runCli(['detach', '--pin-path', pinPath, '--force'], { timeoutMs: 10_000 }).catch(() => undefined);
    await echo?.stop().catch(() => undefined);
    await net?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('keeps every datagram of an established flow flowing through SIGKILL and a new start; new flows work after', async () => {
    const vip = `${net.lb.front.addr}:${PORT}`;
    const [c0, c1] = net.clients;
    const first = start();
    await first.running();

    // The flow, set up by the first run through its mapper.
    const hello = await runUdpClient(net.topology, c0!.ns, {
      target: vip,
      bind: `${c0!.addr}:${STREAM_PORT}`,
      count: 3,
      lockstep: true,
      timeoutMs: 1500,
    });
    expect(hello.lostSeqs).toEqual([]);
    const adopted = (await first.waitForLog((l) => l.msg === 'flow created' && l.client === `${c0!.addr}:${STREAM_PORT}`)).snat as string;
    expect(adopted.startsWith(`${net.lb.back.addr}:`)).toBe(true);

    const before = received();
    const stream = runUdpClient(net.topology, c0!.ns, {
      target: vip,
      bind: `${c0!.addr}:${STREAM_PORT}`,
      count: STREAM,
      intervalMs: INTERVAL_MS,
      payload: 'seq {seq}',
      timeoutMs: 3000,
    });
    // Awaited below; if the test fails first, this must not surface as an unhandled rejection.
    stream.catch(() => undefined);
    await echo.waitForCount(before + 200, 10_000);

    first.signal('SIGKILL');
    expect(await first.exit()).toEqual({ code: null, signal: 'SIGKILL' });
    const killedAt = received();
    const atKill = xdpStats();
    const [oldProg] = await progIds();
    expect(oldProg).toBeGreaterThan(0);
    // No control plane for a second: only the kernel forwards.
    await sleep(1000);
    const gap = xdpStats();
    const gapDatagrams = received() - killedAt;
    expect(gap.fwdHit - atKill.fwdHit).toBeGreaterThan(100);
    expect(gap.revHit - atKill.revHit).toBeGreaterThan(100);
    expect(gap.miss).toBe(atKill.miss);
    expect(await progIds()).toEqual([oldProg, oldProg]);

    const second = start();
    await second.running();
    const readyAt = received();
    // The stream was still going when the new run took over, so the takeover itself was under traffic.
    expect(readyAt - before).toBeLessThan(STREAM);
    expect(second.lines.filter((l) => l.msg.startsWith('took over the pinned XDP link')).map((l) => l.iface)).toEqual(['front', 'back']);
    expect(second.lines.find((l) => l.msg === 'flows adopted from the pinned map')?.count).toBe(1);
    const [newProg, newProgBack] = await progIds();
    expect(newProg).not.toBe(oldProg);
    expect(newProgBack).toBe(newProg);

    // A new client while the adopted flow runs: the slow path works, and the adopted flow's SNAT port is taken.
    const fresh = await runUdpClient(net.topology, c1!.ns, {
      target: vip,
      bind: `${c1!.addr}:41000`,
      count: 4,
      lockstep: true,
      payload: 'fresh {seq}',
      timeoutMs: 1500,
    });
    expect(fresh.lostSeqs).toEqual([]);
    expect(fresh.replies.map((r) => r.from)).toEqual(Array(4).fill(vip));
    const created = await second.waitForLog((l) => l.msg === 'flow created' && l.client === `${c1!.addr}:41000`);
    expect(created.snat).not.toBe(adopted);
    expect(String(created.snat).startsWith(`${net.lb.back.addr}:`)).toBe(true);
    expect(new Set(echo.lines().filter((r) => r.data.startsWith('fresh ')).map((r) => r.from))).toEqual(new Set([created.snat]));

    const r = await stream;
    expect(r.sent).toBe(STREAM);
    expect(r.lostSeqs).toEqual([]);
    expect(new Set(r.replies.map((x) => x.from))).toEqual(new Set([vip]));
    expect(new Set(echo.lines().filter((x) => x.data.startsWith('seq ')).map((x) => x.from))).toEqual(new Set([adopted]));
    console.info(
      `restart: ${STREAM} datagrams streamed, ${r.lostSeqs.length} lost; ${gapDatagrams} reached the backend in the ` +
        `1 s without a control plane (XDP: +${gap.fwdHit - atKill.fwdHit} forward, +${gap.revHit - atKill.revHit} reverse), ` +
        `${readyAt - killedAt} between SIGKILL and the new run being ready`,
    );

    // The new run expires the flow it adopted once it is idle, and frees its port.
    await second.waitForLog((l) => l.msg === 'flow expired' && l.client === `${c0!.addr}:${STREAM_PORT}`, 15_000);

    // A plain stop leaves the program attached; `flowlb detach` is the clean stop.
    second.signal('SIGTERM');
    expect(await second.exit()).toEqual({ code: 0, signal: null });
    expect(await progIds()).toEqual([newProg, newProg]);
    const detached = await runCli(['detach', '--pin-path', pinPath], { env: { FLOWLB_RUN_DIR: dir } });
    expect(detached).toMatchObject({ code: 0, stderr: '' });
    expect(detached.stdout).toContain(`detached XDP program ${newProg} from front (link `);
    expect(detached.stdout).toContain(`detached XDP program ${newProg} from back (link `);
    expect(detached.stdout).toContain(`removed 8 pins and ${pinPath}\n`);
    expect(await progIds()).toEqual([undefined, undefined]);
    expect(existsSync(pinPath)).toBe(false);
    expect(await runCli(['detach', '--pin-path', pinPath])).toMatchObject({ code: 0, stdout: `nothing is pinned at ${pinPath}: nothing to detach\n` });
  }, 90_000);

  it('refuses a second run, and a detach, on the pin path of a running instance; --detach-on-exit leaves nothing', async () => {
    const running = start('--detach-on-exit');
    await running.running();
    const second = start();
    expect(await second.exit()).toEqual({ code: 1, signal: null });
    expect(second.proc.output().stderr).toMatch(new RegExp(`^flowlb: another flowlb run \\(pid ${running.proc.pid}, .*\\) is running on pin_path ${pinPath}`));
    const refused = await runCli(['detach', '--pin-path', pinPath], { env: { FLOWLB_RUN_DIR: dir } });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/is running on .*: stop it first/);
    expect(await progIds()).toEqual([expect.any(Number), expect.any(Number)]);
    // The clean stop from the run itself.
    running.signal('SIGTERM');
    expect(await running.exit()).toEqual({ code: 0, signal: null });
    expect(await progIds()).toEqual([undefined, undefined]);
    expect(existsSync(pinPath)).toBe(false);
  }, 60_000);
});
