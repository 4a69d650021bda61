/**
 * Control-plane benchmarks that run as their own process inside a network namespace (`ip netns exec`):
 *
 *   node control-plane-child.js '<ControlPlaneJob JSON>'
 *
 * - `newflows-lb`: a LoadBalancer on the balancer namespace; reports how fast flows were created and, per flow,
 *   the time from its first datagram reaching the slow path to its entries being written (`setupMs` of
 *   `flow-created`).
 * - `newflows-sender`: new clients from the client namespace, each sending one first datagram (a captured DTLS
 *   ClientHello, a QUIC client Initial or a small payload), made by the bench's gen program in live-frames mode at a
 *   paced rate.
 * - `flood-sender`: forged first datagrams from scattered sources, several kinds each at its own rate, for a time
 *   (the flood scenario).
 * - `relay`: real clients' datagrams to the VIP, passed on to the balancer as live frames (the flood scenario).
 * - `scale`: a flow table of many flows under a LoadBalancer: install time, memory, cleaner sweeps.
 *
 * Each prints one JSON line `{"ready":true}` when it is set up (not `scale`), then one JSON line with its report.
 */
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { LoadBalancer, type BalancerEvent } from '@flowlb/balancer';
import { encodeKey, encodeValue, forwardEntry, reverseEntry, type FlowPair } from '@flowlb/flow-table';
import { byProtocol, hashMapper, type FlowMapper, type UdpEndpoint } from '@flowlb/mapper-api';
import { DtlsSniMapper, mappingsFromObject } from '@flowlb/mapper-dtls-sni';
import { QuicSniMapper, staticRoutes } from '@flowlb/mapper-quic-sni';
import { buildUdpFrame } from '@flowlb/testkit';
import { ifIndex, XdpForwarder, type Link } from '@flowlb/xdp-core';
import { BenchPrograms, LIVE_BATCH_MAX, LIVE_RUN_MAX, u32, type ClientSpread } from './bench-object.js';
import { pacedLiveRuns } from './live-pacer.js';
import type { NewFlowsMapper } from './results.js';
import { percentile } from './stats.js';

export interface NewFlowsLbJob {
  role: 'newflows-lb';
  datapath: 'xdp' | 'userspace';
  mapper: NewFlowsMapper;
  vip: UdpEndpoint;
  snatAddress: string;
  backends: UdpEndpoint[];
  /** SNI → backend index, for the DTLS and QUIC mappers. */
  sni: { fqdn: string; backend: number }[];
  /** XDP: the interfaces to attach to. */
  interfaces: string[];
  /** Flows the sender will try to create. */
  flows: number;
  /** Give up waiting for more flows after this long without one (after the first), and after maxMs in all. */
  quietMs: number;
  maxMs: number;
  /** One of several balancer processes on the VIP; the first attaches the program, all share the maps in pinDir. */
  worker?: { index: number; count: number };
  pinDir?: string;
}

export interface NewFlowsLbReport {
  created: number;
  refused: number;
  /** Clients dropped without a flow, by reason. */
  drops: Record<string, number>;
  /** Datagrams the kernel dropped at the VIP socket (receive buffer full). */
  socketDrops: number | null;
  slowPathIn: number;
  errors: number;
  /** From the first flow's first datagram to the last flow's install. */
  spanMs: number;
  /** The same two moments as epoch milliseconds, to join the spans of several workers. */
  firstAtEpochMs: number;
  lastAtEpochMs: number;
  flowsPerSec: number;
  setupP50Ms: number;
  setupP99Ms: number;
  setupMaxMs: number;
  /** CPU time of this process during the span (user + system). */
  cpuMs: number;
}

export interface NewFlowsSenderJob {
  role: 'newflows-sender';
  ifname: string;
  srcMac: string;
  dstMac: string;
  vip: UdpEndpoint;
  clients: ClientSpread;
  /** First datagrams, hex; client i gets one of them (they rotate every chunk of frames). */
  payloads: string[];
  pps: number;
}

export interface NewFlowsSenderReport {
  sent: number;
  ms: number;
}

