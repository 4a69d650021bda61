/**
 * The per-target counters of flowlb's XDP program, run frame by frame with BPF_PROG_TEST_RUN against the routing
 * table of the FIB fixture. Each case says exactly which slot's counters move, and by how much: every slot of
 * `target_stats` is read before and after. Each frame is also run through the same flow without a slot, and the two
 * outputs must be the same bytes: the counters change nothing else.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { endianness, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  ETH_HLEN,
  IPPROTO_ICMP,
  IPPROTO_UDP,
  buildIpv4Frame,
  buildIpv4Packet,
  buildUdpFragments,
  buildUdpFrame,
  buildUdpSegment,
  describePrivileged,
  internetChecksum,
  type UdpFrameSpec,
} from '@flowlb/testkit';
import { BpfMap, XDP_PASS, XDP_REDIRECT, XDP_TX, XdpForwarder } from './index.js';
import { LINKS, NEIGHBOURS, SENDER_MAC, ROUTED, UNRESOLVED_HOST, createFibFixture, type FibFixture, type LinkName } from './testing/fib-fixture.js';
import {
  FLOWLB_F_CONFIRMED,
  FLOWLB_F_REPLIED,
  FLOWLB_F_REVERSE,
  encodeFlowKey,
  encodeFlowVal,
  flagsOf,
  reversed,
  type Endpoint,
  type FlowEntry,
  type Tuple,
} from './testing/flow-entry.js';

// Written down here rather than taken from @flowlb/flow-table: the program is checked against the header's numbers.
const TARGET_SHIFT = 16;
const TARGETS_MAX = 4095;
const slotFlags = (slot: number, flags = 0): number => (flags | (slot << TARGET_SHIFT)) >>> 0;

const ep = (addr: string, port: number): Endpoint => ({ addr, port });
const VIP = ep(LINKS.lan.addr, 4433);
const CLIENT = NEIGHBOURS.client.addr;
const LAN_BACKEND = ep(NEIGHBOURS.lanBackend.addr, 5000);
const SRV_BACKEND = ep(NEIGHBOURS.srvBackend.addr, 6000);

function forward(clientPort: number, snatAddr: string, target: Endpoint, slot: number): FlowEntry {
  return {
    match: { src: ep(CLIENT, clientPort), dst: VIP },
    to: { src: ep(snatAddr, 40000 + clientPort - 6000), dst: target },
    flags: slotFlags(slot),
    lastUsed: 1_000n,
  };
}

function reverseOf(f: FlowEntry): FlowEntry {
  return { match: reversed(f.to), to: reversed(f.match), flags: (f.flags | FLOWLB_F_REVERSE) >>> 0, lastUsed: 1_000n };
}

const sameLink = forward(6001, LINKS.lan.addr, LAN_BACKEND, 3);
const cross = forward(6002, LINKS.srv.addr, SRV_BACKEND, 5);
const FLOWS = {
  sameLink,
  sameLinkRev: reverseOf(sameLink),
  cross,
  crossRev: reverseOf(cross),
  noSlot: forward(6003, LINKS.lan.addr, LAN_BACKEND, 0),
  maxSlot: forward(6004, LINKS.srv.addr, SRV_BACKEND, TARGETS_MAX),
  noNeigh: forward(6005, LINKS.srv.addr, ep(UNRESOLVED_HOST, 6000), 7),
  noNeighGateway: forward(6006, LINKS.srv.addr, ep(ROUTED.viaUnresolvedGateway, 7000), 8),
  blackhole: forward(6007, LINKS.srv.addr, ep(ROUTED.blackhole, 7000), 9),
  // Other bits above the slot are the control plane's too, and do not change the slot.
  highBits: { ...forward(6008, LINKS.lan.addr, LAN_BACKEND, 11), flags: slotFlags(11, 0xf0000000) },
} satisfies Record<string, FlowEntry>;
type FlowName = keyof typeof FLOWS;


function frame(t: Tuple, ingress: LinkName, o: { ttl?: number; payload?: string | Buffer; options?: Buffer; padding?: Buffer } = {}): Buffer {
  const spec: UdpFrameSpec = {
    eth: { src: SENDER_MAC[ingress], dst: LINKS[ingress].mac },
    ip: { src: t.src.addr, dst: t.dst.addr, ttl: o.ttl ?? 64, id: 0x2b2b, ...(o.options ? { options: o.options } : {}) },
    udp: { srcPort: t.src.port, dstPort: t.dst.port },
    payload: o.payload ?? 'per-target counters',
  };
  if (o.padding) spec.padding = o.padding;
  return buildUdpFrame(spec);
}

/** The IPv4 total length the program counts as the packet's bytes. */
const ipLength = (f: Buffer): number => f.readUInt16BE(ETH_HLEN + 2);

