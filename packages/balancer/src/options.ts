import { parseIPv4 } from '@flowlb/flow-table';
import type { FlowMapper, UdpEndpoint } from '@flowlb/mapper-api';
import { assertPortRange, formatRange, PROC_IPV4_DIR, type PortRange } from './ephemeral-range.js';
import type { EventListener } from './events.js';
import type { NewClientLimits } from '@flowlb/flow-table';
import type { XdpForwarderLike } from './xdp-datapath.js';
import type { KernelHelloVerifySource } from './kernel-hello-verify.js';
import { assertPortSlice, type PortSlice } from './snat-pool.js';

export type DatapathMode = 'auto' | 'xdp' | 'userspace';
export type XdpAttachMode = 'native' | 'generic' | 'auto';

/** Bounds on what the slow path keeps in memory; each has a default that suits a busy server. */
export interface LimitsOptions {
  /** Clients waiting for a decision at once. Default 10,000. */
  maxPendingClients?: number;
  /** Clients of one IP address waiting for a decision at once. Default 256. */
  maxPendingPerSource?: number;
  /** Datagrams buffered per waiting client. Default 32. */
  maxDatagramsPerClient?: number;
  /** Bytes buffered per waiting client. Default 64 KiB. */
  maxBytesPerClient?: number;
  /** Bytes buffered over all waiting clients. Default 32 MiB. */
  maxTotalBytes?: number;
  /** The mapper must decide within this long of a client's first datagram. Default 3000 ms. */
  classifyTimeoutMs?: number;
  /** Flows installed at once; also sizes the XDP flow map (two entries per flow). Default 131,072. */
  maxFlows?: number;
  /**
   * @deprecated Has no effect: late datagrams of installed flows (XDP mode) are sent through a socket that is bound,
   * used and closed in one synchronous step, so none stay open. Accepted so that existing options still type-check.
   */
  maxLateSenders?: number;
}

export interface XdpOptions {
  /** How the program is attached. Default 'auto' (native where the driver supports it). */
  mode?: XdpAttachMode;
  /** Size of the `flows` map. Default twice `limits.maxFlows`. */
  flowsMaxEntries?: number;
  /** A bpffs folder to pin `flows` and `stats` in, and to reuse them from: flows survive a restart. */
  pinDir?: string;
  /**
   * Network namespace in which the interfaces are looked up and attached. The VIP socket is always opened in the
   * balancer's own namespace, so the process should run where the VIP lives; this is for attaching from outside.
   */
  netns?: string;
  /**
   * Set on each interface what the XDP program needs of the kernel (forwarding, accept_local, loose rp_filter where
   * it is strict), and put back what was changed when detaching. Default true.
   */
  sysctls?: boolean;
  /** A forwarder loaded by the caller (tests, or a shared one); the balancer then neither loads nor closes it. */
  forwarder?: XdpForwarderLike;
  /**
   * With `forwarder`: detach from `interfaces` on stop. Default true. False leaves the program attached, so that
   * pinned links go on forwarding established flows while no control plane runs (a restart takes them over).
   */
  detachOnStop?: boolean;
  /**
   * Limits on new clients' datagrams to the VIP (those without a flow yet), per source address and per source /24,
   * enforced in the XDP program: a host that floods the VIP with first datagrams loses the excess in the kernel and
   * costs the control plane nothing. Counted as the program's `rateLimited`. Default none.
   */
  newClientLimits?: NewClientLimits;
  /**
   * Cookie keys with which the XDP program answers DTLS ClientHellos to the VIP that bring no valid cookie, with a
   * HelloVerifyRequest of its own, so that forged first datagrams never reach userspace (counted as the program's
   * `helloVerify`). Asked at start, when the keys rotate, and on `refreshHelloVerify()`; give
   * `() => dtlsMapper.kernelHelloVerify()` of @flowlb/mapper-dtls-sni, whose mapper checks the same cookies.
   * Default none.
   */
  helloVerify?: KernelHelloVerifySource;
}

