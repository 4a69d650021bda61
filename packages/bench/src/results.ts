/**
 * What one `pnpm bench` run records: written as JSON under bench/results/ and rendered into BENCHMARKS.md.
 * Every number that summarises repeated runs is a median; the runs themselves are kept beside it.
 */

export interface Machine {
  cpus: number;
  cpuModel: string;
  kernel: string;
  node: string;
  memoryGiB: number;
  /** `git describe --always --dirty` of the measured tree, when it is a git checkout. */
  commit?: string;
}

/** A median with the values it was taken from. */
export interface Measured {
  median: number;
  runs: number[];
}

/** Scenario 1: BPF_PROG_TEST_RUN cost of one packet. */
export interface KernelCostRow {
  /** e.g. 'flowlb forward hit (redirect)', 'floor: parse + XDP_TX'. */
  name: string;
  program: 'flowlb' | 'floor';
  packets: number;
  nsPerPacket: Measured;
  /** Verdicts counted over all runs of the row, by name (XDP_TX, XDP_REDIRECT, XDP_PASS...). */
  verdicts: Record<string, number>;
  /** flowlb's own counters moved by the row (fwdHit, revHit, miss...); absent for the floor. */
  counters?: Record<string, number>;
  /** Hit rows: whether the next hop came from the program's cache or from bpf_fib_lookup on every packet. */
  nextHop?: 'cached' | 'looked up';
}

/** The name of a kernel-cost hit row's twin with the next-hop cache off. */
export function uncachedRowName(name: string): string {
  return name.replace(/\)$/, ', route looked up)');
}

export interface KernelCostResult {
  rows: KernelCostRow[];
  /** Other flows in the table while measuring. */
  tableFlows: number;
  /** What a naive `repeat` on one hit frame reports, and what it really ran. */
  naive: { repeat: number; nsPerPacket: number; hits: number; misses: number };
  notes: string[];
}

export type SystemName = 'bare-xdp' | 'flowlb-xdp' | 'flowlb-xdp-lookup' | 'nftables' | 'nginx' | 'flowlb-userspace';

export const SYSTEM_LABELS: Record<SystemName, string> = {
  'bare-xdp': 'bare XDP forwarder',
  'flowlb-xdp': 'flowlb (XDP)',
  'flowlb-xdp-lookup': 'flowlb (XDP, a route lookup per packet)',
  nftables: 'nftables DNAT+SNAT',
  nginx: 'nginx stream (UDP)',
  'flowlb-userspace': 'flowlb (userspace)',
};

/** Scenario 2: one cell of the forwarding-rate grid. */
export interface ForwardingCell {
  system: SystemName;
  /** UDP payload bytes. */
  payload: number;
  flows: number;
  /** Datagrams per second that reached the backend. */
  pps: Measured;
  /** Datagrams per second the generator offered. */
  offeredPps: Measured;
  /** Bits per second of UDP payload delivered (median run). */
  payloadBps: number;
  /** Set when the cell could not be measured (the reason); pps is then zero. */
  error?: string;
}

export interface ForwardingResult {
  cells: ForwardingCell[];
  /** Seconds each measured run lasts. */
  runSeconds: number;
  notes: string[];
}

/** Scenario 3: UDP ping-pong round trips. */
export interface LatencyRow {
  /** 'direct' is the routed path through the balancer namespace with nothing on it. */
  system: SystemName | 'direct';
  p50Us: Measured;
  p99Us: Measured;
  /** Median minus the direct path's median, per percentile. */
  addedP50Us: number;
  addedP99Us: number;
  samples: number;
  error?: string;
}

export interface LatencyResult {
  rows: LatencyRow[];
  payload: number;
  notes: string[];
}

/** ClientHellos a mapper parses and decides on, per second of one core. */
export interface HelloParseRow {
  protocol: 'dtls' | 'quic';
  /** What the client sent, e.g. 'OpenSSL, ossl_foo' or 'X25519MLKEM768 key share'. */
  hello: string;
  datagrams: number;
  /** UDP payload bytes of those datagrams. */
  bytes: number;
  /** One figure per round. */
  hellosPerSec: Measured;
  /** What the mapper decided, e.g. 'forward 10.0.0.1:4433'. */
  decision: string;
  error?: string;
}

export interface HelloParseResult {
  rows: HelloParseRow[];
  notes: string[];
}

/** The mappers of the new-flows rows; `quic-sni` is a QUIC SNI mapper behind byProtocol, beside a DTLS one. */
export type NewFlowsMapper = 'trivial' | 'dtls-sni' | 'quic-sni';

/** Scenario 4: new flows through the slow path. */
export interface NewFlowsRow {
  mapper: NewFlowsMapper;
  datapath: 'xdp' | 'userspace';
  flows: number;
  /** Balancer processes sharing the VIP; absent in results written before workers existed (one). */
  workers?: number;
  flowsPerSec: Measured;
  /** From the balancer receiving the first datagram to the flow being installed. */
  installP50Ms: Measured;
  installP99Ms: Measured;
  refused: number;
  /** New clients the generator sent per run (median). Absent in results written before it was recorded. */
  offered?: number;
  /** Datagrams that reached the balancer's VIP socket per run (median). */
  reachedVip?: number;
  /** Datagrams the kernel dropped at the full VIP socket per run (median); null where it cannot be read. */
  socketDrops?: number | null;
  /** Flows created per second of the balancer process's CPU time: what carries across machines. */
  flowsPerCpuSec?: Measured;
  /** The stage that held the rate down, from {@link limitingStage}. */
  limitedBy?: string;
  error?: string;
}

