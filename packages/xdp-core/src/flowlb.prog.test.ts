/**
 * The XDP program of flowlb, run frame by frame with BPF_PROG_TEST_RUN. Every case gives the complete frame the
 * program must hand back, built from scratch with the rewritten fields and freshly computed checksums, so a checksum
 * updated incrementally in the program is compared with one computed from nothing. Each case also says which single
 * counter moves and which flow entry has its last_used refreshed.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  ETH_HLEN,
  ETH_P_8021AD,
  ETH_P_IPV4,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPV4_MIN_HLEN,
  UDP_HLEN,
  buildArpFrame,
  buildEthernet,
  buildIpv4Frame,
  buildIpv6UdpFrame,
  buildUdpFragments,
  buildUdpFrame,
  describePrivileged,
  internetChecksum,
  parseFrame,
  payloadForUdpChecksum,
  truncate,
  udpChecksum,
  verifyChecksums,
  type ChecksumReport,
  type EthernetSpec,
  type UdpFrameSpec,
} from '@flowlb/testkit';
import { STAT_NAMES, XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX, XdpForwarder, possibleCpus, type StatName, type XdpStats } from './index.js';
import {
  LINKS,
  NEIGHBOURS,
  SENDER_MAC,
  ROUTED,
  UNRESOLVED_HOST,
  createFibFixture,
  type FibFixture,
  type LinkName,
} from './testing/fib-fixture.js';
import {
  FLOWLB_F_CONFIRMED,
  FLOWLB_F_REPLIED,
  FLOWLB_F_REVERSE,
  encodeFlowKey,
  encodeFlowVal,
  flagsOf,
  lastUsedOf,
  reversed,
  withoutLastUsed,
  type Endpoint,
  type FlowEntry,
  type Tuple,
} from './testing/flow-entry.js';

// ---------------------------------------------------------------------------------------------
// The flow table every case runs against

const ep = (addr: string, port: number): Endpoint => ({ addr, port });

const VIP = ep(LINKS.lan.addr, 4433);
const CLIENT = NEIGHBOURS.client.addr;
const LAN_BACKEND = ep(NEIGHBOURS.lanBackend.addr, 5000);
const SRV_BACKEND = ep(NEIGHBOURS.srvBackend.addr, 6000);
const TINY_BACKEND = ep(NEIGHBOURS.tinyBackend.addr, 6000);

/** Far older than the program's 100 ms refresh interval, so any packet that reaches the entry refreshes it. */
const STALE = 1_000n;

/**
 * The program stamps the coarse clock, CLOCK_MONOTONIC as of the last timekeeping update. That is one tick behind
 * process.hrtime.bigint() read before the run on a busy CPU, but with tickless idle (NO_HZ_IDLE) on a virtual machine
 * the update after a CPU wakes can come several ticks late: 13 ms behind at HZ=250 has been seen here. Any stamp this
 * recent still tells a refresh from STALE and from the program's 100 ms refresh interval.
 */
const COARSE_LAG = 50_000_000n;

function stampedDuring(used: bigint, before: bigint, after: bigint): boolean {
  return used >= before - COARSE_LAG && used <= after;
}

/** Client port p of CLIENT → VIP, rewritten to snatAddr:(40000 + p - 5000) → target. */
function forward(clientPort: number, snatAddr: string, target: Endpoint): FlowEntry {
  return {
    match: { src: ep(CLIENT, clientPort), dst: VIP },
    to: { src: ep(snatAddr, 40000 + clientPort - 5000), dst: target },
    flags: 0,
    lastUsed: STALE,
  };
}

/** The entry for the backend's replies to a forward entry. */
function reverseOf(f: FlowEntry, flags = FLOWLB_F_REVERSE): FlowEntry {
  return { match: reversed(f.to), to: reversed(f.match), flags, lastUsed: STALE };
}

const sameLink = forward(5001, LINKS.lan.addr, LAN_BACKEND);
const cross = forward(5002, LINKS.srv.addr, SRV_BACKEND);
const toolWritten = forward(5003, LINKS.srv.addr, SRV_BACKEND);

const FLOWS = {
  sameLink,
  sameLinkRev: reverseOf(sameLink),
  cross,
  crossRev: reverseOf(cross),
  // Only the reply direction of this flow is installed, by a tool that leaves flags at 0.
  toolRev: reverseOf(toolWritten, 0),
  viaGateway: forward(5004, LINKS.srv.addr, ep(ROUTED.viaGateway, 7000)),
  noNeigh: forward(5005, LINKS.srv.addr, ep(UNRESOLVED_HOST, 6000)),
  noNeighGateway: forward(5006, LINKS.srv.addr, ep(ROUTED.viaUnresolvedGateway, 7000)),
  blackhole: forward(5007, LINKS.srv.addr, ep(ROUTED.blackhole, 7000)),
  unreachable: forward(5008, LINKS.srv.addr, ep(ROUTED.unreachable, 7000)),
  prohibit: forward(5009, LINKS.srv.addr, ep(ROUTED.prohibit, 7000)),
  encap: forward(5010, LINKS.srv.addr, ep(ROUTED.encap, 7000)),
  throwRoute: forward(5011, LINKS.srv.addr, ep(ROUTED.throw, 7000)),
  unrouted: forward(5012, LINKS.srv.addr, ep(ROUTED.unrouted, 7000)),
  local: forward(5013, LINKS.srv.addr, ep(LINKS.srv.addr, 6000)),
  tiny: forward(5014, LINKS.tiny.addr, TINY_BACKEND),
  plain: forward(5017, LINKS.plain.addr, ep(NEIGHBOURS.plainBackend.addr, 6000)),
  nofwd: {
    match: { src: ep(NEIGHBOURS.nofwdClient.addr, 5015), dst: ep(LINKS.nofwd.addr, 4433) },
    to: { src: ep(LINKS.srv.addr, 40015), dst: SRV_BACKEND },
    flags: 0,
    lastUsed: STALE,
  },
  // What an IHL-4 header of CLIENT → VIP reads as if its length were believed: the "UDP header" then starts at the
  // destination address, whose halves become the ports (10.0 → 2560, 0.1 → 1). See the IHL 4 decoy case.
  ihl4Decoy: {
    match: { src: ep(CLIENT, 0x0a00), dst: ep(VIP.addr, 0x0001) },
    to: { src: ep(LINKS.srv.addr, 40016), dst: SRV_BACKEND },
    flags: 0,
    lastUsed: STALE,
  },
} satisfies Record<string, FlowEntry>;

type FlowName = keyof typeof FLOWS;
const FLOW_NAMES = Object.keys(FLOWS) as FlowName[];

// ---------------------------------------------------------------------------------------------
// Frames


const PAYLOAD = 'flowlb datagram payload';

interface FrameOptions {
  ip?: Partial<UdpFrameSpec['ip']>;
  udp?: Partial<UdpFrameSpec['udp']>;
  payload?: string | Uint8Array;
  padding?: number | Uint8Array;
  eth?: EthernetSpec;
}

/**
 * A datagram carrying `t`, as the neighbour on `ingress` sends it to the balancer. The id and TOS are not zero so
 * that a program clobbering them would show.
 */
function frameSpec(t: Tuple, ingress: LinkName, o: FrameOptions = {}): UdpFrameSpec {
  const spec: UdpFrameSpec = {
    eth: o.eth ?? { src: SENDER_MAC[ingress], dst: LINKS[ingress].mac },
    ip: { src: t.src.addr, dst: t.dst.addr, ttl: 64, id: 0x1c46, tos: 0xb9, ...o.ip },
    udp: { srcPort: t.src.port, dstPort: t.dst.port, ...o.udp },
    payload: o.payload ?? PAYLOAD,
  };
  if (o.padding !== undefined) spec.padding = o.padding;
  return spec;
}

/**
 * The frame the program must produce for `s` rewritten to `to`: new addresses and ports, TTL one less when `decTtl`,
 * Ethernet addresses replaced unless `eth` is 'kept', and both checksums computed from scratch.
 */
