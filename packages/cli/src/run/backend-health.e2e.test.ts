import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged, dtlsCapture, runUdpClient, startUdpEcho, twoArmedTopology, type TwoArmed, type UdpEcho } from '@flowlb/testkit';
import { cliJson, healthMappingsYaml, startMappingsRun, tearDownRun, waitForBackend, type RunProbe } from '../test-support/backends.js';
import type { LbProcess } from '../test-support/lb-process.js';
import { mappingsFromYaml } from '@flowlb/mapper-dtls-sni';
import type { BackendReport } from '../mapper/backend-health.js';

const PORT = 4433;
const ECHO_PORT = 7000;
/** The name in the captured hello the clients send. */
const NAME = 'foo.example';
const HEALTH = { intervalMs: 300, timeoutMs: 250, rise: 2, fall: 2 };

// `flowlb run --mappings` with two UDP echo targets behind one name, probed with a datagram each. Clients send the
// first datagram of a real ClientHello for that name, so each gets a flow to the target the mapper picks; the
// echoes are stopped and started again, weighted, drained, and left all down.
describePrivileged('flowlb run: backends that fail and come back', () => {
  let net: TwoArmed;
  let dir: string;
  const echoes: (UdpEcho | undefined)[] = [];
  let lb: LbProcess | undefined;
  let mappings: string;
  let nextPort = 41000;
  const hello = dtlsCapture('ossl_foo')[0]!;

  const targetOf = (i: number): string => `${net.backends[i]!.addr}:${ECHO_PORT}`;

  async function startEcho(i: number): Promise<void> {
    const b = net.backends[i]!;
    echoes[i] = await startUdpEcho(net.topology, b.ns, { addr: b.addr, port: ECHO_PORT, lifetimeMs: 300_000 });
  }

  const run = (): RunProbe => ({ topology: net.topology, ns: net.lb.ns, dir });
  const cli = <T>(args: string[]): Promise<T> => cliJson<T>(run(), args);
  const waitFor = (target: string, state: BackendReport['state']): Promise<BackendReport> => waitForBackend(run(), target, state);

  /** New clients, each from a port of its own, sending the hello; the target each flow went to (none: no flow). */
  async function newClients(n: number): Promise<(string | undefined)[]> {
    const c = net.clients[0]!;
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const port = nextPort++;
      ports.push(port);
      await runUdpClient(net.topology, c.ns, { target: `${net.lb.front.addr}:${PORT}`, bind: `${c.addr}:${port}`, payloads: [hello], timeoutMs: 300 });
    }
    type Flows = { flows: { client: { port: number }; target: { address: string; port: number } }[] };
    const flows = (await cli<Flows>(['flows'])).flows;
    return ports.map((p) => {
      const f = flows.find((x) => x.client.port === p);
      return f ? `${f.target.address}:${f.target.port}` : undefined;
    });
  }

  /** Rewrites the mappings and waits until the running balancer has read them. */
  async function reload(targets: string[], whenAllDown?: 'drop' | 'any'): Promise<void> {
    const seen = lb!.lines.length;
    writeMappings(targets, whenAllDown);
    lb!.signal('SIGHUP');
    await lb!.waitForLog((l) => l.msg === 'mappings reloaded' && lb!.lines.indexOf(l) >= seen);
  }

  function writeMappings(targets: string[], whenAllDown?: 'drop' | 'any'): void {
    writeFileSync(
      mappings,
      healthMappingsYaml({
        name: NAME,
        health: {
          probe: 'udp',
          udp_payload: 'are you there',
          udp_expect: '^are you',
          interval_ms: HEALTH.intervalMs,
          timeout_ms: HEALTH.timeoutMs,
          rise: HEALTH.rise,
          fall: HEALTH.fall,
        },
        targets,
        ...(whenAllDown ? { whenAllDown } : {}),
      }),
    );
  }

  const entry = (i: number, extra = ''): string => `{ ipv4: "${net.backends[i]!.addr}", port: ${ECHO_PORT}${extra} }`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flowlb-health-'));
    net = await twoArmedTopology({ prefix: 'clihlth', clients: 1, backends: 2, xdpPassOnPeers: 'native' });
    await startEcho(0);
    await startEcho(1);
    mappings = join(dir, 'mappings.yaml');
    writeMappings([entry(0), entry(1)]);
    // Flows of clients that never speak again would expire within the test otherwise.
    lb = await startMappingsRun(net, dir, mappings, { port: PORT, pinName: 'hlth', extraConfig: ['conn_ttl_sec: 600', 'unconfirmed_ttl_sec: 600'] });
  }, 120_000);

  afterAll(() => tearDownRun({ lb, backends: echoes, net, dir }));

  it('probes both targets until they are healthy, and spreads new clients over both', async () => {
    for (const i of [0, 1]) expect(await waitFor(targetOf(i), 'healthy')).toMatchObject({ probe: 'udp', names: [NAME], failures: 0 });
    const got = await newClients(20);
    expect(got).not.toContain(undefined);
    expect(new Set(got)).toEqual(new Set([targetOf(0), targetOf(1)]));
  }, 60_000);

  it(`a stopped target goes unhealthy after ${HEALTH.fall} failed probes, says why, and new clients all go to the other`, async () => {
    await echoes[0]!.stop();
    echoes[0] = undefined;
    const down = await waitFor(targetOf(0), 'unhealthy');
    expect(down.failures).toBeGreaterThanOrEqual(HEALTH.fall);
    // ICMP port unreachable, or nothing when the kernel rate-limits its ICMP: either way a failed probe.
    expect(down.lastFailure).toMatch(/^(port unreachable|timeout)$/);
    const line = lb!.lines.find((l) => l.msg.startsWith('backend unhealthy') && l.target === targetOf(0));
    expect(line).toMatchObject({ from: 'healthy', to: 'unhealthy' });
    expect(await newClients(12)).toEqual(Array(12).fill(targetOf(1)));
  }, 60_000);

  it(`a restarted target is healthy again after ${HEALTH.rise} good probes and takes new clients`, async () => {
    await startEcho(0);
    const up = await waitFor(targetOf(0), 'healthy');
    expect(up.lastRttMs).toBeGreaterThan(0);
    expect(lb!.lines.some((l) => l.msg === 'backend healthy' && l.target === targetOf(0) && l.from === 'unhealthy')).toBe(true);
    expect(await newClients(20)).toContain(targetOf(0));
  }, 60_000);

  it('weights 2:1: each new client goes where weighted rendezvous over the file puts it, and a reload keeps every flow', async () => {
    const before = await cli<{ flows: unknown[] }>(['flows']);
    await reload([entry(0, ', weight: 2'), entry(1)]);
    const first = nextPort;
    const got = await newClients(60);
    // What the file says, computed here: the choice is exact, so each client is checked, not a ratio.
    const table = mappingsFromYaml(readFileSync(mappings, 'utf8'));
    const want = got.map((_, i) => {
      const r = table.resolve(NAME, `${net.clients[0]!.addr}:${first + i}`);
      return r.kind === 'target' ? `${r.target.address}:${r.target.port}` : undefined;
    });
    expect(got).toEqual(want);
    expect(got.filter((t) => t === targetOf(0)).length).toBeGreaterThan(got.filter((t) => t === targetOf(1)).length);
    const after = await cli<{ flows: unknown[] }>(['flows']);
    expect(after.flows.length).toBe(before.flows.length + 60);
  }, 120_000);

  it('a drained target takes no new client and keeps the flows it has', async () => {
    type Flows = { flows: { client: { port: number }; target: { address: string } }[] };
    const toA = (await cli<Flows>(['flows'])).flows.filter((f) => f.target.address === net.backends[0]!.addr).length;
    expect(toA).toBeGreaterThan(0);
    await reload([entry(0, ', drain: true'), entry(1)]);
    expect(await waitFor(targetOf(0), 'draining')).toMatchObject({ health: 'healthy' });
    expect(await newClients(12)).toEqual(Array(12).fill(targetOf(1)));
    const still = (await cli<Flows>(['flows'])).flows.filter((f) => f.target.address === net.backends[0]!.addr).length;
    expect(still).toBe(toA);
  }, 60_000);

  it('a target removed from the mappings takes no new client, keeps its flows, and shows as draining while it has any', async () => {
    type Flows = { flows: { target: { address: string } }[] };
    const toA = async (): Promise<number> => (await cli<Flows>(['flows'])).flows.filter((f) => f.target.address === net.backends[0]!.addr).length;
    const before = await toA();
    expect(before).toBeGreaterThan(0);
    await reload([entry(1)]);
    const row = (await cli<BackendReport[]>(['backends'])).find((b) => b.target === targetOf(0));
    expect(row).toMatchObject({ state: 'draining', names: [], flows: { active: before } });
    expect(row).not.toHaveProperty('health');
    expect(await newClients(6)).toEqual(Array(6).fill(targetOf(1)));
    expect(await toA()).toBe(before);
  }, 60_000);

  it('with every target down, when_all_down: drop refuses new clients, and any sends them on regardless; the metrics say which are up', async () => {
    await reload([entry(0), entry(1)]);
    for (const i of [0, 1]) {
      await echoes[i]!.stop();
      echoes[i] = undefined;
    }
    for (const i of [0, 1]) await waitFor(targetOf(i), 'unhealthy');
    expect(await newClients(4)).toEqual(Array(4).fill(undefined));
    const { stdout } = await net.topology.exec(net.lb.ns, 'curl', ['-s', '-m', '5', 'http://127.0.0.1:9100/metrics']);
    expect(stdout).toContain(`flowlb_backend_up{target="${targetOf(0)}"} 0`);
    expect(stdout).toMatch(new RegExp(`flowlb_backend_probes_total\\{target="${targetOf(1)}",result="failed"\\} [1-9]`));
    await reload([entry(0), entry(1)], 'any');
    const open = await newClients(4);
    expect(open.every((t) => t === targetOf(0) || t === targetOf(1))).toBe(true);
  }, 60_000);
});
