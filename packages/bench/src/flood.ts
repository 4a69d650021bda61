/**
 * Real DTLS clients through a flood of forged first datagrams: the test bed and one measured step, shared by the
 * `flood` scenario of `pnpm bench` and its end-to-end test.
 *
 * real namespace        client namespace                balancer namespace              backend namespace
 *   openssl s_client  →   relay (live frames) → eth0  →   flowlb run (XDP, --mappings) →  testkit's dtls-backend
 *   (10.201.3.2)          gen: forged hellos from         pinned to SYSTEM_CPU            (mark_drop keeps the forged
 *                         10.128.0.0/12 (GENERATOR_CPU)                                   hellos' copies off them)
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createDtlsCertificates,
  dtlsCapture,
  runGnutlsDtlsClient,
  runOpensslDtlsClient,
  startDtlsBackend,
  type DtlsBackend,
  type DtlsCertificates,
  type Spawned,
} from '@flowlb/testkit';
import { decodeValue, encodeKey, FLOW_F_CONFIRMED } from '@flowlb/flow-table';
import { BpfMap, type Link } from '@flowlb/xdp-core';
import { BenchPrograms, type ClientSpread } from './bench-object.js';
import type { FloodSenderJob, FloodSenderReport, RelayJob } from './control-plane-child.js';
import { DIST_DIR, profileArgs } from './context.js';
import { byLabel, parsePrometheusText, type MetricSamples } from './prometheus.js';
import type { FloodRow } from './results.js';
import { percentile } from './stats.js';
import { waitForOutput } from './systems/system.js';
import { FLOWLB_BIN } from './systems/flowlb.js';
import { attachBench } from './systems/xdp-helpers.js';
import { createBenchTopology, type BenchTopology } from './topology.js';
import { GENERATOR_CPU, SYSTEM_CPU } from './traffic.js';

/** The name real clients ask for. The forged whole hellos (ossl_foo) carry it too, so both compete for its backend. */
export const SERVICE_NAME = 'foo.example';
/** The name in the fragmented capture; a first fragment alone never gets as far as its name. */
const FRAGMENTED_NAME = 'long-name.backend-two.example.org';
/** Captures whose first datagram is forged: a whole ClientHello, and the first of a ClientHello's two fragments. */
export const FORGED_COMPLETE_CAPTURE = 'ossl_foo';
export const FORGED_PARTIAL_CAPTURE = 'ossl_mtu';

/**
 * Forged sources: 2^20 addresses of 10.128.0.0/12 (4,096 /24s) visited in a scrambled order, four ports each, so
 * no tuple comes twice within a run and neither an address nor a /24 sees more than a trickle: what random spoofed
 * sources look like to per-source and per-/24 limits. Nothing of the topology lies in that range.
 */
export const FORGED_SOURCES: ClientSpread = { flows: 4 << 20, firstAddr: '10.128.0.0', firstPort: 1024, portsPerAddr: 1, scatterBits: 20 };
const FORGED_PREFIX = '10.128.0.0/12';

/**
 * Real clients live in a namespace of their own behind the client namespace, where the VIP's address is local: a
 * relay there takes their datagrams and sends them on to the balancer as live frames, their source kept. They then
 * reach the VIP socket as the forged ones do, taking 4 KiB of its buffer each; from a sender's stack, even
 * redirected by XDP, they took 1.3 KiB, and a real hello fitted into a nearly full socket where forged ones were
 * dropped: a favour no real network does real clients. The balancer's answers come back through the stack.
 */
const REAL_NET = { inner: '10.201.3.1', client: '10.201.3.2', prefix: '10.201.3.0/24' };
const REAL_IFNAME = 'inner0';

/** Where the ClientHello's random starts in a first datagram: record header (13), handshake header (12), version (2). */
const HELLO_RANDOM_OFFSET = 27;
/**
 * A run of each kind goes out every 2 ms. Each run ends by tearing down a page pool, and the kernel walks every pool
 * whose pages are still out (queued at the VIP socket) to do it: at 1 ms that walk and the sender took two thirds
 * of the generator's CPU at 40,000 frames/s, at 2 ms a little over half. The balancer's 16 MiB VIP socket buffer
 * takes the 2 ms bursts.
 */
const FLOOD_TICK_MS = 2;
const METRICS_ADDR = '127.0.0.1:9100';
/** An idle veth of the client namespace that holds gen in the kernel's XDP dispatcher (holdInDispatcher). */
const HOLD_IFNAME = 'genhold0';
const MiB = 1024 * 1024;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const pinTo = (cpu: number): string[] => ['taskset', '-c', String(cpu)];

/** Everything a step needs that outlives it: namespaces, programs, backends, certificates, a scratch folder. */
export interface FloodBed {
  t: BenchTopology;
  /** Where the real clients run, at REAL_NET.client. */
  realNs: string;
  /**
   * The service's backend. Behind `helloVerify` it takes the balancer's cookie as proof (--any-cookie): neither it
   * nor stock servers could carry on from the balancer's HelloVerifyRequest with a cookie exchange of their own.
   * Each is started on first use.
   */
  backend(helloVerify: boolean): Promise<DtlsBackend>;
  progs: BenchPrograms;
  dir: string;
  bpffs: string;
  /** Hex of the forged first datagrams. */
  forged: { complete: string; partial: string };
  /** Counter behind the real clients' source ports. */
  nextRealPort: number;
  destroy(): Promise<void>;
}

