import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  createDtlsCertificates,
  describePrivileged,
  describeWithDtlsTools,
  dtlsToolsCheck,
  listNamespaces,
  runGnutlsDtlsClient,
  runOpensslDtlsClient,
  startDtlsServer,
  twoArmedTopology,
  type DtlsCertificates,
  type DtlsClientResult,
  type DtlsServer,
  type TwoArmed,
} from '@flowlb/testkit';
import { NAMES, writeMappings, type Backend } from './e2e/mappings.js';
import { LbChild, bundleLbChild, type Snapshot } from './e2e/lb-process.js';

const PORT = 4433;

/** What changed between two snapshots of the balancer process. */
function delta(a: Snapshot, b: Snapshot) {
  const xdp = (k: string): number => (b.balancer.xdp?.[k] ?? 0) - (a.balancer.xdp?.[k] ?? 0);
  return {
    miss: xdp('miss'),
    fwdHit: xdp('fwdHit'),
    revHit: xdp('revHit'),
    fibNoNeigh: xdp('fibNoNeigh'),
    slowPathIn: b.balancer.datagrams.slowPathIn - a.balancer.datagrams.slowPathIn,
    forwardedNew: b.balancer.datagrams.forwardedNew - a.balancer.datagrams.forwardedNew,
    forwardedLate: b.balancer.datagrams.forwardedLate - a.balancer.datagrams.forwardedLate,
    flowsCreated: b.balancer.flows.created - a.balancer.flows.created,
    mapperDrop: b.balancer.drops['mapper-drop'] - a.balancer.drops['mapper-drop'],
    needMore: b.mapper.needMore - a.mapper.needMore,
    unknownName: b.mapper.unknownName - a.mapper.unknownName,
    routedExact: b.mapper.routedExact - a.mapper.routedExact,
    routedWildcard: b.mapper.routedWildcard - a.mapper.routedWildcard,
    routedDefault: b.mapper.routedDefault - a.mapper.routedDefault,
    routed: b.mapper.routed - a.mapper.routed,
  };
}

