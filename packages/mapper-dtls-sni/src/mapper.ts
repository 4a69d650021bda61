import { drop, endpointKey, forward, reply, wait } from '@flowlb/mapper-api';
import type { Decision, FlowMapper, UdpEndpoint } from '@flowlb/mapper-api';
import { HelloCookies, type CookieInput, type HelloCookiesOptions } from './cookie.js';
import { helloVerifyRequest } from './hello-verify.js';
import { loadMappings, loadMappingsSync, MappingsError } from './mappings.js';
import { ClientReaders } from '@flowlb/mapper-api';
import { ClientHelloReader } from './parser.js';
import type { InvalidReason, ParseResult } from './result.js';
import type { MappingTable, Resolution, TargetUsable } from './table.js';

/** Which part of the client's address keeps it on the same target when a name has several. */
export type Affinity = 'endpoint' | 'address';

/**
 * Which hellos must first prove that the client receives at its address, by coming back with the cookie of the
 * mapper's own HelloVerifyRequest: those whose mappings entry says `helloVerify: true` (`per-name`), every hello
 * that has a target (`all`), or none, whatever the mappings say (`off`).
 */
export type HelloVerifyMode = 'per-name' | 'all' | 'off';

/** What the cookie check made of a hello that needed one. */
export type CookieOutcome =
  /** No cookie: answered with a HelloVerifyRequest. */
  | 'missing'
  /** A cookie this mapper (or one sharing its secret) issued, still fresh: forwarded. */
  | 'accepted'
  /** A cookie that is not ours, or has expired: answered with a new HelloVerifyRequest. */
  | 'rejected';

export interface DtlsSniMapperOptions {
  mappings: MappingTable;
  /** The file `reload()` reads. Defaults to the file the table was loaded from. */
  file?: string;
  /** Largest ClientHello accepted, in bytes. Default 16 KiB. */
  maxMessageSize?: number;
  /**
   * `endpoint` (default) hashes the client's ip:port, `address` only its ip, so that all of a host's flows land on
   * the same target.
   */
  affinity?: Affinity;
  /**
   * Datagrams after which a hello that is still incomplete is given up on (default 16), which bounds the parse
   * state and the work one client can cause. It only has an effect below the
   * balancer's own per-client limit (32 by default): past that, the balancer drops the datagrams before they get here.
   */
  maxDatagrams?: number;
  /**
   * Whether a target may take new clients, as a health checker says (@flowlb/health's `checker.isUsable`). Targets
   * it refuses are passed over like draining ones; see the mappings' `when_all_down` for when none is left.
   * Default: every target may.
   */
  isUsable?: TargetUsable;
  /** Which hellos get a HelloVerifyRequest before they are forwarded. Default `per-name`. */
  helloVerify?: HelloVerifyMode;
  /**
   * The secret cookies are derived from (at least 16 bytes). Give several balancer processes the same one so that
   * a client may bring the cookie of one to another. Default: random, private to this mapper.
   */
  cookieSecret?: string | Uint8Array;
  /**
   * How often the cookie key changes, in milliseconds (default 60 s). Cookies of the current and the previous key
   * are accepted, so a cookie lives between one and two of these.
   */
  cookieRotationMs?: number;
}

/** Options of the mappers built from a file, which supplies the mappings. */
export type FileMapperOptions = Omit<DtlsSniMapperOptions, 'mappings' | 'file'>;

/** Why a flow was not routed. */
export type DtlsDropReason = InvalidReason | 'too-many-datagrams' | 'no-name' | 'unknown-name' | 'all-targets-down';

export interface MapperStats {
  /** findFlow calls. Each lands in exactly one of hellos, needMore and invalid. */
  calls: number;
  /** Complete, valid ClientHellos: routed + helloVerifySent + those with no route. */
  hellos: number;
  /** Calls answered with `wait`. */
  needMore: number;
  /** Calls answered with a drop because the datagrams are not a usable ClientHello, by reason. */
  invalid: Partial<Record<InvalidReason | 'too-many-datagrams', number>>;
  /** Hellos without a server name (routed to the default, asked for a cookie, or dropped). */
  noName: number;
  /** Hellos whose name matched no entry (routed to the default, asked for a cookie, or dropped). */
  unknownName: number;
  /** Hellos whose name's targets were all unhealthy or draining, dropped (`when_all_down: drop`). */
  allTargetsDown: number;
  /** Hellos forwarded: routedExact + routedWildcard + routedDefault. */
  routed: number;
  routedExact: number;
  routedWildcard: number;
  routedDefault: number;
  /** Every drop: the invalid ones plus hellos with no route. */
  dropped: number;
  /** Hellos answered with a HelloVerifyRequest instead of being forwarded (a cookie missing or rejected). */
  helloVerifySent: number;
  /** Hellos forwarded because they brought a valid cookie. */
  cookiesAccepted: number;
  /** Hellos whose cookie was not ours or had expired (each also counts in helloVerifySent). */
  cookiesRejected: number;
  /**
   * Datagrams parsed. Each is read once, however many calls its client's hello takes; more only when the parse
   * state of a client was dropped (far more clients or bytes waiting than the balancer holds by default).
   */
  datagramsRead: number;
  /** Reloads that read a valid table. */
  reloads: number;
  /** Reloads that failed and left the table as it was. */
  reloadFailures: number;
}