export async function createFloodBed(): Promise<FloodBed> {
  const complete = dtlsCapture(FORGED_COMPLETE_CAPTURE)[0];
  const partial = dtlsCapture(FORGED_PARTIAL_CAPTURE)[0];
  if (!complete || !partial) throw new Error(`captures ${FORGED_COMPLETE_CAPTURE} and ${FORGED_PARTIAL_CAPTURE} must hold a first datagram`);
  if (complete[0] !== 0x16 || complete[13] !== 0x01) throw new Error(`${FORGED_COMPLETE_CAPTURE}: the first datagram is not a ClientHello record`);

  const cleanups: (() => unknown)[] = [];
  const destroy = async (): Promise<void> => {
    const errors: string[] = [];
    for (const c of cleanups.splice(0).reverse()) {
      try {
        await c();
      } catch (error) {
        errors.push((error as Error).message);
      }
    }
    if (errors.length > 0) throw new Error(`flood bed cleanup: ${errors.join('; ')}`);
  };
  try {
    const dir = mkdtempSync(join(tmpdir(), 'flowlb-flood-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const t = await createBenchTopology({ backends: 1, clientAddrs: 0 });
    cleanups.push(() => t.destroy());
    const backend = t.backends[0]!;
    const backendIf = t.net.backends[0]!.ifname;

    const progs = await BenchPrograms.load();
    cleanups.push(() => progs.close());
    const links: Link[] = [];
    cleanups.push(() => links.forEach((l) => l.close()));
    // Frames the balancer's XDP program sends out of a veth arrive only where the peer has an XDP program.
    links.push(attachBench(progs, 'pass', t.clientNs, t.net.client.ifname));
    // Copies of the forged whole hello that got a flow reach the backend, which would answer each with a stateless
    // HelloVerifyRequest on the generator's CPU, where it runs; a real backend is another machine. The balancer's
    // work for them is the same either way.
    progs.setDropMark(HELLO_RANDOM_OFFSET, complete.subarray(HELLO_RANDOM_OFFSET, HELLO_RANDOM_OFFSET + 32));
    links.push(attachBench(progs, 'mark_drop', t.backendNs, backendIf));

    await t.topo.addVethPair(t.clientNs, HOLD_IFNAME, t.clientNs, `${HOLD_IFNAME.slice(0, -1)}1`, { up: false, txOff: false });

    const realNs = await t.topo.addNamespace('real');
    await t.topo.addVethPair(t.clientNs, REAL_IFNAME, realNs, 'eth0', { addrA: `${REAL_NET.inner}/24`, addrB: `${REAL_NET.client}/24` });
    await t.topo.addRoute(realNs, 'default', { via: REAL_NET.inner });
    await t.topo.addAddress(t.clientNs, 'lo', `${t.vip.address}/32`);
    // The balancer's answers to real clients come from the VIP, an address of the client namespace now.
    await t.topo.sysctl(t.clientNs, {
      'net.ipv4.ip_forward': 1,
      'net.ipv4.conf.all.accept_local': 1,
      [`net.ipv4.conf.${t.net.client.ifname}.accept_local`]: 1,
    });
    await t.topo.addRoute(t.lbNs, REAL_NET.prefix, { via: t.net.client.addr });
    const relayJob: RelayJob = {
      role: 'relay',
      vip: t.vip,
      ifname: t.net.client.ifname,
      srcMac: t.clientMac,
      dstMac: t.lbFrontMac,
    };
    const relay = t.topo.spawn(
      t.clientNs,
      'taskset',
      ['-c', String(GENERATOR_CPU), process.execPath, join(DIST_DIR, 'control-plane-child.js'), JSON.stringify(relayJob)],
      { stdin: true },
    );
    cleanups.push(() => relay.stop(2000));
    await waitForOutput(() => relay.output(), relay.exited, (out) => out.includes('"ready"'), 'relay');
    // The balancer's answers to forged sources (HelloVerifyRequests) go back to the client namespace, which drops
    // them.
    await t.topo.addRoute(t.lbNs, FORGED_PREFIX, { via: t.net.client.addr });
    await t.topo.ip(t.clientNs, 'route', 'add', 'blackhole', FORGED_PREFIX);

    const certs: DtlsCertificates = await createDtlsCertificates('flowlb-flood-certs-');
    cleanups.push(() => certs.remove());
    const creds = await certs.issue(SERVICE_NAME);
    const backends = new Map<boolean, Promise<DtlsBackend>>();
    cleanups.push(async () => {
      for (const b of backends.values()) await (await b.catch(() => undefined))?.stop();
    });
    const backendFor = (helloVerify: boolean): Promise<DtlsBackend> => {
      let b = backends.get(helloVerify);
      if (!b) {
        // Two servers side by side, on the backend host's address, one port apart.
        b = startDtlsBackend(t.topo, t.backendNs, {
          ...creds,
          addr: backend.address,
          port: backend.port + (helloVerify ? 1 : 0),
          anyCookie: helloVerify,
          // Beside the generator: the balancer's CPU is the one measured.
          prefix: pinTo(GENERATOR_CPU),
        });
        backends.set(helloVerify, b);
      }
      return b;
    };
    await backendFor(false);
    const bpffs = await t.topo.mountBpffs();
    return {
      t,
      realNs,
      backend: backendFor,
      progs,
      dir,
      bpffs,
      forged: { complete: Buffer.from(complete).toString('hex'), partial: Buffer.from(partial).toString('hex') },
      nextRealPort: 0,
      destroy,
    };
  } catch (error) {
    await destroy().catch(() => undefined);
    throw error;
  }
}

export interface FloodStepSpec {
  /** Forged whole ClientHellos and first fragments per second. */
  completePerSec: number;
  partialPerSec: number;
  /** `helloVerify: true` on every mappings entry. */
  helloVerify: boolean;
  /** `rate_limit` of the balancer: new clients a second per source address and per /24; absent, off. */
  rateLimit?: { perSource: number; per24: number };
  /** `workers` of the balancer; default 1. */
  workers?: number;
  /** Seconds of flood before real clients are counted: the pending table fills within pending.timeout_ms. */
  settleSeconds: number;
  /** Real clients are tried for at least this long and at least this many times, within maxSeconds of flood. */
  measureSeconds: number;
  minAttempts: number;
  maxSeconds: number;
  /** A real handshake not done within this counts as failed (openssl retransmits after 1 s, then 2 s more...). */
  clientTimeoutMs: number;
  /** A real client starts this often, whether or not the ones before it are done. */
  clientIntervalMs: number;
}

export type FloodLog = (line: string) => void;

/** What the balancer's files take from a step's settings. */
type BalancerSettings = Pick<FloodStepSpec, 'helloVerify' | 'rateLimit' | 'workers'>;

function configYaml(bed: FloodBed, spec: BalancerSettings, pinPath: string): string {
  const { t } = bed;
  const lines = [
    `addr: ${t.vip.address}`,
    `port: ${t.vip.port}`,
    `interface: ${t.net.lb.front.ifname}`,
    `interfaces: [${t.net.lb.back.ifname}]`,
    'mode: xdp',
    'xdp_mode: native',
    `snat_addr: ${t.net.lb.back.addr}`,
    `metrics_addr: ${METRICS_ADDR}`,
    `pin_path: ${pinPath}`,
  ];
  if (spec.workers !== undefined) lines.push(`workers: ${spec.workers}`);
  if (spec.rateLimit) lines.push('rate_limit:', `  per_source: ${spec.rateLimit.perSource}`, `  per_24: ${spec.rateLimit.per24}`);
  return `${lines.join('\n')}\n`;
}

function mappingsYaml(backend: DtlsBackend, spec: BalancerSettings): string {
  const entry = (fqdn: string): string[] => [
    `  - fqdn: "${fqdn}"`,
    `    ipv4: "${backend.endpoint.address}"`,
    `    port: ${backend.endpoint.port}`,
    ...(spec.helloVerify ? ['    helloVerify: true'] : []),
  ];
  return ['sniMappings:', ...entry(SERVICE_NAME), ...entry(FRAGMENTED_NAME), 'default: drop', ''].join('\n');
}

async function scrape(bed: FloodBed): Promise<MetricSamples> {
  const { stdout } = await bed.t.topo.exec(bed.t.lbNs, 'taskset', ['-c', String(GENERATOR_CPU), 'curl', '-sf', '-m', '3', `http://${METRICS_ADDR}/metrics`], {
    timeoutMs: 5000,
  });
  return parsePrometheusText(stdout);
}

/** How far a real client got in the balancer's flow table: no flow, a flow its client never spoke on again, or more. */
type FlowState = 'none' | 'unconfirmed' | 'confirmed';

interface Attempt {
  ok: boolean;
  ms: number;
  flow: FlowState;
  /** What the client printed last, when it failed. */
  detail?: string;
}

/** Source ports of real clients, each used once per bed, so a tuple never meets what an earlier client left behind. */
const REAL_PORTS = { first: 40_000, count: 20_000 };
/** How often the flow table is looked at during a real handshake. */
const FLOW_POLL_MS = 100;

/** The next real-client port. */
function nextPort(bed: FloodBed): number {
  return REAL_PORTS.first + (bed.nextRealPort++ % REAL_PORTS.count);
}

/**
 * One real handshake from `port`. Meanwhile its flow is looked up in the balancer's pinned map, since an entry
 * whose client never spoke again may be gone by the end (unconfirmed flows go after 1 s under pressure).
 */
async function realHandshake(bed: FloodBed, flows: BpfMap | undefined, port: number, timeoutMs: number): Promise<Attempt> {
  const key = encodeKey({ dstAddr: bed.t.vip.address, dstPort: bed.t.vip.port, srcAddr: REAL_NET.client, srcPort: port });
  let flow: FlowState = 'none';
  const look = (): void => {
    const v = flows?.lookup(key);
    if (v) flow = decodeValue(v).flags & FLOW_F_CONFIRMED ? 'confirmed' : flow === 'confirmed' ? flow : 'unconfirmed';
  };
  const poll = setInterval(look, FLOW_POLL_MS);
  const t0 = performance.now();
  try {
    const r = await runOpensslDtlsClient(bed.t.topo, bed.realNs, {
      connect: `${bed.t.vip.address}:${bed.t.vip.port}`,
      bind: `${REAL_NET.client}:${port}`,
      servername: SERVICE_NAME,
      timeoutMs,
      // s_client sleeps half a second after sending its close_notify; the server has it by then.
      closeTimeoutMs: 100,
      prefix: pinTo(GENERATOR_CPU),
    });
    look();
    const attempt: Attempt = { ok: r.ok, ms: r.handshakeMs ?? performance.now() - t0, flow };
    if (!r.ok) attempt.detail = `${r.timedOut ? 'timed out' : `exited ${r.exit.code ?? r.exit.signal}`}: ${(r.stderr + r.stdout).trim().slice(-400)}`;
    return attempt;
  } finally {
    clearInterval(poll);
  }
}

function lastJson<T>(stdout: string, key: string): T | undefined {
  const line = stdout.trim().split('\n').reverse().find((l) => l.includes(`"${key}"`));
  return line ? (JSON.parse(line) as Record<string, T>)[key] : undefined;
}

/** Starts `flowlb run` on the balancer namespace, pinned to SYSTEM_CPU; resolves once it serves. */
async function startBalancer(bed: FloodBed, spec: BalancerSettings, label: string, mappings: string): Promise<Spawned> {
  const config = join(bed.dir, `${label}.config.yaml`);
  writeFileSync(config, configYaml(bed, spec, join(bed.bpffs, label)));
  const proc = bed.t.topo.spawn(
    bed.t.lbNs,
    'taskset',
    ['-c', String(SYSTEM_CPU), process.execPath, ...profileArgs(), FLOWLB_BIN, 'run', '--config', config, '--mappings', mappings, '--detach-on-exit'],
    { env: { ...process.env, FLOWLB_RUN_DIR: bed.dir } },
  );
  try {
    await waitForOutput(() => proc.output(), proc.exited, (out) => out.includes('"running; SIGINT'), 'flowlb run');
  } catch (error) {
    await proc.stop(2000);
    throw error;
  }
  return proc;
}

/** A real client of {@link handshakesWithoutFlood}. */
export interface ProbeClient {
  tool: 'openssl' | 'gnutls';
  /** A link MTU small enough makes the client fragment its ClientHello. */
  mtu?: number;
}

export interface ProbeResult {
  client: ProbeClient;
  ok: boolean;
  detail: string;
}

/**
 * Real handshakes through a fresh balancer with no flood, one client after another, and the HelloVerifyRequests the
 * XDP program and the mapper sent meanwhile: which of the two answers, and whether each kind of client completes
 * after its answer.
 */
export async function handshakesWithoutFlood(
  bed: FloodBed,
  options: { helloVerify: boolean; workers?: number },
  clients: readonly ProbeClient[],
): Promise<{ results: ProbeResult[]; kernelReplies: number; mapperReplies: number }> {
  const label = `probe${++stepSeq}`;
  const backend = await bed.backend(options.helloVerify);
  const mappings = join(bed.dir, `${label}.mappings.yaml`);
  writeFileSync(mappings, mappingsYaml(backend, options));
  const lb = await startBalancer(bed, options, label, mappings);
  try {
    const before = await scrape(bed);
    const results: ProbeResult[] = [];
    for (const client of clients) {
      const common = {
        connect: `${bed.t.vip.address}:${bed.t.vip.port}`,
        servername: SERVICE_NAME,
        timeoutMs: 10_000,
        closeTimeoutMs: 100,
        prefix: pinTo(GENERATOR_CPU),
        ...(client.mtu === undefined ? {} : { mtu: client.mtu }),
      };
      const r =
        client.tool === 'openssl'
          ? await runOpensslDtlsClient(bed.t.topo, bed.realNs, { ...common, bind: `${REAL_NET.client}:${nextPort(bed)}` })
          : await runGnutlsDtlsClient(bed.t.topo, bed.realNs, common);
      results.push({ client, ok: r.ok, detail: `${r.timedOut ? 'timed out; ' : ''}${(r.stderr + r.stdout).trim().slice(-600)}` });
    }
    // Other workers report their counters to the first once a second.
    if ((options.workers ?? 1) > 1) await sleep(2500);
    const after = await scrape(bed);
    const moved = (name: string): number => (after.get(name) ?? 0) - (before.get(name) ?? 0);
    return {
      results,
      kernelReplies: moved('flowlb_xdp_packets_total{outcome="hello_verify"}'),
      mapperReplies: moved('flowlb_mapper_replies_total'),
    };
  } finally {
    await lb.stop(5000);
  }
}

/** What the balancer's counters say about a step, and the real clients' results. */
interface StepCounts {
  attempts: Attempt[];
  before: MetricSamples;
  /** When the real clients started. */
  atClients: MetricSamples;
  during: MetricSamples[];
  after: MetricSamples;
  wallSec: number;
  /** Share of the time from before the flood to after it that the balancer's process was on a CPU. */
  busy: number;
  /** Share of that time its CPU was busy with anything. */
  systemBusy: number;
  sender: FloodSenderReport;
  forgedAtBackend: number;
}

let stepSeq = 0;

/** Busy and total time of one CPU so far, from /proc/stat (clock ticks; idle and iowait are not busy). */
function cpuTimes(cpu: number): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`cpu${cpu} `));
  if (!line) return { busy: Number.NaN, total: Number.NaN };
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - (f[3] ?? 0) - (f[4] ?? 0), total };
}