// Real DTLS clients and servers in network namespaces, with the balancer as a process of its own in the LB
// namespace (its VIP socket has to live there) and its XDP program on both of the LB's interfaces. It needs both
// root and the DTLS tools; when the tools are missing, that is what the skip (or the CI failure) says.
(dtlsToolsCheck().ok ? describePrivileged : describeWithDtlsTools)('DTLS by SNI through the balancer, XDP datapath between network namespaces', () => {
  let net: TwoArmed;
  let bundle: { script: string; dispose: () => void } | undefined;
  let lb: LbChild;
  let dir: string;
  let file: string;
  let certs: DtlsCertificates;
  let alpha: DtlsServer;
  let beta: DtlsServer;
  let ALPHA: Backend;
  let BETA: Backend;
  let connect: string;
  const created: string[] = [];

  const clientNs = (i: number): string => net.clients[i]!.ns;
  const clientAddr = (i: number): string => net.clients[i]!.addr;

  /** Runs a client and returns it with what the balancer counted meanwhile and the flows it created. */
  async function through(clientIndex: number, client: (ns: string) => Promise<DtlsClientResult>) {
    const before = await lb.stats();
    const known = lb.flowsOf(clientAddr(clientIndex)).length;
    const result = await client(clientNs(clientIndex));
    const after = await lb.stats();
    return { result, d: delta(before, after), flows: lb.flowsOf(clientAddr(clientIndex)).slice(known) };
  }

  /**
   * The handshake's first flight went up to the balancer (XDP misses, the only datagrams the slow path saw), and
   * everything after it, both ways, was forwarded by XDP.
   */
  function expectFastPath(d: ReturnType<typeof delta>, firstFlight: number): void {
    expect(d.slowPathIn).toBe(firstFlight);
    expect(d.miss).toBe(firstFlight);
    expect(d.forwardedNew).toBe(firstFlight);
    expect(d.forwardedLate).toBe(0);
    expect(d.fibNoNeigh).toBe(0);
    // Client: ClientHello with the cookie, its key-exchange flight, the message, close_notify.
    expect(d.fwdHit).toBeGreaterThanOrEqual(4);
    // Server: HelloVerifyRequest, its certificate flight, its Finished flight, the echo.
    expect(d.revHit).toBeGreaterThanOrEqual(4);
  }

  beforeAll(async () => {
    bundle = await bundleLbChild();
    net = await twoArmedTopology({ prefix: 'sni', clients: 2, backends: 2, xdpPassOnPeers: 'native', staticNeighbors: true });
    created.push(...net.topology.namespaces);
    const [b0, b1] = [net.backends[0]!, net.backends[1]!];
    ALPHA = { name: 'alpha', address: b0.addr, port: PORT };
    BETA = { name: 'beta', address: b1.addr, port: PORT };
    connect = `${net.lb.front.addr}:${PORT}`;

    dir = await mkdtemp(join(tmpdir(), 'flowlb-sni-xdp-'));
    file = join(dir, 'mappings.yaml');
    await writeMappings(file, ALPHA, BETA, true);
    certs = await createDtlsCertificates();
    const [a, b] = await Promise.all([certs.issue(ALPHA.name), certs.issue(BETA.name)]);
    alpha = await startDtlsServer(net.topology, b0.ns, { addr: ALPHA.address, port: PORT, ...a });
    beta = await startDtlsServer(net.topology, b1.ns, { addr: BETA.address, port: PORT, ...b });

    lb = await LbChild.start(net.topology, net.lb.ns, bundle.script, {
      vip: { address: net.lb.front.addr, port: PORT },
      snatAddress: net.lb.back.addr,
      snatPorts: { min: 20000, max: 20999 },
      mappingsFile: file,
      datapath: 'xdp',
      interfaces: [net.lb.front.ifname, net.lb.back.ifname],
      xdpMode: 'native',
      limits: { maxFlows: 1024 },
    });
  }, 120_000);

  afterAll(async () => {
    await lb?.stop();
    await alpha?.stop();
    await beta?.stop();
    await net?.destroy();
    await certs?.remove();
    if (dir) await rm(dir, { recursive: true, force: true });
    bundle?.dispose();
  });

  it('runs the XDP datapath', () => {
    expect(lb.events).toContainEqual({ type: 'datapath', kind: 'xdp', reason: expect.stringMatching(/^datapath 'xdp' was asked for, @flowlb\/xdp-core loads \(libbpf /) });
  });

  it('openssl s_client reaches the backend its name maps to; after the first ClientHello XDP forwards the flow', async () => {
    const t = await through(0, (ns) =>
      runOpensslDtlsClient(net.topology, ns, { connect, servername: NAMES.exact, message: 'x1 openssl', timeoutMs: 10_000 }),
    );
    expect(t.result.ok, t.result.stdout + t.result.stderr).toBe(true);
    expect(t.result).toMatchObject({ protocol: 'DTLSv1.2', peerCn: 'alpha', reply: 'alpha echo x1 openssl' });
    expect((await alpha.waitForConnection((c) => c.received.includes('x1 openssl'))).sni).toBe(NAMES.exact);
    expect(beta.serverNames()).not.toContain(NAMES.exact);
    expect(t.flows.map((f) => [f.pair.target, f.pair.snat.address])).toEqual([
      [{ address: ALPHA.address, port: PORT }, net.lb.back.addr],
    ]);
    expect(t.d.routedExact).toBe(1);
    expectFastPath(t.d, 1);
  });

  it('gnutls-cli reaches the other backend by its name, through XDP as well', async () => {
    const t = await through(1, (ns) =>
      runGnutlsDtlsClient(net.topology, ns, { connect, servername: NAMES.exactBeta, message: 'x2 gnutls', timeoutMs: 10_000 }),
    );
    expect(t.result.ok, t.result.stdout + t.result.stderr).toBe(true);
    expect(t.result).toMatchObject({ protocol: 'DTLSv1.2', peerCn: 'beta', reply: 'beta echo x2 gnutls' });
    expect((await beta.waitForConnection((c) => c.received.includes('x2 gnutls'))).sni).toBe(NAMES.exactBeta);
    expect(t.flows.map((f) => f.pair.target)).toEqual([{ address: BETA.address, port: PORT }]);
    expectFastPath(t.d, 1);
  });

  it('a ClientHello fragmented by -mtu 256 is reassembled by the balancer and routed by the wildcard', async () => {
    const t = await through(1, (ns) =>
      runOpensslDtlsClient(net.topology, ns, {
        connect,
        servername: NAMES.fragmented,
        mtu: 256,
        message: 'x3 fragmented',
        timeoutMs: 10_000,
      }),
    );
    expect(t.result.ok, t.result.stdout + t.result.stderr).toBe(true);
    expect(t.result.peerCn).toBe('beta');
    expect((await beta.waitForConnection((c) => c.received.includes('x3 fragmented'))).sni).toBe(NAMES.fragmented);
    expect(t.d.needMore).toBeGreaterThanOrEqual(1);
    expect(t.d.routedWildcard).toBe(1);
    expect(t.flows.map((f) => f.pair.target)).toEqual([{ address: BETA.address, port: PORT }]);
    // Every fragment of the first hello went up; the cookie hello's fragments already took the fast path.
    expectFastPath(t.d, t.d.needMore + 1);
  });

  it('an unmapped name goes to the default backend', async () => {
    const t = await through(0, (ns) =>
      runOpensslDtlsClient(net.topology, ns, { connect, servername: NAMES.unmapped, message: 'x4 stranger', timeoutMs: 10_000 }),
    );
    expect(t.result.ok, t.result.stdout + t.result.stderr).toBe(true);
    expect(t.result.peerCn).toBe('alpha');
    expect((await alpha.waitForConnection((c) => c.received.includes('x4 stranger'))).sni).toBe(NAMES.unmapped);
    expect(t.d).toMatchObject({ unknownName: 1, routedDefault: 1 });
    expectFastPath(t.d, 1);
  });

  it('once the mappings are reloaded without a default, the unmapped name is refused', async () => {
    await writeMappings(file, ALPHA, BETA, false);
    expect(await lb.reload()).toEqual({ ok: true, applied: true });
    const seen = (): number => [...alpha.serverNames(), ...beta.serverNames()].filter((n) => n === NAMES.unmapped).length;
    const seenBefore = seen();

    const t = await through(0, (ns) => runOpensslDtlsClient(net.topology, ns, { connect, servername: NAMES.unmapped, timeoutMs: 3000 }));
    expect(t.result.ok).toBe(false);
    expect(t.result.handshake).toBe(false);
    expect(t.flows).toEqual([]);
    expect(t.d.flowsCreated).toBe(0);
    expect(t.d.routed).toBe(0);
    expect(t.d.unknownName).toBeGreaterThanOrEqual(1);
    expect(t.d.mapperDrop).toBeGreaterThanOrEqual(1);
    // The client's datagrams all went up to the balancer and no further.
    expect(t.d.fwdHit).toBe(0);
    expect(t.d.miss).toBe(t.d.slowPathIn);
    expect(seen()).toBe(seenBefore);
  });

  it('leaves no namespace behind', async () => {
    await lb.stop();
    await net.destroy();
    const left = new Set(await listNamespaces());
    expect(created.length).toBeGreaterThan(4);
    expect(created.filter((n) => left.has(n))).toEqual([]);
  });
});
