import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LoadBalancer, type BalancerEvent, type BalancerStats } from '@flowlb/balancer';
import {
  createDtlsCertificates,
  runGnutlsDtlsClient,
  runOpensslDtlsClient,
  startDtlsServer,
  type DtlsCertificates,
  type DtlsClientResult,
  type DtlsServer,
} from '@flowlb/testkit';
import { describeWithCServers, removeCServers, startCServer, type CServer, type CServerKind } from './e2e/c-dtls-servers.js';
import { startGnutlsServ, type GnutlsServ } from './e2e/gnutls-serv.js';
import { DtlsSniMapper, type MapperStats } from './index.js';

// Real DTLS clients through a balancer whose mapper answers hellos with its own HelloVerifyRequest, on loopback
// addresses of their own (127.79.0.0/16) with the userspace datapath: no privileges needed.
//
// After that HelloVerifyRequest the client's next hello has message_seq 1 and it reads only server messages from
// message_seq 1 on (RFC 6347 §4.2.2). The backends here carry on from there; openssl s_server, which starts from
// message_seq 0, serves the names without helloVerify; it and gnutls-serv show the limitation at the end.
const VIP = { address: '127.79.0.1', port: 4433 };
const CONNECT = `${VIP.address}:${VIP.port}`;
const SNAT = '127.79.0.2';
const SNAT_PORTS = { min: 24000, max: 24999 };

interface BackendSpec {
  name: string;
  address: string;
  kind: CServerKind | 's_server';
}

const BACKENDS = {
  trusting: { name: 'hv-ossl-trusting', address: '127.79.0.10', kind: 'openssl-trusting' },
  cookies: { name: 'hv-gnutls-cookies', address: '127.79.0.11', kind: 'gnutls-cookies' },
  none: { name: 'hv-gnutls-none', address: '127.79.0.12', kind: 'gnutls-none' },
  stock: { name: 'hv-stock', address: '127.79.0.13', kind: 's_server' },
  stockVerified: { name: 'hv-stock-verified', address: '127.79.0.14', kind: 's_server' },
} as const satisfies Record<string, BackendSpec>;
type BackendKey = keyof typeof BACKENDS;
const PORT = 4433;
// gnutls-serv listens on every address; it answers from 127.0.0.1, so that is where the flow must go.
const GNUTLS_SERV = { name: 'hv-gnutls-serv', address: '127.0.0.1', port: 4479 };

// Long enough that -mtu 256 splits the hello in two.
const LONG = 'node-7.some-rather-long-label.for-fragmentation';
const NAMES = {
  trusting: 'trusting.hv.example',
  cookies: 'cookies.hv.example',
  none: 'none.hv.example',
  stock: 'stock.hv.example',
  stockVerified: 'stock-verified.hv.example',
  gnutlsServ: 'gnutls-serv.hv.example',
  trustingLong: `${LONG}.trusting.hv.example`,
  cookiesLong: `${LONG}.cookies.hv.example`,
} as const;

function mappingsYaml(): string {
  const entry = (fqdn: string, backend: BackendKey, helloVerify: boolean) => [
    `  - fqdn: "${fqdn}"`,
    `    ipv4: "${BACKENDS[backend].address}"`,
    `    port: ${PORT}`,
    ...(helloVerify ? ['    helloVerify: true'] : []),
  ];
  return [
    'sniMappings:',
    ...entry(NAMES.trusting, 'trusting', true),
    ...entry(`*.trusting.hv.example`, 'trusting', true),
    ...entry(NAMES.cookies, 'cookies', true),
    ...entry(`*.cookies.hv.example`, 'cookies', true),
    ...entry(NAMES.none, 'none', true),
    ...entry(NAMES.stock, 'stock', false),
    ...entry(NAMES.stockVerified, 'stockVerified', true),
    `  - fqdn: "${NAMES.gnutlsServ}"`,
    `    ipv4: "${GNUTLS_SERV.address}"`,
    `    port: ${GNUTLS_SERV.port}`,
    '    helloVerify: true',
    'default: drop',
    '',
  ].join('\n');
}