/** CPU time a process has used, from /proc (user + system, in clock ticks of 1/100 s). */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}
const CLOCK_TICKS = 100;

function shareBusy(a: { busy: number; total: number }, b: { busy: number; total: number }): number {
  return b.total > a.total ? (b.busy - a.busy) / (b.total - a.total) : Number.NaN;
}

/**
 * One step: a fresh `flowlb run`, a real handshake to prove the path, then the flood, real clients one after
 * another once it has settled, the balancer's /metrics every second; everything the step started is stopped again,
 * also when it fails.
 */
export async function runFloodStep(bed: FloodBed, spec: FloodStepSpec, log: FloodLog = () => {}): Promise<FloodRow> {
  const label = `flood${++stepSeq}`;
  const backend = await bed.backend(spec.helloVerify);
  const mappings = join(bed.dir, `${label}.mappings.yaml`);
  writeFileSync(mappings, mappingsYaml(backend, spec));
  const lb = await startBalancer(bed, spec, label, mappings);
  let sender: Spawned | undefined;
  let flows: BpfMap | undefined;
  let sampling = false;
  let sampler: Promise<void> | undefined;
  try {
    flows = BpfMap.openPinned(join(bed.bpffs, label, 'flows'));
    let warm = await realHandshake(bed, flows, nextPort(bed), 5000);
    if (!warm.ok) warm = await realHandshake(bed, flows, nextPort(bed), 5000);
    if (!warm.ok) {
      throw new Error(
        `a real handshake through the balancer failed before any flood (flow: ${warm.flow}; client ${warm.detail ?? ''}; ` +
          `hellos dropped at the backend as forged: ${bed.progs.markDrops()}); ` +
          `flowlb run printed:\n${lb.output().stdout.slice(-2000)}${lb.output().stderr.slice(-2000)}\n` +
          `its backend printed:\n${backend.transcript()}`,
      );
    }

    const beforeAt = performance.now();
    const cpuBefore = cpuSeconds(lb.pid);
    const systemBefore = cpuTimes(SYSTEM_CPU);
    const before = await scrape(bed);
    const atBackend0 = bed.progs.markDrops();
    const job: FloodSenderJob = {
      role: 'flood-sender',
      ifname: bed.t.net.client.ifname,
      srcMac: bed.t.clientMac,
      dstMac: bed.t.lbFrontMac,
      vip: bed.t.vip,
      clients: FORGED_SOURCES,
      kinds: [
        { payload: bed.forged.complete, pps: spec.completePerSec },
        { payload: bed.forged.partial, pps: spec.partialPerSec },
      ],
      seconds: spec.maxSeconds,
      holdIfname: HOLD_IFNAME,
      tickMs: FLOOD_TICK_MS,
    };
    const s = bed.t.topo.spawn(
      bed.t.clientNs,
      'taskset',
      ['-c', String(GENERATOR_CPU), process.execPath, join(DIST_DIR, 'control-plane-child.js'), JSON.stringify(job)],
      { stdin: true },
    );
    sender = s;
    await waitForOutput(() => s.output(), s.exited, (out) => out.includes('"ready"'), 'flood sender');
    const floodStart = performance.now();
    let senderDone = false;
    void s.exited.then(() => {
      senderDone = true;
    });

    const during: MetricSamples[] = [];
    sampling = true;
    sampler = (async () => {
      while (sampling) {
        const next = performance.now() + 1000;
        try {
          during.push(await scrape(bed));
        } catch (error) {
          log(`flood: a /metrics scrape failed: ${(error as Error).message}`);
        }
        await sleep(Math.max(0, next - performance.now()));
      }
    })();

    await sleep(spec.settleSeconds * 1000);
    const attempts: Attempt[] = [];
    const running = new Set<Promise<void>>();
    let started = 0;
    // The counters as the real clients start: drops in the flood's first seconds, while the balancer warms up and
    // its pending table fills, are not what the real clients met.
    const atClients = await scrape(bed);
    const clientsStart = performance.now();
    for (;;) {
      const tick = performance.now();
      const measured = (tick - clientsStart) / 1000;
      const flooded = (tick - floodStart) / 1000;
      if (measured >= spec.measureSeconds && started >= spec.minAttempts) break;
      // An attempt must end before the flood does.
      if (flooded + spec.clientTimeoutMs / 1000 + 1 > spec.maxSeconds || senderDone) break;
      started++;
      const attempt: Promise<void> = realHandshake(bed, flows, nextPort(bed), spec.clientTimeoutMs)
        .then((a) => void attempts.push(a))
        .finally(() => running.delete(attempt));
      running.add(attempt);
      await sleep(Math.max(0, spec.clientIntervalMs - (performance.now() - tick)));
    }
    await Promise.all(running);

    s.child.stdin?.end();
    await waitForOutput(() => s.output(), s.exited, (out) => out.includes('"report"'), 'flood sender');
    const wallSec = (performance.now() - floodStart) / 1000;
    sampling = false;
    await sampler;
    const report = lastJson<FloodSenderReport>(s.output().stdout, 'report');
    if (!report) throw new Error(`flood sender: no report:\n${s.output().stderr}`);
    // Forged hellos still queued at the VIP socket are counted with this step.
    await sleep(300);
    const after = await scrape(bed);
    const counts: StepCounts = {
      attempts,
      before,
      atClients,
      during,
      after,
      wallSec,
      busy: (cpuSeconds(lb.pid) - cpuBefore) / ((performance.now() - beforeAt) / 1000),
      systemBusy: shareBusy(systemBefore, cpuTimes(SYSTEM_CPU)),
      sender: report,
      forgedAtBackend: bed.progs.markDrops() - atBackend0,
    };
    return floodRow(spec, counts);
  } finally {
    sampling = false;
    await sampler?.catch(() => undefined);
    await sender?.stop(2000);
    flows?.close();
    await lb.stop(5000);
  }
}