export type ReloadResult =
  /** `applied` is false when a reload or setMappings that started later has already replaced the table. */
  | { ok: true; table: MappingTable; applied: boolean }
  /** The previous table stays in force. */
  | { ok: false; error: MappingsError };

/** What the mapper made of a set of datagrams, for logs and tooling. */
export interface Classification {
  decision: Decision;
  parse: ParseResult;
  /** Set for valid hellos. */
  resolution?: Resolution;
  /** Why the flow is dropped, when it is. */
  dropReason?: DtlsDropReason;
  /** Set when the hello's entry needed a cookie. */
  cookie?: CookieOutcome;
}

/** Fragmented hellos from real clients take 2 to 8 datagrams, even at small MTUs and with post-quantum key shares. */
const DEFAULT_MAX_DATAGRAMS = 16;

/**
 * Routes new DTLS flows by the server name in the client's ClientHello.
 *
 * The balancer hands the mapper every datagram buffered for a client; the mapper keeps the parse state of
 * clients whose hello is still incomplete, so each datagram is read once, and drops it when it decides or when the
 * balancer releases the client. The state is a bounded cache: without it (a client evicted, a caller that passes
 * other datagrams) the datagrams are simply read again, so a fragmented or reordered ClientHello still completes.
 *
 * HelloVerifyRequest: for names with `helloVerify: true` (or all names, see {@link HelloVerifyMode}), a complete
 * hello without a valid cookie is answered with the mapper's own HelloVerifyRequest (a `reply` decision: the
 * balancer keeps no flow, port or datagram for it), and only the client's retry carrying the cookie is forwarded.
 * Forged first datagrams from spoofed addresses then never reach a backend or hold a SNAT port. The cookie is
 * SipHash-2-4 of the client's ip, port, and the hello's version, random and session_id (see {@link HelloCookies}),
 * under a key that changes every `cookieRotationMs`; it is stateless, so any mapper sharing `cookieSecret` accepts
 * it, and so does the XDP program given {@link DtlsSniMapper.kernelHelloVerify}'s keys, which then answers in the
 * kernel for the mapper while every route asks for a cookie.
 *
 * The backend then receives a ClientHello with message_seq 1 that carries the mapper's cookie, and must carry on
 * from there: accept it without a cookie exchange of its own, or, if it runs one, answer with the hello's
 * message_seq rather than 0 (see the package README for which servers do).
 */
export class DtlsSniMapper implements FlowMapper {
  private table: MappingTable;
  private readonly file: string | undefined;
  private readonly maxMessageSize: number | undefined;
  private readonly affinity: Affinity;
  private readonly isUsable: TargetUsable | undefined;
  private readonly maxDatagrams: number;
  private readonly helloVerify: HelloVerifyMode;
  private readonly cookies: HelloCookies;
  private readonly readers: ClientReaders<ParseResult, ClientHelloReader>;
  /** Ticket of the latest change started, and of the one whose table is in force. */
  private latestTicket = 0;
  private appliedTicket = 0;
  private counters = emptyCounters();
  private readonly invalidCounts = new Map<InvalidReason | 'too-many-datagrams', number>();

  /** Throws a RangeError for a limit that is not a positive integer: that is a configuration mistake. */
  constructor(options: DtlsSniMapperOptions) {
    for (const key of ['maxMessageSize', 'maxDatagrams'] as const) {
      const value = options[key];
      if (value !== undefined && !(Number.isSafeInteger(value) && value > 0)) {
        throw new RangeError(`${key} must be a positive integer, got ${String(value)}`);
      }
    }
    this.table = options.mappings;
    this.file = options.file ?? options.mappings.file;
    this.maxMessageSize = options.maxMessageSize;
    this.affinity = options.affinity ?? 'endpoint';
    this.isUsable = options.isUsable;
    this.maxDatagrams = options.maxDatagrams ?? DEFAULT_MAX_DATAGRAMS;
    const mode = options.helloVerify ?? 'per-name';
    if (mode !== 'per-name' && mode !== 'all' && mode !== 'off') {
      throw new RangeError(`helloVerify must be 'per-name', 'all' or 'off', got ${String(mode)}`);
    }
    this.helloVerify = mode;
    const cookieOptions: HelloCookiesOptions = {};
    if (options.cookieSecret !== undefined) cookieOptions.secret = options.cookieSecret;
    if (options.cookieRotationMs !== undefined) cookieOptions.rotationMs = options.cookieRotationMs;
    this.cookies = new HelloCookies(cookieOptions);
    const parse = this.maxMessageSize === undefined ? {} : { maxMessageSize: this.maxMessageSize };
    this.readers = new ClientReaders(() => new ClientHelloReader(parse));
  }

