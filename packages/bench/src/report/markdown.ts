import type {
  BenchRun,
  ForwardingCell,
  FloodResult,
  FloodRow,
  ForwardingResult,
  HelloParseResult,
  KernelCostResult,
  LatencyResult,
  LatencyRow,
  Machine,
  NewFlowsResult,
  ScaleResult,
  TargetCheck,
} from '../results.js';
import { FLOOD_TARGET, highestHeld } from '../targets.js';
import {
  caseLabel,
  formatBps,
  formatCount,
  formatMeasured,
  formatNs,
  formatPps,
  formatPpsMeasured,
  formatRatio,
  formatSig3,
  formatSignedUs,
  systemLabel,
  systemOrder,
} from './format.js';

/**
 * How the numbers are produced. Kept in one place so it can be edited without touching the rendering;
 * it must stay true to what the scenarios do.
 */
export const METHOD_MARKDOWN = `\
**Topology.** Three network namespaces on one machine, client ⇄ balancer ⇄ backend, joined by veth pairs; the
balancer namespace routes between a client-side and a backend-side /24. Every system is measured on this same
topology in the same run.

**Kernel cost.** \`BPF_PROG_TEST_RUN\` on the loaded flowlb program, with 65,536 other flows in the table. A hit row
uses two flow entries that rewrite the datagram into each other, so every repetition is a real hit: the kernel runs
the program again on the buffer it has just rewritten. The TTL limits a batch to 254 runs. The verdicts and flowlb's
own counters are checked for every row. The floor is a program that parses Ethernet, IPv4 and UDP with flowlb's own
parsing helpers and returns \`XDP_TX\`.

**Forwarding rate.** A traffic generator written in BPF (\`gen\` in \`packages/bench/bpf/bench.bpf.c\`) runs in
live-frames mode (\`BPF_F_TEST_XDP_LIVE_FRAMES\`, batches of 256) in the client namespace, pinned to CPU 0. Each
frame carries the next of N client source address/port pairs, with correct IPv4 and UDP checksums; the generator
writes every header byte of every frame, because the kernel hands it back pages that a balancer has rewritten. The
backend counts the UDP datagrams that reach it with an XDP program (\`sink\`) and drops them; the rate is that count
over the steady middle of each run. CPU 1 belongs to the system under test:

- systems that forward inside the kernel (the bare forwarder, flowlb XDP, nftables) run in the receive path of the
  balancer's client-side veth, which is polled by a kernel thread pinned to CPU 1 (threaded NAPI);
- proxies in userspace (nginx, flowlb's userspace datapath) run as a process pinned to CPU 1, while the kernel's
  receive path stays on CPU 0 with the generator: a flooded receive path on the proxy's own CPU would starve it;
- the backend's receive path (the sink) is pinned to CPU 1 as well, for every system, in a kernel thread at a
  real-time priority: it empties the backend's 256-frame veth ring as soon as frames arrive (as an ordinary thread
  it waited behind the balancer's, and the ring overflowed);
- flowlb's control plane, which in XDP mode only installs and expires flows, runs on CPU 0.

The systems:

- **bare XDP forwarder**: parses the frame with flowlb's parsing helpers and redirects it to the backend-side device,
  rewriting nothing: the limit for an XDP forwarder here;
- **flowlb (XDP)**: \`flowlb run\` with the XDP datapath on both of the balancer's devices, a hash mapper over 25
  backends, SNAT ports 10000–60999;
- **nftables DNAT+SNAT**: \`dnat ip to jhash ip saddr . udp sport mod 25 map { … }\` and \`snat\` to the backend-side
  address, with connection tracking;
- **nginx stream (UDP)**: nginx 1.22's stream module as a UDP proxy, one worker, \`hash $remote_addr$remote_port
  consistent\` over the 25 backends, sessions kept for an hour;
- **flowlb (userspace)**: \`flowlb run\` with the userspace datapath (a socket per flow).

Frames redirected into a veth are received only by its XDP path, so the kernel and userspace systems get an
\`XDP_PASS\` program on the balancer's client-side veth. Before the measured runs every client sends once, slowly,
until the system has a flow for each (for flowlb XDP: until a whole pass takes no slow path), so every system is
measured on established flows. The million-flow table is written into flowlb's pinned flow map directly, as its
slow path would have written it; filling it at the slow path's rate would take minutes. Payloads are 64 B and
1472 B (MTU-sized), each with 1, 1,000 and 100,000 flows. A proxy that holds a socket per flow cannot hold 100,000
flows in a process limited to 20,000 file descriptors (raising the limit needs \`CAP_SYS_RESOURCE\`, which this
machine kind does not give); those cells say so.

On this virtual machine the generator's frames weigh on every XDP system: taking them off the veth ring and returning
them to the generator's page pool across CPUs, under a spin lock, is most of the balancer CPU's time (see the
targets). Rates move by tens of percent from run to run; the tables give the min–max of the runs beside each median.

**Latency.** A UDP ping-pong written in C, with one datagram in flight, from the client namespace to an echo server in
the backend namespace. *Direct* is plain routing through the balancer namespace; the added latency of a system is its
value minus the direct path's.

**ClientHello parsing, new flows, scale and the flood.** How these are measured is described in the notes under
their results.
`;