type Client = typeof runOpensslDtlsClient;
const CLIENTS: Record<'openssl' | 'gnutls', Client> = { openssl: runOpensslDtlsClient, gnutls: runGnutlsDtlsClient };

describeWithCServers("the mapper's HelloVerifyRequest with real clients and backends, userspace datapath on loopback", () => {
  let dir: string;
  let certs: DtlsCertificates;
  const servers: Partial<Record<BackendKey, CServer>> = {};
  const stock: Partial<Record<BackendKey, DtlsServer>> = {};
  let gnutlsServ: GnutlsServ | undefined;
  let mapper: DtlsSniMapper;
  let lb: LoadBalancer;
  const events: BalancerEvent[] = [];
  let runs = 0;

  /** Runs a client and returns it with what the balancer, the mapper and the backend counted meanwhile. */
  async function through(backend: BackendKey | 'gnutlsServ', client: () => Promise<DtlsClientResult>) {
    const b0 = lb.stats();
    const m0 = mapper.stats();
    const e0 = events.length;
    const s = backend === 'gnutlsServ' ? undefined : servers[backend];
    const h0 = s?.helloVerifies().length ?? 0;
    const result = await client();
    const flows = events
      .slice(e0)
      .filter((e): e is Extract<BalancerEvent, { type: 'flow-created' }> => e.type === 'flow-created')
      .map((e) => e.pair.target.address);
    return {
      result,
      flows,
      lb: diffBalancer(b0, lb.stats()),
      mapper: diffMapper(m0, mapper.stats()),
      backendHelloVerifies: s?.helloVerifies().slice(h0) ?? [],
    };
  }

  /** A unique line of data per run, so that each reply is told apart from earlier ones. */
  function message(what: string): string {
    return `hv${++runs} ${what}`;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flowlb-hello-verify-e2e-'));
    const file = join(dir, 'mappings.yaml');
    await writeFile(file, mappingsYaml());
    certs = await createDtlsCertificates();
    for (const [key, spec] of Object.entries(BACKENDS) as [BackendKey, BackendSpec][]) {
      const creds = await certs.issue(spec.name);
      const common = { name: spec.name, addr: spec.address, port: PORT, cert: creds.cert, key: creds.key };
      if (spec.kind === 's_server') stock[key] = await startDtlsServer(null, null, common);
      else servers[key] = await startCServer({ ...common, kind: spec.kind });
    }
    const creds = await certs.issue(GNUTLS_SERV.name);
    gnutlsServ = await startGnutlsServ({ port: GNUTLS_SERV.port, cert: creds.cert, key: creds.key });
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
    await Promise.all([...Object.values(servers), ...Object.values(stock), gnutlsServ].map((s) => s?.stop()));
    await certs?.remove();
    if (dir) await rm(dir, { recursive: true, force: true });
    removeCServers();
  });

  /** The balancer answered one hello itself and forwarded the retry with the cookie: one flow, to `backend`. */
  function expectVerifiedThenForwarded(t: Awaited<ReturnType<typeof through>>, backend: BackendKey): void {
    expect(t.mapper).toMatchObject({ cookiesAccepted: 1, cookiesRejected: 0, routed: 1, dropped: 0 });
    // One HelloVerifyRequest, or one more per first hello the client retransmitted before it arrived.
    expect(t.mapper.helloVerifySent).toBeGreaterThanOrEqual(1);
    expect(t.lb).toMatchObject({ replies: t.mapper.helloVerifySent, repliesSent: t.mapper.helloVerifySent, repliesFailed: 0 });
    expect(t.lb.flowsCreated).toBe(1);
    // The first hello's datagrams went no further than the balancer.
    expect(t.lb.answered).toBeGreaterThanOrEqual(t.lb.replies);
    expect(t.flows).toEqual([BACKENDS[backend].address]);
  }

  for (const tool of ['openssl', 'gnutls'] as const) {
    it(`${tool}: a backend that takes the balancer's cookie as proof (OpenSSL DTLSv1_listen) completes`, async () => {
      const text = message(`${tool} trusting`);
      const t = await through('trusting', () =>
        CLIENTS[tool](null, null, { connect: CONNECT, servername: NAMES.trusting, message: text, timeoutMs: 10_000 }),
      );
      expect(t.result.ok, t.result.stdout + t.result.stderr).toBe(true);
      expect(t.result).toMatchObject({ protocol: 'DTLSv1.2', peerCn: BACKENDS.trusting.name, reply: `${BACKENDS.trusting.name} echo ${text}` });
      expectVerifiedThenForwarded(t, 'trusting');
      // The client met one HelloVerifyRequest, the balancer's.
      expect(t.backendHelloVerifies).toEqual([]);
      expect(servers.trusting!.received()).toContain(text);
    });

    it(`${tool}: a backend with its own cookie exchange, numbered from the hello (GnuTLS), completes after two HelloVerifyRequests`, async () => {
      const text = message(`${tool} cookies`);
      const t = await through('cookies', () =>
        CLIENTS[tool](null, null, { connect: CONNECT, servername: NAMES.cookies, message: text, timeoutMs: 10_000 }),
      );
      expect(t.result.ok, t.result.stdout + t.result.stderr).toBe(true);
      expect(t.result).toMatchObject({ protocol: 'DTLSv1.2', peerCn: BACKENDS.cookies.name, reply: `${BACKENDS.cookies.name} echo ${text}` });
      expectVerifiedThenForwarded(t, 'cookies');
      // The backend's own HelloVerifyRequest answered the retry that carried the balancer's cookie (message_seq 1).
      expect(t.backendHelloVerifies).toEqual([1]);
      expect(servers.cookies!.handshakes().at(-1)).toBe(NAMES.cookies);
    });

    it(`${tool}: a backend without a cookie exchange, numbered from the hello (GnuTLS), completes`, async () => {
      const text = message(`${tool} none`);
      const t = await through('none', () =>
        CLIENTS[tool](null, null, { connect: CONNECT, servername: NAMES.none, message: text, timeoutMs: 10_000 }),
      );
      expect(t.result.ok, t.result.stdout + t.result.stderr).toBe(true);
      expect(t.result).toMatchObject({ peerCn: BACKENDS.none.name, reply: `${BACKENDS.none.name} echo ${text}` });
      expectVerifiedThenForwarded(t, 'none');
    });

    it(`${tool}: a name without helloVerify goes straight to openssl s_server, as before`, async () => {
      const text = message(`${tool} stock`);
      const t = await through('stock', () =>
        CLIENTS[tool](null, null, { connect: CONNECT, servername: NAMES.stock, message: text, timeoutMs: 10_000 }),
      );
      expect(t.result.ok, t.result.stdout + t.result.stderr).toBe(true);
      expect(t.result.reply).toBe(`${BACKENDS.stock.name} echo ${text}`);
      expect(t.mapper).toMatchObject({ hellos: 1, helloVerifySent: 0, cookiesAccepted: 0, cookiesRejected: 0, routedExact: 1 });
      expect(t.lb).toMatchObject({ replies: 0, answered: 0, flowsCreated: 1 });
      expect(t.flows).toEqual([BACKENDS.stock.address]);
    });
  }

  for (const [backend, name] of [
    ['trusting', NAMES.trustingLong],
    ['cookies', NAMES.cookiesLong],
  ] as const) {
    it(`openssl -mtu 256: a hello in two fragments is answered once whole, and its fragmented retry is forwarded (${backend})`, async () => {
      const text = message(`fragmented ${backend}`);
      const t = await through(backend, () =>
        runOpensslDtlsClient(null, null, { connect: CONNECT, servername: name, mtu: 256, message: text, timeoutMs: 10_000 }),
      );
      expect(t.result.ok, t.result.stdout + t.result.stderr).toBe(true);
      expect(t.result.reply).toBe(`${BACKENDS[backend].name} echo ${text}`);
      expectVerifiedThenForwarded(t, backend);
      // The first fragment of each hello waited for the second.
      expect(t.mapper.needMore).toBeGreaterThanOrEqual(2);
      expect(t.mapper.routedWildcard).toBe(1);
      // Both fragments of the retry went on when the flow was made.
      expect(t.lb.forwardedNew).toBeGreaterThanOrEqual(2);
    });
  }

  it('openssl s_server behind helloVerify never completes: its handshake starts from message_seq 0 (the documented limitation)', async () => {
    const t = await through('stockVerified', () =>
      runOpensslDtlsClient(null, null, { connect: CONNECT, servername: NAMES.stockVerified, timeoutMs: 3000 }),
    );
    expect(t.result.ok).toBe(false);
    expect(t.result.handshake).toBe(false);
    // The balancer did its part: the retry with the cookie was forwarded, and the flow made.
    expect(t.mapper.helloVerifySent).toBeGreaterThanOrEqual(1);
    expect(t.mapper.cookiesAccepted).toBeGreaterThanOrEqual(1);
    expect(t.flows).toEqual([BACKENDS.stockVerified.address]);
    expect(stock.stockVerified!.connections().some((c) => c.handshake)).toBe(false);
  });

  it('gnutls-serv behind helloVerify is never heard: its HelloVerifyRequest repeats message_seq 0 (and record 0), which the client has read already', async () => {
    const t = await through('gnutlsServ', () =>
      runGnutlsDtlsClient(null, null, { connect: CONNECT, servername: NAMES.gnutlsServ, timeoutMs: 3000 }),
    );
    expect(t.result.ok).toBe(false);
    expect(t.result.handshake).toBe(false);
    expect(t.mapper.cookiesAccepted).toBeGreaterThanOrEqual(1);
    expect(t.flows).toEqual([GNUTLS_SERV.address]);
    // The backend did answer, through the flow, and the client threw the answer away.
    expect(t.lb.userspaceReverse).toBeGreaterThanOrEqual(1);
  });

  it('every reply reached its client and nothing was lost on the way', () => {
    const s = lb.stats();
    const m = mapper.stats();
    expect(s.datapath).toBe('userspace');
    expect(s.classification.replies).toBe(m.helloVerifySent);
    expect(s.datagrams.repliesSent).toBe(m.helloVerifySent);
    expect(s.datagrams.repliesFailed).toBe(0);
    expect(s.flows.refused).toBe(0);
    for (const reason of ['reply-no-flow', 'reply-send-failed', 'send-failed', 'install-failed', 'invalid-decision'] as const) {
      expect(s.drops[reason], reason).toBe(0);
    }
    expect(m.cookiesRejected).toBe(0);
  });
});

function diffBalancer(a: BalancerStats, b: BalancerStats) {
  return {
    flowsCreated: b.flows.created - a.flows.created,
    forwardedNew: b.datagrams.forwardedNew - a.datagrams.forwardedNew,
    userspaceReverse: b.datagrams.userspaceReverse - a.datagrams.userspaceReverse,
    replies: b.classification.replies - a.classification.replies,
    repliesSent: b.datagrams.repliesSent - a.datagrams.repliesSent,
    repliesFailed: b.datagrams.repliesFailed - a.datagrams.repliesFailed,
    answered: b.drops.answered - a.drops.answered,
  };
}

function diffMapper(a: MapperStats, b: MapperStats) {
  const keys = [
    'calls',
    'hellos',
    'needMore',
    'routed',
    'routedExact',
    'routedWildcard',
    'dropped',
    'helloVerifySent',
    'cookiesAccepted',
    'cookiesRejected',
  ] as const;
  return Object.fromEntries(keys.map((k) => [k, b[k] - a[k]])) as Record<(typeof keys)[number], number>;
}
