/**
 * Per-packet cost of the flowlb XDP program, as the kernel measures it with BPF_PROG_TEST_RUN, next to the floor:
 * a program that parses Ethernet/IPv4/UDP with the same helpers and bounces the frame.
 *
 * With `repeat` the kernel runs the program again and again on the SAME buffer, which keeps what the previous run
 * wrote: with a plain `repeat: 1_000_000` on a forward hit only the first run is a hit and the rest are misses on
 * the rewritten tuple. Every hit row here installs two entries that rewrite the datagram into each other, so each
 * run hits; TTL still drops by one per hit, so a call is at most 254 runs (TTL 255 → 1) and a hit row is many
 * calls. flowlb's counters are checked after each row: every run must have taken the path its row names, or the
 * scenario fails rather than print a number for the wrong path.
 */
import { encodeKey, encodeValue } from '@flowlb/flow-table';
import { Topology, buildArpFrame, buildUdpFrame } from '@flowlb/testkit';
import {
  STAT_NAMES,
  XDP_PASS,
  XDP_REDIRECT,
  XDP_TX,
  XdpForwarder,
  ifIndex,
  withNetns,
  type Program,
  type XdpStats,
} from '@flowlb/xdp-core';
import { BenchPrograms } from '../bench-object.js';
import type { BenchContext } from '../context.js';
import { uncachedRowName, type KernelCostResult, type KernelCostRow } from '../results.js';
import { measured } from '../stats.js';

const VERDICT_NAMES: Record<number, string> = { 0: 'XDP_ABORTED', 1: 'XDP_DROP', 2: 'XDP_PASS', 3: 'XDP_TX', 4: 'XDP_REDIRECT' };
/** Runs per call of a hit row: every one of them a hit when the datagram starts with TTL 255. */
const HIT_BATCH = 254;
/** Rows whose frame stays as it is run in calls this large (the kernel reports whole ns per call). */
const UNTOUCHED_BATCH = 100_000;
const WARMUP_CALLS = 20;
/** Background entries, so the hash map is not a toy. */
const FILLER_FLOWS = 65_536;
const F_REVERSE = 1;

const LAN = { ifname: 'lan0', mac: '02:00:00:00:00:01', addr: '10.0.0.1' };
const SRV = { ifname: 'srv0', mac: '02:00:00:00:01:01', addr: '10.1.0.1' };
const CLIENT = { addr: '10.0.0.10', mac: '02:00:00:0a:00:0a' };
const LAN_PEER = { addr: '10.0.0.20', mac: '02:00:00:0a:00:14' };
const SRV_PEER = { addr: '10.1.0.20', mac: '02:00:00:0b:00:14' };
const VIP = { addr: LAN.addr, port: 4433 };

interface Ep {
  addr: string;
  port: number;
}
interface Tuple {
  src: Ep;
  dst: Ep;
}
const ep = (addr: string, port: number): Ep => ({ addr, port });

function key(t: Tuple): Buffer {
  return encodeKey({ dstAddr: t.dst.addr, srcAddr: t.src.addr, dstPort: t.dst.port, srcPort: t.src.port });
}

function value(to: Tuple, flags: number): Buffer {
  return encodeValue({
    dstAddr: to.dst.addr,
    srcAddr: to.src.addr,
    dstPort: to.dst.port,
    srcPort: to.src.port,
    flags,
    lastUsed: process.hrtime.bigint(),
  });
}

/** Two entries that rewrite `a` into `b` and back, so a repeated run keeps hitting. */
function cycle(a: Tuple, b: Tuple, flags: number): [Buffer, Buffer][] {
  return [
    [key(a), value(b, flags)],
    [key(b), value(a, flags)],
  ];
}

function udp(t: Tuple, srcMac: string, dstMac: string, ttl = 255): Buffer {
  return buildUdpFrame({
    eth: { src: srcMac, dst: dstMac },
    ip: { src: t.src.addr, dst: t.dst.addr, ttl },
    udp: { srcPort: t.src.port, dstPort: t.dst.port },
    payload: Buffer.alloc(64, 0x42), // a small DTLS-record-sized datagram
  });
}

interface Row {
  name: string;
  program: 'flowlb' | 'floor';
  entries: [Buffer, Buffer][];
  frame: Buffer;
  verdict: number;
  /** flowlb's counter every run of the row must move. */
  counter?: keyof XdpStats;
  batch: number;
  /** With the next-hop cache off, every hit does bpf_fib_lookup: the program as it was before the cache. */
  uncached?: boolean;
}

// Both partners of a hit row leave by the same interface, so every run of a row ends in the same verdict.
const txA = { src: ep(CLIENT.addr, 5001), dst: ep(LAN_PEER.addr, 5000) };
const txB = { src: ep(LAN.addr, 40001), dst: ep(CLIENT.addr, 5001) };
const rdA = { src: ep(CLIENT.addr, 5002), dst: ep(SRV_PEER.addr, 6000) };
const rdB = { src: ep(SRV.addr, 40002), dst: ep(SRV_PEER.addr, 6001) };
const revA = { src: ep(LAN_PEER.addr, 5000), dst: ep(CLIENT.addr, 5003) };
const revB = { src: ep(LAN.addr, 4433), dst: ep(LAN_PEER.addr, 5000) };

