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
}

export interface KernelCostResult {
  rows: KernelCostRow[];
  /** Other flows in the table while measuring. */
  tableFlows: number;
  /** What a naive `repeat` on one hit frame reports, and what it really ran. */
  naive: { repeat: number; nsPerPacket: number; hits: number; misses: number };
  notes: string[];
}

export type SystemName = 'bare-xdp' | 'flowlb-xdp' | 'nftables' | 'nginx' | 'flowlb-userspace';

export const SYSTEM_LABELS: Record<SystemName, string> = {
  'bare-xdp': 'bare XDP forwarder',
  'flowlb-xdp': 'flowlb (XDP)',
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

/** Scenario 4: new flows through the slow path. */
export interface NewFlowsRow {
  mapper: 'trivial' | 'dtls-sni';
  datapath: 'xdp' | 'userspace';
  flows: number;
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
  newFlows?: NewFlowsResult;
  scale?: ScaleResult;
  targets: TargetCheck[];
  /** Scenarios that failed as a whole. */
  errors: { scenario: string; message: string }[];
}