function rewrittenFrame(
  s: UdpFrameSpec,
  to: Tuple,
  eth: { src: string; dst: string } | 'kept',
  decTtl: boolean,
): Buffer {
  const ttl = s.ip.ttl ?? 64;
  return buildUdpFrame({
    ...s,
    eth: eth === 'kept' ? s.eth : { ...s.eth, ...eth },
    ip: { ...s.ip, src: to.src.addr, dst: to.dst.addr, ttl: decTtl ? ttl - 1 : ttl },
    udp: {
      ...s.udp,
      srcPort: to.src.port,
      dstPort: to.dst.port,
      checksum: s.udp.checksum === 'none' ? 'none' : 'compute',
    },
  });
}

/** A copy of `frame` with one byte flipped, as corruption in transit would leave it. */
function corrupt(frame: Buffer, offset: number): Buffer {
  const out = Buffer.from(frame);
  out[offset] = out[offset]! ^ 0x40;
  return out;
}

/**
 * A known flow's datagram damaged in transit at `offset` (which the program does not rewrite). An incremental update
 * carries the damage over, so the output is the rewritten undamaged frame with the same byte flipped: still
 * detectably corrupt, never laundered into a valid checksum.
 */
function corruptedInTransit(name: string, offset: number, checksums: ChecksumReport): Case {
  const c = forwarded(name, viaSame);
  return { ...c, input: corrupt(c.input, offset), output: corrupt(c.output, offset), checksums };
}

/** The frame of `frameSpec`, for cases that cut or doctor it afterwards. */
function udpFrame(t: Tuple, ingress: LinkName, o: FrameOptions = {}): Buffer {
  return buildUdpFrame(frameSpec(t, ingress, o));
}

/** IP options of `count` bytes that are not NOPs, so that losing or moving a byte would show. */
function ipOptions(count: number): Buffer {
  if (count === 4) return Buffer.from([0x94, 0x04, 0x00, 0x00]); // Router Alert
  // Record Route (type 7) filled with addresses, then End of Option List.
  const o = Buffer.alloc(count);
  o[0] = 7;
  o[1] = count - 1;
  o[2] = count; // pointer past the last slot: the route is full
  for (let i = 3; i < count - 1; i++) o[i] = 0xc0 + ((i * 7) & 0x3f);
  return o;
}

/** A 20-byte TCP SYN header with the given ports (checksum left 0: nothing here reads it). */
function tcpHeader(sport: number, dport: number): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(sport, 0);
  h.writeUInt16BE(dport, 2);
  h.writeUInt32BE(0x01020304, 4);
  h[12] = 5 << 4;
  h[13] = 0x02;
  h.writeUInt16BE(64240, 14);
  return h;
}

function icmpEcho(): Buffer {
  const m = Buffer.from([8, 0, 0, 0, 0x12, 0x34, 0x00, 0x01, ...Buffer.from('ping')]);
  m.writeUInt16BE(internetChecksum(m), 2);
  return m;
}

// ---------------------------------------------------------------------------------------------
// The case table

interface Case {
  name: string;
  ingress: LinkName;
  input: Buffer;
  verdict: number;
  /** The complete frame expected back. */
  output: Buffer;
  counter: StatName;
  /** What a receiver's checksum check says about the output; null where the frame is not meant to be valid IP. */
  checksums: ChecksumReport | null;
  /** The entry whose last_used the packet refreshes; every other entry must keep its value. */
  touches?: FlowName;
}

const VALID_UDP: ChecksumReport = { ip: true, udp: true };
const VALID_NO_UDP_CHECKSUM: ChecksumReport = { ip: true, udp: 'none' };
const VALID_NOT_UDP: ChecksumReport = { ip: true, udp: 'n/a' };

interface ForwardedSpec {
  flow: FlowName;
  ingress: LinkName;
  egress: LinkName;
  nextHopMac: string;
  verdict: typeof XDP_TX | typeof XDP_REDIRECT;
  counter: StatName;
  frame?: FrameOptions;
}

function forwarded(name: string, f: ForwardedSpec): Case {
  const entry = FLOWS[f.flow];
  const spec = frameSpec(entry.match, f.ingress, f.frame);
  return {
    name,
    ingress: f.ingress,
    input: buildUdpFrame(spec),
    verdict: f.verdict,
    output: rewrittenFrame(spec, entry.to, { src: LINKS[f.egress].mac, dst: f.nextHopMac }, true),
    counter: f.counter,
    checksums: spec.udp.checksum === 'none' ? VALID_NO_UDP_CHECKSUM : VALID_UDP,
    touches: f.flow,
  };
}

/** A known flow's packet that the program hands to the kernel as it came. */
function passedKnown(
  name: string,
  flow: FlowName,
  counter: StatName,
  frame?: FrameOptions,
  ingress: LinkName = 'lan',
): Case {
  const input = udpFrame(FLOWS[flow].match, ingress, frame);
  return { name, ingress, input, verdict: XDP_PASS, output: input, counter, checksums: VALID_UDP, touches: flow };
}

// ICMP numbers (RFC 792, RFC 1191), written down here: the program is checked against the RFCs, not its own header.
const ICMP_DEST_UNREACH = 3;
const ICMP_FRAG_NEEDED = 4;
const ICMP_TIME_EXCEEDED = 11;
const ICMP_EXC_TTL = 0;
/** The TOS of an ICMP error as Linux sends it: precedence "internetwork control". */
const ICMP_ERROR_TOS = 0xc0;

interface IcmpError {
  type: number;
  code: number;
  /** The next-hop MTU of a fragmentation needed (RFC 1191). */
  mtu?: number;
}

const TIME_EXCEEDED: IcmpError = { type: ICMP_TIME_EXCEEDED, code: ICMP_EXC_TTL };

/**
 * The ICMP error a router sends back about `input`, the datagram of `t` that arrived on `ingress`: from the address
 * it was sent to, back to its source and out of the link it came in by, quoting its IP header with any options and
 * the first 8 bytes of its payload (RFC 792, RFC 1812 4.3.2.3), and nothing after them.
 */
function icmpErrorFrame(t: Tuple, ingress: LinkName, input: Buffer, e: IcmpError): Buffer {
  const headerLength = (input[ETH_HLEN]! & 0x0f) * 4;
  const quote = input.subarray(ETH_HLEN, ETH_HLEN + headerLength + 8);
  const header = Buffer.alloc(8);
  header[0] = e.type;
  header[1] = e.code;
  header.writeUInt16BE(e.mtu ?? 0, 6);
  const icmp = Buffer.concat([header, quote]);
  icmp.writeUInt16BE(internetChecksum(icmp), 2);
  return buildIpv4Frame({
    eth: { src: LINKS[ingress].mac, dst: SENDER_MAC[ingress] },
    ip: { src: t.dst.addr, dst: t.src.addr, protocol: IPPROTO_ICMP, ttl: 64, tos: ICMP_ERROR_TOS, id: 0 },
    payload: icmp,
  });
}

/** Whether `frame` holds an ICMP message whose checksum (over the whole message) verifies. */
function icmpChecksumOk(frame: Buffer): boolean {
  const ip = parseFrame(frame).ipv4;
  if (!ip || ip.protocol !== IPPROTO_ICMP) return false;
  const start = ip.offset + ip.headerLength;
  const end = ip.offset + ip.totalLength;
  return end <= frame.length && internetChecksum(frame.subarray(start, end)) === 0;
}

/** A known flow's datagram that the program answers with ICMP error `e` (XDP_TX) in place of forwarding it. */
function answered(
  name: string,
  flow: FlowName,
  e: IcmpError,
  counter: StatName,
  frame?: FrameOptions,
  ingress: LinkName = 'lan',
): Case {
  const t = FLOWS[flow].match;
  const input = udpFrame(t, ingress, frame);
  return {
    name,
    ingress,
    input,
    verdict: XDP_TX,
    output: icmpErrorFrame(t, ingress, input, e),
    counter,
    checksums: VALID_NOT_UDP,
    touches: flow,
  };
}

/** A frame arriving on lan0 that must come back byte for byte as it went in, without reaching any entry. */
function untouched(name: string, input: Buffer, counter: StatName, checksums: ChecksumReport | null): Case {
  return { name, ingress: 'lan', input, verdict: XDP_PASS, output: input, counter, checksums };
}

const SAME = FLOWS.sameLink.match;
const viaSame = {
  flow: 'sameLink',
  ingress: 'lan',
  egress: 'lan',
  nextHopMac: NEIGHBOURS.lanBackend.mac,
  verdict: XDP_TX,
  counter: 'fwdHit',
} as const;