export interface FloodSenderJob {
  role: 'flood-sender';
  ifname: string;
  srcMac: string;
  dstMac: string;
  vip: UdpEndpoint;
  /** Forged sources; every kind takes the next clients of the one walk. */
  clients: ClientSpread;
  /** First datagrams, hex, each at its own rate. */
  kinds: { payload: string; pps: number }[];
  /** How long the flood lasts at most; closing stdin ends it sooner. */
  seconds: number;
  /** An idle device of the namespace to hold gen in the XDP dispatcher with (BenchPrograms.holdInDispatcher). */
  holdIfname: string;
  /** How often a run of each kind goes out. */
  tickMs: number;
}

export interface FloodSenderReport {
  /** Frames sent per kind. */
  sent: number[];
  ms: number;
}

export interface ScaleJob {
  role: 'scale';
  flows: number;
  runs: number;
  /** Entries read per cleaner step; absent: the balancer's default. */
  vip: UdpEndpoint;
}

export interface ScaleReport {
  flows: number;
  installMs: number[];
  tableEntries: number;
  heapUsedMiB: number;
  rssMiB: number;
  baseHeapUsedMiB: number;
  baseRssMiB: number;
  sweeps: { wallMs: number; cpuMs: number; maxStallMs: number; scanned: number; batches: number; expired: number }[];
}

export interface RelayJob {
  role: 'relay';
  /** The VIP, also an address of this namespace: real clients behind it send here. */
  vip: UdpEndpoint;
  /** The device towards the balancer, and the MACs of a frame out of it. */
  ifname: string;
  srcMac: string;
  dstMac: string;
}

export type ControlPlaneJob = NewFlowsLbJob | NewFlowsSenderJob | FloodSenderJob | RelayJob | ScaleJob;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const MiB = 1024 * 1024;

function cpuMsSince(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1000;
}

// --- newflows-lb ------------------------------------------------------------------------------------------------

function mapperFor(job: NewFlowsLbJob): FlowMapper {
  if (job.mapper === 'trivial') return hashMapper(job.backends);
  const mappings = mappingsFromObject({
    sniMappings: job.sni.map((s) => ({
      fqdn: s.fqdn,
      ipv4: job.backends[s.backend]!.address,
      port: job.backends[s.backend]!.port,
    })),
    default: 'drop',
  });
  const dtls = new DtlsSniMapper({ mappings });
  if (job.mapper === 'dtls-sni') return dtls;
  // As flowlb run serves both protocols on one VIP: the first datagram says which mapper a client goes to.
  const routes = staticRoutes(Object.fromEntries(job.sni.map((s) => [s.fqdn, job.backends[s.backend]!])));
  return byProtocol({ dtls, quic: new QuicSniMapper({ routes }) });
}