export interface MarkdownOptions {
  /** The chart's path relative to BENCHMARKS.md. */
  chartFile: string;
  /** The raw results' path relative to BENCHMARKS.md. */
  resultsFile: string;
}

// ---------------------------------------------------------------------------------------------------------------
// Markdown text

const CODE_SPAN = /(`[^`\n]*`)/;

/**
 * Scenario notes and error messages are prose that may hold `code`; outside code spans, `<` would start an HTML tag
 * and `&name;` an entity on GitHub, so those are escaped. Everything else is left as Markdown.
 */
export function mdText(s: string): string {
  return s
    .split(CODE_SPAN)
    .map((part, i) =>
      i % 2 === 1 ? part : part.replace(/&(?=#?[A-Za-z0-9]+;)/g, '&amp;').replace(/</g, '&lt;'),
    )
    .join('');
}

/** As mdText, and safe inside a table cell. */
export function mdCell(s: string): string {
  return mdText(s).replace(/\r?\n/g, ' ').replace(/\|/g, '\\|');
}

function table(header: string[], rows: string[][]): string[] {
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ];
}

function notes(list: readonly string[]): string[] {
  if (list.length === 0) return [];
  return ['', ...list.map((note) => `- ${mdText(note).replace(/\r?\n/g, '\n  ')}`)];
}

function plural(count: number, one: string, many = `${one}s`): string {
  return `${formatCount(count)} ${count === 1 ? one : many}`;
}

/** "1.2–1.4 Mpps", or one value when both ends read the same. */
function span(values: number[], fmt: (x: number) => string): string {
  const lo = fmt(Math.min(...values));
  const hi = fmt(Math.max(...values));
  if (lo === hi) return lo;
  const unit = (t: string): string => /\s(\S+)$/.exec(t)?.[1] ?? '';
  if (unit(lo) !== '' && unit(lo) === unit(hi)) return `${lo.slice(0, -unit(lo).length - 1)}–${hi}`;
  return `${lo}–${hi}`;
}

function andList(items: string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

function formatSeconds(s: number): string {
  return `${Number.isInteger(s) ? formatCount(s) : formatSig3(s)} s`;
}

// ---------------------------------------------------------------------------------------------------------------
// Forwarding grid

interface ForwardingGroup {
  payload: number;
  flows: number;
  bySystem: Map<string, ForwardingCell>;
}

function cellOk(c: ForwardingCell | undefined): c is ForwardingCell {
  return c !== undefined && c.error === undefined && Number.isFinite(c.pps.median);
}

function forwardingGroups(result: ForwardingResult): ForwardingGroup[] {
  const byKey = new Map<string, ForwardingGroup>();
  for (const c of result.cells) {
    const key = `${c.payload}/${c.flows}`;
    let g = byKey.get(key);
    if (!g) {
      g = { payload: c.payload, flows: c.flows, bySystem: new Map() };
      byKey.set(key, g);
    }
    if (!g.bySystem.has(c.system)) g.bySystem.set(c.system, c);
  }
  return [...byKey.values()].sort((a, b) => a.payload - b.payload || a.flows - b.flows);
}

/** This cell's rate as a multiple of the bare forwarder's in the same group. */
function vsBare(g: ForwardingGroup, c: ForwardingCell): number | undefined {
  const bare = g.bySystem.get('bare-xdp');
  if (!cellOk(bare) || !cellOk(c) || !(bare.pps.median > 0)) return undefined;
  return c.pps.median / bare.pps.median;
}

/** flowlb (XDP)'s rate as a multiple of this cell's: "flowlb is 4.1× nftables". */
function flowlbOver(g: ForwardingGroup, c: ForwardingCell): number | undefined {
  const flowlb = g.bySystem.get('flowlb-xdp');
  if (!cellOk(flowlb) || !cellOk(c) || !(c.pps.median > 0)) return undefined;
  return flowlb.pps.median / c.pps.median;
}

// ---------------------------------------------------------------------------------------------------------------
// Sections

function summary(run: BenchRun): string {
  const parts: string[] = [];

  const fwd = run.forwarding;
  if (fwd) {
    const groups = forwardingGroups(fwd);
    const smallest = Math.min(...groups.map((g) => g.payload));
    const headline = groups.filter((g) => g.payload === smallest && cellOk(g.bySystem.get('flowlb-xdp')));
    if (headline.length > 0) {
      const flowlb = headline.map((g) => g.bySystem.get('flowlb-xdp') as ForwardingCell);
      const flows = headline.map((g) => g.flows);
      const flowsText =
        flows.length === 1
          ? plural(flows[0] ?? 0, 'flow')
          : `from ${formatCount(Math.min(...flows))} to ${formatCount(Math.max(...flows))} flows`;
      let s =
        `With ${smallest}-byte payloads and ${flowsText}, flowlb's XDP path delivered ` +
        `${span(flowlb.map((c) => c.pps.median), formatPps)} to the backend`;
      const bare = headline.flatMap((g) => {
        const r = vsBare(g, g.bySystem.get('flowlb-xdp') as ForwardingCell);
        return r === undefined ? [] : [r];
      });
      if (bare.length > 0) s += `, ${span(bare, formatRatio)} the rate of a bare XDP forwarder that rewrites nothing`;
      const others = systemOrder(headline.flatMap((g) => [...g.bySystem.keys()])).filter(
        (sys) => sys !== 'bare-xdp' && sys !== 'flowlb-xdp',
      );
      const vs = others.flatMap((sys) => {
        const ratios = headline.flatMap((g) => {
          const c = g.bySystem.get(sys);
          const r = c ? flowlbOver(g, c) : undefined;
          return r === undefined ? [] : [r];
        });
        return ratios.length > 0 ? [`${span(ratios, formatRatio)} ${systemLabel(sys)}`] : [];
      });
      if (vs.length > 0) s += `; flowlb (XDP) is ${andList(vs)}`;
      parts.push(`${s}.`);
    }
  }

  const kc = run.kernelCost;
  if (kc) {
    const flowlb = kc.rows.filter((r) => r.program === 'flowlb' && Number.isFinite(r.nsPerPacket.median));
    const floor = kc.rows.find((r) => r.program === 'floor');
    if (flowlb.length > 0) {
      let s = `In the kernel, its XDP program costs ${span(
        flowlb.map((r) => r.nsPerPacket.median),
        formatNs,
      )} per packet with ${formatCount(kc.tableFlows)} other flows in the table`;
      if (floor && Number.isFinite(floor.nsPerPacket.median)) {
        s += `, against ${formatNs(floor.nsPerPacket.median)} for parsing the headers alone`;
      }
      parts.push(`${s}.`);
    }
  }

  const lat = run.latency?.rows.find((r) => r.system === 'flowlb-xdp' && r.error === undefined);
  if (lat) {
    parts.push(
      `It adds ${formatSignedUs(lat.addedP50Us).replace(/^\+/, '')} to the median round trip and ` +
        `${formatSignedUs(lat.addedP99Us).replace(/^\+/, '')} at p99.`,
    );
  }

  const fl = run.flood;
  if (fl && fl.rows.some((r) => r.error === undefined)) {
    const modes = [false, true].filter((hv) => fl.rows.some((r) => r.helloVerify === hv && r.error === undefined));
    const said = modes.map((hv) => {
      const held = highestHeld(fl.rows, hv);
      const what = held === null ? 'at none of the forged rates tried' : `up to ${formatCount(held)} forged whole and ${formatCount(held)} forged partial ClientHellos/s`;
      return `${what} ${hv ? 'with' : 'without'} helloVerify`;
    });
    parts.push(`Under a flood of forged DTLS clients, ≥ ${FLOOD_TARGET.successRate * 100} % of real handshakes completed ${andList(said)}.`);
  }

  const checked = run.targets.filter((t) => t.met !== null);
  if (run.targets.length > 0) {
    const met = checked.filter((t) => t.met === true).length;
    const missed = checked.filter((t) => t.met === false).map((t) => mdText(t.target));
    let s = `${formatCount(met)} of ${plural(checked.length, 'checked target')} ${met === 1 ? 'is' : 'are'} met`;
    if (missed.length > 0) s += `; not met: ${missed.join('; ')}`;
    const unchecked = run.targets.length - checked.length;
    if (unchecked > 0) s += `; ${plural(unchecked, 'target')} could not be checked`;
    parts.push(`${s}.`);
  }

  if (run.errors.length > 0) {
    const names = run.errors.map((e) => mdText(e.scenario));
    parts.push(`${names.length === 1 ? 'One scenario' : `${names.length} scenarios`} failed: ${names.join(', ')} (see below).`);
  }

  if (parts.length === 0) return 'This run produced no results.';
  return parts.join(' ');
}

