import { TargetFlowCounters, type TargetFlows } from './target-flows.js';

/** Why a datagram was not forwarded. Every datagram the balancer gives up on is counted under exactly one. */
export const DROP_REASONS = [
  /** Too many clients waiting for a decision (`limits.maxPendingClients`), and none of them could be pushed out. */
  'pending-clients-limit',
  /** Too many clients of this IP address waiting for a decision (`limits.maxPendingPerSource`). */
  'source-clients-limit',
  /** A waiting client pushed out, oldest first, to make room for a new one while the table was full. */
  'pending-evicted',
  /** The client already has `limits.maxDatagramsPerClient` datagrams waiting. */
  'client-datagrams-limit',
  /** The client's waiting datagrams would exceed `limits.maxBytesPerClient`. */
  'client-bytes-limit',
  /** All waiting datagrams together would exceed `limits.maxTotalBytes`. */
  'total-bytes-limit',
  /** The mapper answered drop. */
  'mapper-drop',
  /** The mapper answered the client itself (`reply`, a stateless challenge); its datagrams go no further. */
  'answered',
  /** The mapper threw or its promise rejected. */
  'mapper-error',
  /** The mapper answered something that is not a decision, or a forward to an unusable target. */
  'invalid-decision',
  /** No decision within `limits.classifyTimeoutMs` of the client's first datagram. */
  'classify-timeout',
  /** The client was dropped moments ago and is held off (`dropHoldMs`). */
  'drop-hold',
  /** An earlier mapper call for this client, which timed out, has not answered yet. */
  'mapper-busy',
  /** No SNAT port left for the chosen target. */
  'snat-exhausted',
  /** `limits.maxFlows` flows are active, or the flow table itself is full. */
  'flow-limit',
  /** Installing the flow failed for another reason (reported as an event). */
  'install-failed',
  /** Sending a datagram on to its target failed. */
  'send-failed',
  /** A reply from a target arrived for a flow that is gone (userspace datapath). */
  'reply-no-flow',
  /** Sending a reply back to the client from the VIP failed (userspace datapath). */
  'reply-send-failed',
  /** The balancer stopped while the datagram was waiting. */
  'shutdown',
  /** Something failed that should not have; reported as an 'error' event. */
  'internal-error',
] as const;

export type DropReason = (typeof DROP_REASONS)[number];

/** Upper bounds (inclusive, milliseconds) of the classification latency buckets; a last bucket takes the rest. */
export const LATENCY_BUCKETS_MS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000] as const;

export interface HistogramBucket {
  /** Upper bound in milliseconds, or "+Inf". */
  le: number | '+Inf';
  /** Observations at or below `le` (cumulative, as Prometheus has it). */
  count: number;
}

export interface HistogramSnapshot {
  count: number;
  sumMs: number;
  buckets: HistogramBucket[];
}

/** A fixed-bucket histogram: constant memory whatever is observed. */
export class LatencyHistogram {
  readonly #bounds: readonly number[];
  readonly #counts: Float64Array;
  #count = 0;
  #sum = 0;

  constructor(bounds: readonly number[] = LATENCY_BUCKETS_MS) {
    for (let i = 1; i < bounds.length; i++) {
      if (!(bounds[i]! > bounds[i - 1]!)) throw new RangeError('LatencyHistogram: bounds must increase');
    }
    this.#bounds = [...bounds];
    this.#counts = new Float64Array(bounds.length + 1);
  }