const HIT_ROWS: Row[] = [
  { name: 'flowlb forward hit (XDP_TX)', program: 'flowlb', entries: cycle(txA, txB, 0), frame: udp(txA, CLIENT.mac, LAN.mac), verdict: XDP_TX, counter: 'fwdHit', batch: HIT_BATCH },
  { name: 'flowlb forward hit (redirect)', program: 'flowlb', entries: cycle(rdA, rdB, 0), frame: udp(rdA, CLIENT.mac, LAN.mac), verdict: XDP_REDIRECT, counter: 'fwdHit', batch: HIT_BATCH },
  { name: 'flowlb reverse hit (XDP_TX)', program: 'flowlb', entries: cycle(revA, revB, F_REVERSE), frame: udp(revA, LAN_PEER.mac, LAN.mac), verdict: XDP_TX, counter: 'revHit', batch: HIT_BATCH },
];

const ROWS: Row[] = [
  ...HIT_ROWS,
  ...HIT_ROWS.map((r) => ({ ...r, name: uncachedRowName(r.name), uncached: true })),
  { name: 'flowlb miss (new client, XDP_PASS)', program: 'flowlb', entries: [], frame: udp({ src: ep(CLIENT.addr, 5999), dst: VIP }, CLIENT.mac, LAN.mac), verdict: XDP_PASS, counter: 'miss', batch: UNTOUCHED_BATCH },
  { name: 'flowlb not IPv4/UDP (ARP, XDP_PASS)', program: 'flowlb', entries: [], frame: buildArpFrame({ senderMac: CLIENT.mac, senderIp: CLIENT.addr, targetIp: VIP.addr, minFrame: true }), verdict: XDP_PASS, counter: 'notIpv4Udp', batch: UNTOUCHED_BATCH },
  { name: 'floor: parse Ethernet/IPv4/UDP + XDP_TX', program: 'floor', entries: [], frame: udp(txA, CLIENT.mac, LAN.mac), verdict: XDP_TX, batch: UNTOUCHED_BATCH },
];

function fillerEntries(n: number): { keys: Buffer[]; values: Buffer[] } {
  const keys: Buffer[] = [];
  const values: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    keys.push(key({ src: ep(`172.16.${(i >> 8) & 0xff}.${i & 0xff}`, 10000 + (i % 50000)), dst: VIP }));
    values.push(value({ src: ep(SRV.addr, 20000 + (i % 40000)), dst: ep(SRV_PEER.addr, 6000) }, 0));
  }
  return { keys, values };
}

function delta(before: XdpStats, after: XdpStats): Record<string, number> {
  const d: Record<string, number> = {};
  for (const k of STAT_NAMES) if (after[k] !== before[k]) d[k] = after[k] - before[k];
  return d;
}

/** Runs about `packets` packets of a row; returns the kernel's mean ns per packet and the runs made. */
function runRow(prog: Program, ingress: number, row: Row, packets: number): { ns: number; runs: number } {
  const calls = Math.max(1, Math.round(packets / row.batch));
  let weighted = 0;
  let runs = 0;
  for (let i = 0; i < calls; i++) {
    const r = prog.testRun({ data: row.frame, ingressIfindex: ingress, repeat: row.batch });
    if (r.retval !== row.verdict) {
      throw new Error(`${row.name}: verdict ${VERDICT_NAMES[r.retval] ?? r.retval}, expected ${VERDICT_NAMES[row.verdict]}`);
    }
    weighted += r.durationNs * row.batch;
    runs += row.batch;
  }
  return { ns: weighted / runs, runs };
}