function floodRow(spec: FloodStepSpec, c: StepCounts): FloodRow {
  const value = (m: MetricSamples, name: string): number => m.get(name) ?? 0;
  const since = (from: MetricSamples, name: string): number => value(c.after, name) - value(from, name);
  const delta = (name: string): number => since(c.before, name);
  const max = (name: string): number => Math.max(value(c.before, name), value(c.after, name), ...c.during.map((m) => value(m, name)));
  const deltas = (name: string, label: string): Record<string, number> => {
    const a = byLabel(c.before, name, label);
    const b = byLabel(c.after, name, label);
    return Object.fromEntries(
      Object.entries(b)
        .map(([k, v]) => [k, v - (a[k] ?? 0)] as const)
        .filter(([, v]) => v > 0),
    );
  };
  const ok = c.attempts.filter((a) => a.ok);
  const failed = c.attempts.filter((a) => !a.ok);
  const times = ok.map((a) => a.ms);
  const sec = c.sender.ms / 1000;
  const xdp = deltas('flowlb_xdp_packets_total', 'outcome');
  const socketDropsKnown = c.after.has('flowlb_socket_drops_total');
  const row: FloodRow = {
    askedCompletePerSec: spec.completePerSec,
    askedPartialPerSec: spec.partialPerSec,
    offeredCompletePerSec: sec > 0 ? Math.round((c.sender.sent[0] ?? 0) / sec) : 0,
    offeredPartialPerSec: sec > 0 ? Math.round((c.sender.sent[1] ?? 0) / sec) : 0,
    helloVerify: spec.helloVerify,
    floodSeconds: Math.round(c.wallSec * 10) / 10,
    attempts: c.attempts.length,
    successes: ok.length,
    successRate: c.attempts.length > 0 ? ok.length / c.attempts.length : 0,
    clientTimeoutMs: spec.clientTimeoutMs,
    handshakeP50Ms: percentile(times, 0.5),
    handshakeP99Ms: percentile(times, 0.99),
    retransmitted: times.filter((ms) => ms > 900).length,
    failedWithout: {
      flow: failed.filter((a) => a.flow === 'none').length,
      confirmation: failed.filter((a) => a.flow === 'unconfirmed').length,
    },
    snatPortsMax: max('flowlb_snat_ports_in_use'),
    pendingClientsMax: max('flowlb_pending_clients'),
    flowsActiveMax: max('flowlb_flows_active'),
    rssMaxMiB: max('process_resident_memory_bytes') / MiB,
    heapUsedMaxMiB: max('nodejs_heap_size_used_bytes') / MiB,
    rssBeforeMiB: value(c.before, 'process_resident_memory_bytes') / MiB,
    heapUsedBeforeMiB: value(c.before, 'nodejs_heap_size_used_bytes') / MiB,
    balancerBusy: c.busy,
    balancerCpuBusy: c.systemBusy,
    vipSocketIn: delta('flowlb_datagrams_total{path="slow_path_in"}'),
    socketDrops: socketDropsKnown ? delta('flowlb_socket_drops_total') : null,
    socketDropsBySecond: c.during.slice(1).map((m, i) => value(m, 'flowlb_socket_drops_total') - value(c.during[i]!, 'flowlb_socket_drops_total')),
    whileMeasured: {
      vipSocketIn: since(c.atClients, 'flowlb_datagrams_total{path="slow_path_in"}'),
      socketDrops: socketDropsKnown ? since(c.atClients, 'flowlb_socket_drops_total') : null,
    },
    drops: deltas('flowlb_dropped_datagrams_total', 'reason'),
    rateLimited: xdp.rate_limited ?? 0,
    mapperReplies: delta('flowlb_mapper_replies_total'),
    repliesSent: delta('flowlb_mapper_reply_datagrams_total'),
    kernelReplies: xdp.hello_verify ?? 0,
    flowsCreated: delta('flowlb_flows_created_total'),
    flowsRefused: delta('flowlb_flows_refused_total'),
    unconfirmedExpired: delta('flowlb_flows_unconfirmed_expired_total'),
    evictedUnderPressure: delta('flowlb_flows_evicted_under_pressure_total'),
    forgedAtBackend: c.forgedAtBackend,
    limitedBy: '',
  };
  row.limitedBy = floodLimits(row);
  return row;
}

