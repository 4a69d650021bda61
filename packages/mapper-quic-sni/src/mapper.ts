import { drop, endpointKey, forward, wait } from '@flowlb/mapper-api';
import type { Decision, FlowMapper, UdpEndpoint } from '@flowlb/mapper-api';
import { parseClientHelloBody, type ClientHello, type HelloInvalidReason } from '@flowlb/tls-hello';
import { ClientReaders, DEFAULT_CLIENT_READERS_LIMITS, type ClientReadersLimits } from '@flowlb/mapper-api';
import { DEFAULT_MAX_CRYPTO_BYTES } from './crypto-reassembler.js';
import { DEFAULT_MAX_CONNECTION_IDS, DEFAULT_MAX_DATAGRAMS, InitialFlightReader, type FlightLimits, type FlightResult, type ReadTally } from './flight-reader.js';
import { QUIC_DROP_REASONS } from './reasons.js';
import type { QuicRoute, QuicRoutes } from './routes.js';
import { QUIC_V1, type QuicVersion } from './versions.js';

export interface QuicSniLimits {
  /**
   * Crypto stream bytes accepted per client: no CRYPTO frame may reach past this offset, and the ClientHello must
   * fit in it. Default 64 KiB.
   */
  maxCryptoBytes?: number;
  /**
   * Datagrams after which a ClientHello that is still incomplete is given up on (default 16). It only has an
   * effect below the balancer's own per-client limit (32 by default): past that, the balancer drops the
   * datagrams before they get here.
   */
  maxDatagrams?: number;
  /** Distinct Destination Connection IDs whose Initial keys are derived per client. Default 4. */
  maxConnectionIds?: number;
}

/** The limits a mapper applies when given none. */
export const DEFAULT_QUIC_SNI_LIMITS: Readonly<Required<QuicSniLimits>> = Object.freeze({
  maxCryptoBytes: DEFAULT_MAX_CRYPTO_BYTES,
  maxDatagrams: DEFAULT_MAX_DATAGRAMS,
  maxConnectionIds: DEFAULT_MAX_CONNECTION_IDS,
});

export interface QuicSniMapperOptions {
  routes: QuicRoutes;
  limits?: QuicSniLimits;
  /**
   * How many clients, and how many bytes of their crypto streams, the mapper keeps read state for between calls
   * (default 10,000 clients and 32 MiB, what the balancer holds by default). Past that the least recently seen
   * client's state goes, and its datagrams are read again on its next call.
   */
  clientState?: Partial<ClientReadersLimits>;
}

/** What the mapper made of a client's datagrams, for logs and tooling. */
export interface QuicClassification {
  decision: Decision;
  /** The version of the client's Initial packets, once read. */
  version?: QuicVersion;
  /** The ClientHello, once whole and valid. */
  hello?: ClientHello;
  /** What the routes said, for a valid ClientHello. */
  route?: QuicRoute;
  /** Why the client is dropped: one of {@link QUIC_DROP_REASONS}, or a reason the routes gave. */
  dropReason?: string;
  /** Specifics of a drop, for logs: offsets, lengths, the tls-hello reason. May quote the packet. */
  detail?: string;
  /** For `client-hello-invalid`: the reason @flowlb/tls-hello gave. */
  helloInvalid?: HelloInvalidReason;
}

export interface QuicSniMapperStats {
  /** findFlow calls: forwarded + waited + dropped. */
  calls: number;
  forwarded: number;
  /** Calls answered with `wait`: the ClientHello was not whole yet. */
  waited: number;
  dropped: number;
  /**
   * Drops by reason: every reason of {@link QUIC_DROP_REASONS} (zero included), and those the routes gave (at
   * most 32 distinct ones; further ones count under `other-route-reason`).
   */
  drops: Record<string, number>;
  /** ClientHellos @flowlb/tls-hello refused, by its reason; together `drops['client-hello-invalid']`. */
  clientHelloInvalid: Partial<Record<HelloInvalidReason, number>>;
  /** Whole, valid ClientHellos (each then forwarded or dropped by the routes), and by QUIC version. */
  hellos: number;
  hellosV1: number;
  hellosV2: number;
  /** Hellos without a server name. */
  noSni: number;
  /** Datagrams read (each once, unless its client's read state was dropped to stay within `clientState`). */
  datagramsRead: number;
  /** Initial packets decrypted. */
  packetsOpened: number;
}

