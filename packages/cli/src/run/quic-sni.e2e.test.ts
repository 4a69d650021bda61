import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDtlsCertificates,
  describePrivileged,
  describeWithQuicTools,
  dtlsToolsCheck,
  quicToolsCheck,
  runOpensslDtlsClient,
  runQuicClient,
  startDtlsBackend,
  startQuicServer,
  twoArmedTopology,
  type DtlsCertificates,
  type TwoArmed,
} from '@flowlb/testkit';
import { cliJson, startMappingsRun, tearDownRun, waitForBackend, type RunProbe } from '../test-support/backends.js';
import type { LbProcess } from '../test-support/lb-process.js';
import type { BackendReport } from '../mapper/backend-health.js';

const VIP_PORT = 4433;
const QUIC_PORT = 4433;
const DTLS_PORT = 5544;
const QUIC_HEALTH = '{ probe: quic, interval_ms: 300, timeout_ms: 250 }';

interface Stats {
  xdp: Record<string, number> | null;
  balancer: { datagrams: { slowPathIn: number }; flows: { created: number } } | null;
}

// One `flowlb run --mappings` on one VIP for QUIC and DTLS clients: ngtcp2's QUIC client and server (HTTP/3 over
// GnuTLS) routed by the SNI of the client's encrypted Initial, an OpenSSL DTLS server beside them, on each datapath.
describe.each(['xdp', 'userspace'] as const)('flowlb run --mappings with QUIC clients (%s datapath)', (mode) =>
  (quicToolsCheck().ok && dtlsToolsCheck().ok ? describePrivileged : describeWithQuicTools)('', () => {
    let net: TwoArmed;
    let dir: string;
    let certs: DtlsCertificates;
    const servers: { stop(): Promise<unknown> }[] = [];
    let lb: LbProcess | undefined;
    const run = (): RunProbe => ({ topology: net.topology, ns: net.lb.ns, dir });
    const quic = (host: string) => runQuicClient(net.topology, net.clients[0]!.ns, { host, port: VIP_PORT, timeoutMs: 5000 });

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'flowlb-quic-'));
      net = await twoArmedTopology({ prefix: `cliq${mode[0]}`, clients: 1, backends: 2, xdpPassOnPeers: 'native' });
      certs = await createDtlsCertificates('flowlb-quic-e2e-');
      // The client names the server by the host it connects to: every name is the VIP.
      net.topology.setHosts(net.clients[0]!.ns, Object.fromEntries(['a.example', 'b.example', 'c.example', 'd.example'].map((n) => [n, net.lb.front.addr])));
      const [b0, b1] = [net.backends[0]!, net.backends[1]!];
      servers.push(await startQuicServer(net.topology, b0.ns, { ...(await certs.issue('alpha')), addr: b0.addr, port: QUIC_PORT, name: 'alpha' }));
      servers.push(await startQuicServer(net.topology, b1.ns, { ...(await certs.issue('beta')), addr: b1.addr, port: QUIC_PORT, name: 'beta' }));
      servers.push(await startDtlsBackend(net.topology, b1.ns, { ...(await certs.issue('gamma')), addr: b1.addr, port: DTLS_PORT }));
      const mappings = join(dir, 'mappings.yaml');
      writeFileSync(
        mappings,
        [
          'sniMappings:',
          `  - { fqdn: a.example, ipv4: "${b0.addr}", port: ${QUIC_PORT}, protocols: [quic], alpn: [h3], health: ${QUIC_HEALTH} }`,
          `  - { fqdn: b.example, ipv4: "${b1.addr}", port: ${QUIC_PORT}, protocols: [quic], health: ${QUIC_HEALTH} }`,
          // Nothing listens there.
          `  - { fqdn: d.example, ipv4: "${b0.addr}", port: ${QUIC_PORT + 1}, protocols: [quic], health: ${QUIC_HEALTH} }`,
          `  - { fqdn: a.example, ipv4: "${b1.addr}", port: ${DTLS_PORT}, protocols: [dtls] }`,
          '',
        ].join('\n'),
      );
      lb = await startMappingsRun(net, dir, mappings, { port: VIP_PORT, pinName: 'quic', mode, extraConfig: ['conn_ttl_sec: 600'] });
    }, 120_000);

    afterAll(async () => {
      await tearDownRun({ lb, backends: servers, net, dir });
      await certs?.remove();
    });

    it('sends each QUIC client to the backend its SNI maps to; the handshake and an HTTP/3 request complete', async () => {
      for (const [sni, server] of [
        ['a.example', 'alpha'],
        ['b.example', 'beta'],
        ['a.example', 'alpha'],
      ] as const) {
        const r = await quic(sni);
        expect(r, `${sni}: ${r.stderr.slice(-300)}`).toMatchObject({ ok: true, body: server, handshake: true, alpn: 'h3' });
      }
    }, 60_000);

    it('probes QUIC backends with a version they must answer with Version Negotiation', async () => {
      for (const b of net.backends) expect(await waitForBackend(run(), `${b.addr}:${QUIC_PORT}`, 'healthy')).toMatchObject({ probe: 'quic', failures: 0 });
      const closed = await waitForBackend(run(), `${net.backends[0]!.addr}:${QUIC_PORT + 1}`, 'unhealthy');
      expect(closed.lastFailure).toMatch(/^(port unreachable|timeout)$/);
    }, 30_000);

    it('gives a client whose name is not mapped no backend', async () => {
      const before = await cliJson<{ count: number }>(run(), ['flows']);
      const r = await quic('c.example');
      expect(r.ok).toBe(false);
      expect(r.handshake).toBe(false);
      expect((await cliJson<{ count: number }>(run(), ['flows'])).count).toBe(before.count);
    }, 30_000);

    it('routes a DTLS client for the same name to the DTLS entry, beside the QUIC ones', async () => {
      const c = net.clients[0]!;
      const d = await runOpensslDtlsClient(net.topology, c.ns, { connect: `${net.lb.front.addr}:${VIP_PORT}`, servername: 'a.example', timeoutMs: 8000 });
      expect(d.ok).toBe(true);
      expect(d.peerCn).toBe('gamma');
      expect((await quic('a.example')).body).toBe('alpha');
    }, 30_000);

    it('leaves the datagrams after the first flight to the datapath', async () => {
      const before = await cliJson<Stats>(run(), ['stats']);
      const r = await quic('b.example');
      expect(r.ok).toBe(true);
      const after = await cliJson<Stats>(run(), ['stats']);
      // The client's first Initial goes through the control plane; a handful more may, while the flow is installed.
      const slow = after.balancer!.datagrams.slowPathIn - before.balancer!.datagrams.slowPathIn;
      expect(slow).toBeGreaterThanOrEqual(1);
      if (mode === 'xdp') {
        expect(slow).toBeLessThanOrEqual(3);
        const grew = (k: string): number => (after.xdp?.[k] ?? 0) - (before.xdp?.[k] ?? 0);
        expect(grew('fwdHit')).toBeGreaterThan(2);
        expect(grew('revHit')).toBeGreaterThan(2);
        const beta = (await cliJson<BackendReport[]>(run(), ['backends'])).find((b) => b.target === `${net.backends[1]!.addr}:${QUIC_PORT}`);
        expect(beta?.traffic?.toTarget.packets).toBeGreaterThan(2);
        expect(beta?.traffic?.fromTarget.packets).toBeGreaterThan(2);
      }
    }, 30_000);
  }),
);