export interface NewFlowsResult {
  rows: NewFlowsRow[];
  notes: string[];
}

/** Scenario 5: scale. */
export interface ScaleRow {
  flows: number;
  /** Seconds to install them. */
  installSeconds: Measured;
  /** Control-plane memory with the flows installed. */
  heapUsedMiB: number;
  rssMiB: number;
  /** One cleaner sweep over the whole table. */
  sweepWallMs: Measured;
  sweepCpuMs: Measured;
  /** Longest the event loop was held during a sweep. */
  sweepMaxStallMs: Measured;
  /** Forwarding rate with this many flows in the table (64 B payload), when measured. */
  forwardingPps?: Measured;
  error?: string;
}

export interface ScaleResult {
  rows: ScaleRow[];
  notes: string[];
}

/** Scenario 6: real DTLS clients through a flood of forged first datagrams. One row per step of forged rate. */
export interface FloodRow {
  /** Forged first datagrams per second asked of the generator: whole ClientHellos, and first fragments of one. */
  askedCompletePerSec: number;
  askedPartialPerSec: number;
  /** What the generator sent per second over the flood; below the asked rate when it could not keep up. */
  offeredCompletePerSec: number;
  offeredPartialPerSec: number;
  /** The mappings asked the balancer to answer hellos without its cookie itself (`helloVerify: true`). */
  helloVerify: boolean;
  /** Seconds the flood lasted. */
  floodSeconds: number;
  /** Real `openssl s_client -dtls1_2` handshakes tried during the flood, and those that completed in time. */
  attempts: number;
  successes: number;
  /** successes / attempts, 0 to 1. */
  successRate: number;
  /** How long a real client may take before it counts as failed. */
  clientTimeoutMs: number;
  /** Of the completed handshakes: median and 99th percentile time, and how many needed a retransmission (> 0.9 s). */
  handshakeP50Ms: number;
  handshakeP99Ms: number;
  retransmitted: number;
  /**
   * Failed handshakes by how far they got in the balancer's flow table: `flow`, none of their hellos got a flow
   * (lost at the VIP socket, pushed out of the pending table, refused); `confirmation`, a flow was installed but the
   * client never spoke on it again (the backend's answer did not reach it). The rest got further.
   */
  failedWithout: { flow: number; confirmation: number };
  /** Largest values seen on the balancer's /metrics during the flood. */
  snatPortsMax: number;
  pendingClientsMax: number;
  flowsActiveMax: number;
  rssMaxMiB: number;
  heapUsedMaxMiB: number;
  /** Before the flood, for comparison. */
  rssBeforeMiB: number;
  heapUsedBeforeMiB: number;
  /** Share of the flood the balancer's process was on a CPU, 0 to 1. */
  balancerBusy: number;
  /** Share of the flood the CPU it is pinned to was busy with anything (its process, and the kernel's work there). */
  balancerCpuBusy: number;
  /** Counters moved during the flood. */
  vipSocketIn: number;
  socketDrops: number | null;
  /** Socket drops in each second of the flood, from the once-a-second readings: whether they came steadily or in bursts. */
  socketDropsBySecond: number[];
  /** The same two from when the real clients started to the end: what they met, past the flood's first seconds. */
  whileMeasured: { vipSocketIn: number; socketDrops: number | null };
  /** The balancer's drops by reason (non-zero ones). */
  drops: Record<string, number>;
  /** New clients' datagrams the XDP program's rate limits dropped. */
  rateLimited: number;
  /** Clients the mapper answered itself (HelloVerifyRequests), and the datagrams sent for them. */
  mapperReplies: number;
  repliesSent: number;
  /** ClientHellos the XDP program answered with its own HelloVerifyRequest (its `helloVerify` counter). */
  kernelReplies: number;
  flowsCreated: number;
  flowsRefused: number;
  unconfirmedExpired: number;
  evictedUnderPressure: number;
  /** Forged ClientHellos that reached the backend, i.e. got a flow and were sent on. */
  forgedAtBackend: number;
  /** Why real handshakes failed, as far as the counters tell, from {@link floodLimits}. */
  limitedBy: string;
  error?: string;
}

export interface FloodResult {
  rows: FloodRow[];
  notes: string[];
}

export interface TargetCheck {
  target: string;
  measured: string;
  /** null when the scenario behind it did not run. */
  met: boolean | null;
  /** Why it falls short and what would close it, when it does. */
  note?: string;
}

export interface BenchRun {
  startedAt: string;
  finishedAt: string;
  machine: Machine;
  /** How it was run: repetitions per scenario, whether a quick run. */
  settings: { runs: number; quick: boolean; only?: string[]; systems?: string[] };
  kernelCost?: KernelCostResult;
  forwarding?: ForwardingResult;
  latency?: LatencyResult;
  helloParse?: HelloParseResult;
  newFlows?: NewFlowsResult;
  scale?: ScaleResult;
  flood?: FloodResult;
  targets: TargetCheck[];
  /** Scenarios that failed as a whole. */
  errors: { scenario: string; message: string }[];
}