function when(run: BenchRun): string {
  const start = new Date(run.startedAt);
  const end = new Date(run.finishedAt);
  if (Number.isNaN(start.getTime())) return mdText(run.startedAt);
  const text = `${start.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
  const minutes = (end.getTime() - start.getTime()) / 60_000;
  if (!Number.isFinite(minutes) || minutes < 0) return text;
  return `${text} (the run took ${minutes < 1 ? 'under a minute' : `${formatCount(minutes)} min`})`;
}

function machineLines(run: BenchRun): string[] {
  const m: Machine = run.machine;
  const settings = [`${plural(run.settings.runs, 'run')} per measurement`];
  if (run.settings.quick) settings.push('quick run');
  if (run.settings.only && run.settings.only.length > 0) settings.push(`only ${run.settings.only.join(', ')}`);
  return [
    `- **Machine:** ${mdText(m.cpuModel)}, ${plural(m.cpus, 'CPU')}, ${formatSig3(m.memoryGiB)} GiB memory; ` +
      `Linux ${mdText(m.kernel)}; Node ${mdText(m.node)}`,
    `- **Date:** ${when(run)}`,
    `- **Commit:** ${m.commit ? `\`${m.commit.replace(/`/g, '')}\`` : 'not recorded (not a git checkout)'}`,
    `- **Settings:** ${mdText(settings.join(', '))}`,
  ];
}

function metMark(t: TargetCheck): string {
  if (t.met === true) return '✅';
  if (t.met === false) return '❌';
  return '—';
}

function targetsSection(targets: readonly TargetCheck[]): string[] {
  const out = ['## Targets', ''];
  if (targets.length === 0) return [...out, 'No targets were checked in this run.'];
  return [
    ...out,
    ...table(
      ['target', 'measured', 'met', 'note'],
      targets.map((t) => [mdCell(t.target), mdCell(t.measured), metMark(t), t.note ? mdCell(t.note) : '']),
    ),
  ];
}

function counts(record: Record<string, number> | undefined): string {
  if (!record) return '—';
  const entries = Object.entries(record);
  if (entries.length === 0) return '—';
  return entries.map(([k, v]) => `${mdCell(k)} ${formatCount(v)}`).join(', ');
}

function kernelCostSection(kc: KernelCostResult, runs: number): string[] {
  const floor = kc.rows.find((r) => r.program === 'floor' && Number.isFinite(r.nsPerPacket.median));
  const rows = kc.rows.map((r) => {
    const over =
      floor && r !== floor && Number.isFinite(r.nsPerPacket.median)
        ? formatNs(r.nsPerPacket.median - floor.nsPerPacket.median).replace(/^(?!-)/, '+')
        : '—';
    return [
      mdCell(r.name),
      formatMeasured(r.nsPerPacket, 'ns', 1),
      over,
      formatCount(r.packets),
      counts(r.verdicts),
      counts(r.counters),
    ];
  });
  const out = [
    '## Kernel cost per packet',
    '',
    `Time per packet of flowlb's XDP program under \`BPF_PROG_TEST_RUN\`, with ${formatCount(kc.tableFlows)} other ` +
      `flows in the table; median of ${plural(runs, 'run')} (min–max in brackets). *Over floor* is the time above ` +
      'a program that only parses the headers.',
    '',
    ...table(['row', 'ns per packet', 'over floor', 'packets', 'verdicts', 'flowlb counters'], rows),
  ];
  const nv = kc.naive;
  if (nv.repeat > 0) {
    let s =
      `For comparison, a plain \`repeat\` of ${formatCount(nv.repeat)} on one hit frame reports ` +
      `${formatNs(nv.nsPerPacket)} per packet, but ran ${plural(nv.hits, 'hit')} and ${plural(nv.misses, 'miss', 'misses')}`;
    if (nv.misses > 0) s += ': every repetition after the first sees the frame the first one rewrote';
    out.push('', `${s}.`);
  }
  return [...out, ...notes(kc.notes)];
}

