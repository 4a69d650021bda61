import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDtlsCertificates,
  describePrivileged,
  describeWithDtlsTools,
  dtlsToolsCheck,
  runOpensslDtlsClient,
  startDtlsBackend,
  startDtlsServer,
  twoArmedTopology,
  type Topology,
  type DtlsCertificates,
  type TwoArmed,
} from '@flowlb/testkit';
import { healthMappingsYaml, startMappingsRun, tearDownRun, waitForBackend, type RunProbe } from '../test-support/backends.js';
import type { LbProcess } from '../test-support/lb-process.js';

const PORT = 4433;
const NAME = 'svc.example';
const HEALTH = { intervalMs: 500, timeoutMs: 400, rise: 2, fall: 2 };

type Credentials = Awaited<ReturnType<DtlsCertificates['issue']>>;
interface ServerKind {
  kind: string;
  /**
   * It serves one client at a time: a probe that arrives during a client's handshake waits unanswered (a failed
   * probe), and so may the hello of a client that arrives during a probe (an unanswered flow, for the passive
   * check). Either is one failure, and the client's handshake completes all the same; `fall` is one more for it,
   * so that a probe and a client that meet twice running do not take it out.
   */
  oneAtATime: boolean;
  start(topology: Topology, ns: string, o: Credentials & { addr: string; port: number; name: string }): Promise<{ stop(): Promise<unknown> }>;
}

const SERVERS: ServerKind[] = [
  // Serves many clients at once, as real servers do.
  { kind: 'a many-client OpenSSL DTLS server', oneAtATime: false, start: (topology, ns, o) => startDtlsBackend(topology, ns, o) },
  { kind: 'openssl s_server -dtls1_2', oneAtATime: true, start: (topology, ns, o) => startDtlsServer(topology, ns, o) },
];

// Two OpenSSL DTLS servers behind one name, probed with DTLS ClientHellos by `flowlb run`; one is stopped and started
// again while real `openssl s_client` handshakes go through the balancer.
describe.each(SERVERS)('flowlb run: DTLS backends probed with ClientHellos ($kind)', ({ start, oneAtATime }) => (dtlsToolsCheck().ok ? describePrivileged : describeWithDtlsTools)('', () => {
  let net: TwoArmed;
  let dir: string;
  let certs: DtlsCertificates;
  const servers: ({ stop(): Promise<unknown> } | undefined)[] = [];
  let lb: LbProcess | undefined;
  let nextPort = 42000;

  const targetOf = (i: number): string => `${net.backends[i]!.addr}:${PORT}`;
  const run = (): RunProbe => ({ topology: net.topology, ns: net.lb.ns, dir });

  async function startServer(i: number): Promise<void> {
    const name = i === 0 ? 'alpha' : 'beta';
    const b = net.backends[i]!;
    servers[i] = await start(net.topology, b.ns, { ...(await certs.issue(name)), addr: b.addr, port: PORT, name });
  }

  /** A real handshake to NAME from a port of its own, and the backend that served it (none: it failed). */
  async function handshake(): Promise<string | undefined> {
    const c = net.clients[0]!;
    const r = await runOpensslDtlsClient(net.topology, c.ns, {
      connect: `${net.lb.front.addr}:${PORT}`,
      bind: `${c.addr}:${nextPort++}`,
      servername: NAME,
      timeoutMs: 8000,
    });
    return r.ok ? r.peerCn : undefined;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flowlb-health-dtls-'));
    net = await twoArmedTopology({ prefix: 'clihdtl', clients: 1, backends: 2, xdpPassOnPeers: 'native' });
    certs = await createDtlsCertificates('flowlb-health-dtls-');
    await startServer(0);
    await startServer(1);
    const mappings = join(dir, 'mappings.yaml');
    writeFileSync(
      mappings,
      healthMappingsYaml({
        name: NAME,
        health: { probe: 'dtls', interval_ms: HEALTH.intervalMs, timeout_ms: HEALTH.timeoutMs, rise: HEALTH.rise, fall: HEALTH.fall + (oneAtATime ? 1 : 0) },
        targets: [0, 1].map((i) => `{ ipv4: "${net.backends[i]!.addr}", port: ${PORT} }`),
      }),
    );
    lb = await startMappingsRun(net, dir, mappings, { port: PORT, pinName: 'hdtl' });
  }, 120_000);

  afterAll(async () => {
    await tearDownRun({ lb, backends: servers, net, dir });
    await certs?.remove();
  });

  it('both servers answer probe after probe and serve real handshakes in between', async () => {
    for (const i of [0, 1]) expect(await waitForBackend(run(), targetOf(i), 'healthy')).toMatchObject({ probe: 'dtls', failures: 0 });
    const served: (string | undefined)[] = [];
    for (let i = 0; i < 10; i++) served.push(await handshake());
    expect(served).not.toContain(undefined);
    expect(new Set(served)).toEqual(new Set(['alpha', 'beta']));
    // Probes kept coming meanwhile, and none failed (see oneAtATime).
    for (const i of [0, 1]) {
      const row = await waitForBackend(run(), targetOf(i), 'healthy');
      if (!oneAtATime) expect(row).toMatchObject({ failures: 0 });
    }
  }, 120_000);

  it('a stopped server goes unhealthy, and every handshake after that completes, on the other', async () => {
    await servers[0]!.stop();
    servers[0] = undefined;
    await waitForBackend(run(), targetOf(0), 'unhealthy');
    expect(lb!.lines.some((l) => l.msg.startsWith('backend unhealthy') && l.target === targetOf(0))).toBe(true);
    for (let i = 0; i < 6; i++) expect(await handshake()).toBe('beta');
  }, 120_000);

  it('started again, it comes back after good probes and serves new clients', async () => {
    await startServer(0);
    await waitForBackend(run(), targetOf(0), 'healthy');
    let alpha = false;
    for (let i = 0; i < 16 && !alpha; i++) {
      const who = await handshake();
      expect(who).toBeDefined();
      alpha = who === 'alpha';
    }
    expect(alpha).toBe(true);
  }, 120_000);
}));