interface Counts {
  fwdPackets: bigint;
  fwdBytes: bigint;
  revPackets: bigint;
  revBytes: bigint;
  icmpUnreachable: bigint;
}

interface Case {
  name: string;
  /** The flow the frame belongs to, if any: its slot is cleared for the run that the output is compared with. */
  flow?: FlowName;
  ingress: LinkName;
  input: Buffer;
  verdict: number;
  /** The one slot whose counters move, and how; absent: no slot moves. */
  counted?: { slot: number; direction: 'fwd' | 'rev' };
}

const SAME = FLOWS.sameLink.match;
const fragments = buildUdpFragments({
  eth: { src: NEIGHBOURS.client.mac, dst: LINKS.lan.mac },
  ip: { src: SAME.src.addr, dst: SAME.dst.addr, ttl: 64, id: 0x4343 },
  udp: { srcPort: SAME.src.port, dstPort: SAME.dst.port },
  payload: Buffer.alloc(64, 0x5a),
  fragmentSize: 32,
});

const CASES: Case[] = [
  { name: 'forward hit with slot 3 (XDP_TX)', flow: 'sameLink', ingress: 'lan', input: frame(SAME, 'lan'), verdict: XDP_TX, counted: { slot: 3, direction: 'fwd' } },
  {
    name: 'forward hit with slot 5 (redirect)',
    flow: 'cross',
    ingress: 'lan',
    input: frame(FLOWS.cross.match, 'lan', { payload: Buffer.alloc(300, 0x11) }),
    verdict: XDP_REDIRECT,
    counted: { slot: 5, direction: 'fwd' },
  },
  {
    name: 'reverse hit with slot 3 counts rev',
    flow: 'sameLinkRev',
    ingress: 'lan',
    input: frame(FLOWS.sameLinkRev.match, 'lan', { payload: 'reply' }),
    verdict: XDP_TX,
    counted: { slot: 3, direction: 'rev' },
  },
  {
    name: 'reverse hit with slot 5 from another link counts rev',
    flow: 'crossRev',
    ingress: 'srv',
    input: frame(FLOWS.crossRev.match, 'srv'),
    verdict: XDP_REDIRECT,
    counted: { slot: 5, direction: 'rev' },
  },
  { name: 'forward hit with slot 0 counts nothing', flow: 'noSlot', ingress: 'lan', input: frame(FLOWS.noSlot.match, 'lan'), verdict: XDP_TX },
  {
    name: 'forward hit with the highest slot',
    flow: 'maxSlot',
    ingress: 'lan',
    input: frame(FLOWS.maxSlot.match, 'lan'),
    verdict: XDP_REDIRECT,
    counted: { slot: TARGETS_MAX, direction: 'fwd' },
  },
  {
    name: 'flags with bits above the slot: the slot alone decides',
    flow: 'highBits',
    ingress: 'lan',
    input: frame(FLOWS.highBits.match, 'lan'),
    verdict: XDP_TX,
    counted: { slot: 11, direction: 'fwd' },
  },
  {
    name: 'IP options count in the bytes (IP total length, not UDP length)',
    flow: 'sameLink',
    ingress: 'lan',
    input: frame(SAME, 'lan', { options: Buffer.from([0x94, 0x04, 0x00, 0x00]) }),
    verdict: XDP_TX,
    counted: { slot: 3, direction: 'fwd' },
  },
  {
    name: 'Ethernet padding does not count in the bytes',
    flow: 'sameLink',
    ingress: 'lan',
    input: frame(SAME, 'lan', { payload: 'ab', padding: Buffer.alloc(14, 0xa5) }),
    verdict: XDP_TX,
    counted: { slot: 3, direction: 'fwd' },
  },
  {
    name: 'next hop without neighbour entry: passed up rewritten, counted',
    flow: 'noNeigh',
    ingress: 'lan',
    input: frame(FLOWS.noNeigh.match, 'lan'),
    verdict: XDP_PASS,
    counted: { slot: 7, direction: 'fwd' },
  },
  {
    name: 'gateway without neighbour entry: passed up rewritten, counted',
    flow: 'noNeighGateway',
    ingress: 'lan',
    input: frame(FLOWS.noNeighGateway.match, 'lan'),
    verdict: XDP_PASS,
    counted: { slot: 8, direction: 'fwd' },
  },
  { name: 'blackhole route: passed untouched, nothing counted', flow: 'blackhole', ingress: 'lan', input: frame(FLOWS.blackhole.match, 'lan'), verdict: XDP_PASS },
  // Answered with ICMP time exceeded: nothing reaches the backend.
  { name: 'TTL 1 of a flow with a slot counts nothing', flow: 'sameLink', ingress: 'lan', input: frame(SAME, 'lan', { ttl: 1 }), verdict: XDP_TX },
  { name: 'TTL 0 of a flow with a slot counts nothing', flow: 'sameLink', ingress: 'lan', input: frame(SAME, 'lan', { ttl: 0 }), verdict: XDP_TX },
  { name: 'first fragment of a flow with a slot counts its own IP bytes', flow: 'sameLink', ingress: 'lan', input: fragments[0]!, verdict: XDP_TX, counted: { slot: 3, direction: 'fwd' } },
  { name: 'miss counts nothing', ingress: 'lan', input: frame({ src: ep(CLIENT, 6999), dst: VIP }, 'lan'), verdict: XDP_PASS },
];