function forwardingSection(fwd: ForwardingResult, runs: number, chartFile: string): string[] {
  const groups = forwardingGroups(fwd);
  const rows: string[][] = [];
  for (const g of groups) {
    systemOrder(g.bySystem.keys()).forEach((sys, i) => {
      const c = g.bySystem.get(sys) as ForwardingCell;
      const label = i === 0 ? `**${caseLabel(g.payload, g.flows)}**` : '';
      if (c.error !== undefined || !Number.isFinite(c.pps.median)) {
        rows.push([label, mdCell(systemLabel(sys)), `n/a: ${mdCell(c.error ?? 'no result')}`, '—', '—', '—', '—']);
        return;
      }
      const bare = sys === 'bare-xdp' ? undefined : vsBare(g, c);
      const over = sys === 'flowlb-xdp' ? undefined : flowlbOver(g, c);
      rows.push([
        label,
        mdCell(systemLabel(sys)),
        formatPpsMeasured(c.pps),
        formatPps(c.offeredPps.median),
        formatBps(c.payloadBps),
        bare === undefined ? '—' : formatRatio(bare),
        over === undefined ? '—' : formatRatio(over),
      ]);
    });
  }
  return [
    '## Forwarding rate',
    '',
    `UDP datagrams per second that reached the backend, median of ${plural(runs, 'run')} of ${formatSeconds(fwd.runSeconds)} ` +
      'each (min–max in brackets), next to what the generator offered. *vs bare XDP* is the rate as a multiple of the ' +
      "bare forwarder's; *flowlb (XDP) is* is flowlb's XDP rate as a multiple of the row's, so 4.1× on the nftables " +
      'row reads "flowlb is 4.1× nftables". Ratios compare medians with the same payload and flows.',
    '',
    `![Forwarding rate per system, payload and number of flows](${chartFile})`,
    '',
    ...table(
      ['payload · flows', 'system', 'delivered', 'offered', 'payload rate', 'vs bare XDP', 'flowlb (XDP) is'],
      rows,
    ),
    ...notes(fwd.notes),
  ];
}

