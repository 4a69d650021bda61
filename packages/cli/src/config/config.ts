import type { HostPort, PortRange } from './values.js';

export type DatapathMode = 'auto' | 'xdp' | 'userspace';
export type XdpAttachMode = 'native' | 'generic' | 'auto';

export interface PendingLimits {
  maxClients: number;
  maxDatagrams: number;
  maxBytesPerClient: number;
  maxTotalBytes: number;
  timeoutMs: number;
}

/** A validated config with every default filled in. */
export interface FlowlbConfig {
  /** The file it came from, as given. */
  file: string;
  vip: { address: string; port: number };
  /** `interface` followed by `interfaces`, without duplicates. */
  interfaces: string[];
  debug: boolean;
  connTtlSec: number;
  mode: DatapathMode;
  xdpMode: XdpAttachMode;
  snatAddr: string;
  snatPorts: PortRange;
  reserveSnatPorts: boolean;
  /** Flows at once; the XDP map gets twice as many entries. */
  flowTableSize: number;
  pending: PendingLimits;
  metricsAddr: HostPort | undefined;
  pinPath: string;
  /** False when pin_path is the default, which `run` may do without when no bpffs is mounted there. */
  pinPathSet: boolean;
}

export const DEFAULTS = {
  debug: false,
  connTtlSec: 60,
  mode: 'auto' as DatapathMode,
  xdpMode: 'auto' as XdpAttachMode,
  snatPorts: { min: 10000, max: 29999 },
  reserveSnatPorts: false,
  flowTableSize: 131_072,
  pending: { maxClients: 10_000, maxDatagrams: 32, maxBytesPerClient: 64 * 1024, maxTotalBytes: 32 * 1024 * 1024, timeoutMs: 3000 },
} as const;
