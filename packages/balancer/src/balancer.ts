import type dgram from 'node:dgram';
import { Cleaner, type SweepStats } from '@flowlb/cleaner';
import { parseIPv4, snatPortOf, type FlowKey, type FlowPair, type FlowTable, type FlowValue } from '@flowlb/flow-table';
import type { UdpEndpoint } from '@flowlb/mapper-api';
import type { Datapath, DatapathChoice } from './datapath.js';
import { chooseDatapath } from './datapath-choice.js';
import { ensureSnatPortsReserved, type SnatPortCheck } from './ephemeral-range.js';
import type { BalancerEvent, DatapathKind } from './events.js';
import { resolveOptions, type LoadBalancerOptions, type ResolvedOptions } from './options.js';
import { SlowPath } from './slow-path.js';
import { ReplyWatch } from './reply-watch.js';
import { SnatPortPools } from './snat-pool.js';
import { Counters, type BalancerStats } from './stats.js';
import { udpSocketDrops } from './socket-drops.js';
import { openVipSocket, type VipSocket } from './vip-socket.js';
import { UserspaceDatapath } from './userspace-datapath.js';
import { importXdpCore, XdpDatapath, type SyncUdpSocketClass, type XdpCoreModule, type XdpForwarderLike } from './xdp-datapath.js';

/** The TTL of unconfirmed flows while new flows are refused for want of SNAT ports or table entries. */
const PRESSURE_UNCONFIRMED_TTL_MS = 1000;
/** How long after the last such refusal the short TTL stays. */
const PRESSURE_HOLD_MS = 10_000;
/** Refusals that come faster than this share one sweep. */
const PRESSURE_SWEEP_EVERY_MS = 250;

export type BalancerState = 'new' | 'starting' | 'running' | 'stopping' | 'stopped';

/** Table entries read between two turns of the event loop while looking for a target's flows. */
const RESET_YIELD_EVERY = 4096;

function sameEndpoint(a: UdpEndpoint, b: UdpEndpoint): boolean {
  return a.address === b.address && a.port === b.port;
}

/**
 * The load balancer: a socket on the VIP for what the fast path does not handle, the mapper that places new
 * clients, SNAT port pools, a datapath (XDP or userspace) and a cleaner that expires idle flows.
 *
 * ```ts
 * const lb = new LoadBalancer({ vip: { address: '192.0.2.1', port: 5000 }, mapper, interfaces: ['eth0'] });
 * await lb.start();
 * console.log(lb.datapathChoice, lb.stats());
 * await lb.stop();
 * ```
 */
export class LoadBalancer {
  readonly options: ResolvedOptions;
  readonly counters = new Counters();
  readonly pools: SnatPortPools;
  #state: BalancerState = 'new';
  #choice: DatapathChoice | undefined;
  #datapath: Datapath | undefined;
  #socket: VipSocket | undefined;
  #slow: SlowPath | undefined;
  #cleaner: Cleaner | undefined;
  #snatCheck: SnatPortCheck | undefined;
  #replyWatch: ReplyWatch | undefined;
  #stopping: Promise<void> | undefined;
  #listenerFailed = false;
  /** performance.now() until which SNAT ports or table entries count as running short. */
  #pressureUntil = 0;
  #pressureSweepAt = 0;
  #pressureTimer: NodeJS.Timeout | undefined;

  /** Checks the options (throwing a TypeError or RangeError that names the bad one); starts nothing. */
  constructor(options: LoadBalancerOptions) {
    this.options = resolveOptions(options);
    this.pools = new SnatPortPools(this.options.snatPorts, {
      vip: this.options.vip,
      ...(this.options.worker ? { slice: this.options.worker } : {}),
    });
  }

  get state(): BalancerState {
    return this.#state;
  }

  get vip(): UdpEndpoint {
    return { ...this.options.vip };
  }

  get snatAddress(): string {
    return this.options.snatAddress;
  }

  /** The datapath in use, once `start` has chosen it. */
  get datapath(): DatapathKind | undefined {
    return this.#choice?.kind;
  }

  /** Which datapath runs and why ('auto' explains its choice here). */
  get datapathChoice(): DatapathChoice | undefined {
    return this.#choice && { ...this.#choice };
  }

  /** The flow table of the running datapath. */
  get table(): FlowTable | undefined {
    return this.#datapath?.table;
  }

  /** What the start-up check of the SNAT ports against the kernel's ephemeral range found. */
  get snatPortCheck(): SnatPortCheck | undefined {
    return this.#snatCheck;
  }

