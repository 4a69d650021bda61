import type { Decision, UdpEndpoint } from '@flowlb/mapper-api';
import { DtlsSniMapper, mappingsFromObject } from '@flowlb/mapper-dtls-sni';
import { QuicSniMapper, staticRoutes } from '@flowlb/mapper-quic-sni';
import { dtlsCapture } from '@flowlb/testkit';
import type { BenchContext } from '../context.js';
import { callsPerCpuSecond } from '../cpu-rate.js';
import { quicClientInitial } from '../quic-initials.js';
import type { HelloParseResult, HelloParseRow } from '../results.js';
import { measured } from '../stats.js';

/** Where each name goes; the addresses are never sent to. */
const TARGETS: Record<string, UdpEndpoint> = {
  'foo.example': { address: '10.0.0.1', port: 4433 },
  'long-name.backend-two.example.org': { address: '10.0.0.2', port: 4433 },
  'one.example': { address: '10.0.0.3', port: 443 },
  'pq.example': { address: '10.0.0.4', port: 443 },
};

const CLIENT: UdpEndpoint = { address: '192.0.2.1', port: 50000 };

export interface HelloCase {
  protocol: 'dtls' | 'quic';
  hello: string;
  datagrams: Uint8Array[];
}

/**
 * A whole ClientHello in one datagram and one spread over two, for each protocol: DTLS from real clients' captures
 * (ossl_mtu is OpenSSL with a 256-byte MTU), QUIC v1 Initials built around a TLS 1.3 ClientHello, the second with the
 * post-quantum key share browsers now send, which does not fit in one 1,200-byte datagram.
 */
export async function helloCases(): Promise<HelloCase[]> {
  return [
    { protocol: 'dtls', hello: 'OpenSSL capture ossl_foo', datagrams: dtlsCapture('ossl_foo').slice(0, 1) },
    { protocol: 'dtls', hello: 'OpenSSL capture ossl_mtu (2 fragments)', datagrams: dtlsCapture('ossl_mtu').slice(0, 2) },
    { protocol: 'quic', hello: 'v1 Initial, X25519 key share', datagrams: await quicClientInitial({ sni: 'one.example' }) },
    {
      protocol: 'quic',
      hello: 'v1 Initials, X25519MLKEM768 key share',
      datagrams: await quicClientInitial({ sni: 'pq.example', postQuantum: true }),
    },
  ];
}

export function dtlsMapper(): DtlsSniMapper {
  const mappings = mappingsFromObject({
    sniMappings: Object.entries(TARGETS).map(([fqdn, t]) => ({ fqdn, ipv4: t.address, port: t.port })),
    default: 'drop',
  });
  return new DtlsSniMapper({ mappings });
}

export function quicMapper(): QuicSniMapper {
  return new QuicSniMapper({ routes: staticRoutes(TARGETS) });
}

/** A mapper that decides without waiting for anything, as both SNI mappers do. */
export interface SyncMapper {
  findFlow(client: UdpEndpoint, packets: readonly Uint8Array[]): Decision;
}

/**
 * What a new client costs a mapper: the balancer calls findFlow as each datagram arrives, with every datagram the
 * client has sent so far, until the mapper decides. `prefixes` are those growing lists, made once by {@link arrivals}.
 */
export function decideAsArrived(mapper: SyncMapper, client: UdpEndpoint, prefixes: readonly (readonly Uint8Array[])[]): Decision | undefined {
  let decision: Decision | undefined;
  for (const datagrams of prefixes) {
    decision = mapper.findFlow(client, datagrams);
    if (decision.action !== 'wait') break;
  }
  return decision;
}

/** The lists of datagrams the balancer hands the mapper, one per arrival: [d0], [d0, d1], … */
export function arrivals(datagrams: readonly Uint8Array[]): Uint8Array[][] {
  return datagrams.map((_, i) => datagrams.slice(0, i + 1));
}

/** "forward 10.0.0.1:4433", "drop (unknown-name)", … */
export function describeDecision(d: Decision | undefined): string {
  if (!d) return 'none';
  switch (d.action) {
    case 'forward':
      return `forward ${d.flow.dstAddr.address}:${d.flow.dstAddr.port}`;
    case 'drop':
      return d.reason ? `drop (${d.reason})` : 'drop';
    default:
      return d.action;
  }
}

/**
 * ClientHellos parsed and decided per second of one core, by the DTLS and QUIC SNI mappers in this process: every
 * hello is a new client's, read from its datagrams (QUIC: keys derived, header protection removed, packets
 * decrypted) and routed by name.
 */
export async function runHelloParse(ctx: BenchContext): Promise<HelloParseResult> {
  const rounds = Math.max(1, ctx.runs);
  const roundMs = ctx.quick ? 200 : 1000;
  const cases = await helloCases();
  const mappers = { dtls: dtlsMapper(), quic: quicMapper() };
  const rows: HelloParseRow[] = [];
  for (const c of cases) {
    const mapper = mappers[c.protocol];
    const prefixes = arrivals(c.datagrams);
    const first = decideAsArrived(mapper, CLIENT, prefixes);
    const row = {
      protocol: c.protocol,
      hello: c.hello,
      datagrams: c.datagrams.length,
      bytes: c.datagrams.reduce((n, d) => n + d.length, 0),
      decision: describeDecision(first),
    };
    if (first?.action !== 'forward') {
      rows.push({ ...row, hellosPerSec: measured([]), error: `the mapper did not forward it: ${row.decision}` });
      continue;
    }
    const rates = callsPerCpuSecond(() => void decideAsArrived(mapper, CLIENT, prefixes), { warmup: 5000, roundMs, rounds, batch: 200 });
    const perSec = measured(rates.map((r) => Math.round(r)));
    rows.push({ ...row, hellosPerSec: perSec });
    ctx.log(`hello parse: ${c.protocol} ${c.hello}: ${perSec.median.toLocaleString('en')} hellos/s (${row.decision})`);
  }
  return {
    rows,
    notes: [
      `Per second of the CPU time of the bench's own process, whose one JavaScript thread runs the mapper; ` +
        `${rounds} ${rounds === 1 ? 'round' : 'rounds'} of ${roundMs} ms each after a warm-up. One hello is one new ` +
        "client, counted whole: the balancer calls the mapper's findFlow as each datagram arrives, with all the client " +
        'has sent so far, and the mapper keeps what it has read in between, until it decides.',
      'DTLS: DtlsSniMapper over the first datagram of the OpenSSL capture ossl_foo, and the two fragments of ossl_mtu ' +
        '(packages/testkit/captures/dtls). QUIC: QuicSniMapper with staticRoutes over QUIC v1 client Initials from ' +
        "@flowlb/mapper-quic-sni's test-support builders, a TLS 1.3 ClientHello with a server name and ALPN h3, padded " +
        'to 1,200-byte datagrams; each QUIC hello derives the Initial keys of its DCID (HKDF), removes header protection ' +
        '(AES-128-ECB) and decrypts every packet (AES-128-GCM) before the ClientHello is parsed.',
    ],
  };
}
