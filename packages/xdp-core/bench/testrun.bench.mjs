// Per-packet cost of the flowlb XDP program, measured by the kernel with BPF_PROG_TEST_RUN.
//
// BPF_PROG_TEST_RUN with `repeat` runs the program again and again on the SAME buffer, which keeps whatever the
// previous run wrote. A forward hit rewrites the datagram, so with a plain `repeat: 1_000_000` only the first run is a
// hit and the rest are misses on the rewritten tuple. Here every hit row uses two entries that rewrite the datagram
// into each other, so each run hits; TTL still drops by one per hit, so a batch is at most 254 runs (TTL 255 → 1)
// and a hit row is many batches. Rows whose frame the program leaves alone run in a few large batches. The counters
// are checked after each row: every run must have taken the path its row names, or the bench fails instead of
// printing a number for the wrong path.
//
// On this kernel a call with repeat > 1 takes a few milliseconds outside the measured loop however small the batch
// (a call with repeat 1 takes microseconds), which is what bounds the number of hit batches in the time budget.
//
// Needs root (network namespace, BPF). Run: pnpm --filter @flowlb/xdp-core bench
// FLOWLB_BENCH_PACKETS sets the packets per row (default 250,000).

import { endianness } from 'node:os';
import { performance } from 'node:perf_hooks';
import { XDP_PASS, XDP_REDIRECT, XDP_TX, XdpForwarder, ifIndex, withNetns } from '../dist/index.js';
import { Topology, buildArpFrame, buildUdpFrame, canRunPrivileged, parseIpv4 } from '@flowlb/testkit';

const PACKETS = Number(process.env.FLOWLB_BENCH_PACKETS ?? 250_000);
/** Runs per test-run call of a hit row: every one of them a hit when the datagram starts with TTL 255. */
const HIT_BATCH = 254;
const ROUNDS = 5;
/**
 * Rows whose frame stays as it is could run a round in one call, but the kernel reports whole nanoseconds per call;
 * ten calls a round give the mean a decimal.
 */
const UNTOUCHED_BATCH = Math.max(1, Math.ceil(PACKETS / ROUNDS / 10));
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

const ep = (addr, port) => ({ addr, port });

function flowKey(t) {
  const b = Buffer.alloc(16);
  parseIpv4(t.dst.addr).copy(b, 0);
  parseIpv4(t.src.addr).copy(b, 4);
  b.writeUInt16BE(t.dst.port, 8);
  b.writeUInt16BE(t.src.port, 10);
  return b;
}

function flowVal(to, flags) {
  const b = Buffer.alloc(24);
  parseIpv4(to.dst.addr).copy(b, 0);
  parseIpv4(to.src.addr).copy(b, 4);
  b.writeUInt16BE(to.dst.port, 8);
  b.writeUInt16BE(to.src.port, 10);
  // flags and last_used are in host byte order.
  if (endianness() === 'LE') {
    b.writeUInt32LE(flags, 12);
    b.writeBigUInt64LE(process.hrtime.bigint(), 16);
  } else {
    b.writeUInt32BE(flags, 12);
    b.writeBigUInt64BE(process.hrtime.bigint(), 16);
  }
  return b;
}

/** Two entries that rewrite `a` into `b` and back, so a repeated run keeps hitting. */
function cycle(a, b, flags) {
  return [
    [flowKey(a), flowVal(b, flags)],
    [flowKey(b), flowVal(a, flags)],
  ];
}

function udp(t, srcMac, dstMac, ttl = 255) {
  return buildUdpFrame({
    eth: { src: srcMac, dst: dstMac },
    ip: { src: t.src.addr, dst: t.dst.addr, ttl },
    udp: { srcPort: t.src.port, dstPort: t.dst.port },
    payload: Buffer.alloc(64, 0x42), // a small DTLS-record-sized datagram
  });
}