/**
 * An ICMP destination unreachable (or `type`) from `from` to the SNAT address of `quoted`, quoting the IP header of the
 * datagram `quoted` and `quoteUdpBytes` bytes of its UDP header, as RFC 792 has it (8).
 */
function icmpFrame(o: { from: string; quoted: Tuple; type?: number; code: number; quoteUdpBytes?: number; ingress?: LinkName }): Buffer {
  const udp = buildUdpSegment(o.quoted.src.addr, o.quoted.dst.addr, { srcPort: o.quoted.src.port, dstPort: o.quoted.dst.port }, Buffer.from('quoted datagram'));
  const inner = buildIpv4Packet({ src: o.quoted.src.addr, dst: o.quoted.dst.addr, protocol: IPPROTO_UDP, ttl: 63, totalLength: 20 + udp.length }, udp.subarray(0, o.quoteUdpBytes ?? 8));
  const icmp = Buffer.concat([Buffer.from([o.type ?? 3, o.code, 0, 0, 0, 0, 0, 0]), inner]);
  icmp.writeUInt16BE(internetChecksum(icmp), 2);
  const ingress = o.ingress ?? 'lan';
  return buildIpv4Frame({
    eth: { src: SENDER_MAC[ingress], dst: LINKS[ingress].mac },
    ip: { src: o.from, dst: o.quoted.src.addr, protocol: IPPROTO_ICMP, ttl: 64 },
    payload: icmp,
  });
}

interface IcmpCase {
  name: string;
  input: Buffer;
  /** The slot whose ICMP count goes up by one; absent: none moves. */
  counted?: number;
}

