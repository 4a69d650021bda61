import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged, dtlsCapture, runUdpClient, startUdpEcho, twoArmedTopology, type TwoArmed, type UdpEcho } from '@flowlb/testkit';
import { cliJson, healthMappingsYaml, startMappingsRun, tearDownRun, waitForBackend, type RunProbe } from '../test-support/backends.js';
import { runCliIn } from '../test-support/cli.js';
import type { LbProcess } from '../test-support/lb-process.js';
import type { BackendReport } from '../mapper/backend-health.js';

const PORT = 4433;
const ECHO_PORT = 7000;
const NAME = 'foo.example';
/**
 * Probes far apart: the first one makes each target healthy (rise 1), and nothing the test sees afterwards can come
 * from another probe, so every change of state is the work of a passive signal.
 */
const HEALTH = { interval_ms: 600_000, timeout_ms: 250, rise: 1, fall: 2 };

type Flows = { flows: { client: { port: number }; target: { address: string; port: number } }[] };

// `flowlb run --mappings` on the XDP datapath with two UDP echo targets: per-target flows and traffic, then targets
// that fail without a probe noticing: one whose port closes (ICMP), one that stops answering new flows. Both are
// set to `on_down: reset`.
describePrivileged('flowlb run: per-target counters and passive health signals', () => {
  let net: TwoArmed;
  let dir: string;
  const echoes: (UdpEcho | undefined)[] = [];
  let lb: LbProcess | undefined;
  let nextPort = 42000;
  const hello = dtlsCapture('ossl_foo')[0]!;

  const targetOf = (i: number): string => `${net.backends[i]!.addr}:${ECHO_PORT}`;
  const run = (): RunProbe => ({ topology: net.topology, ns: net.lb.ns, dir });
  const cli = <T>(args: string[]): Promise<T> => cliJson<T>(run(), args);
  const backends = async (): Promise<Map<string, BackendReport>> => new Map((await cli<BackendReport[]>(['backends'])).map((b) => [b.target, b]));
  const flowsTo = async (i: number): Promise<number[]> =>
    (await cli<Flows>(['flows'])).flows.filter((f) => `${f.target.address}:${f.target.port}` === targetOf(i)).map((f) => f.client.port);

  async function startEcho(i: number, replies = 1): Promise<void> {
    const b = net.backends[i]!;
    echoes[i] = await startUdpEcho(net.topology, b.ns, { addr: b.addr, port: ECHO_PORT, lifetimeMs: 300_000, replies });
  }

  /** A client from `port` that sends `payloads` one at a time, each after the reply to the one before. */
  const client = (port: number, payloads: (string | Uint8Array)[], expectReplies = 1) =>
    runUdpClient(net.topology, net.clients[0]!.ns, {
      target: `${net.lb.front.addr}:${PORT}`,
      bind: `${net.clients[0]!.addr}:${port}`,
      payloads,
      lockstep: true,
      expectReplies,
      timeoutMs: expectReplies === 0 ? 300 : 2000,
    });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flowlb-passive-'));
    net = await twoArmedTopology({ prefix: 'clipsv', clients: 1, backends: 2, xdpPassOnPeers: 'native' });
    await startEcho(0);
    await startEcho(1);
    const entry = (i: number): string => `{ ipv4: "${net.backends[i]!.addr}", port: ${ECHO_PORT} }`;
    const mappings = join(dir, 'mappings.yaml');
    writeFileSync(
      mappings,
      healthMappingsYaml({
        name: NAME,
        health: { probe: 'udp', udp_payload: 'are you there', udp_expect: '^are you', ...HEALTH, passive: true, on_down: 'reset' },
        targets: [entry(0), entry(1)],
      }),
    );
    lb = await startMappingsRun(net, dir, mappings, { port: PORT, pinName: 'psv', extraConfig: ['conn_ttl_sec: 600', 'unconfirmed_ttl_sec: 600'] });
    for (const i of [0, 1]) await waitForBackend(run(), targetOf(i), 'healthy');
  }, 120_000);

  afterAll(() => tearDownRun({ lb, backends: echoes, net, dir }));

  it("counts each target's flows, and the datagrams and bytes the XDP program carried each way", async () => {
    const extra = ['second datagram', 'third'];
    for (let i = 0; i < 12; i++) {
      const r = await client(nextPort++, [hello, ...extra]);
      expect(r.received).toBe(3);
    }
    const rows = await backends();
    const per = [0, 1].map((i) => rows.get(targetOf(i))!);
    expect(per[0]!.flows!.created + per[1]!.flows!.created).toBe(12);
    for (const [i, row] of per.entries()) {
      const n = (await flowsTo(i)).length;
      expect(row.flows).toEqual({ active: n, created: n, refused: 0 });
      if (n === 0) continue;
      // The hello went out from the control plane; the two datagrams after it, and every reply, through XDP.
      const ipLen = (payload: string | Uint8Array): number => 28 + Buffer.byteLength(payload);
      expect(row.traffic).toEqual({
        toTarget: { packets: 2 * n, bytes: n * (ipLen(extra[0]!) + ipLen(extra[1]!)) },
        fromTarget: { packets: 3 * n, bytes: n * (ipLen(hello) + ipLen(extra[0]!) + ipLen(extra[1]!)) },
      });
    }
    expect(per.every((r) => r.flows!.created > 0)).toBe(true);
  }, 120_000);

  it('shows the targets again and again with --watch, until --count', async () => {
    const r = await runCliIn(net.topology, net.lb.ns, ['backends', '--watch', '0.2', '--count', '3', '--config', join(dir, 'config.yaml')], {
      env: { FLOWLB_RUN_DIR: dir },
      timeoutMs: 10_000,
    });
    expect(r.code).toBe(0);
    const headers = r.stdout.split('\n').filter((l) => l.startsWith('TARGET'));
    expect(headers).toHaveLength(3);
    expect(headers[0]).toMatch(/FLOWS\s+NEW\s+REFUSED\s+TO TARGET\s+FROM TARGET/);
    expect(r.stdout.match(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/gm)).toHaveLength(3);
    expect(r.stdout).toContain(targetOf(0));
  }, 30_000);

  it('a target whose port closes is unhealthy from the ICMP unreachables its flows bring back, and its flows are removed', async () => {
    const ports = await flowsTo(0);
    expect(ports.length).toBeGreaterThan(0);
    await echoes[0]!.stop();
    echoes[0] = undefined;
    // Clients that already have flows go on talking: the program forwards, the backend's host answers ICMP.
    for (const port of ports.slice(0, 3)) await client(port, ['anyone?', 'anyone?'], 0);
    const down = await waitForBackend(run(), targetOf(0), 'unhealthy');
    expect(down.lastFailure).toMatch(/^ICMP destination unreachable/);
    await lb!.waitForLog((l) => l.msg.startsWith('flows of an unhealthy target removed') && l.target === targetOf(0));
    expect(await flowsTo(0)).toEqual([]);
    expect((await backends()).get(targetOf(0))!.flows!.active).toBe(0);
    // The other target's flows are untouched.
    expect((await flowsTo(1)).length).toBe((await backends()).get(targetOf(1))!.flows!.active);
  }, 60_000);

  it('a target that stops answering new flows is unhealthy after fall unanswered ones', async () => {
    const before = (await flowsTo(1)).length;
    expect(before).toBeGreaterThan(0);
    // Still bound, so no ICMP: it reads everything and answers nothing.
    await echoes[1]!.stop();
    await startEcho(1, 0);
    for (let i = 0; i < 20; i++) {
      await client(nextPort++, [hello], 0);
      const row = (await backends()).get(targetOf(1))!;
      if (row.state === 'unhealthy') break;
      // One new flow per target is watched at a time: let its wait end before the next.
      await new Promise((r) => setTimeout(r, HEALTH.timeout_ms + 100));
    }
    const down = (await backends()).get(targetOf(1))!;
    expect(down.state).toBe('unhealthy');
    expect(down.lastFailure).toBe(`no reply to a new flow within ${HEALTH.timeout_ms} ms`);
    await lb!.waitForLog((l) => l.msg.startsWith('flows of an unhealthy target removed') && l.target === targetOf(1));
    expect(await flowsTo(1)).toEqual([]);
  }, 90_000);
});
