import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged, runUdpClient, startUdpEcho, twoArmedTopology, type TwoArmed, type UdpEcho } from '@flowlb/testkit';
import { runCli } from '../test-support/cli.js';
import { LbProcess, type LogLine } from '../test-support/lb-process.js';
import { forwardAllMapper, twoArmedConfigLines } from '../test-support/two-armed-run.js';

const PORT = 4433;
const BACKEND_PORT = 7000;
const CLIENTS = 24;
const FIRST_CLIENT_PORT = 41000;
const SNAT_MIN = 20000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// `workers: 2`: flowlb run is worker 0 and starts worker 1; clients are spread over both, each on its own SNAT
// ports; worker 1 killed is started again and takes its flows back; stopping the run stops it too.
describePrivileged('flowlb run with workers', () => {
  let net: TwoArmed;
  let echo: UdpEcho;
  let dir: string;
  let pinPath: string;
  let lb: LbProcess | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flowlb-workers-'));
    net = await twoArmedTopology({ prefix: 'cliwrk', clients: 1, backends: 1, xdpPassOnPeers: 'native' });
    const bpffs = await net.topology.mountBpffs();
    pinPath = `${bpffs}/wrk`;
    const backend = net.backends[0]!;
    echo = await startUdpEcho(net.topology, backend.ns, { addr: backend.addr, port: BACKEND_PORT, lifetimeMs: 300_000 });
    writeFileSync(join(dir, 'mapper.mjs'), forwardAllMapper({ address: backend.addr, port: BACKEND_PORT }));
    writeFileSync(
      join(dir, 'config.yaml'),
      [...twoArmedConfigLines(net, PORT), 'mode: xdp', `pin_path: ${pinPath}`, `snat_ports: "${SNAT_MIN}-${SNAT_MIN + 999}"`, 'workers: 2', 'debug: true', ''].join('\n'),
    );
  }, 60_000);

  afterAll(async () => {
    await lb?.proc.stop(1000);
    if (pinPath) await runCli(['detach', '--pin-path', pinPath, '--force'], { timeoutMs: 10_000 }).catch(() => undefined);
    await echo?.stop().catch(() => undefined);
    await net?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('spreads new clients over the workers, restarts a dead one with its flows, and stops them all', async () => {
    lb = new LbProcess(net.topology, net.lb.ns, ['--config', join(dir, 'config.yaml'), '--mapper', join(dir, 'mapper.mjs')], { FLOWLB_RUN_DIR: dir });
    await lb.running();
    const started = await lb.waitForLog((l) => l.msg === 'worker running' && l.worker === 1);
    const workerPid = started.workerPid as number;
    expect(alive(workerPid)).toBe(true);

    const client = net.clients[0]!;
    const vip = `${net.lb.front.addr}:${PORT}`;
    for (let i = 0; i < CLIENTS; i++) {
      const r = await runUdpClient(net.topology, client.ns, { target: vip, bind: `${client.addr}:${FIRST_CLIENT_PORT + i}`, count: 1, timeoutMs: 3000 });
      expect(r.lostSeqs).toEqual([]);
    }
    const created = (): LogLine[] => lb!.lines.filter((l) => l.msg === 'flow created');
    expect(created()).toHaveLength(CLIENTS);
    const byWorker = (w: number | undefined) => created().filter((l) => l.worker === w);
    const portOf = (l: LogLine): number => Number(String(l.snat).split(':')[1]);
    // Each made some of the flows, on its own half of the SNAT ports.
    expect(byWorker(1).length).toBeGreaterThan(0);
    expect(byWorker(undefined).length).toBeGreaterThan(0);
    expect(byWorker(1).every((l) => (portOf(l) - SNAT_MIN) % 2 === 1)).toBe(true);
    expect(byWorker(undefined).every((l) => (portOf(l) - SNAT_MIN) % 2 === 0)).toBe(true);

    // Killed, worker 1 comes back and adopts exactly the flows it had made.
    process.kill(workerPid, 'SIGKILL');
    await lb.waitForLog((l) => l.msg.startsWith('worker exited') && l.workerPid === workerPid);
    const again = await lb.waitForLog((l) => l.msg === 'worker running' && l.worker === 1 && l.workerPid !== workerPid);
    const adopted = await lb.waitForLog((l) => l.msg === 'flows adopted from the pinned map' && l.worker === 1);
    expect(adopted.count).toBe(byWorker(1).length);

    // The flows of both still answer.
    for (const i of [0, CLIENTS - 1]) {
      const r = await runUdpClient(net.topology, client.ns, { target: vip, bind: `${client.addr}:${FIRST_CLIENT_PORT + i}`, count: 1, timeoutMs: 3000 });
      expect(r.lostSeqs).toEqual([]);
    }

    lb.signal('SIGTERM');
    expect(await lb.exit()).toEqual({ code: 0, signal: null });
    expect(alive(again.workerPid as number)).toBe(false);
  });
});