function latencyLabel(r: LatencyRow): string {
  return r.system === 'direct' ? 'direct (routing only)' : systemLabel(r.system);
}

function latencySection(lat: LatencyResult, runs: number): string[] {
  const ordered = [
    ...lat.rows.filter((r) => r.system === 'direct'),
    ...systemOrder(lat.rows.map((r) => r.system).filter((s) => s !== 'direct')).flatMap((s) =>
      lat.rows.filter((r) => r.system === s),
    ),
  ];
  const rows = ordered.map((r) => {
    if (r.error !== undefined) return [mdCell(latencyLabel(r)), `n/a: ${mdCell(r.error)}`, '—', '—', '—', '—'];
    const direct = r.system === 'direct';
    return [
      mdCell(latencyLabel(r)),
      formatMeasured(r.p50Us, 'µs', 1),
      formatMeasured(r.p99Us, 'µs', 1),
      direct ? '—' : formatSignedUs(r.addedP50Us),
      direct ? '—' : formatSignedUs(r.addedP99Us),
      formatCount(r.samples),
    ];
  });
  return [
    '## Latency',
    '',
    `UDP round trips with one datagram of ${formatCount(lat.payload)} B in flight; percentiles per run, median of ` +
      `${plural(runs, 'run')} (min–max in brackets). *Added* is the system's median minus the direct path's.`,
    '',
    ...table(['path', 'p50', 'p99', 'added p50', 'added p99', 'samples'], rows),
    ...notes(lat.notes),
  ];
}