  observe(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    let i = 0;
    while (i < this.#bounds.length && ms > this.#bounds[i]!) i++;
    this.#counts[i]!++;
    this.#count++;
    this.#sum += ms;
  }

  snapshot(): HistogramSnapshot {
    const buckets: HistogramBucket[] = [];
    let running = 0;
    this.#bounds.forEach((le, i) => {
      running += this.#counts[i]!;
      buckets.push({ le, count: running });
    });
    buckets.push({ le: '+Inf', count: this.#count });
    return { count: this.#count, sumMs: this.#sum, buckets };
  }
}

/** The running counters of a balancer; `LoadBalancer.stats()` turns them into a {@link BalancerStats}. */
export class Counters {
  flowsCreated = 0;
  flowsExpired = 0;
  /** Of the expired flows, those removed early because their client never spoke after the install. */
  flowsExpiredUnconfirmed = 0;
  /** Of those, the ones removed while SNAT ports or table entries ran short (the shorter TTL of pressure). */
  flowsEvictedUnderPressure = 0;
  /** Times new flows began to be refused for want of SNAT ports or table entries. */
  pressureEpisodes = 0;
  flowsRefused = 0;
  /** Flows found in the table at start (a pinned map that outlived the previous process). */
  flowsAdopted = 0;
  /** Flows removed by `resetFlowsTo` (a target went down and asked for its flows to end). */
  flowsReset = 0;
  vipIn = 0;
  forwardedNew = 0;
  forwardedLate = 0;
  userspaceForward = 0;
  userspaceReverse = 0;
  mapperCalls = 0;
  mapperErrors = 0;
  /** Clients the mapper answered itself (`reply`). */
  mapperReplies = 0;
  /** Datagrams of those answers sent from the VIP, and those whose send failed. */
  repliesSent = 0;
  repliesFailed = 0;
  classifyTimeouts = 0;
  snatPortsQuarantined = 0;
  readonly drops: Record<DropReason, number> = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<
    DropReason,
    number
  >;
  readonly classifyLatency = new LatencyHistogram();
  readonly targets = new TargetFlowCounters();

  drop(reason: DropReason, n = 1): void {
    this.drops[reason] += n;
  }

  get dropped(): number {
    let n = 0;
    for (const r of DROP_REASONS) n += this.drops[r];
    return n;
  }
}

export interface BalancerStats {
  /** Which datapath runs, once started. */
  datapath: 'xdp' | 'userspace' | null;
  datapathReason: string | null;
  flows: {
    /** Flows installed now (created + adopted - expired - reset). */
    active: number;
    created: number;
    expired: number;
    /** Of `expired`, the flows whose client never spoke after the install, removed after `unconfirmedTtlSec`. */
    unconfirmedExpired: number;
    /** Of `unconfirmedExpired`, those removed while new flows were refused for want of SNAT ports or entries. */
    evictedUnderPressure: number;
    /** Times new flows began to be refused for want of SNAT ports or table entries. */
    pressureEpisodes: number;
    /** New flows refused: no SNAT port, flow limit, table full, install error. */
    refused: number;
    adopted: number;
    /** Removed before their time because their target went down (`resetFlowsTo`). */
    reset: number;
  };
  /**
   * Flows per target, keyed `ip:port`: every target that holds a flow or had one created or refused since start
   * (adopted flows count as active).
   */
  targets: Record<string, TargetFlows>;
  pending: {
    /** Clients waiting for a decision or for their flow to be installed. */
    clients: number;
    datagrams: number;
    bytes: number;
    /** Clients held off after a drop. */
    held: number;
  };
  datagrams: {
    /** Received on the VIP socket (XDP passed them, or every client datagram in userspace mode). */
    slowPathIn: number;
    /** Buffered datagrams sent on to the target when their flow was installed. */
    forwardedNew: number;
    /** XDP mode: datagrams of an installed flow that still reached the VIP socket, sent on from SNAT:P. */
    forwardedLate: number;
    /** Userspace mode: client datagrams of installed flows sent to the target through the flow's socket. */
    userspaceForward: number;
    /** Userspace mode: target replies sent back to the client from the VIP. */
    userspaceReverse: number;
    /** Datagrams of mapper replies sent from the VIP to clients. */
    repliesSent: number;
    /** Datagrams of mapper replies whose send failed. */
    repliesFailed: number;
    /** Sum of `drops`. */
    dropped: number;
    /**
     * Dropped by the kernel before the balancer could read them, because the VIP socket's receive buffer was full
     * (from /proc/net/udp; null where it cannot be read). Not part of `dropped`, which counts the balancer's own.
     * With workers, the drops of every worker's VIP socket together.
     */
    socketDrops: number | null;
  };
  drops: Record<DropReason, number>;
  classification: HistogramSnapshot & {
    /** Mapper calls made. */
    calls: number;
    /** Calls running now. */
    inFlight: number;
    errors: number;
    timeouts: number;
    /** Clients the mapper answered itself (a stateless challenge such as a DTLS HelloVerifyRequest). */
    replies: number;
  };
  snat: {
    portsInUse: number;
    /** (SNAT address, target) pools that hold a port. */
    pools: number;
    /** Ports set aside now because something else was bound on them. */
    quarantined: number;
    /** Times a port was set aside since start: each is a port another socket or table entry held. */
    quarantinedTotal: number;
    range: { min: number; max: number };
  };
  /** The XDP program's counters, summed over CPUs (XDP datapath only). */
  xdp?: Record<string, number>;
  /** Userspace datapath only: `flowSockets`, the sockets open for flows (one per flow). */
  userspace?: Record<string, number>;
}