  /**
   * Checks the SNAT range against the ephemeral range, picks and starts the datapath, binds the VIP, adopts flows
   * left in a pinned map, and starts the cleaner. On failure everything started so far is released again and the
   * balancer is stopped.
   */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new Error(`LoadBalancer: start() called in state '${this.#state}'`);
    this.#state = 'starting';
    const o = this.options;
    try {
      this.#snatCheck = ensureSnatPortsReserved({ snatPorts: o.snatPorts, reserve: o.reserveSnatPorts, procDir: o.procDir });
      if (!this.#snatCheck.checked) {
        this.#emit({ type: 'snat-ports-unchecked', reason: `${o.procDir}/ip_local_port_range does not exist` });
      } else if (this.#snatCheck.reservedAdded.length > 0) {
        this.#emit({ type: 'snat-ports-reserved', ranges: this.#snatCheck.reservedAdded });
      }

      const { datapath, choice, udp } = await this.#chooseDatapath();
      this.#datapath = datapath;
      this.#choice = choice;
      this.#emit({ type: 'datapath', kind: choice.kind, reason: choice.reason });

      const replyTimeoutMs = o.replyTimeoutMs;
      const watch = replyTimeoutMs
        ? new ReplyWatch({
            timeoutMs: replyTimeoutMs,
            replied: (pair) => datapath.replied(pair),
            onUnanswered: (pair, waitedMs) => this.#emit({ type: 'flow-unanswered', pair, waitedMs }),
            onError: (error) => this.#emit({ type: 'error', where: 'replyTimeoutMs', error }),
          })
        : undefined;
      this.#replyWatch = watch;
      const slow = new SlowPath({
        vip: o.vip,
        snatAddress: o.snatAddress,
        mapper: o.mapper,
        datapath,
        pools: this.pools,
        counters: this.counters,
        emit: (event) => {
          if (event.type === 'flow-created') watch?.flowCreated(event.pair);
          this.#emit(event);
        },
        limits: { ...o.limits },
        dropHoldMs: o.dropHoldMs,
        onPressure: (reason) => this.#pressure(reason),
        reply: (to, datagrams) => this.#reply(to, datagrams),
      });
      this.#slow = slow;
      const balancer = this;
      await datapath.start({
        vip: o.vip,
        // Bound below, before any flow can exist that would need it.
        get vipSocket(): dgram.Socket {
          const socket = balancer.#socket?.dgram;
          if (!socket) throw new Error('the VIP socket is not open (or is not a Node socket)');
          return socket;
        },
        counters: this.counters,
        emit: (event) => this.#emit(event),
      });
      const adopted = slow.adopt();
      if (adopted > 0) {
        this.counters.flowsAdopted += adopted;
        this.#emit({ type: 'flows-adopted', count: adopted });
      }

      // The XDP datapath reads the VIP with @flowlb/xdp-core's sockets (many datagrams per wakeup); the userspace
      // one replies to clients from it with Node's.
      this.#socket = await openVipSocket({
        vip: o.vip,
        udp,
        reusePort: o.worker !== undefined,
        receiveBufferBytes: o.receiveBufferBytes,
        // Attached before the event loop turns, so no datagram arrives without a listener.
        onDatagram: (datagram, from) => slow.handleDatagram(datagram, from),
        onError: (error) => this.#emit({ type: 'error', where: 'VIP socket', error }),
      }).catch((error: unknown) => {
        const code = (error as { code?: string }).code ?? (error as Error).message;
        throw new Error(
          `LoadBalancer: cannot bind the VIP ${o.vip.address}:${o.vip.port} (${code})` +
            (code === 'EADDRNOTAVAIL' ? ': the address is not on this host (or not in this network namespace)' : '') +
            (code === 'EADDRINUSE' ? ': another socket is bound there' : ''),
          { cause: error },
        );
      });
      this.#checkReceiveBuffer(this.#socket);

      this.#cleaner = new Cleaner(datapath.table, {
        ttlMs: o.connTtlMs,
        unconfirmedTtlMs: o.unconfirmedTtlMs,
        ...(o.worker ? { owns: (key: FlowKey, value: FlowValue) => this.#ownsFlowOn(snatPortOf(key, value)) } : {}),
        onExpire: (pair, flow) => {
          this.counters.flowsExpired++;
          if (flow.unconfirmed) {
            this.counters.flowsExpiredUnconfirmed++;
            if (this.#pressureUntil > performance.now()) this.counters.flowsEvictedUnderPressure++;
          }
          slow.flowRemoved(pair);
          this.#emit({
            type: 'flow-expired',
            pair,
            kind: flow.kind,
            idleMs: Number(flow.idleNs / 1000n) / 1000,
            unconfirmed: flow.unconfirmed,
          });
        },
        expirePending: (now) => slow.expire(now),
        onError: (error) => this.#emit({ type: 'error', where: 'cleaner', error }),
      });
      this.#cleaner.start(o.sweepIntervalMs);
      this.#state = 'running';
      this.#emit({
        type: 'started',
        vip: { ...o.vip },
        snatAddress: o.snatAddress,
        snatPorts: { ...o.snatPorts },
        datapath: choice.kind,
      });
    } catch (error) {
      await this.#teardown().catch(() => undefined);
      this.#state = 'stopped';
      throw error;
    }
  }

  /** Stops receiving, drops what is pending, stops the cleaner and releases the datapath. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.#state === 'new') {
      this.#state = 'stopped';
      return;
    }
    if (this.#state === 'starting') throw new Error('LoadBalancer: stop() called while start() is running');
    this.#stopping ??= (async () => {
      this.#state = 'stopping';
      try {
        await this.#teardown();
      } finally {
        this.#state = 'stopped';
        this.#emit({ type: 'stopped' });
      }
    })();
    return this.#stopping;
  }

  /**
   * Asks `xdp.helloVerify` again now, as after a reload of the mappings it reads: the XDP program then answers
   * ClientHellos with the keys it gives, or leaves them to the mapper. Nothing on the userspace datapath.
   */
  refreshHelloVerify(): void {
    const d = this.#datapath;
    if (d instanceof XdpDatapath) d.refreshHelloVerify();
  }

  /**
   * Handles `datagram` as if it had arrived on the VIP socket from `from`: what a datagram passed up by XDP goes
   * through. For feeding datagrams from elsewhere, and for driving the slow path in benchmarks.
   */
  receive(datagram: Uint8Array, from: UdpEndpoint): void {
    if (this.#state !== 'running' || !this.#slow) throw new Error(`LoadBalancer: receive() in state '${this.#state}'`);
    if (!(datagram instanceof Uint8Array)) throw new TypeError('LoadBalancer: receive() needs a Buffer or Uint8Array');
    const { address, port } = (from ?? {}) as Partial<UdpEndpoint>;
    try {
      parseIPv4(address as string, 'receive(): from.address');
    } catch (error) {
      throw new TypeError(`LoadBalancer: ${(error as Error).message}`);
    }
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
      throw new RangeError(`LoadBalancer: receive(): from.port ${String(port)} is not a port number`);
    }
    const buf = Buffer.isBuffer(datagram) ? datagram : Buffer.from(datagram.buffer, datagram.byteOffset, datagram.byteLength);
    this.#slow.handleDatagram(buf, { address: address!, port });
  }

  /** Runs a sweep of the flow table now (or joins the running one). */
  sweep(): Promise<SweepStats> {
    if (!this.#cleaner) return Promise.reject(new Error(`LoadBalancer: sweep() in state '${this.#state}'`));
    return this.#cleaner.sweep();
  }

  /**
   * Removes every established flow towards `target` (this worker's, among workers), freeing their SNAT ports: for
   * a target that went down and whose clients should start over elsewhere at once rather than wait for their flows
   * to idle out. New flows are the mapper's to keep away from it. Resolves with the number removed; counted as
   * `flows.reset`, reported as one 'flows-reset' event.
   */
  async resetFlowsTo(target: UdpEndpoint): Promise<number> {
    const table = this.#datapath?.table;
    const slow = this.#slow;
    if (this.#state !== 'running' || !table || !slow) throw new Error(`LoadBalancer: resetFlowsTo() in state '${this.#state}'`);
    const { vip } = this.options;
    const doomed: FlowPair[] = [];
    let read = 0;
    // Collected first: deleting from a kernel hash map while walking it can restart the walk.
    for (const { pair } of table.pairs()) {
      if (++read % RESET_YIELD_EVERY === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      if (!sameEndpoint(pair.target, target) || !sameEndpoint(pair.vip, vip)) continue;
      if (this.options.worker && !this.#ownsFlowOn(pair.snat.port)) continue;
      doomed.push(pair);
    }
    // The walk let the event loop run: the balancer may be stopping, its table closing.
    if (this.#state !== 'running') return 0;
    let removed = 0;
    for (const pair of doomed) {
      const r = table.removePair(pair);
      if (!r.forward && !r.reverse) continue;
      slow.flowRemoved(pair);
      removed++;
    }
    this.counters.flowsReset += removed;
    this.#emit({ type: 'flows-reset', target: { ...target }, count: removed });
    return removed;
  }

  /** Among workers, a flow belongs to the owner of its SNAT port; the first worker looks after ports outside the range. */
  #ownsFlowOn(port: number): boolean {
    const { min, max } = this.options.snatPorts;
    return port >= min && port <= max ? this.pools.owns(port) : this.options.worker?.index === 0;
  }

  /** A receive buffer smaller than asked for lets bursts of new clients overflow it: say so, once. */
  #checkReceiveBuffer(socket: VipSocket): void {
    const buffer = socket.receiveBuffer;
    // The kernel reports twice what it grants, for its own bookkeeping.
    if (!buffer || buffer.granted >= 2 * buffer.asked) return;
    const { asked, granted: got } = buffer;
    this.#emit({
      type: 'warning',
      where: 'VIP socket',
      message:
        `the VIP socket's receive buffer is ${Math.floor(got / 2)} bytes, not the ${asked} asked for: net.core.rmem_max caps it ` +
        'without CAP_NET_ADMIN. Bursts of new clients beyond it are dropped by the kernel (socketDrops); run as root, or raise ' +
        `net.core.rmem_max to ${asked}`,
    });
  }

  /** A mapper's answer to a client, from the VIP socket. */
  #reply(to: UdpEndpoint, datagrams: readonly Buffer[]): void {
    const socket = this.#socket;
    if (!socket) {
      this.counters.repliesFailed += datagrams.length;
      return;
    }
    socket.send(to, datagrams, (outcome) => {
      this.counters.repliesSent += outcome.sent;
      this.counters.repliesFailed += outcome.failed;
    });
  }

  /** Every counter, as a plain JSON-serialisable object. */
  stats(): BalancerStats {
    const c = this.counters;
    const slow = this.#slow;
    const latency = c.classifyLatency.snapshot();
    const stats: BalancerStats = {
      datapath: this.#choice?.kind ?? null,
      datapathReason: this.#choice?.reason ?? null,
      flows: {
        active: slow?.activeFlows ?? 0,
        created: c.flowsCreated,
        expired: c.flowsExpired,
        unconfirmedExpired: c.flowsExpiredUnconfirmed,
        evictedUnderPressure: c.flowsEvictedUnderPressure,
        pressureEpisodes: c.pressureEpisodes,
        refused: c.flowsRefused,
        adopted: c.flowsAdopted,
        reset: c.flowsReset,
      },
      targets: c.targets.snapshot(this.pools.inUseByTarget()),
      pending: {
        clients: slow?.pending.size ?? 0,
        datagrams: slow?.pending.datagrams ?? 0,
        bytes: slow?.pending.bytes ?? 0,
        held: slow?.held ?? 0,
      },
      datagrams: {
        slowPathIn: c.vipIn,
        forwardedNew: c.forwardedNew,
        forwardedLate: c.forwardedLate,
        userspaceForward: c.userspaceForward,
        userspaceReverse: c.userspaceReverse,
        repliesSent: c.repliesSent,
        repliesFailed: c.repliesFailed,
        dropped: c.dropped,
        socketDrops: this.#socket ? (udpSocketDrops(this.options.vip) ?? null) : null,
      },
      drops: { ...c.drops },
      classification: {
        ...latency,
        calls: c.mapperCalls,
        inFlight: slow?.inFlight ?? 0,
        errors: c.mapperErrors,
        timeouts: c.classifyTimeouts,
        replies: c.mapperReplies,
      },
      snat: {
        portsInUse: this.pools.inUse,
        pools: this.pools.poolCount,
        quarantined: slow?.quarantined ?? 0,
        quarantinedTotal: c.snatPortsQuarantined,
        range: { ...this.options.snatPorts },
      },
    };
    const own = this.#state === 'running' || this.#state === 'stopping' ? this.#datapath?.counters() : undefined;
    if (own && this.#choice) stats[this.#choice.kind] = own;
    return stats;
  }

  async #teardown(): Promise<void> {
    const errors: unknown[] = [];
    clearTimeout(this.#pressureTimer);
    this.#replyWatch?.stop();
    await this.#cleaner?.stop();
    this.#slow?.shutdown();
    this.#socket?.close();
    this.#socket = undefined;
    try {
      await this.#datapath?.stop();
    } catch (error) {
      errors.push(error);
    }
    if (errors.length > 0) throw errors[0];
  }

  async #chooseDatapath(): Promise<{ datapath: Datapath; choice: DatapathChoice; udp?: SyncUdpSocketClass }> {
    const o = this.options;
    let core: XdpCoreModule | undefined;
    const xdp = (forwarder: XdpForwarderLike, owned: boolean, reason: string, udp: SyncUdpSocketClass) => ({
      datapath: new XdpDatapath({
        forwarder,
        owned,
        udp,
        interfaces: o.interfaces,
        mode: o.xdp.mode,
        sysctls: o.xdp.sysctls,
        detachOnStop: o.xdp.detachOnStop,
        newClientLimits: o.xdp.newClientLimits,
        helloVerify: o.xdp.helloVerify,
      }),
      choice: { kind: 'xdp' as const, reason },
      udp,
    });
    if (o.xdp.forwarder) {
      // The forwarder came from @flowlb/xdp-core, whose sockets send a new flow's first datagrams.
      core = await importXdpCore();
      return xdp(o.xdp.forwarder, false, 'an XDP forwarder was passed in (xdp.forwarder)', core.UdpSocket);
    }
    const decision = await chooseDatapath({
      mode: o.datapath,
      interfaces: o.interfaces,
      attachedElsewhere: o.worker !== undefined,
      load: async () => {
        const mod = await importXdpCore();
        core = mod;
        const forwarder = await mod.XdpForwarder.load({
          flowsMaxEntries: o.xdp.flowsMaxEntries,
          pinDir: o.xdp.pinDir,
          netns: o.xdp.netns,
        });
        return { forwarder, detail: `@flowlb/xdp-core loads (libbpf ${mod.libbpfVersion()})` };
      },
    });
    if (decision.kind === 'xdp') return xdp(decision.forwarder, true, decision.reason, core!.UdpSocket);
    if (o.worker) {
      throw new Error(`LoadBalancer: worker needs the XDP datapath, and it is not available: ${decision.reason}`);
    }
    return {
      datapath: new UserspaceDatapath({ maxFlows: o.limits.maxFlows }),
      choice: { kind: 'userspace', reason: decision.reason },
    };
  }

  /**
   * New flows are being refused for want of SNAT ports or table entries: flows whose client never spoke again are
   * given a short TTL until the refusals stop, and swept at once, so that flows made by forged first datagrams make
   * room for real clients within about a second, the way a SYN queue under pressure drops half-open connections.
   */
  #pressure(reason: 'snat-exhausted' | 'flow-limit'): void {
    const cleaner = this.#cleaner;
    if (!cleaner) return;
    const now = performance.now();
    if (this.#pressureUntil <= now) {
      cleaner.unconfirmedTtlMs = Math.min(this.options.unconfirmedTtlMs, PRESSURE_UNCONFIRMED_TTL_MS);
      this.counters.pressureEpisodes++;
      this.#emit({ type: 'pressure', active: true, reason, unconfirmedTtlMs: cleaner.unconfirmedTtlMs });
    }
    this.#pressureUntil = now + PRESSURE_HOLD_MS;
    if (!this.#pressureTimer) this.#armPressureEnd();
    if (now - this.#pressureSweepAt >= PRESSURE_SWEEP_EVERY_MS) {
      this.#pressureSweepAt = now;
      cleaner.sweep().catch((error: unknown) => this.#emit({ type: 'error', where: 'cleaner', error }));
    }
  }

  #armPressureEnd(): void {
    this.#pressureTimer = setTimeout(() => {
      this.#pressureTimer = undefined;
      if (this.#pressureUntil > performance.now()) {
        this.#armPressureEnd();
        return;
      }
      if (this.#cleaner) this.#cleaner.unconfirmedTtlMs = this.options.unconfirmedTtlMs;
      this.#emit({ type: 'pressure', active: false, reason: null, unconfirmedTtlMs: this.options.unconfirmedTtlMs });
    }, Math.max(1, this.#pressureUntil - performance.now()));
    this.#pressureTimer.unref();
  }

  #emit(event: BalancerEvent): void {
    const listener = this.options.onEvent;
    if (!listener) return;
    try {
      listener(event);
    } catch (error) {
      // A failing listener must not take the balancer down; say so once.
      if (!this.#listenerFailed) {
        this.#listenerFailed = true;
        process.emitWarning(`flowlb balancer: the onEvent listener threw: ${String(error)}`, { code: 'FLOWLB_ONEVENT' });
      }
    }
  }
}

/** Creates a balancer and starts it. */
export async function createLoadBalancer(options: LoadBalancerOptions): Promise<LoadBalancer> {
  const lb = new LoadBalancer(options);
  await lb.start();
  return lb;
}
