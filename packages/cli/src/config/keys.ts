import { formatRange } from '@flowlb/balancer';
import { NEW_CLIENT_RATE_MAX } from '@flowlb/flow-table';
import { DEFAULTS } from './config.js';

/** Every config key, for messages, `--help` and the README. Keys marked `seed` come from the original's config.yaml. */
export interface KeyDoc {
  key: string;
  expected: string;
  default: string;
  doc: string;
  seed?: boolean;
}

export const RATE_LIMIT_KEYS = ['per_source', 'per_24'] as const;

export const PENDING_KEYS = ['max_clients', 'max_per_source', 'max_datagrams', 'max_bytes_per_client', 'max_total_bytes', 'timeout_ms'] as const;

export const MAX_FLOW_TABLE_SIZE = 1 << 26;

/** Workers on one VIP at most: each is a process with its slice of the SNAT ports. */
export const MAX_WORKERS = 64;

export const KEY_DOCS: readonly KeyDoc[] = [
  { key: 'port', seed: true, expected: 'an integer from 1 to 65535', default: 'required', doc: 'UDP port of the VIP' },
  {
    key: 'addr',
    seed: true,
    expected: 'an IPv4 address of this host like "192.0.2.1"',
    default: 'required',
    doc: 'IPv4 address of the VIP; must be configured on this host',
  },
  {
    key: 'interface',
    seed: true,
    expected: 'a network interface name like "eth0"',
    default: 'none',
    doc: 'interface the XDP program is attached to (the one clients reach the VIP on)',
  },
  { key: 'debug', seed: true, expected: 'true or false', default: 'false', doc: 'log every decision (each new client, flow and drop)' },
  {
    key: 'conn_ttl_sec',
    seed: true,
    expected: 'a number of seconds greater than 0',
    default: String(DEFAULTS.connTtlSec),
    doc: 'a flow is removed once both of its directions have been idle this long',
  },
  {
    key: 'unconfirmed_ttl_sec',
    expected: 'a number of seconds greater than 0',
    default: '10 with --mappings, else conn_ttl_sec',
    doc: "a flow whose client has not spoken again since its first datagram goes this long after the install, however much the backend answers (forged first datagrams hold SNAT ports no longer)",
  },
  {
    key: 'mode',
    expected: '"auto", "xdp" or "userspace"',
    default: 'auto',
    doc: 'datapath: xdp (kernel fast path), userspace (sockets only), auto (xdp when the machine can and an interface is set)',
  },
  {
    key: 'xdp_mode',
    expected: '"native", "generic" or "auto"',
    default: 'auto',
    doc: 'how the XDP program is attached: in the driver, in the generic skb path, or as the kernel prefers',
  },
  {
    key: 'interfaces',
    expected: 'a list of network interface names like ["eth1"]',
    default: '[]',
    doc: 'more interfaces to attach to, e.g. the one towards the backends when it differs from `interface`',
  },
  {
    key: 'snat_addr',
    expected: 'an IPv4 address of this host like "192.0.2.1"',
    default: 'addr',
    doc: 'source address towards the backends; their replies must come back to this host',
  },
  {
    key: 'snat_port_min',
    expected: 'an integer from 1 to 65535',
    default: String(DEFAULTS.snatPorts.min),
    doc: 'lowest SNAT source port (one port per flow and backend)',
  },
  { key: 'snat_port_max', expected: 'an integer from 1 to 65535', default: String(DEFAULTS.snatPorts.max), doc: 'highest SNAT source port' },
  {
    key: 'snat_ports',
    expected: 'a port range like "10000-29999"',
    default: formatRange(DEFAULTS.snatPorts),
    doc: 'the SNAT port range in one key; give it or snat_port_min/snat_port_max, not both',
  },
  {
    key: 'reserve_snat_ports',
    expected: 'true or false',
    default: 'false',
    doc: "when the SNAT range overlaps the kernel's ephemeral range, add it to net.ipv4.ip_local_reserved_ports instead of refusing to start",
  },
  {
    key: 'flow_table_size',
    expected: `an integer from 1 to ${MAX_FLOW_TABLE_SIZE}`,
    default: String(DEFAULTS.flowTableSize),
    doc: 'flows installed at once; the XDP map holds two entries per flow',
  },
  {
    key: 'workers',
    expected: `an integer from 1 to ${MAX_WORKERS}`,
    default: '1',
    doc: 'processes that set up new flows, for more than one core: they share the VIP and the flow map, each with its slice of the SNAT ports; a worker that dies is started again and takes back its flows (XDP datapath only)',
  },
  {
    key: 'pending',
    expected: `a mapping with ${PENDING_KEYS.join(', ')}`,
    default: 'see below',
    doc: 'bounds on what waits for the mapper',
  },
  { key: 'pending.max_clients', expected: 'an integer greater than 0', default: String(DEFAULTS.pending.maxPendingClients), doc: 'clients waiting for a decision at once' },
  {
    key: 'pending.max_per_source',
    expected: 'an integer greater than 0',
    default: String(DEFAULTS.pending.maxPendingPerSource),
    doc: 'clients of one IP address waiting at once; when the table is full the client waiting longest makes room',
  },
  { key: 'pending.max_datagrams', expected: 'an integer greater than 0', default: String(DEFAULTS.pending.maxDatagramsPerClient), doc: 'datagrams buffered per waiting client' },
  { key: 'pending.max_bytes_per_client', expected: 'an integer greater than 0', default: String(DEFAULTS.pending.maxBytesPerClient), doc: 'bytes buffered per waiting client' },
  { key: 'pending.max_total_bytes', expected: 'an integer greater than 0', default: String(DEFAULTS.pending.maxTotalBytes), doc: 'bytes buffered over all waiting clients' },
  {
    key: 'pending.timeout_ms',
    expected: 'an integer greater than 0',
    default: String(DEFAULTS.pending.classifyTimeoutMs),
    doc: "the mapper must decide within this long of a client's first datagram",
  },
  {
    key: 'rate_limit',
    expected: `a mapping with ${RATE_LIMIT_KEYS.join(', ')}`,
    default: 'none',
    doc: "limits on new clients' datagrams to the VIP, enforced in the XDP program (the excess is dropped and counted as rateLimited)",
  },
  {
    key: 'rate_limit.per_source',
    expected: `an integer from 1 to ${NEW_CLIENT_RATE_MAX}`,
    default: 'none',
    doc: 'new clients a second from one address, with room for twice that at once',
  },
  {
    key: 'rate_limit.per_24',
    expected: `an integer from 1 to ${NEW_CLIENT_RATE_MAX}`,
    default: 'none',
    doc: 'new clients a second from one /24, with room for twice that at once',
  },
  {
    key: 'metrics_addr',
    expected: 'host:port like "127.0.0.1:9100"; ":9100" is loopback, "0.0.0.0:9100" every address (port 0 picks a free one)',
    default: 'none (no metrics server)',
    doc: 'where Prometheus metrics (/metrics), health (/healthz), counters (/stats) and flows (/flows) are served',
  },
  {
    key: 'sysctls',
    expected: 'true or false',
    default: 'true',
    doc:
      'set on each interface the program is attached to what the kernel needs to forward the packets of known flows that the program hands to it while their next hop is unresolved: net.ipv4.conf.<if>.forwarding=1, accept_local=1, and rp_filter=2 (loose) where reverse path filtering is strict; only what differs is written, and put back when the program is detached (unless changed since); false leaves them alone (`flowlb check` and the run log say what is missing)',
  },
  {
    key: 'pin_path',
    expected: 'an absolute path on a bpffs mount like "/sys/fs/bpf/flowlb/lb1"',
    default: '/sys/fs/bpf/flowlb/<addr with _ for .>-<port>, e.g. 192_0_2_1-4433',
    doc: 'bpffs folder of the instance: the flows, stats and per-target maps (read by `flowlb flows` and `flowlb stats`), the program and its links, so that a restart takes over without losing flows; where no bpffs holds it, `flowlb run` mounts one',
  },
];

const BY_KEY = new Map(KEY_DOCS.map((d) => [d.key, d]));

export function expectedFor(key: string): string | undefined {
  if (/^interfaces\[\d+\]$/.test(key)) return 'a network interface name like "eth1"';
  return BY_KEY.get(key)?.expected;
}

export const TOP_LEVEL_KEYS: readonly string[] = KEY_DOCS.filter((d) => !d.key.includes('.')).map((d) => d.key);
