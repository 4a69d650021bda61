/**
 * Frame builder and parser for feeding an XDP program through BPF_PROG_TEST_RUN and checking what it
 * returns. Every length and checksum is computed here from scratch, and every one of them can be
 * overridden to build broken packets on purpose.
 */

export const ETH_P_IPV4 = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_8021Q = 0x8100;
export const ETH_P_8021AD = 0x88a8;
export const ETH_P_IPV6 = 0x86dd;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export const ETH_HLEN = 14;
export const VLAN_HLEN = 4;
export const IPV4_MIN_HLEN = 20;
export const IPV6_HLEN = 40;
export const UDP_HLEN = 8;
/** Shortest Ethernet frame without FCS; shorter frames get padded on the wire. */
export const ETH_MIN_FRAME = 60;

// ---------------------------------------------------------------------------------------------
// Addresses

export function parseMac(mac: string): Buffer {
  const parts = mac.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) throw new Error(`bad MAC '${mac}'`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

export function formatMac(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(':');
}

export function parseIpv4(ip: string): Buffer {
  const parts = ip.split('.');
  if (parts.length !== 4) throw new Error(`bad IPv4 address '${ip}'`);
  const out = Buffer.alloc(4);
  parts.forEach((p, i) => {
    const n = Number(p);
    if (!/^\d{1,3}$/.test(p) || n > 255) throw new Error(`bad IPv4 address '${ip}'`);
    out[i] = n;
  });
  return out;
}

export function formatIpv4(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 4)).join('.');
}

export function parseIpv6(ip: string): Buffer {
  let text = ip;
  const tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4?.[1]) {
    const b = parseIpv4(v4[1]);
    tail.push(((b[0] ?? 0) << 8) | (b[1] ?? 0), ((b[2] ?? 0) << 8) | (b[3] ?? 0));
    text = text.slice(0, text.length - v4[1].length);
    text = text.endsWith('::') ? text : text.replace(/:$/, '');
    if (text === '') throw new Error(`bad IPv6 address '${ip}'`);
  }
  const halves = text.split('::');
  if (halves.length > 2) throw new Error(`bad IPv6 address '${ip}'`);
  const words = (s: string | undefined): number[] =>
    !s
      ? []
      : s.split(':').map((w) => {
          if (!/^[0-9a-fA-F]{1,4}$/.test(w)) throw new Error(`bad IPv6 address '${ip}'`);
          return parseInt(w, 16);
        });
  const head = words(halves[0]);
  const rest = halves.length === 2 ? words(halves[1]) : [];
  const total = head.length + rest.length + tail.length;
  let all: number[];
  if (halves.length === 2) {
    if (total > 7) throw new Error(`bad IPv6 address '${ip}'`);
    all = [...head, ...new Array<number>(8 - total).fill(0), ...rest, ...tail];
  } else {
    if (total !== 8) throw new Error(`bad IPv6 address '${ip}'`);
    all = [...head, ...tail];
  }
  const out = Buffer.alloc(16);
  all.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