  /** A mapper over a mappings file, which `reload()` re-reads. Rejects with {@link MappingsError}. */
  static async fromFile(file: string, options: FileMapperOptions = {}): Promise<DtlsSniMapper> {
    return new DtlsSniMapper({ ...options, mappings: await loadMappings(file), file });
  }

  /** Synchronous {@link DtlsSniMapper.fromFile}. Throws {@link MappingsError}. */
  static fromFileSync(file: string, options: FileMapperOptions = {}): DtlsSniMapper {
    return new DtlsSniMapper({ ...options, mappings: loadMappingsSync(file), file });
  }

  /** The table new flows are decided with. */
  get mappings(): MappingTable {
    return this.table;
  }

  findFlow(client: UdpEndpoint, packets: readonly Uint8Array[]): Decision {
    const c = this.classify(client, packets);
    // Decided: the next call for this endpoint is a new client.
    if (c.decision.action !== 'wait') this.readers.forget(endpointKey(client));
    const counters = this.counters;
    counters.calls++;
    const parse = c.parse;
    if (parse.kind === 'need-more' && c.decision.action === 'wait') {
      counters.needMore++;
    } else if (parse.kind === 'hello') {
      counters.hellos++;
      if (parse.sni === undefined) counters.noName++;
      const r = c.resolution;
      if (c.cookie === 'accepted') counters.cookiesAccepted++;
      else if (c.cookie === 'rejected') counters.cookiesRejected++;
      if (c.decision.action === 'reply') {
        counters.helloVerifySent++;
        if (r?.kind === 'target' && r.match === 'default' && parse.sni !== undefined) counters.unknownName++;
      } else if (r?.kind === 'target') {
        counters.routed++;
        if (r.match === 'exact') counters.routedExact++;
        else if (r.match === 'wildcard') counters.routedWildcard++;
        else {
          counters.routedDefault++;
          if (parse.sni !== undefined) counters.unknownName++;
        }
      } else {
        if (r?.why === 'unknown-name') counters.unknownName++;
        else if (r?.why === 'all-targets-down') counters.allTargetsDown++;
        counters.dropped++;
      }
    } else {
      const reason = c.dropReason as InvalidReason | 'too-many-datagrams';
      this.invalidCounts.set(reason, (this.invalidCounts.get(reason) ?? 0) + 1);
      counters.dropped++;
    }
    return c.decision;
  }

  /** The balancer is done with this client: its parse state goes. */
  release(client: UdpEndpoint): void {
    this.readers.forget(endpointKey(client));
  }

  /** Decides like {@link findFlow} but leaves the counters alone and says why. */
  classify(client: UdpEndpoint, packets: readonly Uint8Array[]): Classification {
    const parse = this.readers.read(endpointKey(client), packets);
    if (parse.kind === 'need-more') {
      if (packets.length >= this.maxDatagrams) {
        return { decision: drop('too-many-datagrams'), parse, dropReason: 'too-many-datagrams' };
      }
      return { decision: wait(), parse };
    }
    if (parse.kind === 'invalid') return { decision: drop(parse.reason), parse, dropReason: parse.reason };
    const key = this.affinity === 'address' ? client.address : endpointKey(client);
    const resolution = this.table.resolve(parse.sni, key, this.isUsable, { protocol: 'dtls', ...(parse.alpn ? { alpn: parse.alpn } : {}) });
    if (resolution.kind !== 'target') return { decision: drop(resolution.why), parse, resolution, dropReason: resolution.why };
    if (!this.needsCookie(resolution)) return { decision: forward(resolution.target), parse, resolution };
    const input: CookieInput = {
      address: client.address,
      port: client.port,
      clientVersion: parse.clientVersion,
      random: parse.random,
      sessionId: parse.sessionId,
    };
    if (parse.cookie.length > 0 && this.cookies.verify(input, parse.cookie)) {
      return { decision: forward(resolution.target), parse, resolution, cookie: 'accepted' };
    }
    const hvr = helloVerifyRequest(this.cookies.issue(input), {
      recordSequence: parse.recordSequence,
      messageSeq: parse.messageSeq,
    });
    return {
      decision: reply([hvr], 'hello-verify'),
      parse,
      resolution,
      cookie: parse.cookie.length > 0 ? 'rejected' : 'missing',
    };
  }