/** Distinct reasons from the routes counted one by one: a route that puts names into reasons must not grow the stats. */
const MAX_ROUTE_REASONS = 32;
const OTHER_ROUTE_REASON = 'other-route-reason';
const OWN_REASONS: ReadonlySet<string> = new Set(QUIC_DROP_REASONS);

function positiveLimit(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!(Number.isSafeInteger(value) && value > 0)) throw new RangeError(`${name} must be a positive integer, got ${String(value)}`);
  return value;
}

function dropped(reason: string, detail?: string, extra: Partial<QuicClassification> = {}): QuicClassification {
  const c: QuicClassification = { decision: drop(reason), ...extra, dropReason: reason };
  if (detail !== undefined) c.detail = detail;
  return c;
}

/**
 * Routes new QUIC flows by the server name in the ClientHello of the client's Initial packets.
 *
 * Initial packets are encrypted, but with keys anyone can derive from the packet's Destination Connection ID and
 * the version's published salt (RFC 9001 §5.2): the mapper derives them, removes header protection, decrypts,
 * reassembles the CRYPTO frames into the ClientHello (which post-quantum key shares spread over two datagrams),
 * and asks `routes` where the name goes. QUIC v1 and v2 (RFC 9369) are read; another version is dropped as
 * `unsupported-version` and never answered: a Version Negotiation packet forged from the VIP would be an
 * amplifier and is the backends' business.
 *
 * The balancer hands the mapper every datagram buffered for a client; the mapper keeps the read state of clients
 * whose hello is still incomplete, so each datagram is decrypted once, and drops it when it decides or when the
 * balancer releases the client. The state is a bounded cache: without it the datagrams are simply read again.
 * Per client, the crypto stream, the datagrams read and the connection IDs whose keys are derived are bounded by
 * {@link QuicSniLimits}. No datagram makes it throw.
 */
export class QuicSniMapper implements FlowMapper {
  readonly routes: QuicRoutes;
  readonly limits: Readonly<Required<QuicSniLimits>>;
  private readonly readers: ClientReaders<FlightResult, InitialFlightReader>;
  private readonly tally: ReadTally = { datagramsRead: 0, packetsOpened: 0 };
  private counters = emptyCounters();
  private readonly drops = new Map<string, number>();
  /** Distinct reasons from the routes among the keys of `drops`. */
  private routeReasons = 0;
  private readonly helloInvalid = new Map<HelloInvalidReason, number>();

  /** Throws a RangeError for a limit that is not a positive integer: that is a configuration mistake. */
  constructor(options: QuicSniMapperOptions) {
    if (typeof options?.routes?.resolve !== 'function') throw new TypeError('QuicSniMapper needs routes with a resolve() method');
    this.routes = options.routes;
    const l = options.limits ?? {};
    this.limits = Object.freeze({
      maxCryptoBytes: positiveLimit('maxCryptoBytes', l.maxCryptoBytes, DEFAULT_MAX_CRYPTO_BYTES),
      maxDatagrams: positiveLimit('maxDatagrams', l.maxDatagrams, DEFAULT_MAX_DATAGRAMS),
      maxConnectionIds: positiveLimit('maxConnectionIds', l.maxConnectionIds, DEFAULT_MAX_CONNECTION_IDS),
    });
    const flight: FlightLimits = { ...this.limits };
    const state = options.clientState ?? {};
    this.readers = new ClientReaders(() => new InitialFlightReader(flight, this.tally), {
      maxClients: positiveLimit('clientState.maxClients', state.maxClients, DEFAULT_CLIENT_READERS_LIMITS.maxClients),
      maxBytes: positiveLimit('clientState.maxBytes', state.maxBytes, DEFAULT_CLIENT_READERS_LIMITS.maxBytes),
    });
  }