export interface LoadBalancerOptions {
  /** Where clients send: an IPv4 address of this host and a UDP port. */
  vip: UdpEndpoint;
  /** The source address towards targets; their replies must reach this host. Default `vip.address`. */
  snatAddress?: string;
  /** Source ports towards targets, one pool per target. Default 10000–29999 (below Linux's ephemeral range). */
  snatPorts?: PortRange;
  /**
   * When the SNAT ports overlap the kernel's ephemeral range, add them to net.ipv4.ip_local_reserved_ports
   * (merged with what is there) instead of refusing to start. Default false.
   */
  reserveSnatPorts?: boolean;
  /**
   * This balancer is worker `index` of `count` processes that serve one VIP together, for more than one core: each
   * binds the VIP with SO_REUSEPORT (the kernel spreads clients over the workers by their address and port), hands
   * out only its slice of the SNAT ports (every count-th port from min+index), and expires only the flows on its
   * ports. All must use one XDP flow map (the same `xdp.pinDir`, or forwarders sharing their maps), and one of them
   * attaches the program; the others pass no `interfaces`. XDP datapath only. Default: a single process.
   */
  worker?: PortSlice;
  mapper: FlowMapper;
  /** Default 'auto': XDP when this machine can run it and interfaces are given, else userspace. */
  datapath?: DatapathMode;
  /** Interfaces to attach the XDP program to (XDP datapath). */
  interfaces?: string[];
  xdp?: XdpOptions;
  /** A flow is removed once both its directions have been idle this long. Default 60. */
  connTtlSec?: number;
  /**
   * A flow whose client has not spoken since its first datagram installed it is removed this long after the
   * install, however much the target answers: it may have been made by one forged datagram, and holds a SNAT port
   * and two table entries. Default `connTtlSec` (no shorter TTL); a few seconds suits protocols whose clients always
   * send more than one datagram (DTLS, QUIC).
   */
  unconfirmedTtlSec?: number;
  /** Time between two sweeps of the flow table. Default a quarter of the TTL, between 100 ms and 5 s. */
  sweepIntervalMs?: number;
  /**
   * After a mapper drops a client (or throws for it), further datagrams from that client `ip:port` are dropped
   * without asking the mapper for this long; then it is classified afresh. 0 turns this off. Default 1000 ms.
   */
  dropHoldMs?: number;
  limits?: LimitsOptions;
  /**
   * Receive buffer of the VIP socket, in bytes. XDP datapath: default 8 MiB, set past net.core.rmem_max when the
   * process has CAP_NET_ADMIN (a 'warning' event says when less was granted). Userspace datapath: the system default
   * when absent, capped at net.core.rmem_max.
   */
  receiveBufferBytes?: number;
  /**
   * Watch new flows towards a target for its first reply: when none comes within this many milliseconds, a
   * 'flow-unanswered' event says so (health checks count it as a failure). One flow per target is watched at a time;
   * undefined leaves a target unwatched. Default: none watched.
   */
  replyTimeoutMs?: (target: UdpEndpoint) => number | undefined;
  /** Receives every event; see {@link BalancerEvent}. */
  onEvent?: EventListener;
  /** Where ip_local_port_range and ip_local_reserved_ports are read. Default /proc/sys/net/ipv4. */
  procDir?: string;
}

export interface ResolvedLimits {
  maxPendingClients: number;
  maxPendingPerSource: number;
  maxDatagramsPerClient: number;
  maxBytesPerClient: number;
  maxTotalBytes: number;
  classifyTimeoutMs: number;
  maxFlows: number;
}

export interface ResolvedOptions {
  vip: UdpEndpoint;
  snatAddress: string;
  snatPorts: PortRange;
  reserveSnatPorts: boolean;
  worker: PortSlice | undefined;
  mapper: FlowMapper;
  datapath: DatapathMode;
  interfaces: string[];
  xdp: Omit<XdpOptions, 'mode' | 'flowsMaxEntries' | 'sysctls' | 'detachOnStop' | 'newClientLimits' | 'helloVerify'> & {
    newClientLimits: NewClientLimits | undefined;
    helloVerify: KernelHelloVerifySource | undefined;
    mode: XdpAttachMode;
    flowsMaxEntries: number;
    sysctls: boolean;
    detachOnStop: boolean;
  };
  connTtlMs: number;
  unconfirmedTtlMs: number;
  sweepIntervalMs: number;
  dropHoldMs: number;
  limits: ResolvedLimits;
  receiveBufferBytes: number | undefined;
  replyTimeoutMs: ((target: UdpEndpoint) => number | undefined) | undefined;
  onEvent: EventListener | undefined;
  procDir: string;
}

export const DEFAULT_SNAT_PORTS: Readonly<PortRange> = Object.freeze({ min: 10000, max: 29999 });

