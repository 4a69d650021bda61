import { TimeoutSet } from '@flowlb/cleaner';
import { parseIPv4, reverseEntry, type Endpoint, type FlowPair } from '@flowlb/flow-table';
import { endpointKey, type Decision, type FlowMapper, type UdpEndpoint } from '@flowlb/mapper-api';
import type { Datapath } from './datapath.js';
import type { BalancerEvent } from './events.js';
import { PendingClients, type PendingClient, type PendingLimits } from './pending.js';
import type { SnatPortPools } from './snat-pool.js';
import type { Counters, DropReason } from './stats.js';

export interface SlowPathOptions {
  vip: Endpoint;
  snatAddress: string;
  mapper: FlowMapper;
  datapath: Datapath;
  pools: SnatPortPools;
  counters: Counters;
  emit: (event: BalancerEvent) => void;
  /** Sends a mapper's `reply` datagrams to the client from the VIP, counting them. */
  reply: (to: UdpEndpoint, datagrams: readonly Buffer[]) => void;
  /** A new flow was refused because SNAT ports or table entries ran out. */
  onPressure?: (reason: 'snat-exhausted' | 'flow-limit') => void;
  limits: PendingLimits & { maxFlows: number };
  dropHoldMs: number;
  /** How long a SNAT port that someone else had bound is kept out of use. Default 60 s. */
  quarantineMs?: number;
}

/** Refusals that pushing out older waiting clients can cure. */
const FULL: ReadonlySet<DropReason> = new Set<DropReason>(['pending-clients-limit', 'total-bytes-limit']);
/** Waiting clients pushed out for one new one at most: each eviction costs a drop, so it stays small. */
const MAX_EVICTIONS = 4;

/** Ports tried for one new flow before it is refused, when the first ones turn out to be taken by other sockets. */
const PORT_ATTEMPTS = 4;
const DEFAULT_QUARANTINE_MS = 60_000;

type Outcome = { decision: unknown } | { error: unknown };

/**
 * The control plane's handling of datagrams that reach the VIP socket: a datagram of an installed flow is handed
 * to the datapath; any other is buffered for its client (keyed by `ip:port`) and the mapper is asked, one call per
 * client at a time, with every datagram buffered so far. On forward, a SNAT port is allocated from the target's
 * pool and the datapath installs the flow and sends the buffered datagrams from SNAT:P.
 *
 * After a client is dropped (mapper drop, mapper error, refused flow), its further datagrams are dropped without
 * asking the mapper for `dropHoldMs`, so a client that retransmits cannot make the mapper work for every datagram;
 * afterwards it is classified afresh. A client that times out is not held: it may simply have been slow to send
 * what the mapper waited for, and its next datagram starts over.
 */
export class SlowPath {
  readonly pending: PendingClients;
  readonly #o: SlowPathOptions;
  readonly #holds = new TimeoutSet<string, bigint>();
  readonly #holdNs: bigint;
  /** Ports set aside, by pool and port, with the timer that gives each back. */
  readonly #quarantine = new Map<string, NodeJS.Timeout>();
  #inFlight = 0;
  #timer: NodeJS.Timeout | undefined;
  #timerAt: bigint | undefined;
  #stopped = false;

  constructor(options: SlowPathOptions) {
    this.#o = options;
    const { mapper } = options;
    this.pending = new PendingClients(options.limits, (client) => {
      try {
        mapper.release?.({ address: client.endpoint.address, port: client.endpoint.port });
      } catch (error) {
        options.emit({ type: 'error', where: `mapper release of ${client.key}`, error });
      }
    });
    this.#holdNs = BigInt(Math.round(options.dropHoldMs * 1e6));
  }

  /** Mapper calls that have not answered yet (including those whose client has timed out). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Clients held off after a drop. */
  get held(): number {
    return this.#holds.size;
  }

  /** SNAT ports set aside because another socket was bound on them. */
  get quarantined(): number {
    return this.#quarantine.size;
  }

  /** Flows installed or being installed: each holds one SNAT port. */
  get activeFlows(): number {
    return this.#o.pools.inUse - this.#quarantine.size;
  }