/**
 * What held real handshakes back in a step, as far as the counters tell, most telling first: the generator short
 * of the asked rate; forged and real first datagrams lost at the full VIP socket (with whether the balancer's CPU
 * was saturated, and by whom); new flows refused for want of SNAT ports; waiting clients pushed out of a full pending
 * table.
 */
export function floodLimits(r: FloodRow): string {
  const parts: string[] = [];
  const asked = r.askedCompletePerSec + r.askedPartialPerSec;
  const offered = r.offeredCompletePerSec + r.offeredPartialPerSec;
  if (asked > 0 && offered < 0.9 * asked) {
    parts.push(`the generator (${offered.toLocaleString('en')}/s of the ${asked.toLocaleString('en')}/s asked)`);
  }
  const held = r.attempts > 0 && r.successRate >= 0.99;
  const reasons: string[] = [];
  // What the real clients met: the drops while they ran.
  const w = r.whileMeasured;
  const arrived = w.vipSocketIn + (w.socketDrops ?? 0);
  const dropShare = arrived > 0 ? (w.socketDrops ?? 0) / arrived : 0;
  if (dropShare >= 0.02) {
    const pct = `${Math.round(dropShare * 100)} % of datagrams to the VIP dropped at its socket while real clients ran`;
    // The kernel's share of the balancer's CPU (sends, frees, softirqs) is not in the process's own time.
    const cpu = Math.max(r.balancerBusy, r.balancerCpuBusy);
    reasons.push(
      cpu >= 0.8
        ? `balancer CPU (${Math.round(cpu * 100)} % busy, ${Math.round(r.balancerBusy * 100)} % in its process; ${pct})`
        : `VIP socket buffer (${pct})`,
    );
  }
  // Its CPU busier than its process: the kernel's work for it, and here other work on the machine.
  const others = r.balancerCpuBusy - r.balancerBusy;
  if (others >= 0.1) reasons.push(`its CPU shared (${Math.round(others * 100)} % of it outside the balancer's process)`);
  const snat = r.drops['snat-exhausted'] ?? 0;
  if (snat > 0) reasons.push(`SNAT ports of the backend exhausted (${snat.toLocaleString('en')} new flows refused)`);
  const evicted = (r.drops['pending-evicted'] ?? 0) + (r.drops['pending-clients-limit'] ?? 0);
  if (evicted > 0) reasons.push(`pending table full (${evicted.toLocaleString('en')} waiting clients pushed out or refused)`);
  if (held) parts.unshift(reasons.length > 0 ? `held, despite: ${reasons.join('; ')}` : 'held');
  else parts.push(...(reasons.length > 0 ? reasons : ['nothing the counters show (see the handshake times)']));
  return parts.join('; ');
}