export const DEFAULT_LIMITS: Readonly<ResolvedLimits> = Object.freeze({
  maxPendingClients: 10_000,
  maxPendingPerSource: 256,
  maxDatagramsPerClient: 32,
  maxBytesPerClient: 64 * 1024,
  maxTotalBytes: 32 * 1024 * 1024,
  classifyTimeoutMs: 3000,
  maxFlows: 131_072,
});

export const DEFAULT_CONN_TTL_SEC = 60;
export const DEFAULT_DROP_HOLD_MS = 1000;

const IFNAME = /^[^\s/]{1,15}$/;

/** Checks every option and fills in the defaults; the errors name the option and what is wrong with it. */
export function resolveOptions(options: LoadBalancerOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError('LoadBalancer: options object required');
  const vip = endpoint(options.vip, 'vip');
  const snatAddress = options.snatAddress ?? vip.address;
  ipv4(snatAddress, 'snatAddress');

  const snatPorts = options.snatPorts ?? DEFAULT_SNAT_PORTS;
  assertPortRange(snatPorts, 'LoadBalancer: snatPorts');
  if (snatAddress === vip.address && vip.port >= snatPorts.min && vip.port <= snatPorts.max) {
    throw new RangeError(
      `LoadBalancer: the VIP port ${vip.port} lies inside snatPorts ${formatRange(snatPorts)} on the same address; ` +
        'move one of them',
    );
  }

  const mapper = options.mapper;
  if (typeof (mapper as Partial<FlowMapper> | undefined)?.findFlow !== 'function') {
    throw new TypeError('LoadBalancer: mapper must be an object with a findFlow(client, packets) method');
  }

  const datapath = options.datapath ?? 'auto';
  const worker = options.worker && { index: options.worker.index, count: options.worker.count };
  if (worker) {
    assertPortSlice(worker, 'LoadBalancer: worker');
    if (datapath === 'userspace') {
      throw new RangeError("LoadBalancer: worker needs the XDP datapath (the userspace datapath keeps its flows in one process's sockets)");
    }
  }
  if (datapath !== 'auto' && datapath !== 'xdp' && datapath !== 'userspace') {
    throw new RangeError(`LoadBalancer: datapath must be 'auto', 'xdp' or 'userspace', got ${JSON.stringify(datapath)}`);
  }

  const interfaces = options.interfaces ?? [];
  if (!Array.isArray(interfaces)) throw new TypeError('LoadBalancer: interfaces must be an array of interface names');
  for (const name of interfaces) {
    if (typeof name !== 'string' || !IFNAME.test(name)) {
      throw new TypeError(`LoadBalancer: ${JSON.stringify(name)} is not an interface name`);
    }
  }

  const limitsIn = options.limits ?? {};
  const limits: ResolvedLimits = {
    maxPendingClients: positiveInt(limitsIn.maxPendingClients, DEFAULT_LIMITS.maxPendingClients, 'limits.maxPendingClients'),
    maxPendingPerSource: positiveInt(limitsIn.maxPendingPerSource, DEFAULT_LIMITS.maxPendingPerSource, 'limits.maxPendingPerSource'),
    maxDatagramsPerClient: positiveInt(
      limitsIn.maxDatagramsPerClient,
      DEFAULT_LIMITS.maxDatagramsPerClient,
      'limits.maxDatagramsPerClient',
    ),
    maxBytesPerClient: positiveInt(limitsIn.maxBytesPerClient, DEFAULT_LIMITS.maxBytesPerClient, 'limits.maxBytesPerClient'),
    maxTotalBytes: positiveInt(limitsIn.maxTotalBytes, DEFAULT_LIMITS.maxTotalBytes, 'limits.maxTotalBytes'),
    classifyTimeoutMs: positiveNumber(limitsIn.classifyTimeoutMs, DEFAULT_LIMITS.classifyTimeoutMs, 'limits.classifyTimeoutMs'),
    maxFlows: positiveInt(limitsIn.maxFlows, DEFAULT_LIMITS.maxFlows, 'limits.maxFlows'),
  };

  const xdpIn = options.xdp ?? {};
  const mode = xdpIn.mode ?? 'auto';
  if (mode !== 'native' && mode !== 'generic' && mode !== 'auto') {
    throw new RangeError(`LoadBalancer: xdp.mode must be 'native', 'generic' or 'auto', got ${JSON.stringify(mode)}`);
  }
  const flowsMaxEntries = positiveInt(xdpIn.flowsMaxEntries, limits.maxFlows * 2, 'xdp.flowsMaxEntries');
  if (xdpIn.forwarder !== undefined) {
    const f = xdpIn.forwarder as Partial<XdpForwarderLike>;
    if (typeof f.stats !== 'function' || typeof f.attach !== 'function' || typeof f.table !== 'object') {
      throw new TypeError('LoadBalancer: xdp.forwarder must be an XdpForwarder (table, attach, stats, close)');
    }
    if (datapath === 'userspace') {
      throw new RangeError("LoadBalancer: xdp.forwarder was given but datapath is 'userspace'");
    }
  }

  // A worker may leave attaching to another worker, whose maps it shares.
  if (datapath === 'xdp' && interfaces.length === 0 && xdpIn.forwarder === undefined && worker === undefined) {
    throw new RangeError(
      "LoadBalancer: datapath 'xdp' needs interfaces to attach the program to, or an attached xdp.forwarder, or a worker",
    );
  }

  const connTtlSec = positiveNumber(options.connTtlSec, DEFAULT_CONN_TTL_SEC, 'connTtlSec');
  const connTtlMs = connTtlSec * 1000;
  const unconfirmedTtlMs = Math.min(connTtlMs, positiveNumber(options.unconfirmedTtlSec, connTtlSec, 'unconfirmedTtlSec') * 1000);
  const sweepIntervalMs = positiveNumber(
    options.sweepIntervalMs,
    Math.min(5000, Math.max(100, connTtlMs / 4)),
    'sweepIntervalMs',
  );
  const dropHoldMs = options.dropHoldMs ?? DEFAULT_DROP_HOLD_MS;
  if (typeof dropHoldMs !== 'number' || !Number.isFinite(dropHoldMs) || dropHoldMs < 0) {
    throw new RangeError(`LoadBalancer: dropHoldMs ${String(dropHoldMs)} is not a number ≥ 0`);
  }
  const receiveBufferBytes =
    options.receiveBufferBytes === undefined
      ? undefined
      : positiveInt(options.receiveBufferBytes, 0, 'receiveBufferBytes');
  if (options.replyTimeoutMs !== undefined && typeof options.replyTimeoutMs !== 'function') {
    throw new TypeError('LoadBalancer: replyTimeoutMs must be a function of the target');
  }
  if (options.onEvent !== undefined && typeof options.onEvent !== 'function') {
    throw new TypeError('LoadBalancer: onEvent must be a function');
  }
  if (options.reserveSnatPorts !== undefined && typeof options.reserveSnatPorts !== 'boolean') {
    throw new TypeError('LoadBalancer: reserveSnatPorts must be a boolean');
  }

  return {
    vip,
    snatAddress,
    snatPorts: { min: snatPorts.min, max: snatPorts.max },
    reserveSnatPorts: options.reserveSnatPorts ?? false,
    worker,
    mapper,
    datapath,
    interfaces: [...interfaces],
    xdp: {
      ...xdpIn,
      mode,
      flowsMaxEntries,
      sysctls: xdpIn.sysctls ?? true,
      detachOnStop: xdpIn.detachOnStop ?? true,
      newClientLimits: xdpIn.newClientLimits,
      helloVerify: xdpIn.helloVerify,
    },
    connTtlMs,
    unconfirmedTtlMs,
    sweepIntervalMs,
    dropHoldMs,
    limits,
    receiveBufferBytes,
    replyTimeoutMs: options.replyTimeoutMs,
    onEvent: options.onEvent,
    procDir: options.procDir ?? PROC_IPV4_DIR,
  };
}

function ipv4(address: unknown, what: string): string {
  try {
    parseIPv4(address as string, what);
  } catch (error) {
    throw new TypeError(`LoadBalancer: ${(error as Error).message}`);
  }
  return address as string;
}

function endpoint(e: unknown, what: string): UdpEndpoint {
  if (typeof e !== 'object' || e === null) throw new TypeError(`LoadBalancer: ${what} must be { address, port }`);
  const { address, port } = e as Partial<UdpEndpoint>;
  ipv4(address, `${what}.address`);
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`LoadBalancer: ${what}.port ${String(port)} is not a port number in 1..65535`);
  }
  return { address: address!, port };
}

function positiveInt(value: unknown, fallback: number, what: string): number {
  const v = value ?? fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) {
    throw new RangeError(`LoadBalancer: ${what} ${String(v)} is not a positive integer`);
  }
  return v;
}

function positiveNumber(value: unknown, fallback: number, what: string): number {
  const v = value ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new RangeError(`LoadBalancer: ${what} ${String(v)} is not a positive number`);
  }
  return v;
}