async function newFlowsLb(job: NewFlowsLbJob): Promise<NewFlowsLbReport> {
  const setup = new Float64Array(job.flows);
  let created = 0;
  let errors = 0;
  let firstAt = Number.POSITIVE_INFINITY;
  let lastAt = 0;
  let cpuStart: NodeJS.CpuUsage | undefined;
  const onEvent = (e: BalancerEvent): void => {
    if (e.type === 'flow-created') {
      const now = performance.now();
      if (created === 0) cpuStart = process.cpuUsage();
      if (created < setup.length) setup[created] = e.setupMs;
      created++;
      firstAt = Math.min(firstAt, now - e.setupMs);
      lastAt = now;
    } else if (e.type === 'error') {
      errors++;
    }
  };
  const lb = new LoadBalancer({
    vip: job.vip,
    snatAddress: job.snatAddress,
    // Above the well-known ports and through the ephemeral range, reserved in this namespace: room for every flow.
    snatPorts: { min: 10000, max: 60999 },
    reserveSnatPorts: true,
    mapper: mapperFor(job),
    datapath: job.datapath,
    interfaces: job.datapath === 'xdp' && (job.worker?.index ?? 0) === 0 ? job.interfaces : [],
    xdp: { mode: 'native', ...(job.pinDir ? { pinDir: job.pinDir } : {}) },
    ...(job.worker ? { worker: job.worker } : {}),
    connTtlSec: 3600,
    // The most the kernel grants without a raised net.core.rmem_max.
    receiveBufferBytes: 4 * MiB,
    limits: { maxFlows: job.flows + 1000, maxPendingClients: Math.max(10_000, job.flows) },
    onEvent,
  });
  await lb.start();
  try {
    process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
    const started = performance.now();
    let lastCount = -1;
    let lastChange = started;
    for (;;) {
      await sleep(50);
      const s = lb.stats();
      const settled = s.flows.created + s.flows.refused;
      const now = performance.now();
      if (settled !== lastCount) {
        lastCount = settled;
        lastChange = now;
      }
      if (settled >= job.flows && s.pending.clients === 0) break;
      if (created > 0 && now - lastChange > job.quietMs) break;
      if (now - started > job.maxMs) break;
    }
    const cpuMs = cpuStart ? cpuMsSince(cpuStart) : 0;
    const s = lb.stats();
    const samples = Array.from(setup.subarray(0, Math.min(created, setup.length)));
    const drops = Object.fromEntries(Object.entries(s.drops).filter(([, n]) => n > 0));
    const spanMs = created > 0 ? lastAt - firstAt : 0;
    return {
      created,
      refused: s.flows.refused,
      drops,
      socketDrops: s.datagrams.socketDrops,
      slowPathIn: s.datagrams.slowPathIn,
      errors,
      spanMs,
      firstAtEpochMs: performance.timeOrigin + firstAt,
      lastAtEpochMs: performance.timeOrigin + lastAt,
      flowsPerSec: spanMs > 0 ? created / (spanMs / 1000) : 0,
      setupP50Ms: percentile(samples, 0.5),
      setupP99Ms: percentile(samples, 0.99),
      setupMaxMs: percentile(samples, 1),
      cpuMs,
    };
  } finally {
    await lb.stop();
  }
}

// --- newflows-sender --------------------------------------------------------------------------------------------

/** gen's frame and gen_cfg value for one payload, to switch between payloads from one live run to the next. */
function genTemplate(
  progs: BenchPrograms,
  job: Pick<NewFlowsSenderJob, 'srcMac' | 'dstMac' | 'vip' | 'clients'>,
  payload: Buffer,
): { frame: Buffer; cfg: Buffer } {
  const frame = progs.configureGenerator({ srcMac: job.srcMac, dstMac: job.dstMac, dst: job.vip, payload }, job.clients);
  const cfg = Buffer.from(progs.map('gen_cfg').lookup(u32([0]))!);
  return { frame, cfg };
}

/** Runs gen live on `ifname` with each run's template: its gen_cfg is written first, so payloads can alternate. */
function genRunner(progs: BenchPrograms, ifname: string): (t: { frame: Buffer; cfg: Buffer }, n: number) => void {
  const cfgMap = progs.map('gen_cfg');
  const gen = progs.program('gen');
  const ingressIfindex = ifIndex(ifname);
  const zero = u32([0]);
  return (t, n) => {
    cfgMap.update(zero, t.cfg);
    gen.runLive({ data: t.frame, ingressIfindex, repeat: n, batchSize: Math.min(n, LIVE_BATCH_MAX) });
  };
}

// The parent's deadline follows this output, so a slow machine's longer run is not taken for a hang.
const printProgress = (sent: number | readonly number[]): void => void process.stdout.write(`${JSON.stringify({ progress: { sent } })}\n`);

async function newFlowsSender(job: NewFlowsSenderJob): Promise<NewFlowsSenderReport> {
  const progs = await BenchPrograms.load();
  try {
    const templates = job.payloads.map((hex) => genTemplate(progs, job, Buffer.from(hex, 'hex')));
    const run = genRunner(progs, job.ifname);
    process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
    const total = job.clients.flows;
    const r = await pacedLiveRuns({
      streams: [{ pps: job.pps, total, templates }],
      run,
      maxRun: LIVE_RUN_MAX,
      deadline: performance.now() + (total / job.pps) * 3000 + 5000,
      onProgress: (sent) => printProgress(sent[0] ?? 0),
    });
    return { sent: r.sent[0] ?? 0, ms: r.ms };
  } finally {
    progs.close();
  }
}