  /**
   * The cookie keys for @flowlb/balancer's `xdp.helloVerify`, with which the XDP program answers ClientHellos
   * without a valid cookie itself, so that forged ones never reach userspace; or undefined when the program must
   * leave hellos to the mapper. The program cannot read the name a hello asks for, so it may answer only while
   * every route asks for a cookie: `helloVerify: 'all'`, or `per-name` with `helloVerify: true` on every entry and
   * on the default (if there is one). Ask again after a reload, and after `refreshInMs`, when the keys rotate.
   */
  kernelHelloVerify(): { keys: [Uint8Array, Uint8Array]; current: 0 | 1; refreshInMs: number } | undefined {
    if (!this.everyRouteNeedsCookie()) return undefined;
    const { period, current, previous } = this.cookies.periodKeys();
    // Slots by the period's parity: a rotation rewrites only the slot of the period that has ended two periods ago.
    const slot = (period & 1) as 0 | 1;
    const keys: [Uint8Array, Uint8Array] = slot === 0 ? [current, previous] : [previous, current];
    return { keys, current: slot, refreshInMs: this.cookies.msUntilRotation() };
  }

  private everyRouteNeedsCookie(): boolean {
    const t = this.table;
    if (this.helloVerify === 'off') return false;
    if (t.rules.length === 0 && t.defaultTargets === undefined) return false;
    if (this.helloVerify === 'all') return true;
    // Entries for QUIC alone never see a DTLS hello.
    const dtlsRules = t.rules.filter((r) => r.protocols === undefined || r.protocols.includes('dtls'));
    return dtlsRules.every((r) => r.helloVerify === true) && (t.defaultTargets === undefined || t.defaultHelloVerify);
  }

  private needsCookie(resolution: Extract<Resolution, { kind: 'target' }>): boolean {
    if (this.helloVerify === 'per-name') return resolution.helloVerify === true;
    return this.helloVerify === 'all';
  }

  /** Decides new flows with `table` from now on. */
  setMappings(table: MappingTable): void {
    const ticket = ++this.latestTicket;
    this.table = table;
    this.appliedTicket = ticket;
  }

  /**
   * Re-reads the mappings file. Never rejects: on failure the table in force stays and the error is returned (and
   * counted), so a bad edit to the file cannot take routing down.
   */
  async reload(): Promise<ReloadResult> {
    const ticket = ++this.latestTicket;
    const file = this.file;
    if (file === undefined) return this.failed(noFileError());
    try {
      return this.apply(ticket, await loadMappings(file));
    } catch (err) {
      return this.failed(asMappingsError(err, file));
    }
  }

  /** Synchronous {@link reload}. */
  reloadSync(): ReloadResult {
    const ticket = ++this.latestTicket;
    const file = this.file;
    if (file === undefined) return this.failed(noFileError());
    try {
      return this.apply(ticket, loadMappingsSync(file));
    } catch (err) {
      return this.failed(asMappingsError(err, file));
    }
  }

  /** A snapshot of the counters since creation or the last {@link resetStats}. */
  stats(): MapperStats {
    const invalid: MapperStats['invalid'] = {};
    for (const [reason, n] of this.invalidCounts) invalid[reason] = n;
    return { ...this.counters, datagramsRead: this.readers.datagramsRead, invalid };
  }

  resetStats(): void {
    this.counters = emptyCounters();
    this.readers.datagramsRead = 0;
    this.invalidCounts.clear();
  }

  private apply(ticket: number, table: MappingTable): ReloadResult {
    this.counters.reloads++;
    // A slow read must not undo a change that was started after it and has already landed.
    if (ticket < this.appliedTicket) return { ok: true, table, applied: false };
    this.table = table;
    this.appliedTicket = ticket;
    return { ok: true, table, applied: true };
  }

  private failed(error: MappingsError): ReloadResult {
    this.counters.reloadFailures++;
    return { ok: false, error };
  }
}

function emptyCounters(): Omit<MapperStats, 'invalid' | 'datagramsRead'> {
  return {
    calls: 0,
    hellos: 0,
    needMore: 0,
    noName: 0,
    unknownName: 0,
    allTargetsDown: 0,
    routed: 0,
    routedExact: 0,
    routedWildcard: 0,
    routedDefault: 0,
    dropped: 0,
    helloVerifySent: 0,
    cookiesAccepted: 0,
    cookiesRejected: 0,
    reloads: 0,
    reloadFailures: 0,
  };
}

function noFileError(): MappingsError {
  return new MappingsError([{ reason: 'no mappings file to reload: the mapper was built from a table without one' }]);
}

function asMappingsError(err: unknown, file: string): MappingsError {
  return err instanceof MappingsError
    ? err
    : new MappingsError([{ file, reason: err instanceof Error ? err.message : String(err) }]);
}