const PROTOCOL_LABELS: Record<string, string> = { dtls: 'DTLS', quic: 'QUIC' };

function helloParseSection(hp: HelloParseResult): string[] {
  const rows = hp.rows.map((r) => {
    const head = [mdCell(PROTOCOL_LABELS[r.protocol] ?? r.protocol), mdCell(r.hello), formatCount(r.datagrams), `${formatCount(r.bytes)} B`];
    if (r.error !== undefined || !Number.isFinite(r.hellosPerSec.median)) return [...head, `n/a: ${mdCell(r.error ?? 'no result')}`, '—', '—'];
    return [...head, formatMeasured(r.hellosPerSec, 'hellos/s'), `${formatSig3(1e6 / r.hellosPerSec.median)} µs`, mdCell(r.decision)];
  });
  return [
    '## ClientHello parsing',
    '',
    "New clients' ClientHellos read and routed by name per second of one core, by the DTLS and the QUIC SNI mapper " +
      'alone (no balancer, no sockets), for a hello in one datagram and one spread over two; median of the rounds ' +
      '(min–max in brackets).',
    '',
    ...table(['protocol', 'client hello', 'datagrams', 'bytes', 'hellos/s (one core)', 'per hello', 'decision'], rows),
    ...notes(hp.notes),
  ];
}

const MAPPER_LABELS: Record<string, string> = { 'dtls-sni': 'DTLS SNI', 'quic-sni': 'QUIC SNI (byProtocol)' };

function newFlowsSection(nf: NewFlowsResult, runs: number): string[] {
  const mapperLabel = (m: string): string => MAPPER_LABELS[m] ?? m;
  const datapathLabel = (d: string, workers = 1): string => `${d === 'xdp' ? 'XDP' : d}${workers > 1 ? `, ${workers} workers` : ''}`;
  const rows = nf.rows.map((r) => {
    const head = [mdCell(mapperLabel(r.mapper)), mdCell(datapathLabel(r.datapath, r.workers)), formatCount(r.flows)];
    if (r.error !== undefined) return [...head, `n/a: ${mdCell(r.error)}`, '—', '—', '—', '—', '—', '—', '—', '—'];
    const count = (n: number | null | undefined): string => (n === undefined || n === null ? '—' : formatCount(n));
    return [
      ...head,
      formatMeasured(r.flowsPerSec, 'flows/s'),
      formatMeasured(r.installP50Ms, 'ms'),
      formatMeasured(r.installP99Ms, 'ms'),
      formatCount(r.refused),
      count(r.offered),
      count(r.reachedVip),
      count(r.socketDrops),
      r.flowsPerCpuSec ? formatMeasured(r.flowsPerCpuSec, 'flows/CPU-s') : '—',
      r.limitedBy ? mdCell(r.limitedBy) : '—',
    ];
  });
  return [
    '## New flows',
    '',
    `Flows set up through the slow path per second, and the time from the balancer receiving a flow's first ` +
      `datagram to the flow being installed; median of ${plural(runs, 'run')} (min–max in brackets). Where the ` +
      'new clients went: offered by the generator, read from the VIP socket, dropped by the kernel at the full ' +
      "socket; flows made per second of the balancer's CPU time, which carries across machines; and the stage that " +
      'held the rate down.',
    '',
    ...table(
      ['mapper', 'datapath', 'flows', 'new flows', 'install p50', 'install p99', 'refused', 'offered', 'at VIP socket', 'socket drops', 'per CPU-second', 'limited by'],
      rows,
    ),
    ...notes(nf.notes),
  ];
}

