import {
  DEFAULT_CONN_TTL_SEC,
  DEFAULT_LIMITS,
  DEFAULT_SNAT_PORTS,
  type DatapathMode,
  type PendingLimits,
  type PortRange,
  type XdpAttachMode,
} from '@flowlb/balancer';
import type { NewClientLimits } from '@flowlb/flow-table';
import type { HostPort } from './values.js';

export type { DatapathMode, PendingLimits, XdpAttachMode };

/** A validated config with every default filled in. */
export interface FlowlbConfig {
  /** The file it came from, as given. */
  file: string;
  vip: { address: string; port: number };
  /** `interface` followed by `interfaces`, without duplicates. */
  interfaces: string[];
  debug: boolean;
  connTtlSec: number;
  /** Unset: 10 s with the DTLS SNI mapper, `connTtlSec` with a mapper module (see `flowlb run`). */
  unconfirmedTtlSec: number | undefined;
  mode: DatapathMode;
  xdpMode: XdpAttachMode;
  snatAddr: string;
  snatPorts: PortRange;
  reserveSnatPorts: boolean;
  /** Flows at once; the XDP map gets twice as many entries. */
  flowTableSize: number;
  /** Processes that set up new flows (`workers`). */
  workers: number;
  pending: PendingLimits;
  /** `rate_limit`: limits on new clients in the XDP program; undefined when none is set. */
  newClientLimits: NewClientLimits | undefined;
  metricsAddr: HostPort | undefined;
  pinPath: string;
  /**
   * Whether attaching the XDP program sets the sysctls it needs on each interface (and puts them back on detach);
   * false leaves them to the operator.
   */
  sysctls: boolean;
  /** False when pin_path is the default, which `run` may do without when no bpffs is mounted there. */
  pinPathSet: boolean;
}

/** The balancer's own defaults, so that `flowlb run` and a balancer composed in code start out the same. */
export const DEFAULTS = {
  debug: false,
  connTtlSec: DEFAULT_CONN_TTL_SEC,
  mode: 'auto' as DatapathMode,
  xdpMode: 'auto' as XdpAttachMode,
  snatPorts: DEFAULT_SNAT_PORTS,
  reserveSnatPorts: false,
  flowTableSize: DEFAULT_LIMITS.maxFlows,
  workers: 1,
  sysctls: true,
  pending: {
    maxPendingClients: DEFAULT_LIMITS.maxPendingClients,
    maxPendingPerSource: DEFAULT_LIMITS.maxPendingPerSource,
    maxDatagramsPerClient: DEFAULT_LIMITS.maxDatagramsPerClient,
    maxBytesPerClient: DEFAULT_LIMITS.maxBytesPerClient,
    maxTotalBytes: DEFAULT_LIMITS.maxTotalBytes,
    classifyTimeoutMs: DEFAULT_LIMITS.classifyTimeoutMs,
  } satisfies PendingLimits,
} as const;