export async function runKernelCost(ctx: BenchContext): Promise<KernelCostResult> {
  const packets = ctx.quick ? 100_000 : 1_000_000;
  const topo = new Topology({ prefix: 'fbk' });
  let fwd: XdpForwarder | undefined;
  let bench: BenchPrograms | undefined;
  try {
    const ns = await topo.addNamespace('cost');
    await topo.addVethPair(ns, LAN.ifname, ns, 'lan0p', { addrA: `${LAN.addr}/24`, macA: LAN.mac });
    await topo.addVethPair(ns, SRV.ifname, ns, 'srv0p', { addrA: `${SRV.addr}/24`, macA: SRV.mac });
    await topo.addNeighbor(ns, LAN.ifname, CLIENT.addr, CLIENT.mac);
    await topo.addNeighbor(ns, LAN.ifname, LAN_PEER.addr, LAN_PEER.mac);
    await topo.addNeighbor(ns, SRV.ifname, SRV_PEER.addr, SRV_PEER.mac);
    await topo.sysctl(ns, { 'net.ipv4.ip_forward': 1 });
    // FLOWLB_BENCH_OBJECT measures another build of the program (a variant being weighed) on the same rows.
    const objectPath = process.env.FLOWLB_BENCH_OBJECT;
    fwd = await XdpForwarder.load({ flowsMaxEntries: FILLER_FLOWS * 2, ...(objectPath ? { objectPath } : {}) });
    bench = await BenchPrograms.load();
    const filler = fillerEntries(FILLER_FLOWS);
    fwd.flows.updateBatch(filler.keys, filler.values);
    const ingress = withNetns(ns, () => {
      // As attach() would: frames may be redirected to both links.
      fwd!.addTxPort(LAN.ifname);
      fwd!.addTxPort(SRV.ifname);
      return ifIndex(LAN.ifname);
    });

    const rows: KernelCostRow[] = [];
    for (const row of ROWS) {
      const prog = row.program === 'flowlb' ? fwd.program : bench.program('floor_tx');
      for (const [k, v] of row.entries) fwd.flows.update(k, v);
      fwd.setNextHopCache(row.uncached !== true);
      const out = withNetns(ns, () => {
        runRow(prog, ingress, row, WARMUP_CALLS * row.batch);
        const before = fwd!.stats();
        const ns: number[] = [];
        let runs = 0;
        for (let i = 0; i < ctx.runs; i++) {
          const m = runRow(prog, ingress, row, packets);
          ns.push(m.ns);
          runs += m.runs;
        }
        const moved = delta(before, fwd!.stats());
        if (row.counter) {
          const wrong = Object.entries(moved).filter(([k, n]) => (k === row.counter ? n !== runs : n !== 0));
          if (wrong.length > 0 || moved[row.counter] !== runs) {
            throw new Error(`${row.name}: ${runs} runs but flowlb's counters moved ${JSON.stringify(moved)}`);
          }
        }
        return { ns, runs, moved };
      });
      for (const [k] of row.entries) fwd.flows.delete(k);
      const nsPerPacket = measured(out.ns);
      ctx.log(`  ${row.name.padEnd(42)} ${nsPerPacket.median.toFixed(1)} ns/packet`);
      rows.push({
        name: row.name,
        program: row.program,
        packets: out.runs,
        nsPerPacket,
        verdicts: { [VERDICT_NAMES[row.verdict] ?? String(row.verdict)]: out.runs },
        ...(row.program === 'flowlb' ? { counters: out.moved } : {}),
        ...(row.counter === 'fwdHit' || row.counter === 'revHit' ? { nextHop: row.uncached ? ('looked up' as const) : ('cached' as const) } : {}),
      });
    }

    fwd.setNextHopCache(true);
    const cachedVsLookedUp = HIT_ROWS.map((h) => {
      const cached = rows.find((r) => r.name === h.name)!.nsPerPacket.median;
      const lookedUp = rows.find((r) => r.name === uncachedRowName(h.name))!.nsPerPacket.median;
      return `${h.name}: ${cached.toFixed(1)} ns cached vs ${lookedUp.toFixed(1)} ns looked up (${(cached / lookedUp).toFixed(2)}×)`;
    });

    // The naive measurement, to show what it really measures.
    const naive = withNetns(ns, () => {
      const tuple = { src: ep(CLIENT.addr, 5001), dst: VIP };
      const k = key(tuple);
      fwd!.flows.update(k, value({ src: ep(LAN.addr, 40001), dst: ep(LAN_PEER.addr, 5000) }, 0));
      const before = fwd!.stats();
      const repeat = 1_000_000;
      const r = fwd!.program.testRun({ data: udp(tuple, CLIENT.mac, LAN.mac, 64), ingressIfindex: ingress, repeat });
      const d = delta(before, fwd!.stats());
      fwd!.flows.delete(k);
      return { repeat, nsPerPacket: r.durationNs, hits: d.fwdHit ?? 0, misses: d.miss ?? 0 };
    });

    return {
      rows,
      tableFlows: FILLER_FLOWS,
      naive,
      notes: [
        `${packets.toLocaleString('en')} packets per row and run (hit rows in calls of ${HIT_BATCH}, the others in calls of ${UNTOUCHED_BATCH.toLocaleString('en')}), median of ${ctx.runs} runs; each flowlb row's counters moved by exactly its runs, on the path the row names.`,
        'The kernel reports whole nanoseconds per call (rounded down): hit rows may read up to 1 ns low.',
        `A single call with repeat ${naive.repeat.toLocaleString('en')} on a forward-hit frame reports ${naive.nsPerPacket} ns/packet, but flowlb's counters show ${naive.hits} hit and ${naive.misses.toLocaleString('en')} misses: after the first run the frame is rewritten.`,
        'A hit reuses the next hop its CPU looked up for the same addresses (cached); the rows marked "route looked up" turn the cache off, so that every hit does bpf_fib_lookup (route and neighbour for the rewritten destination) as the program did before the cache.',
        ...cachedVsLookedUp,
      ],
    };
  } finally {
    bench?.close();
    fwd?.close();
    const report = await topo.destroy();
    if (report.errors.length > 0) ctx.log(`cleanup: ${report.errors.join('; ')}`);
  }
}