  /** One datagram from `from` on the VIP. Never throws: a bad datagram or a failing part is counted and reported. */
  handleDatagram(datagram: Buffer, from: UdpEndpoint): void {
    if (this.#stopped) return;
    const c = this.#o.counters;
    c.vipIn++;
    try {
      this.#handle(datagram, from);
    } catch (error) {
      c.drop('internal-error');
      this.#o.emit({ type: 'error', where: 'slow path', error });
    }
  }

  #handle(datagram: Buffer, from: UdpEndpoint): void {
    const c = this.#o.counters;
    // The same `ip:port` string every mapper helper uses, so a client is found again from any datagram.
    const key = endpointKey(from);
    const now = process.hrtime.bigint();
    // A client with a pending entry has no flow yet; its datagrams queue behind the ones the mapper has seen.
    if (this.pending.get(key) === undefined) {
      if (this.#o.datapath.forwardInstalled(from, datagram)) return;
      const holdUntil = this.#holds.deadlineOf(key);
      if (holdUntil !== undefined && holdUntil > now) {
        c.drop('drop-hold');
        return;
      }
    }
    let added = this.pending.add(key, from, datagram, now);
    // A full table makes room for a new client by pushing out those that have waited longest, a few at most.
    for (let evicted = 0; evicted < MAX_EVICTIONS && 'dropped' in added && FULL.has(added.dropped) && !this.pending.get(key); evicted++) {
      const oldest = this.pending.oldestWaiting();
      if (!oldest) break;
      this.#dropClient(oldest, 'pending-evicted', 'the pending table was full and it had waited longest', false);
      added = this.pending.add(key, from, datagram, now);
    }
    if ('dropped' in added) {
      c.drop(added.dropped);
      return;
    }
    if (added.created) this.#armTimer();
    if (added.client.state === 'idle') this.#classify(added.client);
    else added.client.dirty = true;
  }

  #classify(client: PendingClient): void {
    client.state = 'classifying';
    client.dirty = false;
    const packets: readonly Uint8Array[] = client.datagrams.slice();
    const started = performance.now();
    this.#inFlight++;
    this.#o.counters.mapperCalls++;
    let result: Decision | Promise<Decision>;
    try {
      result = this.#o.mapper.findFlow({ address: client.endpoint.address, port: client.endpoint.port }, packets);
    } catch (error) {
      this.#settle(client, started, { error });
      return;
    }
    if (typeof (result as PromiseLike<Decision> | null)?.then === 'function') {
      Promise.resolve(result)
        .then(
          (decision) => this.#settle(client, started, { decision }),
          (error: unknown) => this.#settle(client, started, { error }),
        )
        .catch((error: unknown) => this.#internalError(client, error));
    } else {
      this.#settle(client, started, { decision: result });
    }
  }

  #settle(client: PendingClient, started: number, outcome: Outcome): void {
    this.#inFlight--;
    const c = this.#o.counters;
    c.classifyLatency.observe(performance.now() - started);
    // Timed out meanwhile (already counted), or shut down: the answer comes too late.
    if (this.#stopped || !this.pending.isCurrent(client)) {
      this.pending.settled(client);
      return;
    }
    // The call is over: from here on the client holds its datagrams itself.
    client.state = 'idle';
    if ('error' in outcome) {
      c.mapperErrors++;
      this.#emit({ type: 'mapper-error', client: { ...client.endpoint }, error: outcome.error });
      this.#dropClient(client, 'mapper-error', errorText(outcome.error), true);
      return;
    }
    const decision = outcome.decision as Partial<Decision> | null | undefined;
    switch (decision?.action) {
      case 'wait':
        if (client.dirty) this.#classify(client);
        return;
      case 'drop':
        this.#dropClient(client, 'mapper-drop', String((decision as { reason?: unknown }).reason ?? ''), true);
        return;
      case 'reply':
        this.#reply(client, decision as { datagrams?: unknown; reason?: unknown });
        return;
      case 'forward': {
        const flow = (decision as { flow?: unknown }).flow;
        this.#establish(client, flow).catch((error: unknown) => this.#internalError(client, error));
        return;
      }
      default:
        this.#dropClient(client, 'invalid-decision', `the mapper returned ${describeValue(decision)}`, true);
    }
  }

