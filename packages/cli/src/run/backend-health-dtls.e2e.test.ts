import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  createDtlsCertificates,
  describePrivileged,
  describeWithDtlsTools,
  dtlsToolsCheck,
  runOpensslDtlsClient,
  startDtlsBackend,
  twoArmedTopology,
  type DtlsBackend,
  type DtlsCertificates,
  type TwoArmed,
} from '@flowlb/testkit';
import { healthMappingsYaml, startMappingsRun, tearDownRun, waitForBackend, type RunProbe } from '../test-support/backends.js';
import type { LbProcess } from '../test-support/lb-process.js';

const PORT = 4433;
const NAME = 'svc.example';
const HEALTH = { intervalMs: 500, timeoutMs: 400, rise: 2, fall: 2 };

// Two OpenSSL DTLS servers behind one name, probed with DTLS ClientHellos by `flowlb run`; one is stopped and started
// again while real `openssl s_client` handshakes go through the balancer. The servers serve many clients at once,
// as real ones do: openssl s_server serves one, and a probe that meets a client's handshake there spoils one of the
// two (the probe's own behaviour against s_server is tested in @flowlb/mapper-dtls-sni).
(dtlsToolsCheck().ok ? describePrivileged : describeWithDtlsTools)('flowlb run: DTLS backends probed with ClientHellos', () => {
  let net: TwoArmed;
  let dir: string;
  let certs: DtlsCertificates;
  const servers: (DtlsBackend | undefined)[] = [];
  let lb: LbProcess | undefined;
  let nextPort = 42000;

  const targetOf = (i: number): string => `${net.backends[i]!.addr}:${PORT}`;
  const run = (): RunProbe => ({ topology: net.topology, ns: net.lb.ns, dir });

  async function startServer(i: number): Promise<void> {
    const name = i === 0 ? 'alpha' : 'beta';
    const b = net.backends[i]!;
    servers[i] = await startDtlsBackend(net.topology, b.ns, { ...(await certs.issue(name)), addr: b.addr, port: PORT });
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
        health: { probe: 'dtls', interval_ms: HEALTH.intervalMs, timeout_ms: HEALTH.timeoutMs, rise: HEALTH.rise, fall: HEALTH.fall },
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
    // Probes kept coming meanwhile, and none failed.
    for (const i of [0, 1]) expect(await waitForBackend(run(), targetOf(i), 'healthy')).toMatchObject({ failures: 0 });
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
});