// Tuples of the hit rows; each is rewritten into its partner by the entries of its row, and both partners of a row
// leave by the same interface, so every run of a row ends in the same verdict.
const txA = { src: ep(CLIENT.addr, 5001), dst: ep(LAN_PEER.addr, 5000) };
const txB = { src: ep(LAN.addr, 40001), dst: ep(CLIENT.addr, 5001) };
const rdA = { src: ep(CLIENT.addr, 5002), dst: ep(SRV_PEER.addr, 6000) };
const rdB = { src: ep(SRV.addr, 40002), dst: ep(SRV_PEER.addr, 6001) };
const revA = { src: ep(LAN_PEER.addr, 5000), dst: ep(CLIENT.addr, 5003) };
const revB = { src: ep(LAN.addr, 4433), dst: ep(LAN_PEER.addr, 5000) };

const ROWS = [
  {
    name: 'forward hit, XDP_TX',
    entries: cycle(txA, txB, 0),
    frame: udp(txA, CLIENT.mac, LAN.mac),
    verdicts: [XDP_TX],
    counter: 'fwdHit',
    batch: HIT_BATCH,
  },
  {
    name: 'forward hit, redirect',
    entries: cycle(rdA, rdB, 0),
    frame: udp(rdA, CLIENT.mac, LAN.mac),
    verdicts: [XDP_REDIRECT],
    counter: 'fwdHit',
    batch: HIT_BATCH,
  },
  {
    name: 'reverse hit, XDP_TX',
    entries: cycle(revA, revB, F_REVERSE),
    frame: udp(revA, LAN_PEER.mac, LAN.mac),
    verdicts: [XDP_TX],
    counter: 'revHit',
    batch: HIT_BATCH,
  },
  {
    name: 'miss',
    entries: [],
    frame: udp({ src: ep(CLIENT.addr, 5999), dst: VIP }, CLIENT.mac, LAN.mac),
    verdicts: [XDP_PASS],
    counter: 'miss',
    batch: UNTOUCHED_BATCH,
  },
  {
    name: 'not IPv4/UDP (ARP): floor',
    entries: [],
    frame: buildArpFrame({ senderMac: CLIENT.mac, senderIp: CLIENT.addr, targetIp: VIP.addr, minFrame: true }),
    verdicts: [XDP_PASS],
    counter: 'notIpv4Udp',
    batch: UNTOUCHED_BATCH,
  },
];

function fillerEntries(n) {
  const keys = [];
  const values = [];
  for (let i = 0; i < n; i++) {
    const t = { src: ep(`172.16.${(i >> 8) & 0xff}.${i & 0xff}`, 10000 + (i % 50000)), dst: VIP };
    keys.push(flowKey(t));
    values.push(flowVal({ src: ep(SRV.addr, 20000 + (i % 40000)), dst: ep(SRV_PEER.addr, 6000) }, 0));
  }
  return { keys, values };
}

async function setUp() {
  const topo = new Topology({ prefix: 'xdpbench' });
  try {
    const ns = await topo.addNamespace('bench');
    await topo.addVethPair(ns, LAN.ifname, ns, 'lan0p', { addrA: `${LAN.addr}/24`, macA: LAN.mac });
    await topo.addVethPair(ns, SRV.ifname, ns, 'srv0p', { addrA: `${SRV.addr}/24`, macA: SRV.mac });
    await topo.addNeighbor(ns, LAN.ifname, CLIENT.addr, CLIENT.mac);
    await topo.addNeighbor(ns, LAN.ifname, LAN_PEER.addr, LAN_PEER.mac);
    await topo.addNeighbor(ns, SRV.ifname, SRV_PEER.addr, SRV_PEER.mac);
    await topo.sysctl(ns, { 'net.ipv4.ip_forward': 1 });
    return { topo, ns };
  } catch (err) {
    await topo.destroy();
    throw err;
  }
}

function counterDelta(before, after) {
  const d = {};
  for (const k of Object.keys(after)) d[k] = after[k] - before[k];
  return d;
}

