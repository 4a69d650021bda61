import type dgram from 'node:dgram';
import type { Endpoint, FlowPair, FlowTable } from '@flowlb/flow-table';
import type { BalancerEvent, DatapathKind } from './events.js';
import type { SendOutcome } from './udp-socket.js';
import type { Counters } from './stats.js';

export interface DatapathContext {
  readonly vip: Endpoint;
  /** The socket on the VIP: receives what XDP passes (or every client datagram in userspace mode). */
  readonly vipSocket: dgram.Socket;
  readonly counters: Counters;
  emit(event: BalancerEvent): void;
}

/**
 * Where flows live and how their datagrams move. The slow path (classification, SNAT ports, limits) is the same
 * for every datapath; a datapath installs flows, forwards what reaches the VIP socket for installed flows, and
 * tears flows down when the cleaner expires them.
 */
export interface Datapath {
  readonly kind: DatapathKind;
  /** The flow table: the kernel's `flows` map (XDP) or a MemoryFlowTable (userspace). The cleaner sweeps it. */
  readonly table: FlowTable;
  start(ctx: DatapathContext): Promise<void>;
  /**
   * Sets a flow up: binds SNAT:P, writes the reverse entry and then the forward entry, and sends from SNAT:P to
   * the target, in order, the datagrams that `take()` hands over (it is called once, right after the entries are
   * written, so that datagrams that arrived meanwhile go too). Rejects before writing anything when SNAT:P cannot
   * be bound (EADDRINUSE: someone else's socket holds it), and with the table's error (EEXIST, E2BIG) when an
   * entry cannot be written. Counts the datagrams sent (forwardedNew) and those that failed (send-failed).
   */
  install(pair: FlowPair, take: () => Buffer[]): Promise<void>;
  /**
   * A datagram from `client` reached the VIP socket: forwards it if the client has an installed flow, counting
   * it, and returns true; returns false when there is no flow.
   */
  forwardInstalled(client: Endpoint, datagram: Buffer): boolean;
  /** Whether the target has sent anything back on this flow; undefined when the flow is not (or no longer) known. */
  replied(pair: FlowPair): boolean | undefined;
  /** The cleaner has removed this flow's entries: release what the datapath holds for it. */
  flowRemoved(pair: FlowPair): void;
  /** The datapath's own counters (the XDP program's), if it has any. */
  counters(): Record<string, number> | undefined;
  /** Releases everything; the flows of a pinned XDP map stay in the map. */
  stop(): Promise<void>;
}

export interface DatapathChoice {
  kind: DatapathKind;
  /** Why this datapath: the option that asked for it, or what made 'auto' choose it. */
  reason: string;
}

/** Counts what a batch of sends achieved: the sent ones under `field`, the failed ones as send-failed drops. */
export function countSends(
  ctx: DatapathContext,
  outcome: SendOutcome,
  field: 'forwardedNew' | 'forwardedLate' | 'userspaceForward',
): void {
  ctx.counters[field] += outcome.sent;
  if (outcome.failed > 0) {
    ctx.counters.drop('send-failed', outcome.failed);
    ctx.emit({ type: 'error', where: 'send to target', error: outcome.error ?? new Error('send failed') });
  }
}