/** RFC 5952 text form (lower case, longest zero run compressed). */
export function formatIpv6(bytes: Uint8Array): string {
  const words = Array.from({ length: 8 }, (_, i) => ((bytes[i * 2] ?? 0) << 8) | (bytes[i * 2 + 1] ?? 0));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

// ---------------------------------------------------------------------------------------------
// Checksums

/** One's complement sum of the data as big-endian 16-bit words (odd length padded with a zero byte), folded to 16 bits. */
export function onesComplementSum(data: Uint8Array, initial = 0): number {
  let sum = initial;
  const even = data.length & ~1;
  for (let i = 0; i < even; i += 2) sum += ((data[i] ?? 0) << 8) | (data[i + 1] ?? 0);
  if (data.length & 1) sum += (data[data.length - 1] ?? 0) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** The Internet checksum (RFC 1071) of the concatenated chunks: the complement of their one's complement sum. */
export function internetChecksum(...chunks: Uint8Array[]): number {
  // Chunks are summed as one stream, so an odd-length chunk must not be padded on its own.
  return ~onesComplementSum(Buffer.concat(chunks)) & 0xffff;
}

/** Header checksum of an IPv4 header (the checksum field at bytes 10–11 is treated as zero). */
export function ipv4Checksum(header: Uint8Array): number {
  const h = Buffer.from(header);
  if (h.length >= 12) h.writeUInt16BE(0, 10);
  return internetChecksum(h);
}

function pseudoHeaderV4(src: Uint8Array, dst: Uint8Array, protocol: number, length: number): Buffer {
  const p = Buffer.alloc(12);
  Buffer.from(src).copy(p, 0, 0, 4);
  Buffer.from(dst).copy(p, 4, 0, 4);
  p[9] = protocol;
  p.writeUInt16BE(length & 0xffff, 10);
  return p;
}

function pseudoHeaderV6(src: Uint8Array, dst: Uint8Array, nextHeader: number, length: number): Buffer {
  const p = Buffer.alloc(40);
  Buffer.from(src).copy(p, 0, 0, 16);
  Buffer.from(dst).copy(p, 16, 0, 16);
  p.writeUInt32BE(length >>> 0, 32);
  p[39] = nextHeader;
  return p;
}

function addrBytes(ip: string | Uint8Array): Buffer {
  if (typeof ip !== 'string') return Buffer.from(ip);
  return ip.includes(':') ? parseIpv6(ip) : parseIpv4(ip);
}

/**
 * UDP checksum over the pseudo-header and `udpSegment` (header + payload; its checksum field is
 * treated as zero; the pseudo-header length is `udpSegment.length`). IPv4 or IPv6 by address form.
 * Returns the raw value: 0 means the sum came out zero, which on the wire is sent as 0xFFFF because
 * 0 means "no checksum" (see {@link wireUdpChecksum}).
 */
export function udpChecksum(srcIp: string | Uint8Array, dstIp: string | Uint8Array, udpSegment: Uint8Array): number {
  const src = addrBytes(srcIp);
  const dst = addrBytes(dstIp);
  const seg = Buffer.from(udpSegment);
  if (seg.length >= 8) seg.writeUInt16BE(0, 6);
  const pseudo =
    src.length === 16 ? pseudoHeaderV6(src, dst, IPPROTO_UDP, seg.length) : pseudoHeaderV4(src, dst, IPPROTO_UDP, seg.length);
  return internetChecksum(pseudo, seg);
}

/** What goes into the UDP header for a computed checksum: 0 becomes 0xFFFF (RFC 768). */
export function wireUdpChecksum(raw: number): number {
  return raw === 0 ? 0xffff : raw;
}

// ---------------------------------------------------------------------------------------------
// Builders

export interface VlanTag {
  /** VLAN id, 0–4095. */
  id: number;
  /** Priority code point, 0–7. */
  pcp?: number;
  dei?: boolean;
  /** Tag protocol identifier: 0x8100 (default) or 0x88a8 for an outer S-tag. */
  tpid?: number;
}

export interface EthernetSpec {
  dst?: string;
  src?: string;
  /** One tag, or several outermost first (QinQ). */
  vlan?: VlanTag | VlanTag[];
  /** Overrides the (innermost) ethertype. */
  ethertype?: number;
}

export const DEFAULT_SRC_MAC = '02:00:00:00:00:01';
export const DEFAULT_DST_MAC = '02:00:00:00:00:02';

/** Ethernet header (with any VLAN tags) followed by `payload`. */
export function buildEthernet(spec: EthernetSpec, ethertype: number, payload: Uint8Array): Buffer {
  const tags = spec.vlan === undefined ? [] : Array.isArray(spec.vlan) ? spec.vlan : [spec.vlan];
  const hdr = Buffer.alloc(ETH_HLEN + tags.length * VLAN_HLEN);
  parseMac(spec.dst ?? DEFAULT_DST_MAC).copy(hdr, 0);
  parseMac(spec.src ?? DEFAULT_SRC_MAC).copy(hdr, 6);
  let off = 12;
  for (const tag of tags) {
    if (tag.id < 0 || tag.id > 4095) throw new Error(`bad VLAN id ${tag.id}`);
    hdr.writeUInt16BE(tag.tpid ?? ETH_P_8021Q, off);
    hdr.writeUInt16BE((((tag.pcp ?? 0) & 7) << 13) | (tag.dei ? 1 << 12 : 0) | tag.id, off + 2);
    off += 4;
  }
  hdr.writeUInt16BE(spec.ethertype ?? ethertype, off);
  return Buffer.concat([hdr, payload]);
}

export interface Ipv4Spec {
  src: string;
  dst: string;
  ttl?: number;
  id?: number;
  tos?: number;
  /** Don't fragment. */
  df?: boolean;
  /** More fragments. */
  mf?: boolean;
  /** The reserved ("evil") flag bit. */
  reservedFlag?: boolean;
  /** Fragment offset in 8-byte units, as in the header. */
  fragOffset?: number;
  /** Default 17 (UDP) for UDP frames; required meaning for buildIpv4Packet. */
  protocol?: number;
  /** IP options; padded with zeros (End of Option List) to a multiple of 4 bytes, at most 40. */
  options?: Uint8Array;
  /** Overrides the IHL field (in 32-bit words) without changing the bytes. */
  ihl?: number;
  /** Overrides the total length field. */
  totalLength?: number;
  /** Overrides the header checksum. */
  checksum?: number;
  /** Overrides the version nibble. */
  version?: number;
}

/** `count` bytes of IP options: NOPs, so any IHL from 5 to 15 can be made with `ipv4Options(4 * (ihl - 5))`. */
export function ipv4Options(count: number): Buffer {
  if (count < 0 || count > 40) throw new Error('IPv4 options are 0..40 bytes');
  return Buffer.alloc(count, 1);
}

/** IPv4 header (checksum computed unless overridden) followed by `payload`. */
export function buildIpv4Packet(spec: Ipv4Spec, payload: Uint8Array): Buffer {
  let options = Buffer.from(spec.options ?? []);
  if (options.length % 4 !== 0) options = Buffer.concat([options, Buffer.alloc(4 - (options.length % 4))]);
  if (options.length > 40) throw new Error('IPv4 options are at most 40 bytes');
  const hlen = IPV4_MIN_HLEN + options.length;
  const h = Buffer.alloc(hlen);
  h[0] = (((spec.version ?? 4) & 0xf) << 4) | ((spec.ihl ?? hlen / 4) & 0xf);
  h[1] = spec.tos ?? 0;
  h.writeUInt16BE((spec.totalLength ?? hlen + payload.length) & 0xffff, 2);
  h.writeUInt16BE((spec.id ?? 0) & 0xffff, 4);
  const flags = (spec.reservedFlag ? 4 : 0) | (spec.df ? 2 : 0) | (spec.mf ? 1 : 0);
  const fragOffset = spec.fragOffset ?? 0;
  if (fragOffset < 0 || fragOffset > 0x1fff) throw new Error(`bad fragment offset ${fragOffset}`);
  h.writeUInt16BE((flags << 13) | fragOffset, 6);
  h[8] = spec.ttl ?? 64;
  h[9] = spec.protocol ?? IPPROTO_UDP;
  parseIpv4(spec.src).copy(h, 12);
  parseIpv4(spec.dst).copy(h, 16);
  options.copy(h, 20);
  h.writeUInt16BE(spec.checksum ?? ipv4Checksum(h), 10);
  return Buffer.concat([h, payload]);
}

export interface UdpSpec {
  srcPort: number;
  dstPort: number;
  /** 'compute' (default; a computed 0 is written as 0xFFFF), 'none' (0), or an exact value. */
  checksum?: 'compute' | 'none' | number;
  /** Overrides the length field; the checksum then uses this length in the pseudo-header. */
  length?: number;
}

/** UDP header + payload with the checksum for the given addresses (IPv4 or IPv6). */
export function buildUdpSegment(srcIp: string, dstIp: string, spec: UdpSpec, payload: Uint8Array): Buffer {
  const seg = Buffer.alloc(UDP_HLEN + payload.length);
  seg.writeUInt16BE(spec.srcPort & 0xffff, 0);
  seg.writeUInt16BE(spec.dstPort & 0xffff, 2);
  const length = spec.length ?? seg.length;
  seg.writeUInt16BE(length & 0xffff, 4);
  Buffer.from(payload).copy(seg, UDP_HLEN);
  const mode = spec.checksum ?? 'compute';
  let ck: number;
  if (mode === 'none') ck = 0;
  else if (mode === 'compute') {
    const src = addrBytes(srcIp);
    const dst = addrBytes(dstIp);
    const pseudo =
      src.length === 16 ? pseudoHeaderV6(src, dst, IPPROTO_UDP, length) : pseudoHeaderV4(src, dst, IPPROTO_UDP, length);
    ck = wireUdpChecksum(internetChecksum(pseudo, seg));
  } else ck = mode & 0xffff;
  seg.writeUInt16BE(ck, 6);
  return seg;
}

export type Padding = number | Uint8Array;

function paddingBytes(p: Padding | undefined): Buffer {
  if (p === undefined) return Buffer.alloc(0);
  return typeof p === 'number' ? Buffer.alloc(p) : Buffer.from(p);
}

function payloadBytes(p: string | Uint8Array | undefined): Buffer {
  if (p === undefined) return Buffer.alloc(0);
  return typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p);
}

export interface UdpFrameSpec {
  eth?: EthernetSpec;
  ip: Ipv4Spec;
  udp: UdpSpec;
  payload?: string | Uint8Array;
  /** Bytes after the IP packet (Ethernet padding/trailer): a count of zero bytes or exact bytes. */
  padding?: Padding;
  /** Pad with zeros up to 60 bytes, as a NIC would for a short frame. */
  minFrame?: boolean;
}

/** Ethernet [+ VLAN] / IPv4 / UDP / payload [+ padding]. */
export function buildUdpFrame(spec: UdpFrameSpec): Buffer {
  const payload = payloadBytes(spec.payload);
  const udp = buildUdpSegment(spec.ip.src, spec.ip.dst, spec.udp, payload);
  const ip = buildIpv4Packet({ ...spec.ip, protocol: spec.ip.protocol ?? IPPROTO_UDP }, udp);
  return finishFrame(buildEthernet(spec.eth ?? {}, ETH_P_IPV4, ip), spec.padding, spec.minFrame);
}

export interface Ipv4FrameSpec {
  eth?: EthernetSpec;
  ip: Ipv4Spec;
  /** Everything after the IP header (an L4 segment or a fragment's data), used as is. */
  payload?: string | Uint8Array;
  padding?: Padding;
  minFrame?: boolean;
}

/** Ethernet / IPv4 with an arbitrary payload: other protocols, fragments, hand-made L4 headers. */
export function buildIpv4Frame(spec: Ipv4FrameSpec): Buffer {
  const ip = buildIpv4Packet(spec.ip, payloadBytes(spec.payload));
  return finishFrame(buildEthernet(spec.eth ?? {}, ETH_P_IPV4, ip), spec.padding, spec.minFrame);
}

function finishFrame(frame: Buffer, padding: Padding | undefined, minFrame: boolean | undefined): Buffer {
  let out = Buffer.concat([frame, paddingBytes(padding)]);
  if (minFrame && out.length < ETH_MIN_FRAME) out = Buffer.concat([out, Buffer.alloc(ETH_MIN_FRAME - out.length)]);
  return out;
}

export interface UdpFragmentsSpec {
  eth?: EthernetSpec;
  ip: Ipv4Spec;
  udp: UdpSpec;
  payload?: string | Uint8Array;
  /** Bytes of IP payload per fragment (rounded down to a multiple of 8; the last may be shorter). */
  fragmentSize: number;
}

/** Builds a UDP datagram (checksum over the whole datagram) and splits it into IPv4 fragments. */
export function buildUdpFragments(spec: UdpFragmentsSpec): Buffer[] {
  const udp = buildUdpSegment(spec.ip.src, spec.ip.dst, spec.udp, payloadBytes(spec.payload));
  const size = Math.floor(spec.fragmentSize / 8) * 8;
  if (size <= 0) throw new Error('fragmentSize must be at least 8');
  const frames: Buffer[] = [];
  for (let off = 0; off < udp.length; off += size) {
    const chunk = udp.subarray(off, off + size);
    const last = off + size >= udp.length;
    frames.push(
      buildIpv4Frame({
        eth: spec.eth,
        ip: { ...spec.ip, protocol: IPPROTO_UDP, fragOffset: off / 8, mf: !last || spec.ip.mf === true },
        payload: chunk,
      }),
    );
  }
  return frames;
}

export interface ArpSpec {
  eth?: EthernetSpec;
  /** 1 request (default), 2 reply. */
  op?: number;
  senderMac: string;
  senderIp: string;
  /** Default 00:00:00:00:00:00. */
  targetMac?: string;
  targetIp: string;
  padding?: Padding;
  minFrame?: boolean;
}

export function buildArpFrame(spec: ArpSpec): Buffer {
  const a = Buffer.alloc(28);
  a.writeUInt16BE(1, 0); // Ethernet
  a.writeUInt16BE(ETH_P_IPV4, 2);
  a[4] = 6;
  a[5] = 4;
  a.writeUInt16BE(spec.op ?? 1, 6);
  parseMac(spec.senderMac).copy(a, 8);
  parseIpv4(spec.senderIp).copy(a, 14);
  parseMac(spec.targetMac ?? '00:00:00:00:00:00').copy(a, 18);
  parseIpv4(spec.targetIp).copy(a, 24);
  const eth: EthernetSpec = {
    src: spec.senderMac,
    dst: (spec.op ?? 1) === 1 ? 'ff:ff:ff:ff:ff:ff' : (spec.targetMac ?? 'ff:ff:ff:ff:ff:ff'),
    ...spec.eth,
  };
  return finishFrame(buildEthernet(eth, ETH_P_ARP, a), spec.padding, spec.minFrame);
}

export interface Ipv6Spec {
  src: string;
  dst: string;
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
  /** Default 17 for UDP frames. */
  nextHeader?: number;
  /** Overrides the payload length field. */
  payloadLength?: number;
}

export function buildIpv6Packet(spec: Ipv6Spec, payload: Uint8Array): Buffer {
  const h = Buffer.alloc(IPV6_HLEN);
  const tc = spec.trafficClass ?? 0;
  h.writeUInt32BE(((6 << 28) | ((tc & 0xff) << 20) | ((spec.flowLabel ?? 0) & 0xfffff)) >>> 0, 0);
  h.writeUInt16BE((spec.payloadLength ?? payload.length) & 0xffff, 4);
  h[6] = spec.nextHeader ?? IPPROTO_UDP;
  h[7] = spec.hopLimit ?? 64;
  parseIpv6(spec.src).copy(h, 8);
  parseIpv6(spec.dst).copy(h, 24);
  return Buffer.concat([h, payload]);
}

export interface Ipv6UdpFrameSpec {
  eth?: EthernetSpec;
  ip: Ipv6Spec;
  udp: UdpSpec;
  payload?: string | Uint8Array;
  padding?: Padding;
}

export function buildIpv6UdpFrame(spec: Ipv6UdpFrameSpec): Buffer {
  const udp = buildUdpSegment(spec.ip.src, spec.ip.dst, spec.udp, payloadBytes(spec.payload));
  const ip = buildIpv6Packet({ ...spec.ip, nextHeader: spec.ip.nextHeader ?? IPPROTO_UDP }, udp);
  return finishFrame(buildEthernet(spec.eth ?? {}, ETH_P_IPV6, ip), spec.padding, false);
}

/**
 * `payload` plus two bytes chosen so that the UDP checksum of the resulting datagram comes out as
 * `target` (raw, before the 0 → 0xFFFF rule). `target` 0 gives a datagram whose checksum must be sent
 * as 0xFFFF: the case where an incremental update that forgets the rule writes 0 ("no checksum").
 */
export function payloadForUdpChecksum(
  target: number,
  p: { srcIp: string; dstIp: string; srcPort: number; dstPort: number; payload?: string | Uint8Array },
): Buffer {
  if (!Number.isInteger(target) || target < 0 || target > 0xfffe) {
    // 0xFFFF would need a one's complement sum of +0, which no datagram with protocol 17 has.
    throw new Error(`target checksum must be 0..0xfffe, got ${target}`);
  }
  const base = payloadBytes(p.payload);
  const candidate = Buffer.concat([base, Buffer.alloc(2)]);
  const seg = buildUdpSegment(p.srcIp, p.dstIp, { srcPort: p.srcPort, dstPort: p.dstPort, checksum: 0 }, candidate);
  const src = addrBytes(p.srcIp);
  const dst = addrBytes(p.dstIp);
  const pseudo =
    src.length === 16 ? pseudoHeaderV6(src, dst, IPPROTO_UDP, seg.length) : pseudoHeaderV4(src, dst, IPPROTO_UDP, seg.length);
  // Need S + C ≡ ~target (one's complement), with S the sum without the two filler bytes.
  const s = onesComplementSum(Buffer.concat([pseudo, seg]));
  const want = ~target & 0xffff;
  let c = want + (~s & 0xffff);
  while (c > 0xffff) c = (c & 0xffff) + (c >>> 16);
  // The filler starts at UDP offset 8 + base.length; at an odd offset its bytes land in the low half
  // of one word and the high half of the next, i.e. swapped.
  const odd = (UDP_HLEN + base.length) % 2 === 1;
  if (odd) candidate.writeUInt16LE(c, base.length);
  else candidate.writeUInt16BE(c, base.length);
  return candidate;
}

// ---------------------------------------------------------------------------------------------
// Editing helpers

/** The first `length` bytes (a copy). */
export function truncate(frame: Uint8Array, length: number): Buffer {
  return Buffer.from(frame.subarray(0, Math.max(0, length)));
}

export type Layer = 'eth' | 'ip' | 'l4';

/**
 * Cuts the frame `extra` bytes after the start of a layer's header: `truncateAt(f, 'ip', 10)` keeps
 * the Ethernet header (and tags) plus the first 10 bytes of the IP header.
 */
export function truncateAt(frame: Uint8Array, layer: Layer, extra = 0): Buffer {
  const p = parseFrame(frame);
  const off = layer === 'eth' ? 0 : layer === 'ip' ? p.eth.headerLength : p.l4Offset;
  if (off === undefined) throw new Error(`frame has no ${layer} layer`);
  return truncate(frame, off + extra);
}

/** Appends trailer bytes (a count of zeros or exact bytes). */
export function pad(frame: Uint8Array, padding: Padding): Buffer {
  return Buffer.concat([Buffer.from(frame), paddingBytes(padding)]);
}

/** Pads with zeros up to `length` bytes (default 60). */
export function padTo(frame: Uint8Array, length = ETH_MIN_FRAME): Buffer {
  return frame.length >= length ? Buffer.from(frame) : pad(frame, length - frame.length);
}

// ---------------------------------------------------------------------------------------------
// Parser

export interface ParsedVlan extends Required<Omit<VlanTag, 'dei'>> {
  dei: boolean;
}

export interface ParsedEthernet {
  dst: string;
  src: string;
  vlans: ParsedVlan[];
  /** Innermost ethertype. */
  ethertype: number;
  /** Including VLAN tags. */
  headerLength: number;
}

export interface ParsedIpv4 {
  offset: number;
  version: number;
  ihl: number;
  headerLength: number;
  tos: number;
  totalLength: number;
  id: number;
  /** The three flag bits (reserved, DF, MF) as a number 0–7. */
  flags: number;
  reservedFlag: boolean;
  df: boolean;
  mf: boolean;
  /** In 8-byte units. */
  fragOffset: number;
  isFragment: boolean;
  ttl: number;
  protocol: number;
  checksum: number;
  src: string;
  dst: string;
  options: Buffer;
}

export interface ParsedIpv6 {
  offset: number;
  version: number;
  trafficClass: number;
  flowLabel: number;
  payloadLength: number;
  nextHeader: number;
  hopLimit: number;
  src: string;
  dst: string;
}

export interface ParsedUdp {
  offset: number;
  srcPort: number;
  dstPort: number;
  length: number;
  checksum: number;
}

export interface ParsedArp {
  htype: number;
  ptype: number;
  op: number;
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
}

export interface ParsedFrame {
  length: number;
  eth: ParsedEthernet;
  ipv4?: ParsedIpv4;
  ipv6?: ParsedIpv6;
  arp?: ParsedArp;
  udp?: ParsedUdp;
  /** Where the L4 header starts (after IP options), when there is an IP layer. */
  l4Offset?: number;
  /**
   * UDP payload (bounded by the UDP length) for UDP, else the L3 payload (bounded by the IP length),
   * else everything after the Ethernet header. Clipped to what the frame holds.
   */
  payload: Buffer;
  /** Bytes after the end of the IP packet (Ethernet padding). */
  trailer: Buffer;
  /** Some header or length points past the end of the frame. */
  truncated: boolean;
}

/** Parses whatever it can; throws only when there is not even an Ethernet header. */
export function parseFrame(frame: Uint8Array): ParsedFrame {
  const buf = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  if (buf.length < ETH_HLEN) throw new Error(`frame of ${buf.length} bytes has no Ethernet header`);
  const vlans: ParsedVlan[] = [];
  let off = 12;
  let ethertype = buf.readUInt16BE(off);
  let truncated = false;
  while ((ethertype === ETH_P_8021Q || ethertype === ETH_P_8021AD) && vlans.length < 8) {
    if (buf.length < off + 6) {
      truncated = true;
      break;
    }
    const tci = buf.readUInt16BE(off + 2);
    vlans.push({ tpid: ethertype, pcp: tci >> 13, dei: (tci & 0x1000) !== 0, id: tci & 0xfff });
    off += 4;
    ethertype = buf.readUInt16BE(off);
  }
  const l3 = off + 2;
  const out: ParsedFrame = {
    length: buf.length,
    eth: { dst: formatMac(buf.subarray(0, 6)), src: formatMac(buf.subarray(6, 12)), vlans, ethertype, headerLength: l3 },
    payload: Buffer.from(buf.subarray(l3)),
    trailer: Buffer.alloc(0),
    truncated,
  };
  if (truncated) return out;

  if (ethertype === ETH_P_IPV4) {
    if (buf.length < l3 + IPV4_MIN_HLEN) {
      out.truncated = true;
      return out;
    }
    const ihl = buf[l3]! & 0xf;
    const headerLength = ihl * 4;
    const fragField = buf.readUInt16BE(l3 + 6);
    const flags = fragField >> 13;
    const totalLength = buf.readUInt16BE(l3 + 2);
    const ip: ParsedIpv4 = {
      offset: l3,
      version: buf[l3]! >> 4,
      ihl,
      headerLength,
      tos: buf[l3 + 1]!,
      totalLength,
      id: buf.readUInt16BE(l3 + 4),
      flags,
      reservedFlag: (flags & 4) !== 0,
      df: (flags & 2) !== 0,
      mf: (flags & 1) !== 0,
      fragOffset: fragField & 0x1fff,
      isFragment: (flags & 1) !== 0 || (fragField & 0x1fff) !== 0,
      ttl: buf[l3 + 8]!,
      protocol: buf[l3 + 9]!,
      checksum: buf.readUInt16BE(l3 + 10),
      src: formatIpv4(buf.subarray(l3 + 12, l3 + 16)),
      dst: formatIpv4(buf.subarray(l3 + 16, l3 + 20)),
      options: Buffer.from(buf.subarray(l3 + IPV4_MIN_HLEN, l3 + Math.max(IPV4_MIN_HLEN, headerLength))),
    };
    out.ipv4 = ip;
    const ipEnd = l3 + totalLength;
    if (ipEnd > buf.length || l3 + headerLength > buf.length) out.truncated = true;
    out.trailer = Buffer.from(buf.subarray(Math.min(ipEnd, buf.length)));
    if (headerLength < IPV4_MIN_HLEN) return out;
    const l4 = l3 + headerLength;
    out.l4Offset = l4;
    out.payload = Buffer.from(buf.subarray(Math.min(l4, buf.length), Math.max(l4, Math.min(ipEnd, buf.length))));
    if (ip.protocol === IPPROTO_UDP && ip.fragOffset === 0) parseUdpAt(buf, l4, Math.min(ipEnd, buf.length), out);
    return out;
  }

  if (ethertype === ETH_P_IPV6) {
    if (buf.length < l3 + IPV6_HLEN) {
      out.truncated = true;
      return out;
    }
    const w0 = buf.readUInt32BE(l3);
    const payloadLength = buf.readUInt16BE(l3 + 4);
    out.ipv6 = {
      offset: l3,
      version: w0 >>> 28,
      trafficClass: (w0 >>> 20) & 0xff,
      flowLabel: w0 & 0xfffff,
      payloadLength,
      nextHeader: buf[l3 + 6]!,
      hopLimit: buf[l3 + 7]!,
      src: formatIpv6(buf.subarray(l3 + 8, l3 + 24)),
      dst: formatIpv6(buf.subarray(l3 + 24, l3 + 40)),
    };
    const l4 = l3 + IPV6_HLEN;
    const ipEnd = l4 + payloadLength;
    if (ipEnd > buf.length) out.truncated = true;
    out.l4Offset = l4;
    out.trailer = Buffer.from(buf.subarray(Math.min(ipEnd, buf.length)));
    out.payload = Buffer.from(buf.subarray(l4, Math.min(ipEnd, buf.length)));
    if (out.ipv6.nextHeader === IPPROTO_UDP) parseUdpAt(buf, l4, Math.min(ipEnd, buf.length), out);
    return out;
  }

  if (ethertype === ETH_P_ARP) {
    if (buf.length < l3 + 28) {
      out.truncated = true;
      return out;
    }
    out.arp = {
      htype: buf.readUInt16BE(l3),
      ptype: buf.readUInt16BE(l3 + 2),
      op: buf.readUInt16BE(l3 + 6),
      senderMac: formatMac(buf.subarray(l3 + 8, l3 + 14)),
      senderIp: formatIpv4(buf.subarray(l3 + 14, l3 + 18)),
      targetMac: formatMac(buf.subarray(l3 + 18, l3 + 24)),
      targetIp: formatIpv4(buf.subarray(l3 + 24, l3 + 28)),
    };
    out.payload = Buffer.from(buf.subarray(l3, l3 + 28));
    out.trailer = Buffer.from(buf.subarray(l3 + 28));
  }
  return out;
}

function parseUdpAt(buf: Buffer, l4: number, end: number, out: ParsedFrame): void {
  if (end < l4 + UDP_HLEN) {
    out.truncated = true;
    return;
  }
  const length = buf.readUInt16BE(l4 + 4);
  out.udp = {
    offset: l4,
    srcPort: buf.readUInt16BE(l4),
    dstPort: buf.readUInt16BE(l4 + 2),
    length,
    checksum: buf.readUInt16BE(l4 + 6),
  };
  if (l4 + length > end) out.truncated = true;
  out.payload = Buffer.from(buf.subarray(l4 + UDP_HLEN, Math.max(l4 + UDP_HLEN, Math.min(l4 + length, end))));
}

export interface ChecksumReport {
  /** IPv4 header checksum is right (always true for IPv6, which has none). */
  ip: boolean;
  /**
   * true/false: the UDP checksum is right/wrong; 'none': the field is 0 (no checksum, IPv4 only);
   * 'n/a': nothing to check (not UDP, a non-first fragment, or a first fragment without the rest).
   */
  udp: boolean | 'none' | 'n/a';
}

/** Checks the IPv4 header checksum and the UDP checksum the way a receiver would. Throws for non-IP frames. */
export function verifyChecksums(frame: Uint8Array): ChecksumReport {
  const p = parseFrame(frame);
  const buf = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  let ipOk: boolean;
  let src: Buffer;
  let dst: Buffer;
  if (p.ipv4) {
    const hEnd = p.ipv4.offset + p.ipv4.headerLength;
    ipOk =
      p.ipv4.headerLength >= IPV4_MIN_HLEN &&
      hEnd <= buf.length &&
      onesComplementSum(buf.subarray(p.ipv4.offset, hEnd)) === 0xffff;
    src = parseIpv4(p.ipv4.src);
    dst = parseIpv4(p.ipv4.dst);
    if (p.ipv4.isFragment) return { ip: ipOk, udp: 'n/a' };
  } else if (p.ipv6) {
    ipOk = true;
    src = parseIpv6(p.ipv6.src);
    dst = parseIpv6(p.ipv6.dst);
  } else {
    throw new Error(`not an IP frame (ethertype 0x${p.eth.ethertype.toString(16)})`);
  }
  if (!p.udp) return { ip: ipOk, udp: 'n/a' };
  if (p.udp.checksum === 0 && p.ipv4) return { ip: ipOk, udp: 'none' };
  const end = p.udp.offset + p.udp.length;
  if (p.udp.length < UDP_HLEN || end > buf.length) return { ip: ipOk, udp: false };
  const seg = buf.subarray(p.udp.offset, end);
  const expected = wireUdpChecksum(udpChecksum(src, dst, seg));
  return { ip: ipOk, udp: p.udp.checksum === expected };
}

// ---------------------------------------------------------------------------------------------
// pcap

/** A classic pcap file (microsecond timestamps, Ethernet link type) holding `frames`. */
export function toPcap(frames: readonly Uint8Array[], opts: { snaplen?: number; startSec?: number } = {}): Buffer {
  const snaplen = opts.snaplen ?? 262144;
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(snaplen, 16);
  header.writeUInt32LE(1, 20); // LINKTYPE_ETHERNET
  const parts: Buffer[] = [header];
  frames.forEach((f, i) => {
    const rec = Buffer.alloc(16);
    const caplen = Math.min(f.length, snaplen);
    rec.writeUInt32LE((opts.startSec ?? 1_700_000_000) + Math.floor(i / 1_000_000), 0);
    rec.writeUInt32LE(i % 1_000_000, 4);
    rec.writeUInt32LE(caplen, 8);
    rec.writeUInt32LE(f.length, 12);
    parts.push(rec, Buffer.from(f.subarray(0, caplen)));
  });
  return Buffer.concat(parts);
}