// --- flood-sender -------------------------------------------------------------------------------------------------

async function floodSender(job: FloodSenderJob): Promise<FloodSenderReport> {
  const progs = await BenchPrograms.load();
  let hold: Link | undefined;
  let stop = false;
  // The parent ends a flood early by closing this process's stdin once its real clients are done, and the report
  // still gets written. A signal would do the same but interrupts the live run in progress (EINTR).
  process.stdin.on('end', () => {
    stop = true;
  });
  process.stdin.resume();
  try {
    hold = progs.holdInDispatcher('gen', job.holdIfname);
    const run = genRunner(progs, job.ifname);
    const streams = job.kinds.map((k) => ({
      pps: k.pps,
      total: Math.round(k.pps * job.seconds),
      templates: [genTemplate(progs, job, Buffer.from(k.payload, 'hex'))],
    }));
    process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
    const r = await pacedLiveRuns({
      streams,
      run,
      maxRun: LIVE_RUN_MAX,
      deadline: performance.now() + job.seconds * 1000 + 2000,
      stopped: () => stop,
      onProgress: printProgress,
      tickMs: job.tickMs,
    });
    return { sent: r.sent, ms: r.ms };
  } finally {
    hold?.close();
    progs.close();
  }
}

// --- relay --------------------------------------------------------------------------------------------------------

/**
 * Passes real clients' datagrams on to the balancer as live frames, their source address and port kept, so that they
 * arrive the way the forged ones do. Runs until its stdin closes; the balancer's answers go back through the kernel.
 */
async function relay(job: RelayJob): Promise<{ relayed: number; failed: number }> {
  const progs = await BenchPrograms.load();
  const socket = dgram.createSocket('udp4');
  let relayed = 0;
  let failed = 0;
  try {
    const tx = progs.program('floor_tx');
    const ingressIfindex = ifIndex(job.ifname);
    socket.on('message', (msg, from) => {
      const data = buildUdpFrame({
        eth: { src: job.srcMac, dst: job.dstMac },
        ip: { src: from.address, dst: job.vip.address, ttl: 64 },
        udp: { srcPort: from.port, dstPort: job.vip.port },
        payload: msg,
      });
      try {
        tx.runLive({ data, ingressIfindex, repeat: 1, batchSize: 1 });
        relayed++;
      } catch {
        failed++;
      }
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(job.vip.port, job.vip.address, () => resolve());
    });
    process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
    await new Promise<void>((resolve) => {
      process.stdin.on('end', resolve);
      process.stdin.resume();
    });
    return { relayed, failed };
  } finally {
    socket.close();
    progs.close();
  }
}

// --- scale --------------------------------------------------------------------------------------------------------

/** SNAT ports per target: as many flows go to one target as its pool holds. */
const SCALE_SNAT = { min: 10000, max: 60999 };
const FLOWS_PER_TARGET = 50_000;
/** Flows encoded and written per updateBatch call. */
const INSTALL_BATCH = 32_768;

function scalePair(i: number, vip: UdpEndpoint): FlowPair {
  const t = Math.floor(i / FLOWS_PER_TARGET);
  return {
    client: { address: `10.${16 + (i >>> 16)}.${(i >>> 8) & 255}.${i & 255}`, port: 40000 + (i % 7) },
    vip,
    snat: { address: vip.address, port: SCALE_SNAT.min + (i % FLOWS_PER_TARGET) },
    target: { address: `10.200.${t >>> 8}.${t & 255}`, port: 7000 },
  };
}