const FOLD_TARGET = FLOWS.sameLink.to;
const foldPayload = payloadForUdpChecksum(0, {
  srcIp: FOLD_TARGET.src.addr,
  dstIp: FOLD_TARGET.dst.addr,
  srcPort: FOLD_TARGET.src.port,
  dstPort: FOLD_TARGET.dst.port,
  payload: 'folds to zero',
});
const ffffPayload = payloadForUdpChecksum(0, {
  srcIp: SAME.src.addr,
  dstIp: SAME.dst.addr,
  srcPort: SAME.src.port,
  dstPort: SAME.dst.port,
  payload: 'arrives as ffff',
});
const PADDING = Buffer.alloc(60 - (ETH_HLEN + IPV4_MIN_HLEN + UDP_HLEN + 2), 0xa5);
/** A datagram of `t` in three fragments (a first, a middle and a last), as the neighbour on `ingress` sends it. */
function fragmentsOf(t: Tuple, ingress: LinkName, id: number, eth?: { src: string; dst: string }, ttl = 64): Buffer[] {
  return buildUdpFragments({
    eth: eth ?? { src: SENDER_MAC[ingress], dst: LINKS[ingress].mac },
    ip: { src: t.src.addr, dst: t.dst.addr, ttl, id, tos: 0xb9 },
    udp: { srcPort: t.src.port, dstPort: t.dst.port },
    payload: Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 13 + 7) & 0xff)),
    fragmentSize: 32,
  });
}

const fragments = fragmentsOf(SAME, 'lan', 0x4242);
/** The same datagram from a client with no flow: its fragments are all the kernel's. */
const strangerFragments = fragmentsOf({ src: ep(CLIENT, 5998), dst: VIP }, 'lan', 0x4343);
/** tiny0's MTU minus the IP and UDP headers: the largest payload that still fits. */
const TINY_PAYLOAD_FITS = LINKS.tiny.mtu - IPV4_MIN_HLEN - UDP_HLEN;

const full = udpFrame(SAME, 'lan');
const UDP_LEN = UDP_HLEN + Buffer.byteLength(PAYLOAD);