function scaleSection(sc: ScaleResult, runs: number): string[] {
  const rows = sc.rows.map((r) => {
    if (r.error !== undefined) return [formatCount(r.flows), `n/a: ${mdCell(r.error)}`, '—', '—', '—', '—', '—', '—'];
    return [
      formatCount(r.flows),
      formatMeasured(r.installSeconds, 's'),
      `${formatSig3(r.heapUsedMiB)} MiB`,
      `${formatSig3(r.rssMiB)} MiB`,
      formatMeasured(r.sweepWallMs, 'ms'),
      formatMeasured(r.sweepCpuMs, 'ms'),
      formatMeasured(r.sweepMaxStallMs, 'ms'),
      r.forwardingPps ? formatPpsMeasured(r.forwardingPps) : '—',
    ];
  });
  return [
    '## Scale',
    '',
    `Installing many flows, the control plane's memory with them installed, and one cleaner sweep over the whole ` +
      `table; median of ${plural(runs, 'run')} (min–max in brackets).`,
    '',
    ...table(
      ['flows', 'install', 'heap used', 'RSS', 'sweep (wall)', 'sweep (CPU)', 'longest stall', 'forwarding (64 B)'],
      rows,
    ),
    ...notes(sc.notes),
  ];
}

function floodSection(fl: FloodResult): string[] {
  const hv = (r: FloodRow): string => (r.helloVerify ? 'on' : 'off');
  const rate = (r: FloodRow): string => `${formatCount(r.askedCompletePerSec)} + ${formatCount(r.askedPartialPerSec)}`;
  const mib = (x: number): string => `${formatSig3(x)} MiB`;
  const pct = (x: number): string => `${formatSig3(x * 100)} %`;
  const ordered = [...fl.rows].sort((a, b) => Number(a.helloVerify) - Number(b.helloVerify) || a.askedCompletePerSec - b.askedCompletePerSec);
  const main = ordered.map((r) => {
    const head = [hv(r), rate(r)];
    if (r.error !== undefined) return [...head, `n/a: ${mdCell(r.error)}`, '—', '—', '—', '—', '—', '—', '—', '—', '—', '—', '—'];
    return [
      ...head,
      `${formatCount(r.offeredCompletePerSec)} + ${formatCount(r.offeredPartialPerSec)}`,
      `${formatCount(r.successes)} / ${formatCount(r.attempts)}`,
      r.attempts > 0 ? pct(r.successRate) : '—',
      r.successes > 0 ? `${formatCount(r.handshakeP50Ms)} · ${formatCount(r.handshakeP99Ms)} ms` : '—',
      formatCount(r.retransmitted),
      r.successes < r.attempts ? `${formatCount(r.failedWithout.flow)} · ${formatCount(r.failedWithout.confirmation)}` : '—',
      formatCount(r.snatPortsMax),
      formatCount(r.pendingClientsMax),
      `${mib(r.rssMaxMiB)} (${mib(r.rssBeforeMiB)} before)`,
      `${mib(r.heapUsedMaxMiB)} (${mib(r.heapUsedBeforeMiB)} before)`,
      `${pct(r.balancerCpuBusy)} (${pct(r.balancerBusy)} process)`,
      mdCell(r.limitedBy),
    ];
  });
  const counters = ordered
    .filter((r) => r.error === undefined)
    .map((r) => [
      hv(r),
      rate(r),
      formatCount(r.vipSocketIn),
      r.socketDrops === null ? '—' : formatCount(r.socketDrops),
      r.whileMeasured.socketDrops === null
        ? '—'
        : `${formatCount(r.whileMeasured.socketDrops)} of ${formatCount(r.whileMeasured.vipSocketIn + r.whileMeasured.socketDrops)}`,
      formatCount(r.flowsCreated),
      formatCount(r.flowsRefused),
      `${formatCount(r.unconfirmedExpired)} (${formatCount(r.evictedUnderPressure)})`,
      formatCount(r.repliesSent),
      formatCount(r.kernelReplies),
      formatCount(r.rateLimited),
      formatCount(r.forgedAtBackend),
      counts(r.drops),
    ]);
  return [
    '## Flood of forged DTLS clients',
    '',
    'Real `openssl s_client -dtls1_2` handshakes through `flowlb run` while forged first datagrams arrive from random ' +
      'sources: whole ClientHellos and first fragments of one, the same rate of each (asked, and what the generator sent). ' +
      '*ok* is the share of real handshakes that completed in time; SNAT ports, pending clients and memory are the largest ' +
      "values the balancer's /metrics showed during the flood; *balancer CPU* is how busy the CPU it is pinned to was, and " +
      "its process's own share of it. A failed " +
      "handshake's flow was watched in the balancer's flow table while it ran: *no flow*, none of its hellos got one (lost " +
      'at the VIP socket, pushed out of the pending table or refused); *unconfirmed*, it got a flow but never spoke on it again.',
    '',
    ...table(
      ['helloVerify', 'forged/s', 'sent/s', 'real handshakes', 'ok', 'p50 · p99', 'retransmitted', 'failed: no flow · unconfirmed', 'SNAT ports', 'pending', 'RSS', 'heap used', 'balancer CPU', 'limited by'],
      main,
    ),
    ...(counters.length > 0
      ? [
          '',
          'What the counters did during each flood: datagrams read from the VIP socket and dropped at it by the kernel (over the ' +
            'whole flood, and from the start of the real clients on, out of all that arrived then), new flows ' +
            'made and refused, unconfirmed flows expired (of them, early under SNAT pressure), HelloVerifyRequests sent by the mapper and answered in the XDP program, new ' +
            "clients' datagrams the XDP rate limits dropped, forged hellos that reached the backend, and the balancer's drops by reason.",
          '',
          ...table(
            ['helloVerify', 'forged/s', 'at VIP socket', 'socket drops', 'of them while real clients ran', 'flows made', 'refused', 'unconfirmed expired', 'replies', 'answered in XDP', 'rate-limited', 'forged at backend', 'drops'],
            counters,
          ),
        ]
      : []),
    ...notes(fl.notes),
  ];
}

