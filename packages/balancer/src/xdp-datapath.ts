import { KernelHelloVerifyKeeper, type KernelHelloVerifySource } from './kernel-hello-verify.js';
import { FLOW_F_CONFIRMED, FLOW_F_REPLIED, reverseEntry, type Endpoint, type NewClientLimits, type FlowKey, type FlowPair, type FlowTable } from '@flowlb/flow-table';
import { countSends, type Datapath, type DatapathContext } from './datapath.js';
import type { SendOutcome } from './udp-socket.js';
import type { XdpAttachMode } from './options.js';

/**
 * What the balancer needs of `XdpForwarder` from @flowlb/xdp-core, by shape, so that this package's types do not
 * require the native package to be installed.
 */
export interface XdpForwarderLike {
  readonly table: FlowTable;
  attach(ifaces: readonly string[], options?: { mode?: XdpAttachMode; sysctls?: boolean }): readonly XdpAttachmentInfo[] | void;
  detach(ifaces?: readonly string[]): void;
  /** Where new clients send, for the program's new-client limits (XdpForwarder has it; a stand-in may not). */
  setVips?(vips: ReadonlyArray<{ address: string; port: number }>): void;
  setNewClientLimits?(limits: NewClientLimits): void;
  /** Keys for the program's own DTLS HelloVerifyRequests to a VIP, or undefined to stop them. */
  setHelloVerify?(vip: { address: string; port: number }, keys: { keys: readonly [Uint8Array, Uint8Array]; current: 0 | 1 } | undefined): void;
  stats(): Record<string, number>;
  /** The slot under which the program counts a target's traffic; 0 when every slot is taken. */
  targetSlot?(target: Endpoint): number;
  /** The program's counters per target slot; the balancer reads `icmpUnreachable` for passive health signals. */
  targetStats?(): ReadonlyArray<{ target: Endpoint; icmpUnreachable: number }>;
  close(): void;
}

/** How often the program's per-target ICMP counts are read for 'target-unreachable' events. */
const ICMP_POLL_MS = 1000;

/** What attaching to one interface did, as @flowlb/xdp-core's `Attachment` reports it. */
export interface XdpAttachmentInfo {
  iface: string;
  /** `created`: a new link; `updated`: a pinned link now runs this program (no gap); `replaced`: a pinned link made anew. */
  how: 'created' | 'updated' | 'replaced';
  pinPath?: string;
  previousProgId?: number;
  replaced?: string;
  /** What may go wrong on the interface although the program runs there, with what to do (VLAN tags stripped). */
  warnings?: string[];
}

export interface XdpLoadOptions {
  flowsMaxEntries: number;
  pinDir?: string | undefined;
  netns?: string | undefined;
}

/** A socket of @flowlb/xdp-core's `UdpSocket`: bound on creation, sends synchronously, reads in batches. */
export interface SyncUdpSocket {
  send(to: Endpoint, datagrams: readonly Uint8Array[]): number;
  receive(onDatagram: (datagram: Buffer, from: Endpoint) => void, onBatchEnd?: () => void): void;
  receiveBufferBytes(): number;
  close(): void;
}

export interface SyncUdpSocketClass {
  bind(local: Endpoint, options?: { reuseAddr?: boolean; reusePort?: boolean; receiveBufferBytes?: number }): SyncUdpSocket;
}

/** The part of @flowlb/xdp-core's exports the balancer uses. */
export interface XdpCoreModule {
  XdpForwarder: { load(options: XdpLoadOptions): Promise<XdpForwarderLike> };
  UdpSocket: SyncUdpSocketClass;
  libbpfVersion(): string;
}

/** @flowlb/xdp-core is missing, or its native addon does not load. */
export class XdpCoreUnavailableError extends Error {
  readonly code = 'ERR_FLOWLB_XDP_CORE_UNAVAILABLE';

  constructor(message: string, options: { cause: unknown }) {
    super(message, options);
    this.name = 'XdpCoreUnavailableError';
  }
}

/**
 * Imports @flowlb/xdp-core and makes sure its native addon loads. Done lazily so that the userspace datapath never
 * touches native code. Throws an {@link XdpCoreUnavailableError} that says what is missing. Callers that use more
 * of the package than the balancer does name its type: `importXdpCore<typeof import('@flowlb/xdp-core')>()`.
 */