/** What the program sent to the backend on sameLink, and on cross: the datagrams an ICMP message quotes. */
const SAME_OUT = FLOWS.sameLink.to;
const CROSS_OUT = FLOWS.cross.to;
const ICMP_CASES: IcmpCase[] = [
  { name: 'port unreachable from the backend itself counts for its slot', input: icmpFrame({ from: LAN_BACKEND.addr, quoted: SAME_OUT, code: 3 }), counted: 3 },
  { name: 'host unreachable from a router counts', input: icmpFrame({ from: CLIENT, quoted: SAME_OUT, code: 1 }), counted: 3 },
  { name: 'network unreachable counts', input: icmpFrame({ from: CLIENT, quoted: CROSS_OUT, code: 0 }), counted: 5 },
  { name: 'communication administratively prohibited counts', input: icmpFrame({ from: CLIENT, quoted: CROSS_OUT, code: 13 }), counted: 5 },
  { name: 'port unreachable from anyone but the backend is forged: not counted', input: icmpFrame({ from: CLIENT, quoted: SAME_OUT, code: 3 }) },
  { name: 'fragmentation needed says nothing about the backend being down', input: icmpFrame({ from: CLIENT, quoted: SAME_OUT, code: 4 }) },
  { name: 'time exceeded is not unreachable', input: icmpFrame({ from: CLIENT, quoted: SAME_OUT, type: 11, code: 0 }) },
  {
    name: 'a quote of a datagram no flow sent is not counted',
    input: icmpFrame({ from: LAN_BACKEND.addr, quoted: { src: SAME_OUT.src, dst: { ...SAME_OUT.dst, port: SAME_OUT.dst.port + 1 } }, code: 3 }),
  },
  {
    name: "the client's own port unreachable (a quote of what went to it) does not count against the backend",
    input: icmpFrame({ from: CLIENT, quoted: reversed(FLOWS.sameLink.match), code: 3 }),
  },
  { name: 'a quote cut before the UDP ports is not counted', input: icmpFrame({ from: LAN_BACKEND.addr, quoted: SAME_OUT, code: 3, quoteUdpBytes: 3 }) },
  { name: 'a flow without a slot is not counted', input: icmpFrame({ from: LAN_BACKEND.addr, quoted: FLOWS.noSlot.to, code: 3 }) },
];

const LE = endianness() === 'LE';
const u64 = (b: Buffer, off: number): bigint => (LE ? b.readBigUInt64LE(off) : b.readBigUInt64BE(off));

/** Every slot's counters, summed over CPUs, read straight from the map: index = slot. */
function allCounts(map: BpfMap): Counts[] {
  const { count, values } = map.lookupBatchPacked(TARGETS_MAX + 1);
  expect(count).toBe(TARGETS_MAX + 1);
  const out: Counts[] = [];
  for (let slot = 0; slot < count; slot++) {
    const c: Counts = { fwdPackets: 0n, fwdBytes: 0n, revPackets: 0n, revBytes: 0n, icmpUnreachable: 0n };
    for (const cpu of map.perCpuValues(values.subarray(slot * map.valueSize, (slot + 1) * map.valueSize))) {
      c.fwdPackets += u64(cpu, 0);
      c.fwdBytes += u64(cpu, 8);
      c.revPackets += u64(cpu, 16);
      c.revBytes += u64(cpu, 24);
      c.icmpUnreachable += u64(cpu, 32);
    }
    out.push(c);
  }
  return out;
}

/** The slots whose counters differ, with the difference. */
function changes(before: Counts[], after: Counts[]): Record<number, Counts> {
  const out: Record<number, Counts> = {};
  after.forEach((a, slot) => {
    const b = before[slot]!;
    const d = {
      fwdPackets: a.fwdPackets - b.fwdPackets,
      fwdBytes: a.fwdBytes - b.fwdBytes,
      revPackets: a.revPackets - b.revPackets,
      revBytes: a.revBytes - b.revBytes,
      icmpUnreachable: a.icmpUnreachable - b.icmpUnreachable,
    };
    if (Object.values(d).some((v) => v !== 0n)) out[slot] = d;
  });
  return out;
}

function expectedChange(c: Case): Record<number, Counts> {
  if (!c.counted) return {};
  const bytes = BigInt(ipLength(c.input));
  const zero = { fwdPackets: 0n, fwdBytes: 0n, revPackets: 0n, revBytes: 0n, icmpUnreachable: 0n };
  return {
    [c.counted.slot]:
      c.counted.direction === 'fwd' ? { ...zero, fwdPackets: 1n, fwdBytes: bytes } : { ...zero, revPackets: 1n, revBytes: bytes },
  };
}

describe('the target case table itself', () => {
  it('has unique names, and frames whose padding and options make the IP length differ from the frame and UDP lengths', () => {
    expect(new Set(CASES.map((c) => c.name)).size).toBe(CASES.length);
    const padded = CASES.find((c) => c.name.startsWith('Ethernet padding'))!.input;
    expect(padded.length).toBeGreaterThan(ETH_HLEN + ipLength(padded));
    const options = CASES.find((c) => c.name.startsWith('IP options'))!.input;
    expect(options[ETH_HLEN]! & 0x0f).toBe(6);
  });

  it('gives every flow its slot in the upper bits of flags, reverse entries with the reverse flag', () => {
    expect(FLOWS.sameLink.flags).toBe(0x00030000);
    expect(FLOWS.sameLinkRev.flags).toBe(0x00030001);
    expect(FLOWS.maxSlot.flags).toBe(0x0fff0000);
  });
});