const CASES: Case[] = [
  // Hits
  forwarded('forward hit, backend on the ingress link', viaSame),
  forwarded('forward hit, backend behind another interface', {
    flow: 'cross',
    ingress: 'lan',
    egress: 'srv',
    nextHopMac: NEIGHBOURS.srvBackend.mac,
    verdict: XDP_REDIRECT,
    counter: 'fwdHit',
  }),
  forwarded('forward hit, target routed via a gateway (gateway MAC)', {
    flow: 'viaGateway',
    ingress: 'lan',
    egress: 'srv',
    nextHopMac: NEIGHBOURS.srvBackend.mac,
    verdict: XDP_REDIRECT,
    counter: 'fwdHit',
  }),
  forwarded('reverse hit, client behind another interface', {
    flow: 'crossRev',
    ingress: 'srv',
    egress: 'lan',
    nextHopMac: NEIGHBOURS.client.mac,
    verdict: XDP_REDIRECT,
    counter: 'revHit',
  }),
  forwarded('reverse hit, client on the ingress link', {
    flow: 'sameLinkRev',
    ingress: 'lan',
    egress: 'lan',
    nextHopMac: NEIGHBOURS.client.mac,
    verdict: XDP_TX,
    counter: 'revHit',
  }),
  forwarded('reply-direction entry written with flags 0 counts as forward', {
    flow: 'toolRev',
    ingress: 'srv',
    egress: 'lan',
    nextHopMac: NEIGHBOURS.client.mac,
    verdict: XDP_REDIRECT,
    counter: 'fwdHit',
  }),
  forwarded('known flow on an interface with forwarding on', {
    flow: 'nofwd',
    ingress: 'lan',
    egress: 'srv',
    nextHopMac: NEIGHBOURS.srvBackend.mac,
    verdict: XDP_REDIRECT,
    counter: 'fwdHit',
  }),
  forwarded('TTL 2 is forwarded with TTL 1', { ...viaSame, frame: { ip: { ttl: 2 } } }),
  forwarded('TTL 255 is forwarded with TTL 254', { ...viaSame, frame: { ip: { ttl: 255 } } }),
  ...[6, 7, 8, 9, 10, 11, 12, 13, 14, 15].map((ihl) =>
    forwarded(`IP options kept byte for byte, IHL ${ihl}`, {
      ...viaSame,
      frame: { ip: { options: ipOptions(4 * (ihl - 5)) } },
    }),
  ),
  forwarded('DF set is not a fragment, and stays set', { ...viaSame, frame: { ip: { df: true } } }),
  forwarded('UDP checksum 0 (none) stays 0', { ...viaSame, frame: { udp: { checksum: 'none' } } }),
  forwarded('rewritten UDP checksum that computes to 0 goes out as 0xFFFF', {
    ...viaSame,
    frame: { payload: foldPayload },
  }),
  forwarded('incoming UDP checksum 0xFFFF (computed 0) is updated correctly', {
    ...viaSame,
    frame: { payload: ffffPayload },
  }),
  forwarded('Ethernet padding kept: frame length and trailing bytes unchanged', {
    ...viaSame,
    frame: { payload: 'ab', padding: PADDING },
  }),
  forwarded('empty UDP payload', { ...viaSame, frame: { payload: '' } }),
  forwarded('odd-length payload', { ...viaSame, frame: { payload: 'odd' } }),
  corruptedInTransit(
    'payload damaged in transit stays detectably damaged (UDP checksum)',
    ETH_HLEN + IPV4_MIN_HLEN + UDP_HLEN + 3,
    {
      ip: true,
      udp: false,
    },
  ),
  corruptedInTransit('IP id damaged in transit stays detectably damaged (IP checksum)', ETH_HLEN + 4, {
    ip: false,
    udp: true,
  }),
  forwarded('datagram of exactly the egress MTU', {
    flow: 'tiny',
    ingress: 'lan',
    egress: 'tiny',
    nextHopMac: NEIGHBOURS.tinyBackend.mac,
    verdict: XDP_REDIRECT,
    counter: 'fwdHit',
    frame: { payload: Buffer.alloc(TINY_PAYLOAD_FITS, 0x33) },
  }),

  // Known flows passed to the kernel
  untouched('first fragment (MF, offset 0) of no known flow passes untouched', strangerFragments[0]!, 'fragment', VALID_NOT_UDP),
  untouched('middle fragment whose first never came passes untouched', fragmentsOf(SAME, 'lan', 0x4444)[1]!, 'fragment', VALID_NOT_UDP),
  untouched('last fragment whose first never came passes untouched', fragmentsOf(SAME, 'lan', 0x4545)[2]!, 'fragment', VALID_NOT_UDP),

  // Known flows answered with an ICMP error
  answered('TTL 1 is answered with ICMP time exceeded', 'sameLink', TIME_EXCEEDED, 'ttl', { ip: { ttl: 1 } }),
  answered('TTL 0 is answered with ICMP time exceeded', 'sameLink', TIME_EXCEEDED, 'ttl', { ip: { ttl: 0 } }),
  ...[6, 15].map((ihl) =>
    answered(`time exceeded quotes the whole IP header with its options, IHL ${ihl}`, 'sameLink', TIME_EXCEEDED, 'ttl', {
      ip: { ttl: 1, options: ipOptions(4 * (ihl - 5)) },
    }),
  ),
  answered(
    "TTL 1 of a backend's reply: time exceeded from the SNAT address to the backend",
    'crossRev',
    TIME_EXCEEDED,
    'ttl',
    { ip: { ttl: 1 } },
    'srv',
  ),
  answered('TTL 1 with Ethernet padding: the time exceeded carries none', 'sameLink', TIME_EXCEEDED, 'ttl', {
    ip: { ttl: 1 },
    payload: 'ab',
    padding: PADDING,
  }),
  answered('TTL 1 with UDP checksum 0 (none): quoted as it came', 'sameLink', TIME_EXCEEDED, 'ttl', {
    ip: { ttl: 1 },
    udp: { checksum: 'none' },
  }),
  answered(
    'one byte over the egress MTU with DF: answered with ICMP fragmentation needed and the MTU',
    'tiny',
    { type: ICMP_DEST_UNREACH, code: ICMP_FRAG_NEEDED, mtu: LINKS.tiny.mtu },
    'fibFragNeeded',
    { ip: { df: true }, payload: Buffer.alloc(TINY_PAYLOAD_FITS + 1, 0x33) },
  ),
  // RFC 1812 4.3.2.7: no ICMP error about a frame sent to a link-layer broadcast; the kernel sends none either.
  passedKnown('TTL 1 in an Ethernet broadcast frame passes untouched', 'sameLink', 'ttl', {
    ip: { ttl: 1 },
    eth: { src: SENDER_MAC.lan, dst: 'ff:ff:ff:ff:ff:ff' },
  }),
  (() => {
    const spec = frameSpec(FLOWS.noNeigh.match, 'lan');
    return {
      name: 'next hop without neighbour entry: passed rewritten, TTL and Ethernet untouched',
      ingress: 'lan',
      input: buildUdpFrame(spec),
      verdict: XDP_PASS,
      output: rewrittenFrame(spec, FLOWS.noNeigh.to, 'kept', false),
      counter: 'fibNoNeigh',
      checksums: VALID_UDP,
      touches: 'noNeigh',
    } satisfies Case;
  })(),
  (() => {
    const spec = frameSpec(FLOWS.noNeighGateway.match, 'lan');
    return {
      name: 'gateway without neighbour entry: passed rewritten, TTL and Ethernet untouched',
      ingress: 'lan',
      input: buildUdpFrame(spec),
      verdict: XDP_PASS,
      output: rewrittenFrame(spec, FLOWS.noNeighGateway.to, 'kept', false),
      counter: 'fibNoNeigh',
      checksums: VALID_UDP,
      touches: 'noNeighGateway',
    } satisfies Case;
  })(),
  passedKnown('blackhole route passes untouched', 'blackhole', 'fibUnreachable'),
  passedKnown('unreachable route passes untouched', 'unreachable', 'fibUnreachable'),
  passedKnown('prohibit route passes untouched', 'prohibit', 'fibUnreachable'),
  passedKnown('no route at all passes untouched', 'unrouted', 'fibNotFwded'),
  passedKnown('throw route passes untouched', 'throwRoute', 'fibNotFwded'),
  passedKnown('route with lightweight-tunnel encap passes untouched', 'encap', 'fibNotFwded'),
  passedKnown('target is a local address: passes untouched', 'local', 'fibNotFwded'),
  passedKnown('ingress interface with forwarding off: passes untouched', 'nofwd', 'fibNotFwded', undefined, 'nofwd'),
  (() => {
    const spec = frameSpec(FLOWS.tiny.match, 'lan', { payload: Buffer.alloc(TINY_PAYLOAD_FITS + 1, 0x33) });
    return {
      name: 'one byte over the egress MTU without DF: passed rewritten for the kernel to fragment, TTL and Ethernet untouched',
      ingress: 'lan',
      input: buildUdpFrame(spec),
      verdict: XDP_PASS,
      output: rewrittenFrame(spec, FLOWS.tiny.to, 'kept', false),
      counter: 'fibFragNeeded',
      checksums: VALID_UDP,
      touches: 'tiny',
    } satisfies Case;
  })(),
  (() => {
    const spec = frameSpec(FLOWS.plain.match, 'lan');
    return {
      name: 'route out of an interface not in tx_ports: passed rewritten for the kernel, TTL and Ethernet untouched',
      ingress: 'lan',
      input: buildUdpFrame(spec),
      verdict: XDP_PASS,
      output: rewrittenFrame(spec, FLOWS.plain.to, 'kept', false),
      counter: 'egressNoXdp',
      checksums: VALID_UDP,
      touches: 'plain',
    } satisfies Case;
  })(),

  // Misses
  untouched('miss: new client', udpFrame({ src: ep(CLIENT, 5999), dst: VIP }, 'lan'), 'miss', VALID_UDP),
  untouched(
    'miss: known client, other VIP port',
    udpFrame({ src: SAME.src, dst: ep(VIP.addr, VIP.port + 1) }, 'lan'),
    'miss',
    VALID_UDP,
  ),
  untouched('miss: reply direction of a forward key', udpFrame(reversed(SAME), 'lan'), 'miss', VALID_UDP),

  // Malformed, all carrying a known flow's addresses
  untouched(
    'Ethernet header only',
    buildEthernet({ src: NEIGHBOURS.client.mac, dst: LINKS.lan.mac }, ETH_P_IPV4, Buffer.alloc(0)),
    'malformed',
    null,
  ),
  untouched('IPv4 header cut at 19 bytes', truncate(full, ETH_HLEN + IPV4_MIN_HLEN - 1), 'malformed', null),
  untouched('IHL 4', udpFrame(SAME, 'lan', { ip: { ihl: 4 } }), 'malformed', null),
  untouched('IHL 0', udpFrame(SAME, 'lan', { ip: { ihl: 0 } }), 'malformed', null),
  untouched(
    'IHL 4 whose bytes would parse as a known flow if the IHL were believed',
    // Read from IP offset 16, the UDP length is the real source port: make it match tot_len - 16.
    udpFrame({ src: ep(CLIENT, UDP_LEN + 4), dst: VIP }, 'lan', { ip: { ihl: 4 } }),
    'malformed',
    null,
  ),
  untouched(
    'IHL 15 past the end of the frame',
    udpFrame(SAME, 'lan', { ip: { ihl: 15 }, payload: 'x' }),
    'malformed',
    null,
  ),
  untouched(
    'tot_len shorter than the IP header',
    udpFrame(SAME, 'lan', { ip: { totalLength: IPV4_MIN_HLEN - 1 } }),
    'malformed',
    null,
  ),
  untouched(
    'tot_len one byte past the end of the frame',
    udpFrame(SAME, 'lan', { ip: { totalLength: IPV4_MIN_HLEN + UDP_LEN + 1 } }),
    'malformed',
    null,
  ),
  untouched(
    'UDP header cut short, tot_len agreeing (7 bytes of UDP)',
    truncate(
      udpFrame(SAME, 'lan', { ip: { totalLength: IPV4_MIN_HLEN + UDP_HLEN - 1 } }),
      ETH_HLEN + IPV4_MIN_HLEN + UDP_HLEN - 1,
    ),
    'malformed',
    null,
  ),
  untouched(
    'IP payload of 7 bytes with UDP length 7, a full UDP header there as padding',
    udpFrame(SAME, 'lan', {
      ip: { totalLength: IPV4_MIN_HLEN + UDP_HLEN - 1 },
      udp: { length: UDP_HLEN - 1 },
      payload: '',
    }),
    'malformed',
    null,
  ),
  untouched('frame ends inside the UDP header', truncate(full, ETH_HLEN + IPV4_MIN_HLEN + 6), 'malformed', null),
  untouched(
    'frame ends one byte before the datagram does, IP and UDP lengths agreeing',
    truncate(full, full.length - 1),
    'malformed',
    null,
  ),
  untouched(
    'UDP length one larger than the IP payload',
    udpFrame(SAME, 'lan', { udp: { length: UDP_LEN + 1 } }),
    'malformed',
    null,
  ),
  untouched(
    'UDP length larger than the IP payload, reaching into Ethernet padding',
    udpFrame(SAME, 'lan', { udp: { length: UDP_LEN + 4 }, padding: Buffer.alloc(8, 0xa5) }),
    'malformed',
    null,
  ),
  untouched(
    'UDP length one smaller than the IP payload',
    udpFrame(SAME, 'lan', { udp: { length: UDP_LEN - 1 } }),
    'malformed',
    null,
  ),
  untouched('UDP length 0', udpFrame(SAME, 'lan', { udp: { length: 0 } }), 'malformed', null),

  // Not IPv4/UDP, all carrying a known flow's addresses and ports where the protocol has them
  untouched(
    'TCP',
    buildIpv4Frame({
      eth: { src: NEIGHBOURS.client.mac, dst: LINKS.lan.mac },
      ip: { src: SAME.src.addr, dst: SAME.dst.addr, protocol: IPPROTO_TCP },
      payload: tcpHeader(SAME.src.port, SAME.dst.port),
    }),
    'notIpv4Udp',
    VALID_NOT_UDP,
  ),
  untouched(
    'ICMP echo request',
    buildIpv4Frame({
      eth: { src: NEIGHBOURS.client.mac, dst: LINKS.lan.mac },
      ip: { src: SAME.src.addr, dst: SAME.dst.addr, protocol: IPPROTO_ICMP },
      payload: icmpEcho(),
    }),
    'notIpv4Udp',
    VALID_NOT_UDP,
  ),
  untouched(
    'IPv6/UDP',
    buildIpv6UdpFrame({
      eth: { src: NEIGHBOURS.client.mac, dst: LINKS.lan.mac },
      ip: { src: 'fd00::10', dst: 'fd00::1' },
      udp: { srcPort: SAME.src.port, dstPort: SAME.dst.port },
      payload: PAYLOAD,
    }),
    'notIpv4Udp',
    VALID_UDP,
  ),
  untouched(
    'ARP request for the VIP',
    buildArpFrame({ senderMac: NEIGHBOURS.client.mac, senderIp: CLIENT, targetIp: VIP.addr, minFrame: true }),
    'notIpv4Udp',
    null,
  ),
  untouched(
    '802.1Q-tagged IPv4/UDP of a known flow',
    udpFrame(SAME, 'lan', { eth: { src: NEIGHBOURS.client.mac, dst: LINKS.lan.mac, vlan: { id: 10 } } }),
    'notIpv4Udp',
    VALID_UDP,
  ),
  untouched(
    '802.1ad/802.1Q double-tagged IPv4/UDP of a known flow',
    udpFrame(SAME, 'lan', {
      eth: { src: NEIGHBOURS.client.mac, dst: LINKS.lan.mac, vlan: [{ id: 100, tpid: ETH_P_8021AD }, { id: 10 }] },
    }),
    'notIpv4Udp',
    VALID_UDP,
  ),
  untouched(
    'IPv4 EtherType with IP version 6 in the header',
    udpFrame(SAME, 'lan', { ip: { version: 6 } }),
    'notIpv4Udp',
    null,
  ),
];