  /**
   * Answers the client and forgets it: no hold, since the answer asks it to come back. A reply may not be larger than
   * what the client sent, so that a forged source cannot make the balancer amplify traffic towards a victim.
   */
  #reply(client: PendingClient, decision: { datagrams?: unknown; reason?: unknown }): void {
    const { datagrams } = decision;
    if (!Array.isArray(datagrams) || datagrams.length === 0 || !datagrams.every((d) => d instanceof Uint8Array)) {
      this.#dropClient(client, 'invalid-decision', `the mapper replied with ${describeValue(datagrams)}, not datagrams`, true);
      return;
    }
    const replyBytes = (datagrams as Uint8Array[]).reduce((n, d) => n + d.byteLength, 0);
    if (replyBytes > client.bytes) {
      this.#dropClient(
        client,
        'invalid-decision',
        `the mapper's reply (${replyBytes} bytes) is larger than what the client sent (${client.bytes} bytes)`,
        true,
      );
      return;
    }
    const buffered = this.pending.remove(client);
    this.#o.counters.mapperReplies++;
    this.#o.counters.drop('answered', buffered.length);
    this.#o.reply(
      { ...client.endpoint },
      (datagrams as Uint8Array[]).map((d) => (Buffer.isBuffer(d) ? d : Buffer.from(d.buffer, d.byteOffset, d.byteLength))),
    );
  }

  async #establish(client: PendingClient, flow: unknown): Promise<void> {
    client.state = 'installing';
    const checked = checkFlow(flow, this.#o.snatAddress);
    if (typeof checked === 'string') {
      this.#dropClient(client, 'invalid-decision', checked, true);
      return;
    }
    const { target, snatAddress, port: requested } = checked;
    const { pools } = this.#o;
    if (this.activeFlows >= this.#o.limits.maxFlows) {
      this.#refuse(client, 'flow-limit', target, `limits.maxFlows (${this.#o.limits.maxFlows}) flows are active`);
      return;
    }
    let lastError: unknown;
    for (let attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
      let port: number | undefined;
      if (requested !== undefined) {
        if (!pools.take(snatAddress, target, requested)) {
          this.#refuse(client, 'snat-exhausted', target, `the mapper asked for SNAT port ${requested}, which is in use or outside snatPorts`);
          return;
        }
        port = requested;
      } else {
        port = pools.alloc(snatAddress, target);
        if (port === undefined) {
          this.#refuse(client, 'snat-exhausted', target, `every SNAT port towards ${target.address}:${target.port} is in use`);
          return;
        }
      }
      const pair: FlowPair = {
        client: { address: client.endpoint.address, port: client.endpoint.port },
        vip: { ...this.#o.vip },
        snat: { address: snatAddress, port },
        target,
      };
      let sent = 0;
      let installedAt = 0n;
      try {
        await this.#o.datapath.install(pair, () => {
          // Called as soon as the entries are written, before the datagrams go out.
          installedAt = process.hrtime.bigint();
          const datagrams = this.pending.remove(client);
          sent = datagrams.length;
          return datagrams;
        });
      } catch (error) {
        lastError = error;
        const code = (error as { code?: unknown } | null)?.code;
        if (this.#stopped) {
          pools.free(snatAddress, target, port);
          return;
        }
        if (code === 'EADDRINUSE' || (code === 'EEXIST' && this.#reverseTaken(pair))) {
          // Another socket or a foreign table entry owns this port towards this target: set it aside, try another.
          this.#quarantinePort(snatAddress, target, port, error);
          if (requested !== undefined) break;
          continue;
        }
        pools.free(snatAddress, target, port);
        if (code === 'EEXIST') {
          this.#refuse(client, 'install-failed', target, 'the client already has a forward entry that is not ours');
        } else if (code === 'E2BIG') {
          this.#refuse(client, 'flow-limit', target, 'the flow table is full');
        } else {
          this.#emit({ type: 'error', where: `installing ${describePair(pair)}`, error });
          this.#refuse(client, 'install-failed', target, errorText(error));
        }
        return;
      }
      this.#o.counters.flowsCreated++;
      this.#o.counters.targets.created(target);
      const setupMs = Number((installedAt || process.hrtime.bigint()) - client.firstAt) / 1e6;
      this.#emit({ type: 'flow-created', pair, datagrams: sent, setupMs });
      return;
    }
    this.#refuse(client, 'install-failed', target, `no usable SNAT port: ${errorText(lastError)}`);
  }

  /** The cleaner removed this flow: free its port unless a newer flow's reverse entry holds the same key. */
  flowRemoved(pair: FlowPair): void {
    if (!this.#reverseTaken(pair)) {
      // A port set aside because this (foreign) flow held it is free now: its quarantine must not free it again
      // later, when it may belong to a new flow.
      this.#endQuarantine(pair.snat.address, pair.target, pair.snat.port);
      this.#o.pools.free(pair.snat.address, pair.target, pair.snat.port);
    }
    this.#o.datapath.flowRemoved(pair);
  }

  #reverseTaken(pair: FlowPair): boolean {
    try {
      return this.#o.datapath.table.get(reverseEntry(pair)[0]) !== undefined;
    } catch {
      // A key that cannot even be encoded is nobody's.
      return false;
    }
  }

  /**
   * Takes the SNAT ports of flows already in the table (a pinned map kept by an earlier process), so they are not
   * handed out twice. Returns how many were taken.
   */
  adopt(): number {
    const { datapath, pools, vip } = this.#o;
    let n = 0;
    for (const record of datapath.table.pairs()) {
      const { pair } = record;
      if (pair.vip.address !== vip.address || pair.vip.port !== vip.port) continue;
      if (pools.take(pair.snat.address, pair.target, pair.snat.port)) n++;
    }
    return n;
  }

  /** Drops pending clients past their deadline and forgets expired holds; returns how many clients expired. */
  expire(now: bigint): number {
    const c = this.#o.counters;
    let n = 0;
    for (const client of this.pending.expire(now)) {
      const datagrams = this.pending.remove(client);
      c.classifyTimeouts++;
      c.drop('classify-timeout', datagrams.length);
      this.#emit({
        type: 'client-dropped',
        client: { ...client.endpoint },
        reason: 'classify-timeout',
        datagrams: datagrams.length,
        detail: client.state === 'classifying' ? 'the mapper did not answer in time' : 'the mapper kept waiting',
      });
      n++;
    }
    this.#holds.expire(now);
    return n;
  }

  /** Drops everything pending and releases timers. */
  shutdown(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const client of this.pending.all()) this.#o.counters.drop('shutdown', this.pending.remove(client).length);
    this.#holds.clear();
    for (const t of this.#quarantine.values()) clearTimeout(t);
    this.#quarantine.clear();
  }

  /** Something that cannot fail did: drop the client rather than leave it (or the process) hanging. */
  #internalError(client: PendingClient, error: unknown): void {
    this.#o.counters.drop('internal-error', this.pending.remove(client).length);
    this.#emit({ type: 'error', where: `slow path, client ${client.key}`, error });
  }

  #dropClient(client: PendingClient, reason: DropReason, detail: string, hold: boolean): void {
    const datagrams = this.pending.remove(client);
    this.#o.counters.drop(reason, datagrams.length);
    this.#emit({ type: 'client-dropped', client: { ...client.endpoint }, reason, datagrams: datagrams.length, detail });
    if (hold) this.#hold(client.key);
  }

  #refuse(client: PendingClient, reason: DropReason, target: Endpoint, detail: string): void {
    if (reason === 'snat-exhausted' || reason === 'flow-limit') this.#o.onPressure?.(reason);
    const datagrams = this.pending.remove(client);
    this.#o.counters.flowsRefused++;
    this.#o.counters.targets.refused(target);
    this.#o.counters.drop(reason, datagrams.length);
    this.#emit({ type: 'flow-refused', client: { ...client.endpoint }, target: { ...target }, reason, detail });
    this.#hold(client.key);
  }

  #hold(key: string): void {
    // Holds are an optimisation; past the pending-client limit they are skipped rather than allowed to grow.
    if (this.#holdNs <= 0n || this.#holds.size >= this.#o.limits.maxPendingClients) return;
    this.#holds.add(key, process.hrtime.bigint() + this.#holdNs);
    this.#armTimer();
  }

  #quarantinePort(snatAddress: string, target: Endpoint, port: number, error: unknown): void {
    this.#emit({
      type: 'snat-port-quarantined',
      snat: { address: snatAddress, port },
      target: { ...target },
      error: errorText(error),
    });
    this.#o.counters.snatPortsQuarantined++;
    const key = quarantineKey(snatAddress, target, port);
    clearTimeout(this.#quarantine.get(key));
    const timer = setTimeout(() => {
      if (this.#quarantine.get(key) !== timer) return;
      this.#quarantine.delete(key);
      this.#o.pools.free(snatAddress, target, port);
    }, this.#o.quarantineMs ?? DEFAULT_QUARANTINE_MS);
    timer.unref();
    this.#quarantine.set(key, timer);
  }

  #endQuarantine(snatAddress: string, target: Endpoint, port: number): void {
    const key = quarantineKey(snatAddress, target, port);
    const timer = this.#quarantine.get(key);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.#quarantine.delete(key);
  }

  /** One timer, set for the earliest deadline of a pending client or a hold. */
  #armTimer(): void {
    if (this.#stopped) return;
    const a = this.pending.nextDeadline();
    const b = this.#holds.nextDeadline();
    const next = a === undefined ? b : b === undefined ? a : a < b ? a : b;
    if (next === undefined) return;
    if (this.#timer !== undefined && this.#timerAt !== undefined && this.#timerAt <= next) return;
    clearTimeout(this.#timer);
    const delayMs = Math.max(1, Math.ceil(Number(next - process.hrtime.bigint()) / 1e6));
    this.#timerAt = next;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = undefined;
      this.expire(process.hrtime.bigint());
      this.#armTimer();
    }, delayMs);
    this.#timer.unref();
  }

  #emit(event: BalancerEvent): void {
    this.#o.emit(event);
  }
}