describePrivileged('per-target counters of the flowlb XDP program under BPF_PROG_TEST_RUN', () => {
  let fx: FibFixture | undefined;
  let fwd: XdpForwarder | undefined;
  let bpffs: string | undefined;
  let targetStats: BpfMap | undefined;

  beforeAll(async () => {
    fx = await createFibFixture('xdptgt');
    bpffs = mkdtempSync(join(tmpdir(), 'flowlb-targets-'));
    execFileSync('mount', ['-t', 'bpf', 'bpf', bpffs]);
    const objectPath = process.env.FLOWLB_BPF_OBJECT_UNDER_TEST;
    fwd = await XdpForwarder.load({ flowsMaxEntries: 256, pinDir: join(bpffs, 'fwd'), ...(objectPath ? { objectPath } : {}) });
    fx.addTxPorts(fwd);
    // As any other process reads them: from the pin.
    targetStats = BpfMap.openPinned(join(bpffs, 'fwd', 'target_stats'));
  });

  afterAll(async () => {
    try {
      targetStats?.close();
      fwd?.close();
      if (bpffs) {
        execFileSync('umount', [bpffs]);
        rmSync(bpffs, { recursive: true, force: true });
      }
    } finally {
      await fx?.destroy();
    }
  });

  const env = (): { fx: FibFixture; fwd: XdpForwarder; targetStats: BpfMap } => {
    if (!fx || !fwd || !targetStats) throw new Error('fixture not set up');
    return { fx, fwd, targetStats };
  };

  function install(entries: Iterable<FlowEntry>): void {
    const { fwd: f } = env();
    for (const k of [...f.flows.keys()]) f.flows.delete(k);
    for (const e of entries) f.flows.update(encodeFlowKey(e.match), encodeFlowVal(e));
  }

  function run(ingress: LinkName, data: Buffer): { retval: number; data: Buffer } {
    const { fx: x, fwd: f } = env();
    return x.inNs(() => f.program.testRun({ data, ingressIfindex: x.ifindex[ingress] }));
  }

  it('target_stats is a per-CPU array of struct flowlb_target_stats with a slot for every value of the mask', () => {
    const { targetStats: m } = env();
    expect(m.perCpu).toBe(true);
    expect(m.keySize).toBe(4);
    expect(m.elementSize).toBe(40);
    expect(m.maxEntries).toBe(TARGETS_MAX + 1);
  });

  describe('case table', () => {
    beforeEach(() => install(Object.values(FLOWS)));

    for (const c of CASES) {
      it(c.name, () => {
        const { targetStats: m } = env();
        const before = allCounts(m);
        const counters = env().fwd.stats();
        const r = run(c.ingress, c.input);
        expect(r.retval).toBe(c.verdict);
        expect(changes(before, allCounts(m))).toEqual(expectedChange(c));
        // One packet, counted once in the program's own counters as before.
        const after = env().fwd.stats();
        expect(Object.values(after).reduce((a, b) => a + b, 0) - Object.values(counters).reduce((a, b) => a + b, 0)).toBe(1);

        // The same frame through the same flow without a slot: the same verdict and the same bytes out.
        if (c.flow) {
          const unslotted = Object.entries(FLOWS).map(([, e]) => ({ ...e, flags: (e.flags & ~(0xfff << TARGET_SHIFT)) >>> 0 }));
          install(unslotted);
          const again = allCounts(m);
          const plain = run(c.ingress, c.input);
          expect(plain.retval).toBe(r.retval);
          expect(plain.data.toString('hex')).toBe(r.data.toString('hex'));
          expect(changes(again, allCounts(m))).toEqual({});
        }
      });
    }
  });

  it('later fragments count under the slot their first fragment went by, each with its own IP bytes', () => {
    const { targetStats: m } = env();
    install(Object.values(FLOWS));
    const before = allCounts(m);
    for (const f of fragments) expect(run('lan', f).retval).toBe(XDP_TX);
    const bytes = fragments.reduce((n, f) => n + BigInt(f.readUInt16BE(14 + 2)), 0n);
    expect(changes(before, allCounts(m))).toEqual({ 3: { fwdPackets: 3n, fwdBytes: bytes, revPackets: 0n, revBytes: 0n, icmpUnreachable: 0n } });
  });

  describe('ICMP destination unreachable', () => {
    beforeEach(() => install(Object.values(FLOWS)));

    for (const c of ICMP_CASES) {
      it(c.name, () => {
        const { targetStats: m, fwd: f } = env();
        const before = allCounts(m);
        const counters = f.stats();
        const r = run('lan', c.input);
        // Passed to the kernel as it came, and counted as the program counts any other non-UDP packet.
        expect(r.retval).toBe(XDP_PASS);
        expect(r.data.toString('hex')).toBe(c.input.toString('hex'));
        expect(f.stats().notIpv4Udp - counters.notIpv4Udp).toBe(1);
        const zero = { fwdPackets: 0n, fwdBytes: 0n, revPackets: 0n, revBytes: 0n };
        expect(changes(before, allCounts(m))).toEqual(c.counted === undefined ? {} : { [c.counted]: { ...zero, icmpUnreachable: 1n } });
      });
    }

    it('every truncation of a counted message is passed, and counted only once the quoted ports are whole', () => {
      const { targetStats: m } = env();
      const full = ICMP_CASES[0]!.input;
      // Ethernet, IP, ICMP, the quoted IP header, the quoted UDP ports.
      const portsEnd = ETH_HLEN + 20 + 8 + 20 + 4;
      expect(full.length).toBe(portsEnd + 4);
      for (let len = ETH_HLEN; len <= full.length; len++) {
        const cut = Buffer.from(full.subarray(0, len));
        // The outer IP header says how long the datagram is: fix it so that only the quote is cut.
        if (len >= ETH_HLEN + 20) {
          cut.writeUInt16BE(len - ETH_HLEN, ETH_HLEN + 2);
          cut.writeUInt16BE(0, ETH_HLEN + 10);
          cut.writeUInt16BE(internetChecksum(cut.subarray(ETH_HLEN, ETH_HLEN + 20)), ETH_HLEN + 10);
        }
        const before = allCounts(m);
        expect(run('lan', cut).retval).toBe(XDP_PASS);
        expect([len, changes(before, allCounts(m))[3]?.icmpUnreachable ?? 0n]).toEqual([len, len >= portsEnd ? 1n : 0n]);
      }
    });

    it('shows in targetStats() as icmpUnreachable', () => {
      const { fwd: f } = env();
      install([]);
      const target = { address: LAN_BACKEND.addr, port: LAN_BACKEND.port };
      const slot = f.targetSlot(target);
      const pair = {
        client: { address: CLIENT, port: 7002 },
        vip: { address: VIP.addr, port: VIP.port },
        snat: { address: LINKS.lan.addr, port: 42002 },
        target,
      };
      f.table.installPair(pair, process.hrtime.bigint(), slot);
      const start = f.targetStats().find((r) => r.slot === slot)!.icmpUnreachable;
      const quoted = { src: ep(LINKS.lan.addr, 42002), dst: LAN_BACKEND };
      run('lan', icmpFrame({ from: LAN_BACKEND.addr, quoted, code: 3 }));
      run('lan', icmpFrame({ from: LAN_BACKEND.addr, quoted, code: 3 }));
      expect(f.targetStats().find((r) => r.slot === slot)!.icmpUnreachable).toBe(start + 2);
    });
  });

  describe('flags', () => {
    it('confirming a forward entry on its first client packet keeps its slot bits, and the next packet counts the same slot', () => {
      const { fwd: f, targetStats: m } = env();
      const flow = { ...FLOWS.sameLink, flags: slotFlags(3) };
      install([flow]);
      const key = encodeFlowKey(flow.match);
      const before = allCounts(m);
      expect(run('lan', frame(flow.match, 'lan')).retval).toBe(XDP_TX);
      expect(flagsOf(f.flows.lookup(key)!)).toBe(slotFlags(3, FLOWLB_F_CONFIRMED));
      expect(run('lan', frame(flow.match, 'lan')).retval).toBe(XDP_TX);
      expect(flagsOf(f.flows.lookup(key)!)).toBe(slotFlags(3, FLOWLB_F_CONFIRMED));
      const bytes = BigInt(ipLength(frame(flow.match, 'lan')));
      expect(changes(before, allCounts(m))).toEqual({ 3: { fwdPackets: 2n, fwdBytes: 2n * bytes, revPackets: 0n, revBytes: 0n, icmpUnreachable: 0n } });
    });

    it('a packet that is not forwarded (TTL 1) still confirms, and keeps the slot', () => {
      const { fwd: f } = env();
      const flow = { ...FLOWS.sameLink, flags: slotFlags(TARGETS_MAX) };
      install([flow]);
      expect(run('lan', frame(flow.match, 'lan', { ttl: 1 })).retval).toBe(XDP_TX);
      expect(flagsOf(f.flows.lookup(encodeFlowKey(flow.match))!)).toBe(slotFlags(TARGETS_MAX, FLOWLB_F_CONFIRMED));
    });

    it("a reverse entry is marked replied on the backend's first packet, and keeps its slot", () => {
      const { fwd: f } = env();
      install([FLOWS.sameLinkRev]);
      const key = encodeFlowKey(FLOWS.sameLinkRev.match);
      expect(flagsOf(f.flows.lookup(key)!)).toBe(slotFlags(3, FLOWLB_F_REVERSE));
      run('lan', frame(FLOWS.sameLinkRev.match, 'lan'));
      expect(flagsOf(f.flows.lookup(key)!)).toBe(slotFlags(3, FLOWLB_F_REVERSE | FLOWLB_F_REPLIED));
      // A forward entry is never marked replied, nor a reverse one confirmed.
      install([FLOWS.sameLink]);
      run('lan', frame(FLOWS.sameLink.match, 'lan'));
      expect(flagsOf(f.flows.lookup(encodeFlowKey(FLOWS.sameLink.match))!)).toBe(slotFlags(3, FLOWLB_F_CONFIRMED));
    });

    it("a reverse entry's TTL 1 packet, not forwarded, still marks it replied", () => {
      const { fwd: f } = env();
      install([FLOWS.crossRev]);
      expect(run('srv', frame(FLOWS.crossRev.match, 'srv', { ttl: 1 })).retval).toBe(XDP_TX);
      expect(flagsOf(f.flows.lookup(encodeFlowKey(FLOWS.crossRev.match))!)).toBe(slotFlags(5, FLOWLB_F_REVERSE | FLOWLB_F_REPLIED));
    });
  });

  describe('through the forwarder', () => {
    it('a flow installed with the slot targetSlot gave is counted both ways under that target in targetStats()', () => {
      const { fwd: f } = env();
      install([]);
      const target = { address: LAN_BACKEND.addr, port: LAN_BACKEND.port };
      const slot = f.targetSlot(target);
      expect(slot).toBeGreaterThan(0);
      const pair = {
        client: { address: CLIENT, port: 7001 },
        vip: { address: VIP.addr, port: VIP.port },
        snat: { address: LINKS.lan.addr, port: 42001 },
        target,
      };
      f.table.installPair(pair, process.hrtime.bigint(), slot);
      const row = (): unknown => f.targetStats().find((r) => r.slot === slot);
      const start = f.targetStats().find((r) => r.slot === slot)!;
      expect(start.target).toEqual(target);

      const request = frame({ src: ep(CLIENT, 7001), dst: VIP }, 'lan', { payload: Buffer.alloc(100, 1) });
      const reply = frame({ src: LAN_BACKEND, dst: ep(LINKS.lan.addr, 42001) }, 'lan', { payload: Buffer.alloc(40, 2) });
      expect(run('lan', request).retval).toBe(XDP_TX);
      expect(run('lan', request).retval).toBe(XDP_TX);
      expect(run('lan', reply).retval).toBe(XDP_TX);
      expect(row()).toEqual({
        target,
        slot,
        fwdPackets: start.fwdPackets + 2,
        fwdBytes: start.fwdBytes + 2 * ipLength(request),
        revPackets: start.revPackets + 1,
        revBytes: start.revBytes + ipLength(reply),
        icmpUnreachable: start.icmpUnreachable,
      });
    });
  });
});