// ---------------------------------------------------------------------------------------------
// Helpers

const VERDICT_NAMES: Record<number, string> = {
  [XDP_PASS]: 'XDP_PASS',
  [XDP_TX]: 'XDP_TX',
  [XDP_REDIRECT]: 'XDP_REDIRECT',
};

/** 16 bytes a line with offsets, so that a mismatch shows as a readable line diff. */
function hexdump(b: Uint8Array): string {
  const lines: string[] = [];
  for (let off = 0; off < b.length; off += 16) {
    const row = Array.from(b.subarray(off, off + 16), (x) => x.toString(16).padStart(2, '0')).join(' ');
    lines.push(`${off.toString(16).padStart(4, '0')}  ${row}`);
  }
  return `${b.length} bytes\n${lines.join('\n')}`;
}

function delta(before: XdpStats, after: XdpStats): XdpStats {
  const out = {} as XdpStats;
  for (const n of STAT_NAMES) out[n] = after[n] - before[n];
  return out;
}

function only(counter: StatName, n = 1): XdpStats {
  const out = {} as XdpStats;
  for (const name of STAT_NAMES) out[name] = name === counter ? n : 0;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Checks of the table itself: each special frame really is what its case claims

describe('the case table itself', () => {
  const byName = (n: string): Case => {
    const c = CASES.find((x) => x.name === n);
    if (!c) throw new Error(`no case '${n}'`);
    return c;
  };

  it('has unique names', () => {
    expect(new Set(CASES.map((c) => c.name)).size).toBe(CASES.length);
  });

  it('the fold-to-zero case needs the 0 → 0xFFFF rule', () => {
    const c = byName('rewritten UDP checksum that computes to 0 goes out as 0xFFFF');
    const out = parseFrame(c.output);
    expect(out.udp?.checksum).toBe(0xffff);
    const seg = c.output.subarray(out.udp!.offset, out.udp!.offset + out.udp!.length);
    expect(udpChecksum(out.ipv4!.src, out.ipv4!.dst, seg)).toBe(0);
    expect(parseFrame(c.input).udp?.checksum).not.toBe(0xffff);
  });

  it('the 0xFFFF-input case arrives with 0xFFFF and leaves with something else', () => {
    const c = byName('incoming UDP checksum 0xFFFF (computed 0) is updated correctly');
    expect(parseFrame(c.input).udp?.checksum).toBe(0xffff);
    expect(parseFrame(c.output).udp?.checksum).not.toBe(0xffff);
  });

  it('option cases carry the IHL they name, and the options differ from NOP padding', () => {
    for (let ihl = 6; ihl <= 15; ihl++) {
      const p = parseFrame(byName(`IP options kept byte for byte, IHL ${ihl}`).input);
      expect(p.ipv4?.ihl).toBe(ihl);
      expect(p.ipv4?.options.equals(Buffer.alloc(4 * (ihl - 5), 1))).toBe(false);
      expect(p.udp?.srcPort).toBe(SAME.src.port);
    }
  });

  it('the padding case is a 60-byte frame whose IP packet ends before the padding', () => {
    const c = byName('Ethernet padding kept: frame length and trailing bytes unchanged');
    const p = parseFrame(c.input);
    expect(c.input.length).toBe(60);
    expect(p.trailer.equals(PADDING)).toBe(true);
    expect(parseFrame(c.output).trailer.equals(PADDING)).toBe(true);
  });

  it('fragment cases are a first, a middle and a last fragment', () => {
    const [first, middle, last] = fragments.map((f) => parseFrame(f).ipv4!);
    expect([first?.mf, first?.fragOffset]).toEqual([true, 0]);
    expect(parseFrame(fragments[0]!).udp?.dstPort).toBe(SAME.dst.port);
    expect([middle?.mf, middle?.fragOffset]).toEqual([true, 4]);
    expect([last?.mf, last?.fragOffset]).toEqual([false, 8]);
  });

  it('the IHL 4 decoy reads as the decoy flow with a consistent UDP length when IHL is believed', () => {
    const f = byName('IHL 4 whose bytes would parse as a known flow if the IHL were believed').input;
    const ip = ETH_HLEN;
    const udp = ip + 16;
    expect(f.readUInt16BE(udp)).toBe(FLOWS.ihl4Decoy.match.src.port);
    expect(f.readUInt16BE(udp + 2)).toBe(FLOWS.ihl4Decoy.match.dst.port);
    expect(f.readUInt16BE(udp + 4)).toBe(f.readUInt16BE(ip + 2) - 16);
  });

  it('the MTU cases straddle tiny0 MTU', () => {
    expect(parseFrame(byName('datagram of exactly the egress MTU').input).ipv4?.totalLength).toBe(LINKS.tiny.mtu);
    expect(parseFrame(byName('one byte over the egress MTU without DF: passed rewritten for the kernel to fragment, TTL and Ethernet untouched').input).ipv4?.totalLength).toBe(
      LINKS.tiny.mtu + 1,
    );
    expect(parseFrame(byName('one byte over the egress MTU with DF: answered with ICMP fragmentation needed and the MTU').input).ipv4?.totalLength).toBe(
      LINKS.tiny.mtu + 1,
    );
  });

  it('the ICMP error cases answer what they name: the quote whole, no padding, the MTU of tiny0, valid checksums', () => {
    const errors = CASES.filter((c) => parseFrame(c.output).ipv4?.protocol === IPPROTO_ICMP && c.verdict === XDP_TX);
    expect(errors.length).toBe(8);
    for (const c of errors) {
      const inIp = parseFrame(c.input).ipv4!;
      const out = parseFrame(c.output);
      // Ethernet, IP, ICMP, then the quoted header with its options and 8 bytes: the datagram's first bytes.
      expect(c.output.length, c.name).toBe(ETH_HLEN + IPV4_MIN_HLEN + 8 + inIp.headerLength + 8);
      expect(out.trailer.length, c.name).toBe(0);
      expect(c.output.subarray(ETH_HLEN + IPV4_MIN_HLEN + 8).equals(c.input.subarray(ETH_HLEN, ETH_HLEN + inIp.headerLength + 8)), c.name).toBe(true);
      expect([out.ipv4?.src, out.ipv4?.dst], c.name).toEqual([inIp.dst, inIp.src]);
      expect([out.ipv4?.tos, out.ipv4?.ttl, out.ipv4?.id, out.ipv4?.flags], c.name).toEqual([0xc0, 64, 0, 0]);
      expect([out.eth.src, out.eth.dst], c.name).toEqual([parseFrame(c.input).eth.dst, parseFrame(c.input).eth.src]);
      expect(verifyChecksums(c.output), c.name).toEqual(VALID_NOT_UDP);
      expect(icmpChecksumOk(c.output), c.name).toBe(true);
    }
    const ihl15 = byName('time exceeded quotes the whole IP header with its options, IHL 15');
    expect(parseFrame(ihl15.input).ipv4?.ihl).toBe(15);
    const padded = byName('TTL 1 with Ethernet padding: the time exceeded carries none');
    expect(padded.input.length).toBe(60);
    expect(parseFrame(padded.input).trailer.equals(PADDING)).toBe(true);
    // The reply is never longer than the frame that came plus the 28 bytes of its own IP and ICMP headers.
    expect(padded.output.length).toBeLessThanOrEqual(padded.input.length + 28);
    const fragNeeded = byName('one byte over the egress MTU with DF: answered with ICMP fragmentation needed and the MTU');
    expect(parseFrame(fragNeeded.input).ipv4?.df).toBe(true);
    expect(fragNeeded.output.readUInt32BE(ETH_HLEN + IPV4_MIN_HLEN + 4)).toBe(LINKS.tiny.mtu);
  });

  it('every rewritten case differs from its input, every passed-untouched case equals it', () => {
    for (const c of CASES) {
      const rewritten = c.verdict !== XDP_PASS || ['fibNoNeigh', 'fibFragNeeded', 'egressNoXdp'].includes(c.counter);
      expect(c.output.equals(c.input), c.name).toBe(!rewritten);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The program

describePrivileged('flowlb XDP program under BPF_PROG_TEST_RUN', () => {
  let fx: FibFixture | undefined;
  let fwd: XdpForwarder | undefined;

  beforeAll(async () => {
    fx = await createFibFixture();
    // FLOWLB_BPF_OBJECT_UNDER_TEST runs the table against another build of the program (a patched or older one).
    const objectPath = process.env.FLOWLB_BPF_OBJECT_UNDER_TEST;
    fwd = await XdpForwarder.load({ flowsMaxEntries: 256, ...(objectPath ? { objectPath } : {}) });
    fx.addTxPorts(fwd);
  });

  afterAll(async () => {
    try {
      fwd?.close();
    } finally {
      await fx?.destroy();
    }
  });

  const env = (): { fx: FibFixture; fwd: XdpForwarder } => {
    if (!fx || !fwd) throw new Error('fixture not set up');
    return { fx, fwd };
  };

  function clearFlows(f: XdpForwarder): void {
    // Keys first: deleting while walking makes the kernel restart the walk.
    for (const k of [...f.flows.keys()]) f.flows.delete(k);
  }

  function installFlows(f: XdpForwarder, entries: Iterable<FlowEntry>): void {
    for (const e of entries) f.flows.update(encodeFlowKey(e.match), encodeFlowVal(e));
  }

  function run(ingress: LinkName, data: Buffer, repeat = 1): { retval: number; data: Buffer } {
    const { fx: x, fwd: f } = env();
    return x.inNs(() => f.program.testRun({ data, ingressIfindex: x.ifindex[ingress], repeat }));
  }

  describe('case table', () => {
    beforeEach(() => {
      const { fwd: f } = env();
      clearFlows(f);
      installFlows(f, Object.values(FLOWS));
    });

    for (const c of CASES) {
      it(`${c.name} → ${VERDICT_NAMES[c.verdict]}, ${c.counter}`, () => {
        const { fwd: f } = env();
        const before = f.stats();
        const t0 = process.hrtime.bigint();
        const r = run(c.ingress, c.input);
        const t1 = process.hrtime.bigint();
        const after = f.stats();

        expect(VERDICT_NAMES[r.retval] ?? r.retval).toBe(VERDICT_NAMES[c.verdict]);
        expect(hexdump(r.data)).toBe(hexdump(c.output));
        expect(delta(before, after)).toEqual(only(c.counter));
        if (c.checksums) expect(verifyChecksums(r.data)).toEqual(c.checksums);
        if (parseFrame(r.data).ipv4?.protocol === IPPROTO_ICMP) expect(icmpChecksumOk(r.data)).toBe(true);

        // The program never inserts: the table holds what was installed, and only the hit entry moved: its
        // last_used, and a forward entry is marked confirmed, a reverse one replied.
        expect([...f.flows.keys()].length).toBe(FLOW_NAMES.length);
        for (const name of FLOW_NAMES) {
          const e = FLOWS[name];
          const v = f.flows.lookup(encodeFlowKey(e.match));
          expect(v, name).toBeDefined();
          const mark = (e.flags & FLOWLB_F_REVERSE) === 0 ? FLOWLB_F_CONFIRMED : FLOWLB_F_REPLIED;
          const expected = name === c.touches ? { ...e, flags: e.flags | mark } : e;
          expect(hexdump(withoutLastUsed(v!)), name).toBe(hexdump(withoutLastUsed(encodeFlowVal(expected))));
          const used = lastUsedOf(v!);
          if (name === c.touches) {
            expect(stampedDuring(used, t0, t1), `${name}.last_used ${used} stamped during the run [${t0}, ${t1}]`).toBe(true);
          } else {
            expect(used, `${name}.last_used`).toBe(STALE);
          }
        }
      });
    }
  });

  describe('input the kernel refuses', () => {
    it('a frame shorter than an Ethernet header is an EINVAL error and the program does not run', () => {
      const { fwd: f } = env();
      const before = f.stats();
      for (const len of [0, 1, 13]) {
        let err: NodeJS.ErrnoException | undefined;
        try {
          run('lan', full.subarray(0, len));
        } catch (e) {
          err = e as NodeJS.ErrnoException;
        }
        expect(err, `${len} bytes`).toBeInstanceOf(Error);
        expect(err?.code).toBe('EINVAL');
        expect(err?.syscall).toBe('bpf_prog_test_run_opts');
      }
      expect(f.stats()).toEqual(before);
    });
  });

  describe('fragments of a known flow', () => {
    beforeEach(() => {
      const { fwd: f } = env();
      clearFlows(f);
      installFlows(f, Object.values(FLOWS));
    });

    const directions = [
      { flow: 'sameLink', ingress: 'lan', egress: 'lan', nextHopMac: NEIGHBOURS.lanBackend.mac, verdict: XDP_TX, id: 0x5001 },
      { flow: 'crossRev', ingress: 'srv', egress: 'lan', nextHopMac: NEIGHBOURS.client.mac, verdict: XDP_REDIRECT, id: 0x5002 },
    ] as const;

    for (const d of directions) {
      it(`${d.flow}: the first fragment goes by its flow, the later ones the way it went, each rewritten whole`, () => {
        const { fwd: f } = env();
        const entry = FLOWS[d.flow];
        const input = fragmentsOf(entry.match, d.ingress, d.id);
        // Built from scratch: the UDP checksum in the first is the whole rewritten datagram's.
        const output = fragmentsOf(entry.to, d.ingress, d.id, { src: LINKS[d.egress].mac, dst: d.nextHopMac }, 63);
        const before = f.stats();
        input.forEach((frame, i) => {
          const r = run(d.ingress, frame);
          expect(VERDICT_NAMES[r.retval], `fragment ${i}`).toBe(VERDICT_NAMES[d.verdict]);
          expect(hexdump(r.data), `fragment ${i}`).toBe(hexdump(output[i]!));
        });
        expect(delta(before, f.stats())).toEqual(only('fragmentFwd', 3));
      });
    }

    it('later fragments go the way their first went even when they come in reverse order', () => {
      const { fwd: f } = env();
      const entry = FLOWS.sameLink;
      const input = fragmentsOf(entry.match, 'lan', 0x5003);
      const output = fragmentsOf(entry.to, 'lan', 0x5003, { src: LINKS.lan.mac, dst: NEIGHBOURS.lanBackend.mac }, 63);
      const before = f.stats();
      for (const i of [0, 2, 1]) expect(hexdump(run('lan', input[i]!).data), `fragment ${i}`).toBe(hexdump(output[i]!));
      expect(delta(before, f.stats())).toEqual(only('fragmentFwd', 3));
    });

    it('a later fragment of another datagram (other IP id, other source) is not taken for one of the flow', () => {
      const { fwd: f } = env();
      run('lan', fragmentsOf(SAME, 'lan', 0x5004)[0]!);
      const before = f.stats();
      const otherId = fragmentsOf(SAME, 'lan', 0x5005)[1]!;
      const otherSource = fragmentsOf({ src: ep(NEIGHBOURS.lanBackend.addr, SAME.src.port), dst: SAME.dst }, 'lan', 0x5004)[1]!;
      for (const frame of [otherId, otherSource]) {
        const r = run('lan', frame);
        expect(r.retval).toBe(XDP_PASS);
        expect(hexdump(r.data)).toBe(hexdump(frame));
      }
      expect(delta(before, f.stats())).toEqual(only('fragment', 2));
    });

    it('a later fragment with TTL 1 passes untouched: no ICMP error about a fragment but the first (RFC 1122 3.2.2)', () => {
      const { fwd: f } = env();
      expect(run('lan', fragmentsOf(SAME, 'lan', 0x5007)[0]!).retval).toBe(XDP_TX);
      const before = f.stats();
      for (const later of fragmentsOf(SAME, 'lan', 0x5007, undefined, 1).slice(1)) {
        const r = run('lan', later);
        expect(r.retval).toBe(XDP_PASS);
        expect(hexdump(r.data)).toBe(hexdump(later));
      }
      expect(delta(before, f.stats())).toEqual(only('ttl', 2));
    });

    it('a first fragment with TTL 1 is answered with time exceeded, quoting its UDP header', () => {
      const { fwd: f } = env();
      const first = fragmentsOf(SAME, 'lan', 0x5008, undefined, 1)[0]!;
      const before = f.stats();
      const r = run('lan', first);
      expect(VERDICT_NAMES[r.retval]).toBe('XDP_TX');
      expect(hexdump(r.data)).toBe(hexdump(icmpErrorFrame(SAME, 'lan', first, TIME_EXCEEDED)));
      expect(icmpChecksumOk(r.data)).toBe(true);
      expect(delta(before, f.stats())).toEqual(only('ttl'));
    });

    it('a first fragment whose UDP length is not larger than its IP payload is malformed and passes untouched', () => {
      const { fwd: f } = env();
      const first = Buffer.from(fragmentsOf(SAME, 'lan', 0x5006)[0]!);
      // UDP length = the fragment's own IP payload (32): a whole datagram's, which a fragment cannot be.
      first.writeUInt16BE(32, ETH_HLEN + IPV4_MIN_HLEN + 4);
      const before = f.stats();
      const r = run('lan', first);
      expect(r.retval).toBe(XDP_PASS);
      expect(hexdump(r.data)).toBe(hexdump(first));
      expect(delta(before, f.stats())).toEqual(only('malformed'));
    });
  });

  describe('ICMP errors are rate limited', () => {
    beforeEach(() => {
      const { fwd: f } = env();
      clearFlows(f);
      installFlows(f, Object.values(FLOWS));
    });

    it('answers a burst of expiring datagrams up to the allowance of each CPU, and passes the rest as they came', async () => {
      const { fwd: f } = env();
      // Every allowance full: idle for a second.
      await new Promise((r) => setTimeout(r, 1_100));
      const frame = udpFrame(SAME, 'lan', { ip: { ttl: 1 } });
      const sent = 400;
      const before = f.stats();
      const t0 = performance.now();
      const verdicts = Array.from({ length: sent }, () => run('lan', frame).retval);
      const seconds = (performance.now() - t0) / 1000;
      const answered = verdicts.filter((v) => v === XDP_TX).length;
      const passed = verdicts.filter((v) => v === XDP_PASS).length;
      expect(answered + passed).toBe(sent);
      // Answered or not, each one counts once, as TTL ≤ 1.
      expect(delta(before, f.stats())).toEqual(only('ttl', sent));
      // At least one CPU's burst (50), at most every CPU's burst and what 1,000 a second per CPU added meanwhile.
      const cpus = possibleCpus();
      expect(answered).toBeGreaterThanOrEqual(50);
      expect(answered).toBeLessThanOrEqual(cpus * (50 + Math.ceil(1000 * seconds) + 1));
      expect(passed).toBeGreaterThan(0);
      // Full again for the tests after this one that expect an answer.
      await new Promise((r) => setTimeout(r, 1_100));
    });
  });

  describe('next-hop cache', () => {
    const flow = FLOWS.cross;
    const input = udpFrame(flow.match, 'lan');
    const MOVED_MAC = '02:00:00:0b:00:99';
    const ip = (...args: string[]): void => {
      execFileSync('ip', ['-n', env().fx.ns, ...args], { stdio: 'pipe' });
    };
    const setBackendMac = (mac: string): void =>
      ip('neigh', 'replace', NEIGHBOURS.srvBackend.addr, 'lladdr', mac, 'dev', LINKS.srv.ifname, 'nud', 'permanent');
    const destMac = (frame: Buffer): string => [...frame.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
    /** Enough runs that every CPU the runs land on has filled its own cache. */
    const hits = (n = 32): string[] => Array.from({ length: n }, () => destMac(run('lan', input).data));

    beforeEach(() => {
      const { fwd: f } = env();
      clearFlows(f);
      installFlows(f, Object.values(FLOWS));
    });
    afterEach(() => {
      const { fwd: f } = env();
      setBackendMac(NEIGHBOURS.srvBackend.mac);
      f.setNextHopCache(true);
      f.invalidateNextHops();
    });

    it('follows a neighbour that changed its MAC once the cache is invalidated', () => {
      const { fwd: f } = env();
      expect(new Set(hits())).toEqual(new Set([NEIGHBOURS.srvBackend.mac]));
      setBackendMac(MOVED_MAC);
      f.invalidateNextHops();
      expect(new Set(hits())).toEqual(new Set([MOVED_MAC]));
    });

    it('looks every next hop up again after a second, invalidated or not', async () => {
      expect(new Set(hits())).toEqual(new Set([NEIGHBOURS.srvBackend.mac]));
      setBackendMac(MOVED_MAC);
      // FLOWLB_NEXTHOP_MAX_AGE_NS, plus the coarse clock's lag (see COARSE_LAG).
      await new Promise((r) => setTimeout(r, 1_000 + Number(COARSE_LAG / 1_000_000n) + 100));
      expect(new Set(hits())).toEqual(new Set([MOVED_MAC]));
    });

    it('turned off, looks the route up on every hit', () => {
      const { fwd: f } = env();
      f.setNextHopCache(false);
      expect(new Set(hits())).toEqual(new Set([NEIGHBOURS.srvBackend.mac]));
      setBackendMac(MOVED_MAC);
      expect(new Set(hits())).toEqual(new Set([MOVED_MAC]));
    });

    it('follows a route moved to another interface and gateway', () => {
      const { fwd: f } = env();
      const gw = FLOWS.viaGateway;
      const frame = udpFrame(gw.match, 'lan');
      const out = (): { verdict: number; mac: string; src: string } => {
        const r = run('lan', frame);
        return { verdict: r.retval, mac: destMac(r.data), src: destMac(r.data.subarray(6)) };
      };
      expect(out()).toEqual({ verdict: XDP_REDIRECT, mac: NEIGHBOURS.srvBackend.mac, src: LINKS.srv.mac });
      ip('route', 'replace', '10.7.0.0/24', 'via', NEIGHBOURS.tinyBackend.addr, 'dev', LINKS.tiny.ifname);
      try {
        f.invalidateNextHops();
        for (let i = 0; i < 32; i++) expect(out()).toEqual({ verdict: XDP_REDIRECT, mac: NEIGHBOURS.tinyBackend.mac, src: LINKS.tiny.mac });
      } finally {
        ip('route', 'replace', '10.7.0.0/24', 'via', NEIGHBOURS.srvBackend.addr, 'dev', LINKS.srv.ifname);
      }
    });

    it('a datagram larger than the MTU a hop was cached for has the kernel check it again', () => {
      const { fwd: f } = env();
      const fits = udpFrame(FLOWS.tiny.match, 'lan', { payload: Buffer.alloc(TINY_PAYLOAD_FITS, 0x33) });
      const over = udpFrame(FLOWS.tiny.match, 'lan', { payload: Buffer.alloc(TINY_PAYLOAD_FITS + 1, 0x33) });
      for (let i = 0; i < 32; i++) expect(run('lan', fits).retval).toBe(XDP_REDIRECT);
      const before = f.stats();
      for (let i = 0; i < 32; i++) expect(run('lan', over).retval).toBe(XDP_PASS);
      expect(delta(before, f.stats())).toEqual(only('fibFragNeeded', 32));
    });
  });

  describe('last_used', () => {
    const flow = FLOWS.sameLink;
    const key = encodeFlowKey(flow.match);
    const input = udpFrame(flow.match, 'lan');

    beforeEach(() => clearFlows(env().fwd));

    function hitWith(lastUsed: bigint): { before: bigint; after: bigint; value: Buffer } {
      const { fwd: f } = env();
      f.flows.update(key, encodeFlowVal({ ...flow, lastUsed }));
      const before = process.hrtime.bigint();
      expect(run('lan', input).retval).toBe(XDP_TX);
      const after = process.hrtime.bigint();
      const value = f.flows.lookup(key);
      if (!value) throw new Error('entry vanished');
      return { before, after, value };
    }

    it.each([
      ['long ago', () => STALE],
      ['to 0, as a tool may leave it', () => 0n],
      ['150 ms ago', () => process.hrtime.bigint() - 150_000_000n],
      ['in the future', () => process.hrtime.bigint() + 10_000_000_000n],
    ])('a hit refreshes a last_used set %s, in place, marks the entry confirmed, and nothing else', (_label, lastUsed) => {
      const { before, after, value } = hitWith(lastUsed());
      const used = lastUsedOf(value);
      expect(stampedDuring(used, before, after), `${used} stamped during the run [${before}, ${after}]`).toBe(true);
      expect(withoutLastUsed(value).equals(withoutLastUsed(encodeFlowVal({ ...flow, flags: FLOWLB_F_CONFIRMED })))).toBe(true);
    });

    it('a reverse entry is marked replied, never confirmed, and a confirmed entry keeps its flags', () => {
      const { fwd: f } = env();
      const reverse = reverseOf(flow);
      f.flows.update(encodeFlowKey(reverse.match), encodeFlowVal(reverse));
      run('lan', udpFrame(reverse.match, 'lan'));
      expect(flagsOf(f.flows.lookup(encodeFlowKey(reverse.match))!)).toBe(FLOWLB_F_REVERSE | FLOWLB_F_REPLIED);
      f.flows.update(key, encodeFlowVal({ ...flow, flags: FLOWLB_F_CONFIRMED | 0x100 }));
      run('lan', input);
      expect(flagsOf(f.flows.lookup(key)!)).toBe(FLOWLB_F_CONFIRMED | 0x100);
    });

    it('a hit less than 100 ms after the last refresh leaves last_used alone', () => {
      // Retried when the machine stalls long enough to push the hit past the interval, which would be correct.
      for (let attempt = 0; attempt < 5; attempt++) {
        const set = process.hrtime.bigint() - 40_000_000n;
        const { after, value } = hitWith(set);
        if (after - set >= 90_000_000n) continue;
        expect(lastUsedOf(value)).toBe(set);
        return;
      }
      throw new Error('no attempt ran within 50 ms of setting last_used');
    });

    it('a hit leaves alone a last_used less than 100 ms ahead, as the control plane stamps a new flow with the finer clock', () => {
      const set = process.hrtime.bigint() + 50_000_000n;
      const { value } = hitWith(set);
      expect(lastUsedOf(value)).toBe(set);
    });

    it('a packet that reaches the entry refreshes it even when it is not forwarded (TTL 1, answered instead)', () => {
      const { fwd: f } = env();
      f.flows.update(key, encodeFlowVal({ ...flow, lastUsed: STALE }));
      const before = process.hrtime.bigint();
      expect(run('lan', udpFrame(flow.match, 'lan', { ip: { ttl: 1 } })).retval).toBe(XDP_TX);
      const used = lastUsedOf(f.flows.lookup(key)!);
      expect(stampedDuring(used, before, process.hrtime.bigint())).toBe(true);
    });

    it('a deleted entry is not re-created by hits on it or on its reverse entry', () => {
      const { fwd: f } = env();
      const rev = FLOWS.sameLinkRev;
      installFlows(f, [flow, rev]);
      expect(run('lan', input).retval).toBe(XDP_TX);
      expect(f.flows.delete(key)).toBe(true);

      const before = f.stats();
      expect(run('lan', input).data.equals(input)).toBe(true);
      expect(run('lan', udpFrame(rev.match, 'lan')).retval).toBe(XDP_TX);
      expect(delta(before, f.stats())).toEqual({ ...only('miss'), revHit: 1 });
      expect(f.flows.lookup(key)).toBeUndefined();
      expect([...f.flows.keys()].map((k) => k.toString('hex'))).toEqual([encodeFlowKey(rev.match).toString('hex')]);
    });
  });

  describe('new-client limits', () => {
    beforeEach(() => clearFlows(env().fwd));
    afterEach(() => {
      const { fwd: f } = env();
      f.setNewClientLimits({});
      f.setVips([]);
    });
    const vip = { address: VIP.addr, port: VIP.port };
    const miss = (src: string, port: number, dst = VIP) => run('lan', udpFrame({ src: ep(src, port), dst }, 'lan')).retval;

    it('drops the datagrams of new clients to a VIP beyond their source\'s burst, and nothing else', () => {
      const { fwd: f } = env();
      f.setVips([vip]);
      f.setNewClientLimits({ perSource: { rate: 1, burst: 3 } });
      const before = f.stats();
      expect([40001, 40002, 40003, 40004, 40005].map((port) => miss('198.18.7.1', port))).toEqual([
        XDP_PASS,
        XDP_PASS,
        XDP_PASS,
        XDP_DROP,
        XDP_DROP,
      ]);
      // Another source has a bucket of its own, and a port that is not a VIP is not watched.
      expect(miss('198.18.7.2', 40001)).toBe(XDP_PASS);
      expect(miss('198.18.7.1', 40006, ep(VIP.addr, VIP.port + 1))).toBe(XDP_PASS);
      expect(delta(before, f.stats())).toEqual({ ...only('miss', 5), rateLimited: 2 });
    });

    it('shares one bucket among the addresses of a /24, and passes everything once the limits are off', () => {
      const { fwd: f } = env();
      f.setVips([vip]);
      f.setNewClientLimits({ perNet24: { rate: 1, burst: 2 } });
      expect(['198.18.8.1', '198.18.8.2', '198.18.8.3', '198.18.9.1'].map((a) => miss(a, 40001))).toEqual([
        XDP_PASS,
        XDP_PASS,
        XDP_DROP,
        XDP_PASS,
      ]);
      f.setNewClientLimits({});
      expect(miss('198.18.8.4', 40001)).toBe(XDP_PASS);
    });

    it('refuses limits the program cannot count', () => {
      const { fwd: f } = env();
      expect(() => f.setNewClientLimits({ perSource: { rate: 0 } })).toThrow(/perSource\.rate 0 is not an integer from 1 to 1000000/);
      expect(() => f.setNewClientLimits({ perNet24: { rate: 10, burst: 2_000_001 } })).toThrow(/perNet24\.burst/);
      expect(() => f.setVips([{ address: '10.0.0.1', port: 0 }])).toThrow(/port 0/);
    });
  });

  describe('repeat', () => {
    beforeEach(() => {
      const { fwd: f } = env();
      clearFlows(f);
      installFlows(f, Object.values(FLOWS));
    });

    // What a benchmark has to know: the kernel does not restore the frame between repetitions.
    it('runs the program again on the frame it left behind', () => {
      const { fwd: f } = env();
      const c = CASES.find((x) => x.name === 'forward hit, backend on the ingress link')!;
      const before = f.stats();
      const r = run('lan', c.input, 3);
      expect(r.retval).toBe(XDP_PASS);
      expect(hexdump(r.data)).toBe(hexdump(c.output));
      expect(delta(before, f.stats())).toEqual({ ...only('fwdHit'), miss: 2 });
    });

    it('counts every repetition of an untouched frame', () => {
      const { fwd: f } = env();
      const before = f.stats();
      expect(run('lan', udpFrame({ src: ep(CLIENT, 5999), dst: VIP }, 'lan'), 1000).retval).toBe(XDP_PASS);
      expect(delta(before, f.stats())).toEqual(only('miss', 1000));
    });
  });
});