function reproduceSection(): string[] {
  return [
    '## How to reproduce',
    '',
    'As root, from a clone of this repository:',
    '',
    '```sh',
    'scripts/quickstart.sh setup   # install what is missing and build',
    'pnpm bench                    # every scenario; writes bench/results/ and this file',
    '```',
    '',
    '`pnpm bench -- --quick` is a smoke run with smaller sizes and shorter runs; its numbers are not for comparison. ' +
      '`--only kernel-cost,forwarding,latency,hello-parse,new-flows,scale,flood` runs a subset of the scenarios and `--runs N` sets the ' +
      'number of measured runs per cell.',
  ];
}

/** BENCHMARKS.md for one run; links are taken as given, relative to where the file is written. */
export function renderMarkdown(run: BenchRun, options: { chartFile: string; resultsFile: string }): string {
  const runs = run.settings.runs;
  const out: string[] = ['# flowlb benchmarks', ''];
  if (run.settings.quick) {
    out.push(
      '> **Quick run.** Smaller sizes and shorter runs, for trying the bench out; do not compare these numbers.',
      '',
    );
  }
  out.push(summary(run), '', ...machineLines(run), '', ...targetsSection(run.targets));

  if (run.kernelCost) out.push('', ...kernelCostSection(run.kernelCost, runs));
  if (run.forwarding) out.push('', ...forwardingSection(run.forwarding, runs, options.chartFile));
  if (run.latency) out.push('', ...latencySection(run.latency, runs));
  if (run.helloParse) out.push('', ...helloParseSection(run.helloParse));
  if (run.newFlows) out.push('', ...newFlowsSection(run.newFlows, runs));
  if (run.scale) out.push('', ...scaleSection(run.scale, runs));
  if (run.flood) out.push('', ...floodSection(run.flood));

  if (run.errors.length > 0) {
    out.push(
      '',
      '## Scenarios that failed',
      '',
      ...run.errors.map((e) => `- **${mdText(e.scenario)}**: ${mdText(e.message).replace(/\r?\n/g, '\n  ')}`),
    );
  }

  out.push(
    '',
    '## Method',
    '',
    METHOD_MARKDOWN.trimEnd(),
    '',
    ...reproduceSection(),
    '',
    '## Raw results',
    '',
    `Every number above, with each run's values: [${options.resultsFile}](${options.resultsFile}).`,
  );
  return out.join('\n') + '\n';
}