/** Runs about `packets` packets of a row in its batches; returns the kernel's mean ns per packet. */
function measure(fwd, ingress, row, packets) {
  const calls = Math.max(1, Math.round(packets / row.batch));
  let weighted = 0;
  let runs = 0;
  for (let i = 0; i < calls; i++) {
    const r = fwd.program.testRun({ data: row.frame, ingressIfindex: ingress, repeat: row.batch });
    if (!row.verdicts.includes(r.retval))
      throw new Error(`${row.name}: verdict ${r.retval}, expected one of ${row.verdicts}`);
    weighted += r.durationNs * row.batch;
    runs += row.batch;
  }
  return { nsPerPacket: weighted / runs, runs };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main() {
  const check = canRunPrivileged();
  if (!check.ok) {
    console.error(`testrun bench needs root networking and BPF: ${check.reason}`);
    process.exitCode = 1;
    return;
  }
  const started = performance.now();
  const { topo, ns } = await setUp();
  const fwd = await XdpForwarder.load({ flowsMaxEntries: FILLER_FLOWS * 2 });
  try {
    const filler = fillerEntries(FILLER_FLOWS);
    fwd.flows.updateBatch(filler.keys, filler.values);

    const results = [];
    for (const row of ROWS) {
      for (const [k, v] of row.entries) fwd.flows.update(k, v);
      const ingress = withNetns(ns, () => ifIndex(LAN.ifname));
      const rounds = withNetns(ns, () => {
        measure(fwd, ingress, row, WARMUP_CALLS * HIT_BATCH);
        const before = fwd.stats();
        const out = [];
        let runs = 0;
        for (let i = 0; i < ROUNDS; i++) {
          const m = measure(fwd, ingress, row, PACKETS / ROUNDS);
          out.push(m.nsPerPacket);
          runs += m.runs;
        }
        const delta = counterDelta(before, fwd.stats());
        const wrong = Object.entries(delta).filter(([k, n]) => (k === row.counter ? n !== runs : n !== 0));
        if (wrong.length > 0) {
          throw new Error(`${row.name}: ${runs} runs but counters moved ${JSON.stringify(delta)}`);
        }
        return out;
      });
      for (const [k] of row.entries) fwd.flows.delete(k);
      results.push({ row, ns: median(rounds), min: Math.min(...rounds), max: Math.max(...rounds) });
    }

    // The naive measurement, to show what it really measures.
    const naive = withNetns(ns, () => {
      const tuple = { src: ep(CLIENT.addr, 5001), dst: VIP };
      const key = flowKey(tuple);
      fwd.flows.update(key, flowVal({ src: ep(LAN.addr, 40001), dst: ep(LAN_PEER.addr, 5000) }, 0));
      const before = fwd.stats();
      const r = fwd.program.testRun({
        data: udp(tuple, CLIENT.mac, LAN.mac, 64),
        ingressIfindex: ifIndex(LAN.ifname),
        repeat: 1_000_000,
      });
      const d = counterDelta(before, fwd.stats());
      fwd.flows.delete(key);
      return { ns: r.durationNs, fwdHit: d.fwdHit, miss: d.miss };
    });

    const miss = results.find((r) => r.row.counter === 'miss');
    const table = [
      ['path', 'ns/packet', '(min–max)', 'Mpps', 'vs miss'],
      ...results.map((r) => [
        r.row.name,
        r.ns.toFixed(1),
        `${r.min.toFixed(1)}–${r.max.toFixed(1)}`,
        (1000 / r.ns).toFixed(1),
        `${(r.ns / miss.ns).toFixed(2)}x`,
      ]),
    ];
    const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
    const format = (row) =>
      row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
    const misses = naive.miss.toLocaleString('en');
    const lines = [
      `flowlb XDP program, BPF_PROG_TEST_RUN: ${PACKETS.toLocaleString('en')} packets per row (hits in batches of ` +
        `${HIT_BATCH}), median of ${ROUNDS} rounds, ${FILLER_FLOWS.toLocaleString('en')} other flows in the table`,
      '',
      format(table[0]),
      widths.map((n) => '-'.repeat(n)).join('  '),
      ...table.slice(1).map(format),
      '',
      'The kernel reports whole nanoseconds per call (rounded down): hit rows may read up to 1 ns low.',
      `A single call with repeat 1,000,000 on a forward-hit frame reports ${naive.ns} ns/packet, but the counters ` +
        `show ${naive.fwdHit} hit and ${misses} misses: after the first run the frame is rewritten.`,
      `Total time ${((performance.now() - started) / 1000).toFixed(1)} s.`,
    ];
    console.log(lines.join('\n'));
  } finally {
    fwd.close();
    const report = await topo.destroy();
    if (report.errors.length > 0) console.error(`cleanup: ${report.errors.join('; ')}`);
  }
}

await main();