interface CheckedFlow {
  target: Endpoint;
  snatAddress: string;
  port: number | undefined;
}

/** The flow a mapper asked for, checked; a string says what is wrong with it. */
function checkFlow(flow: unknown, defaultSnat: string): CheckedFlow | string {
  if (typeof flow !== 'object' || flow === null) return `the mapper forwarded without a flow (${describeValue(flow)})`;
  const { dstAddr, srcAddr } = flow as { dstAddr?: unknown; srcAddr?: unknown };
  const target = endpointOf(dstAddr);
  if (typeof target === 'string') return `the mapper's target ${target}`;
  if (target.port === 0) return `the mapper's target ${target.address}:0 has no port`;
  if (srcAddr === undefined || srcAddr === null) return { target, snatAddress: defaultSnat, port: undefined };
  const src = endpointOf(srcAddr);
  if (typeof src === 'string') return `the mapper's source ${src}`;
  return { target, snatAddress: src.address, port: src.port === 0 ? undefined : src.port };
}

function endpointOf(e: unknown): Endpoint | string {
  if (typeof e !== 'object' || e === null) return `is not an endpoint (${describeValue(e)})`;
  const { address, port } = e as { address?: unknown; port?: unknown };
  try {
    parseIPv4(address as string);
  } catch {
    return `address ${describeValue(address)} is not an IPv4 address`;
  }
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    return `port ${describeValue(port)} is not a port number`;
  }
  return { address: address as string, port };
}

function describeValue(v: unknown): string {
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    return String(v);
  }
}

function quarantineKey(snatAddress: string, target: Endpoint, port: number): string {
  return `${snatAddress}:${port}>${target.address}:${target.port}`;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function describePair(pair: FlowPair): string {
  return `${pair.client.address}:${pair.client.port} -> ${pair.target.address}:${pair.target.port} via ${pair.snat.address}:${pair.snat.port}`;
}