export async function importXdpCore<M extends XdpCoreModule = XdpCoreModule>(): Promise<M> {
  let mod: M;
  try {
    // A variable specifier keeps bundlers from pulling the optional native package in.
    const specifier = '@flowlb/xdp-core';
    mod = (await import(specifier)) as M;
  } catch (error) {
    throw new XdpCoreUnavailableError(
      `@flowlb/xdp-core is not installed or cannot be imported (${(error as Error).message}); ` +
        "install it next to @flowlb/balancer for the XDP datapath, or use datapath: 'userspace'",
      { cause: error },
    );
  }
  try {
    mod.libbpfVersion();
  } catch (error) {
    throw new XdpCoreUnavailableError(`@flowlb/xdp-core is installed but its native addon does not load: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return mod;
}

export interface XdpDatapathOptions {
  forwarder: XdpForwarderLike;
  /** Close the forwarder on stop (the balancer loaded it); false for one the caller passed in. */
  owned: boolean;
  /** Sockets bound to a SNAT port to send from it (@flowlb/xdp-core's UdpSocket). */
  udp: SyncUdpSocketClass;
  interfaces: readonly string[];
  mode: XdpAttachMode;
  sysctls: boolean;
  /**
   * Detach what start() attached when stopping a forwarder the caller owns. False leaves the program attached (its
   * pinned links keep forwarding established flows until the next control plane takes them over).
   */
  detachOnStop: boolean;
  newClientLimits: NewClientLimits | undefined;
  helloVerify: KernelHelloVerifySource | undefined;
}

/**
 * Flows live in the XDP program's `flows` map and no socket is held per flow: the kernel forwards both directions.
 * The control plane only touches a flow's SNAT port when it has to send from it (a new flow's buffered datagrams,
 * a late datagram of an installed one): it binds a socket there, which also proves that no other socket holds the
 * port, sends, and closes it, all in synchronous syscalls, so two sends from one port never overlap.
 */
export class XdpDatapath implements Datapath {
  readonly kind = 'xdp' as const;
  readonly forwarder: XdpForwarderLike;
  readonly #options: XdpDatapathOptions;
  #ctx: DatapathContext | undefined;
  #attached: string[] = [];
  #stopped = false;
  #helloVerify: KernelHelloVerifyKeeper | undefined;
  /** The last ICMP unreachable count read per target (`ip:port`), and the timer that reads them. */
  #icmpSeen = new Map<string, number>();
  #icmpTimer: NodeJS.Timeout | undefined;

  constructor(options: XdpDatapathOptions) {
    this.forwarder = options.forwarder;
    this.#options = options;
  }

  get table(): FlowTable {
    return this.forwarder.table;
  }

  async start(ctx: DatapathContext): Promise<void> {
    this.#ctx = ctx;
    const { interfaces, mode, sysctls, newClientLimits, helloVerify } = this.#options;
    if (helloVerify) {
      const target = this.forwarder;
      if (!target.setHelloVerify) throw new Error('xdp.helloVerify needs an XdpForwarder that can set it (setHelloVerify)');
      this.#helloVerify = new KernelHelloVerifyKeeper({ setHelloVerify: (vip, keys) => target.setHelloVerify!(vip, keys) }, ctx.vip, helloVerify, (error) =>
        ctx.emit({ type: 'warning', where: 'xdp.helloVerify', message: `cannot update the XDP program's DTLS cookie keys: ${error.message}` }),
      );
      // Before attaching, like the limits below.
      this.#helloVerify.refresh();
    }
    if (newClientLimits) {
      if (!this.forwarder.setVips || !this.forwarder.setNewClientLimits) {
        throw new Error('xdp.newClientLimits needs an XdpForwarder that can set them (setVips, setNewClientLimits)');
      }
      // Before attaching, so that the program never runs here without them.
      this.forwarder.setVips([ctx.vip]);
      this.forwarder.setNewClientLimits(newClientLimits);
    }
    if (this.forwarder.targetStats) {
      // What is counted already happened before this run: only what comes later is news.
      this.#pollIcmp(false);
      this.#icmpTimer = setInterval(() => this.#pollIcmp(true), ICMP_POLL_MS);
      this.#icmpTimer.unref();
    }
    if (interfaces.length > 0) {
      let attachments: readonly XdpAttachmentInfo[] | void;
      try {
        attachments = this.forwarder.attach(interfaces, { mode, sysctls });
      } catch (error) {
        throw new Error(`cannot attach the XDP program to ${interfaces.join(', ')} (${mode} mode): ${(error as Error).message}`, {
          cause: error,
        });
      }
      this.#attached = [...interfaces];
      if (Array.isArray(attachments)) {
        ctx.emit({ type: 'xdp-attached', attachments: attachments.map((a: XdpAttachmentInfo) => attachmentInfo(a)) });
      }
    }
  }

  async install(pair: FlowPair, take: () => Buffer[]): Promise<void> {
    const ctx = this.#ready();
    // A forwarder passed in outlives the balancer: nothing may be written into it once stopped.
    if (this.#stopped) throw new Error('the datapath has stopped');
    // Binding first proves SNAT:P is ours before any entry points at it (EADDRINUSE otherwise).
    const socket = this.#options.udp.bind(pair.snat);
    try {
      this.table.installPair(pair, process.hrtime.bigint(), this.#targetSlot(pair.target));
      sendFrom(ctx, socket, pair.target, take(), 'forwardedNew');
    } finally {
      socket.close();
    }
  }

  forwardInstalled(client: Endpoint, datagram: Buffer): boolean {
    const ctx = this.#ready();
    const key: FlowKey = { dstAddr: ctx.vip.address, srcAddr: client.address, dstPort: ctx.vip.port, srcPort: client.port };
    const value = this.table.get(key);
    if (value === undefined) return false;
    // The program refreshes last_used (and confirms the flow) only for what reaches it; a flow whose client datagrams
    // come up here (IP fragments) would otherwise expire while busy. 'exist': a flow the cleaner has just removed
    // stays removed.
    try {
      this.table.set(key, { ...value, flags: value.flags | FLOW_F_CONFIRMED, lastUsed: process.hrtime.bigint() }, 'exist');
    } catch {
      return false;
    }
    let socket: SyncUdpSocket;
    try {
      socket = this.#options.udp.bind({ address: value.srcAddr, port: value.srcPort });
    } catch (error) {
      ctx.counters.drop('send-failed');
      ctx.emit({ type: 'error', where: `late forward from ${value.srcAddr}:${value.srcPort}`, error });
      return true;
    }
    try {
      sendFrom(ctx, socket, { address: value.dstAddr, port: value.dstPort }, [datagram], 'forwardedLate');
    } finally {
      socket.close();
    }
    return true;
  }

  replied(pair: FlowPair): boolean | undefined {
    // The program marks the reverse entry on the target's first packet.
    const value = this.table.get(reverseEntry(pair)[0]);
    return value === undefined ? undefined : (value.flags & FLOW_F_REPLIED) !== 0;
  }

  flowRemoved(): void {
    // Nothing is held per flow.
  }

  counters(): Record<string, number> | undefined {
    try {
      return { ...this.forwarder.stats() };
    } catch {
      // Closed or failing: the balancer's own counters still stand.
      return undefined;
    }
  }

  /** Asks `xdp.helloVerify` again (the mappings changed); throws what it or the map write threw. */
  refreshHelloVerify(): void {
    this.#helloVerify?.refresh();
  }

  /** Counting per target is a nicety: a forwarder that cannot give a slot leaves the flow uncounted. */
  #targetSlot(target: Endpoint): number {
    try {
      return this.forwarder.targetSlot?.(target) ?? 0;
    } catch {
      return 0;
    }
  }

  #pollIcmp(report: boolean): void {
    let rows: ReadonlyArray<{ target: Endpoint; icmpUnreachable: number }>;
    try {
      rows = this.forwarder.targetStats!();
    } catch {
      return;
    }
    for (const { target, icmpUnreachable } of rows) {
      const key = `${target.address}:${target.port}`;
      const seen = this.#icmpSeen.get(key);
      this.#icmpSeen.set(key, icmpUnreachable);
      // A target first seen now has its whole count new, unless this is the first read.
      const fresh = icmpUnreachable - (seen ?? 0);
      if (report && fresh > 0) {
        this.#ctx?.emit({
          type: 'target-unreachable',
          target: { ...target },
          count: fresh,
          detail: `ICMP destination unreachable (${fresh} in the last ${ICMP_POLL_MS / 1000} s)`,
        });
      }
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#icmpTimer);
    this.#helloVerify?.stop();
    const errors: unknown[] = [];
    if (this.#options.owned) {
      try {
        this.forwarder.close();
      } catch (error) {
        errors.push(error);
      }
    } else if (this.#attached.length > 0 && this.#options.detachOnStop) {
      try {
        this.forwarder.detach(this.#attached);
      } catch (error) {
        errors.push(error);
      }
    }
    this.#attached = [];
    if (errors.length > 0) throw errors[0];
  }

  #ready(): DatapathContext {
    if (!this.#ctx) throw new Error('XdpDatapath: not started');
    return this.#ctx;
  }
}

