import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LoadBalancer, type BalancerEvent, type BalancerStats } from '@flowlb/balancer';
import {
  createDtlsCertificates,
  describeWithDtlsTools,
  runGnutlsDtlsClient,
  runOpensslDtlsClient,
  startDtlsServer,
  type DtlsCertificates,
  type DtlsClientResult,
  type DtlsServer,
} from '@flowlb/testkit';
import { DtlsSniMapper, type MapperStats } from './index.js';
import { NAMES, writeMappings, type Backend } from './e2e/mappings.js';

// Real DTLS clients and servers through the balancer, all on loopback addresses of their own (127.78.0.0/16) in
// this process's namespace, with the userspace datapath: no privileges needed.
const VIP = { address: '127.78.0.1', port: 4433 };
const CONNECT = `${VIP.address}:${VIP.port}`;
const SNAT = '127.78.0.2';
const SNAT_PORTS = { min: 23000, max: 23999 };
const ALPHA: Backend = { name: 'alpha', address: '127.78.0.10', port: 4433 };
const BETA: Backend = { name: 'beta', address: '127.78.0.11', port: 4433 };

type FlowCreated = Extract<BalancerEvent, { type: 'flow-created' }>;

describeWithDtlsTools('DTLS by SNI through the balancer, userspace datapath on loopback', () => {
  let dir: string;
  let file: string;
  let certs: DtlsCertificates;
  let alpha: DtlsServer;
  let beta: DtlsServer;
  let mapper: DtlsSniMapper;
  let lb: LoadBalancer;
  const events: BalancerEvent[] = [];

  /** Runs `client` and returns it with what the balancer and the mapper counted meanwhile, and the flows it made. */
  async function through(client: () => Promise<DtlsClientResult>) {
    const b0 = lb.stats();
    const m0 = mapper.stats();
    const e0 = events.length;
    const result = await client();
    const b1 = lb.stats();
    const m1 = mapper.stats();
    const flows = events.slice(e0).filter((e): e is FlowCreated => e.type === 'flow-created');
    return { result, flows, lb: diffBalancer(b0, b1), mapper: diffMapper(m0, m1) };
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flowlb-sni-e2e-'));
    file = join(dir, 'mappings.yaml');
    await writeMappings(file, ALPHA, BETA, true);
    certs = await createDtlsCertificates();
    const [a, b] = await Promise.all([certs.issue(ALPHA.name), certs.issue(BETA.name)]);
    alpha = await startDtlsServer(null, null, { addr: ALPHA.address, port: ALPHA.port, ...a });
    beta = await startDtlsServer(null, null, { addr: BETA.address, port: BETA.port, ...b });
    mapper = await DtlsSniMapper.fromFile(file);
    lb = new LoadBalancer({
      vip: VIP,
      snatAddress: SNAT,
      snatPorts: SNAT_PORTS,
      mapper,
      datapath: 'userspace',
      onEvent: (e) => events.push(e),
    });
    await lb.start();
  });

  afterAll(async () => {
    await lb?.stop();
    await alpha?.stop();
    await beta?.stop();
    await certs?.remove();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('openssl s_client lands on the backend its name maps to, and data flows both ways', async () => {
    const t = await through(() =>
      runOpensslDtlsClient(null, null, { connect: CONNECT, servername: NAMES.exact, message: 'u1 openssl', timeoutMs: 10_000 }),
    );
    expect(t.result.ok, t.result.stdout + t.result.stderr).toBe(true);
    expect(t.result).toMatchObject({ protocol: 'DTLSv1.2', peerCn: 'alpha', reply: 'alpha echo u1 openssl' });
    const seen = await alpha.waitForConnection((c) => c.received.includes('u1 openssl'));
    expect(seen).toMatchObject({ sni: NAMES.exact, handshake: true });
    expect(beta.serverNames()).not.toContain(NAMES.exact);

    expect(t.flows.map((f) => f.pair.target)).toEqual([{ address: ALPHA.address, port: ALPHA.port }]);
    expect(t.flows[0]!.pair.snat.address).toBe(SNAT);
    expect(t.mapper).toMatchObject({ hellos: 1, routedExact: 1, dropped: 0 });
    // The first ClientHello went through the mapper; the rest of the handshake and the data through the flow.
    expect(t.lb.forwardedNew).toBe(1);
    expect(t.lb.userspaceForward).toBeGreaterThanOrEqual(3);
    expect(t.lb.userspaceReverse).toBeGreaterThanOrEqual(4);
  });

  it('gnutls-cli lands on the other backend by its name', async () => {
    const t = await through(() =>
      runGnutlsDtlsClient(null, null, { connect: CONNECT, servername: NAMES.exactBeta, message: 'u2 gnutls', timeoutMs: 10_000 }),
    );
    expect(t.result.ok, t.result.stdout + t.result.stderr).toBe(true);
    expect(t.result).toMatchObject({ protocol: 'DTLSv1.2', peerCn: 'beta', reply: 'beta echo u2 gnutls' });
    expect((await beta.waitForConnection((c) => c.received.includes('u2 gnutls'))).sni).toBe(NAMES.exactBeta);
    expect(t.flows.map((f) => f.pair.target)).toEqual([{ address: BETA.address, port: BETA.port }]);
    expect(t.mapper).toMatchObject({ hellos: 1, routedExact: 1 });
  });

  it('a ClientHello fragmented by -mtu 256 is reassembled and routed by the wildcard, whatever the case', async () => {
    const t = await through(() =>
      runOpensslDtlsClient(null, null, {
        connect: CONNECT,
        servername: NAMES.fragmented,
        mtu: 256,
        message: 'u3 fragmented',
        timeoutMs: 10_000,
      }),
    );
    expect(t.result.ok, t.result.stdout + t.result.stderr).toBe(true);
    expect(t.result.peerCn).toBe('beta');
    expect((await beta.waitForConnection((c) => c.received.includes('u3 fragmented'))).sni).toBe(NAMES.fragmented);
    // The mapper was asked once per fragment: it waited for the first and routed on the last.
    expect(t.mapper.needMore).toBeGreaterThanOrEqual(1);
    expect(t.mapper).toMatchObject({ hellos: 1, routedWildcard: 1 });
    expect(t.lb.forwardedNew).toBe(t.mapper.needMore + 1);
    expect(t.flows.map((f) => f.pair.target)).toEqual([{ address: BETA.address, port: BETA.port }]);
  });

  it('an unmapped name, and a hello without a name, go to the default backend', async () => {
    const named = await through(() =>
      runOpensslDtlsClient(null, null, { connect: CONNECT, servername: NAMES.unmapped, message: 'u4 stranger', timeoutMs: 10_000 }),
    );
    expect(named.result.ok, named.result.stdout + named.result.stderr).toBe(true);
    expect(named.result.peerCn).toBe('alpha');
    expect((await alpha.waitForConnection((c) => c.received.includes('u4 stranger'))).sni).toBe(NAMES.unmapped);
    expect(named.mapper).toMatchObject({ unknownName: 1, routedDefault: 1 });

    const nameless = await through(() => runGnutlsDtlsClient(null, null, { connect: CONNECT, message: 'u5 no name', timeoutMs: 10_000 }));
    expect(nameless.result.ok, nameless.result.stdout + nameless.result.stderr).toBe(true);
    expect(nameless.result.peerCn).toBe('alpha');
    expect((await alpha.waitForConnection((c) => c.received.includes('u5 no name'))).sni).toBeUndefined();
    expect(nameless.mapper).toMatchObject({ noName: 1, routedDefault: 1 });
  });

  it('after a reload without a default, the unmapped name is refused while mapped names still work', async () => {
    await writeMappings(file, ALPHA, BETA, false);
    const reload = await mapper.reload();
    expect(reload.ok && reload.applied).toBe(true);
    const seenBefore = [...alpha.serverNames(), ...beta.serverNames()].filter((n) => n === NAMES.unmapped).length;

    const refused = await through(() =>
      runOpensslDtlsClient(null, null, { connect: CONNECT, servername: NAMES.unmapped, timeoutMs: 3000 }),
    );
    expect(refused.result.ok).toBe(false);
    expect(refused.result.handshake).toBe(false);
    expect(refused.flows).toEqual([]);
    expect(refused.mapper.unknownName).toBeGreaterThanOrEqual(1);
    expect(refused.mapper.routed).toBe(0);
    expect(refused.lb.mapperDrop).toBeGreaterThanOrEqual(1);
    const seenAfter = [...alpha.serverNames(), ...beta.serverNames()].filter((n) => n === NAMES.unmapped).length;
    expect(seenAfter).toBe(seenBefore);

    const mapped = await through(() =>
      runOpensslDtlsClient(null, null, { connect: CONNECT, servername: NAMES.exact, message: 'u6 after reload', timeoutMs: 10_000 }),
    );
    expect(mapped.result.ok, mapped.result.stdout + mapped.result.stderr).toBe(true);
    expect(mapped.result.peerCn).toBe('alpha');
  });

  it('every reply reached the client from the VIP and nothing was lost on the way', () => {
    const s = lb.stats();
    expect(s.datapath).toBe('userspace');
    // Each successful handshake above is one flow; the refused client made none.
    expect(s.flows.created).toBe(6);
    expect(s.flows.refused).toBe(0);
    for (const reason of ['reply-no-flow', 'reply-send-failed', 'send-failed', 'install-failed'] as const) {
      expect(s.drops[reason], reason).toBe(0);
    }
  });
});

function diffBalancer(a: BalancerStats, b: BalancerStats) {
  return {
    flowsCreated: b.flows.created - a.flows.created,
    forwardedNew: b.datagrams.forwardedNew - a.datagrams.forwardedNew,
    userspaceForward: b.datagrams.userspaceForward - a.datagrams.userspaceForward,
    userspaceReverse: b.datagrams.userspaceReverse - a.datagrams.userspaceReverse,
    mapperDrop: b.drops['mapper-drop'] - a.drops['mapper-drop'],
  };
}

function diffMapper(a: MapperStats, b: MapperStats) {
  const keys = ['calls', 'hellos', 'needMore', 'noName', 'unknownName', 'routed', 'routedExact', 'routedWildcard', 'routedDefault', 'dropped'] as const;
  return Object.fromEntries(keys.map((k) => [k, b[k] - a[k]])) as Record<(typeof keys)[number], number>;
}
