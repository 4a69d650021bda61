import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged, dtlsCapture, runUdpClient, startUdpEcho, twoArmedTopology, type TwoArmed, type UdpEcho } from '@flowlb/testkit';
import { cliJson, healthMappingsYaml, startMappingsRun, tearDownRun, waitForBackend, type RunProbe } from '../test-support/backends.js';
import type { LbProcess } from '../test-support/lb-process.js';

const PORT = 4433;
const ECHO_PORT = 7000;
const NAME = 'foo.example';
const SNAT_MIN = 23000;
const PROBE = 'are you there';
const HEALTH = { probe: 'udp', udp_payload: PROBE, udp_expect: '^are you', interval_ms: 200, timeout_ms: 150, rise: 2, fall: 2 };

type Flows = { flows: { client: { port: number }; snat: { port: number }; target: { address: string; port: number } }[] };

// `workers: 2` with health checks: worker 0 probes for both and tells worker 1, so each target is probed once per
// interval, not once per worker, and both keep new clients off a target that is down.
describePrivileged('flowlb run with workers: one health check for all', () => {
  let net: TwoArmed;
  let dir: string;
  const echoes: (UdpEcho | undefined)[] = [];
  let lb: LbProcess | undefined;
  const hello = dtlsCapture('ossl_foo')[0]!;

  const targetOf = (i: number): string => `${net.backends[i]!.addr}:${ECHO_PORT}`;
  const run = (): RunProbe => ({ topology: net.topology, ns: net.lb.ns, dir });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flowlb-health-wrk-'));
    net = await twoArmedTopology({ prefix: 'clihwk', clients: 1, backends: 2, xdpPassOnPeers: 'native' });
    for (const i of [0, 1]) {
      const b = net.backends[i]!;
      echoes[i] = await startUdpEcho(net.topology, b.ns, { addr: b.addr, port: ECHO_PORT, lifetimeMs: 300_000 });
    }
    const mappings = join(dir, 'mappings.yaml');
    writeFileSync(
      mappings,
      healthMappingsYaml({ name: NAME, health: HEALTH, targets: [0, 1].map((i) => `{ ipv4: "${net.backends[i]!.addr}", port: ${ECHO_PORT} }`) }),
    );
    lb = await startMappingsRun(net, dir, mappings, {
      port: PORT,
      pinName: 'hwk',
      extraConfig: ['workers: 2', `snat_ports: "${SNAT_MIN}-${SNAT_MIN + 999}"`, 'conn_ttl_sec: 600', 'unconfirmed_ttl_sec: 600'],
    });
    await lb.waitForLog((l) => l.msg === 'worker running' && l.worker === 1);
  }, 120_000);

  afterAll(() => tearDownRun({ lb, backends: echoes, net, dir }));

  it('probes each target from worker 0 alone', async () => {
    for (const i of [0, 1]) await waitForBackend(run(), targetOf(i), 'healthy');
    const probesAt = (i: number): number[] => echoes[i]!.lines().filter((r) => r.data === PROBE).map((r) => r.t);
    const start = probesAt(0).length;
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 2000));
    const elapsed = Date.now() - t0;
    // One prober sends at most one probe an interval (late timers only send fewer); two would send twice that.
    const got = probesAt(0).length - start;
    expect(got).toBeGreaterThan(0);
    expect(got).toBeLessThanOrEqual(Math.ceil(elapsed / HEALTH.interval_ms) + 1);
    // Every state change is logged by worker 0; worker 1 only follows.
    const changes = lb!.lines.filter((l) => l.msg === 'backend healthy' || l.msg.startsWith('backend unhealthy'));
    expect(changes.length).toBeGreaterThanOrEqual(2);
    expect(changes.every((l) => l.worker === undefined)).toBe(true);
  }, 60_000);

  it('keeps the new clients of both workers off a target that is down', async () => {
    await echoes[0]!.stop();
    echoes[0] = undefined;
    await waitForBackend(run(), targetOf(0), 'unhealthy');
    const c = net.clients[0]!;
    const first = 45000;
    for (let i = 0; i < 24; i++) {
      const r = await runUdpClient(net.topology, c.ns, { target: `${net.lb.front.addr}:${PORT}`, bind: `${c.addr}:${first + i}`, payloads: [hello], timeoutMs: 2000 });
      expect(r.received).toBe(1);
    }
    const flows = (await cliJson<Flows>(run(), ['flows'])).flows.filter((f) => f.client.port >= first && f.client.port < first + 24);
    expect(flows).toHaveLength(24);
    expect(new Set(flows.map((f) => `${f.target.address}:${f.target.port}`))).toEqual(new Set([targetOf(1)]));
    // Both workers made some of them: each hands out its own half of the SNAT ports.
    const byWorker = new Set(flows.map((f) => (f.snat.port - SNAT_MIN) % 2));
    expect(byWorker).toEqual(new Set([0, 1]));
  }, 90_000);
});