/** How a step is run, for the notes under the results. */
export function floodMethodNotes(spec: Omit<FloodStepSpec, 'completePerSec' | 'partialPerSec' | 'helloVerify'>): string[] {
  const limit = spec.rateLimit ? `rate_limit per_source ${spec.rateLimit.perSource} and per_24 ${spec.rateLimit.per24}` : 'no rate_limit';
  return [
    `Forged first datagrams from random sources: the bench's gen program (live frames, pinned to CPU ${GENERATOR_CPU}) sends the first ` +
      `datagram of the captures ${FORGED_COMPLETE_CAPTURE} (a whole ClientHello for ${SERVICE_NAME}) and ${FORGED_PARTIAL_CAPTURE} (the first ` +
      "of a ClientHello's two fragments), each at the step's rate, from 2^20 addresses of 10.128.0.0/12 in a scrambled order (4,096 /24s, " +
      "no tuple twice), over a veth to the balancer's namespace, whose kernel receive path runs on that CPU too. gen stays attached to an " +
      "idle veth, which keeps it in the kernel's XDP dispatcher: a live run then costs microseconds instead of 25 ms, and the frames leave " +
      `every ${FLOOD_TICK_MS} ms rather than in 25 ms bursts.`,
    `The balancer is \`flowlb run --mappings\` on the XDP datapath, pinned to CPU ${SYSTEM_CPU}, with the defaults for pending clients, ` +
      `SNAT ports (10000–29999), unconfirmed_ttl_sec and workers, and ${limit}. ${SERVICE_NAME} and the fragmented capture's name map ` +
      'to one backend, a DTLS server built from tools/dtls-backend.c of @flowlb/testkit (OpenSSL; a stateless HelloVerifyRequest for hellos without its ' +
      'cookie, then a process per client, so that it serves many at once where openssl s_server and gnutls-serv serve one), with a ' +
      "certificate made for the run. With helloVerify (on both entries, and no default) every route asks for a cookie, so " +
      "the XDP program answers the hellos itself (*answered in XDP*) and the balancer's process sees only the clients that come " +
      "back with one; the backend then takes the balancer's cookie as proof: stock servers cannot carry on from the " +
      "balancer's HelloVerifyRequest. Forged hellos that get a flow reach the backend host, where an XDP program drops them by their " +
      "ClientHello random, so that the backend's answers to them (its own HelloVerifyRequests) do not load the generator's CPU, where the " +
      "backend runs; the balancer's work for them is the same. Answers to forged sources are routed back to the client namespace and " +
      'dropped there.',
    `Real clients: \`openssl s_client -dtls1_2 -servername ${SERVICE_NAME}\` from ${REAL_NET.client}, a namespace behind the client ` +
      'namespace, where a relay passes their datagrams on to the balancer as live frames with their source kept, so that they reach the ' +
      "VIP socket as forged ones do, taking 4 KiB of its buffer each (from a sender's stack they took 1.3 KiB, and fitted into a nearly " +
      'full socket where forged ones did not). One every ' +
      `${spec.clientIntervalMs} ms, after ${spec.settleSeconds} s of flood, for at least ${spec.measureSeconds} s and ` +
      `${spec.minAttempts} handshakes. One counts as failed when its handshake has not completed within ${spec.clientTimeoutMs / 1000} s ` +
      '(openssl resends its flight after 1 s and 2 s more, so that is three tries); *retransmitted* counts completed ones that took over 0.9 s. ' +
      'Each step starts a fresh balancer. SNAT ports, pending clients, flows and memory are the largest values its /metrics showed, read every ' +
      'second; the other counters are what moved during the flood. Repetitions are the real handshakes, so --runs does not apply here.',
  ];
}