  findFlow(client: UdpEndpoint, packets: readonly Uint8Array[]): Decision {
    const c = this.classify(client, packets);
    const decision = c.decision;
    // Decided: the next call for this endpoint is a new client.
    if (decision.action !== 'wait') this.readers.forget(endpointKey(client));
    const counters = this.counters;
    counters.calls++;
    if (c.hello !== undefined) {
      counters.hellos++;
      if (c.version === QUIC_V1) counters.hellosV1++;
      else counters.hellosV2++;
      if (c.hello.sni === undefined) counters.noSni++;
    }
    if (decision.action === 'forward') counters.forwarded++;
    else if (decision.action === 'wait') counters.waited++;
    else {
      counters.dropped++;
      this.countDrop(c.dropReason ?? OTHER_ROUTE_REASON);
      if (c.helloInvalid !== undefined) this.helloInvalid.set(c.helloInvalid, (this.helloInvalid.get(c.helloInvalid) ?? 0) + 1);
    }
    return decision;
  }

  /** The read state held for clients whose ClientHello is incomplete: how many, and their bytes. */
  get pending(): { clients: number; bytes: number } {
    return { clients: this.readers.size, bytes: this.readers.bytes };
  }

  /** The balancer is done with this client: its read state goes. */
  release(client: UdpEndpoint): void {
    this.readers.forget(endpointKey(client));
  }

  /**
   * Decides like {@link findFlow} but leaves the counters alone and says why. It does read the datagrams, so it
   * advances the client's read state as findFlow would, but keeps it after a decision.
   */
  classify(client: UdpEndpoint, packets: readonly Uint8Array[]): QuicClassification {
    const flight = this.readers.read(endpointKey(client), packets);
    if (flight.kind === 'need-more') {
      if (packets.length >= this.limits.maxDatagrams) {
        return dropped('too-large', `${packets.length} datagrams without a whole ClientHello, limit ${this.limits.maxDatagrams}`);
      }
      return { decision: wait() };
    }
    if (flight.kind === 'invalid') return dropped(flight.reason, flight.detail);
    const version = flight.version;
    const hello = parseClientHelloBody(flight.body, 'tls');
    if ('kind' in hello) {
      const detail = hello.detail === undefined ? hello.reason : `${hello.reason}: ${hello.detail}`;
      return dropped('client-hello-invalid', detail, { version, helloInvalid: hello.reason });
    }
    const route = this.routes.resolve({ serverName: hello.sni, alpn: hello.alpn ?? [] }, client);
    if (route?.kind === 'target') return { decision: forward(route.target), version, hello, route };
    if (route?.kind === 'none' && typeof route.reason === 'string') {
      return dropped(route.reason, undefined, { version, hello, route });
    }
    throw new TypeError(`routes.resolve returned ${JSON.stringify(route)}, not { kind: 'target', target } or { kind: 'none', reason }`);
  }

  /** A snapshot of the counters since creation or the last {@link resetStats}. */
  stats(): QuicSniMapperStats {
    const drops: Record<string, number> = {};
    for (const reason of QUIC_DROP_REASONS) drops[reason] = 0;
    for (const [reason, n] of this.drops) drops[reason] = n;
    const clientHelloInvalid: QuicSniMapperStats['clientHelloInvalid'] = {};
    for (const [reason, n] of this.helloInvalid) clientHelloInvalid[reason] = n;
    return {
      ...this.counters,
      drops,
      clientHelloInvalid,
      datagramsRead: this.tally.datagramsRead,
      packetsOpened: this.tally.packetsOpened,
    };
  }

  resetStats(): void {
    this.counters = emptyCounters();
    this.drops.clear();
    this.routeReasons = 0;
    this.helloInvalid.clear();
    this.tally.datagramsRead = 0;
    this.tally.packetsOpened = 0;
  }

  private countDrop(reason: string): void {
    let key = reason;
    if (!OWN_REASONS.has(key) && !this.drops.has(key)) {
      if (this.routeReasons >= MAX_ROUTE_REASONS) key = OTHER_ROUTE_REASON;
      else this.routeReasons++;
    }
    this.drops.set(key, (this.drops.get(key) ?? 0) + 1);
  }
}

function emptyCounters(): Omit<QuicSniMapperStats, 'drops' | 'clientHelloInvalid' | 'datagramsRead' | 'packetsOpened'> {
  return { calls: 0, forwarded: 0, waited: 0, dropped: 0, hellos: 0, hellosV1: 0, hellosV2: 0, noSni: 0 };
}