/**
 * Sends through a synchronous socket and says how it went; the socket throws at the first datagram it cannot send
 * (a full send buffer), with the count of those before it.
 */
export function sendSync(socket: SyncUdpSocket, to: Endpoint, datagrams: readonly Buffer[]): SendOutcome {
  try {
    return { sent: socket.send(to, datagrams), failed: 0 };
  } catch (e) {
    const sent = (e as { sent?: number }).sent ?? 0;
    return { sent, failed: datagrams.length - sent, error: e as Error };
  }
}

/** Sends and counts: the datagrams sent, and those that could not be (a full send buffer) as send-failed. */
function sendFrom(
  ctx: DatapathContext,
  socket: SyncUdpSocket,
  to: Endpoint,
  datagrams: readonly Buffer[],
  field: 'forwardedNew' | 'forwardedLate',
): void {
  countSends(ctx, sendSync(socket, to, datagrams), field);
}

/** The plain fields of an attachment: the forwarder's own object also holds its live link. */
function attachmentInfo(a: XdpAttachmentInfo): XdpAttachmentInfo {
  const info: XdpAttachmentInfo = { iface: a.iface, how: a.how };
  if (a.pinPath !== undefined) info.pinPath = a.pinPath;
  if (a.previousProgId !== undefined) info.previousProgId = a.previousProgId;
  if (a.replaced !== undefined) info.replaced = a.replaced;
  if (a.warnings !== undefined && a.warnings.length > 0) info.warnings = [...a.warnings];
  return info;
}
