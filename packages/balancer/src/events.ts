import type { FlowPair, FlowPairKind } from '@flowlb/flow-table';
import type { UdpEndpoint } from '@flowlb/mapper-api';
import type { PortRange } from './ephemeral-range.js';
import type { DropReason } from './stats.js';
import type { XdpAttachmentInfo } from './xdp-datapath.js';

export type DatapathKind = 'xdp' | 'userspace';

/**
 * What the balancer reports through `onEvent`. Everything here is also counted in `stats()`; events add the
 * who and why. A listener that throws is ignored.
 */
export type BalancerEvent =
  | { type: 'datapath'; kind: DatapathKind; reason: string }
  | { type: 'xdp-attached'; attachments: XdpAttachmentInfo[] }
  | { type: 'started'; vip: UdpEndpoint; snatAddress: string; snatPorts: PortRange; datapath: DatapathKind }
  | { type: 'stopped' }
  | { type: 'snat-ports-reserved'; ranges: PortRange[] }
  | { type: 'snat-ports-unchecked'; reason: string }
  | { type: 'flows-adopted'; count: number }
  /**
   * New flows began (active) or stopped (not active) being refused for want of SNAT ports or table entries; while
   * active, unconfirmed flows expire after `unconfirmedTtlMs`.
   */
  | { type: 'pressure'; active: boolean; reason: 'snat-exhausted' | 'flow-limit' | null; unconfirmedTtlMs: number }
  | {
      type: 'flow-created';
      pair: FlowPair;
      datagrams: number;
      /**
       * Milliseconds (µs resolution) from the client's first datagram reaching the slow path to the flow's entries
       * being in the table: the mapper's decisions, the SNAT port and the install, queueing included.
       */
      setupMs: number;
    }
  | { type: 'flow-expired'; pair: FlowPair; kind: FlowPairKind; idleMs: number; unconfirmed: boolean }
  /**
   * A new flow's target sent nothing back within `replyTimeoutMs` (one flow per target is watched at a time): a
   * passive sign that the target may be down.
   */
  | { type: 'flow-unanswered'; pair: FlowPair; waitedMs: number }
  /**
   * The target, or a router on the way, answered flows' datagrams with ICMP destination unreachable (port, host,
   * network or administratively prohibited); `count` of them since the last such event.
   */
  | { type: 'target-unreachable'; target: UdpEndpoint; count: number; detail: string }
  /** `resetFlowsTo(target)` removed this many established flows. */
  | { type: 'flows-reset'; target: UdpEndpoint; count: number }
  | { type: 'flow-refused'; client: UdpEndpoint; target?: UdpEndpoint; reason: DropReason; detail: string }
  | { type: 'client-dropped'; client: UdpEndpoint; reason: DropReason; datagrams: number; detail?: string }
  | { type: 'mapper-error'; client: UdpEndpoint; error: unknown }
  | { type: 'snat-port-quarantined'; snat: UdpEndpoint; target: UdpEndpoint; error: string }
  /** Something works, but worse than configured (a smaller receive buffer than asked for, say). */
  | { type: 'warning'; where: string; message: string }
  | { type: 'error'; where: string; error: unknown };

export type EventListener = (event: BalancerEvent) => void;