/** One line per step for logs and test output. */
export function describeFloodRow(r: FloodRow): string {
  const n = (x: number): string => Math.round(x).toLocaleString('en');
  const drops = Object.entries(r.drops)
    .map(([k, v]) => `${k} ${n(v)}`)
    .join(', ');
  return (
    `${n(r.askedCompletePerSec)} + ${n(r.askedPartialPerSec)} forged/s (sent ${n(r.offeredCompletePerSec)} + ${n(r.offeredPartialPerSec)}/s), ` +
    `helloVerify ${r.helloVerify ? 'on' : 'off'}: ${r.successes}/${r.attempts} real handshakes ` +
    `(${(r.successRate * 100).toFixed(1)} %, p50 ${Math.round(r.handshakeP50Ms)} ms, p99 ${Math.round(r.handshakeP99Ms)} ms, ${r.retransmitted} retransmitted; ` +
    `of the failed, ${r.failedWithout.flow} never got a flow, ${r.failedWithout.confirmation} got one but never spoke on it) ` +
    `over ${r.floodSeconds} s; SNAT ports max ${n(r.snatPortsMax)}, pending max ${n(r.pendingClientsMax)}, flows max ${n(r.flowsActiveMax)}; ` +
    `RSS ${n(r.rssBeforeMiB)} → max ${n(r.rssMaxMiB)} MiB, heap ${n(r.heapUsedBeforeMiB)} → max ${n(r.heapUsedMaxMiB)} MiB; ` +
    `balancer process ${Math.round(r.balancerBusy * 100)} % of a CPU, its CPU ${Math.round(r.balancerCpuBusy * 100)} % busy; at VIP socket ${n(r.vipSocketIn)}, socket drops ${r.socketDrops === null ? '?' : n(r.socketDrops)} ` +
    `(${r.whileMeasured.socketDrops === null ? '?' : n(r.whileMeasured.socketDrops)} of ${n(r.whileMeasured.vipSocketIn + (r.whileMeasured.socketDrops ?? 0))} while real clients ran); ` +
    `socket drops by second ${r.socketDropsBySecond.map(n).join(' ')}; ` +
    `flows created ${n(r.flowsCreated)}, refused ${n(r.flowsRefused)}, unconfirmed expired ${n(r.unconfirmedExpired)} (under pressure ${n(r.evictedUnderPressure)}); ` +
    `replies ${n(r.repliesSent)} (in the kernel ${n(r.kernelReplies)}); rate-limited ${n(r.rateLimited)}; forged at backend ${n(r.forgedAtBackend)}; drops: ${drops || 'none'}; ` +
    `limited by: ${r.limitedBy}`
  );
}