/** Writes every flow's two entries through the map's batch update; returns milliseconds taken. */
function installBatched(forwarder: XdpForwarder, flows: number, vip: UdpEndpoint): number {
  const map = forwarder.flows;
  const t0 = performance.now();
  const now = process.hrtime.bigint();
  for (let start = 0; start < flows; start += INSTALL_BATCH) {
    const end = Math.min(flows, start + INSTALL_BATCH);
    // Reverse entries first for the whole batch, as installPair orders them per flow.
    for (const which of [reverseEntry, forwardEntry]) {
      const keys: Buffer[] = [];
      const values: Buffer[] = [];
      for (let i = start; i < end; i++) {
        const [key, value] = which(scalePair(i, vip), now);
        keys.push(encodeKey(key));
        values.push(encodeValue(value));
      }
      const written = map.updateBatch(keys, values);
      if (written !== keys.length) throw new Error(`updateBatch wrote ${written} of ${keys.length} entries`);
    }
  }
  return performance.now() - t0;
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

async function scale(job: ScaleJob): Promise<ScaleReport> {
  const targets = Array.from({ length: Math.ceil(job.flows / FLOWS_PER_TARGET) }, (_, t) => ({
    address: `10.200.${t >>> 8}.${t & 255}`,
    port: 7000,
  }));
  const flowsMaxEntries = 2 * job.flows + 1024;
  gc();
  const base = process.memoryUsage();
  const fwd = await XdpForwarder.load({ flowsMaxEntries });
  const lb = new LoadBalancer({
    vip: job.vip,
    snatPorts: SCALE_SNAT,
    reserveSnatPorts: true,
    mapper: hashMapper(targets),
    xdp: { forwarder: fwd },
    connTtlSec: 3600,
    // Sweeps are run by hand below, never by the schedule.
    sweepIntervalMs: 3_600_000,
    limits: { maxFlows: job.flows + 1000 },
  });
  try {
    // Started on the empty table: flows already in the table at start are adopted one by one, which is a restart's
    // cost and not what is measured here.
    await lb.start();
    const installMs: number[] = [];
    for (let run = 0; run < job.runs; run++) {
      const last = run === job.runs - 1;
      const into = last ? fwd : await XdpForwarder.load({ flowsMaxEntries });
      try {
        installMs.push(installBatched(into, job.flows, job.vip));
      } finally {
        if (!last) into.close();
      }
    }
    gc();
    await sleep(100);
    gc();
    const mem = process.memoryUsage();
    const sweeps: ScaleReport['sweeps'] = [];
    for (let run = 0; run < job.runs; run++) {
      let maxGap = 0;
      let last = performance.now();
      const ticker = setInterval(() => {
        const now = performance.now();
        maxGap = Math.max(maxGap, now - last);
        last = now;
      }, 1);
      await sleep(20);
      maxGap = 0;
      last = performance.now();
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const stats = await lb.sweep();
      const wallMs = performance.now() - t0;
      const cpuMs = cpuMsSince(cpu0);
      // The gap still open when the sweep ends counts too.
      maxGap = Math.max(maxGap, performance.now() - last);
      clearInterval(ticker);
      sweeps.push({
        wallMs,
        cpuMs,
        maxStallMs: Math.max(0, maxGap - 1),
        scanned: stats.scanned,
        batches: stats.batches,
        expired: stats.expired,
      });
      await sleep(50);
    }
    return {
      flows: job.flows,
      installMs,
      tableEntries: 2 * job.flows,
      heapUsedMiB: mem.heapUsed / MiB,
      rssMiB: mem.rss / MiB,
      baseHeapUsedMiB: base.heapUsed / MiB,
      baseRssMiB: base.rss / MiB,
      sweeps,
    };
  } finally {
    await lb.stop();
    fwd.close();
  }
}

// --- main ---------------------------------------------------------------------------------------------------------

async function main(job: ControlPlaneJob): Promise<unknown> {
  switch (job.role) {
    case 'newflows-lb':
      return newFlowsLb(job);
    case 'newflows-sender':
      return newFlowsSender(job);
    case 'flood-sender':
      return floodSender(job);
    case 'relay':
      return relay(job);
    case 'scale':
      return scale(job);
    default:
      throw new Error(`unknown role ${(job as { role?: unknown }).role}`);
  }
}

const arg = process.argv[2];
if (!arg) {
  process.stderr.write('usage: control-plane-child.js <job JSON>\n');
  process.exit(64);
}
main(JSON.parse(arg) as ControlPlaneJob).then(
  (report) => {
    process.stdout.write(`${JSON.stringify({ report })}\n`);
    process.exit(0);
  },
  (err: unknown) => {
    process.stderr.write(`control-plane-child: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
