// Builds protected client Initial packets and datagrams, for the tests and the bench. Not part of the published
// package: it encrypts with the same key schedule it is meant to check, so the RFC vectors are what anchor both.
import { createCipheriv } from 'node:crypto';
import { FrameType } from '../frames.js';
import { deriveInitialKeys, headerProtectionMask, type InitialKeys } from '../keys.js';
import { packetNonce } from '../protection.js';
import { encodeVarint } from '../varint.js';
import { QUIC_V1, versionParams } from '../versions.js';
import { concat, hex, u8 } from './tls-client-hello.js';

/** The Destination Connection ID of the RFC 9001 and RFC 9369 samples. */
export const RFC_DCID = hex('8394c8f03e515708');

export function cryptoFrame(offset: number, data: Uint8Array): Uint8Array {
  return concat(u8(FrameType.Crypto), encodeVarint(offset), encodeVarint(data.length), data);
}

export function paddingFrames(n: number): Uint8Array {
  return new Uint8Array(n);
}

export const PING_FRAME = new Uint8Array([FrameType.Ping]);

/** An ACK frame: `ranges` as [gap, length] pairs after the first range; ECN counts make it type 0x03. */
export function ackFrame(largest: number, firstRange: number, ranges: [number, number][] = [], ecn?: [number, number, number]): Uint8Array {
  return concat(
    u8(ecn ? FrameType.AckEcn : FrameType.Ack),
    encodeVarint(largest),
    encodeVarint(0),
    encodeVarint(ranges.length),
    encodeVarint(firstRange),
    ...ranges.flatMap(([gap, length]) => [encodeVarint(gap), encodeVarint(length)]),
    ...(ecn ? ecn.map((n) => encodeVarint(n)) : []),
  );
}

export function connectionCloseFrame(errorCode: number, reason = ''): Uint8Array {
  const r = new Uint8Array(Buffer.from(reason));
  return concat(u8(FrameType.ConnectionClose), encodeVarint(errorCode), encodeVarint(0), encodeVarint(r.length), r);
}

export interface InitialPacketSpec {
  /** Default QUIC_V1. */
  version?: number;
  dcid?: Uint8Array;
  scid?: Uint8Array;
  token?: Uint8Array;
  packetNumber?: number;
  /** Bytes the packet number is sent in, 1 to 4. Default 4 (as in the RFC samples). */
  pnLength?: 1 | 2 | 3 | 4;
  /** The two reserved bits (0x0c of the first byte); anything but 0 is a protocol violation. */
  reservedBits?: number;
  /** Protect with these keys instead of those of `dcid` (a client after the server's first Initial does). */
  keys?: InitialKeys;
}

/** Bytes of an Initial packet's long header up to and including its Length field (sent in 2 bytes). */
function headerLength(spec: InitialPacketSpec): number {
  const token = spec.token ?? new Uint8Array(0);
  return 1 + 4 + 1 + (spec.dcid ?? RFC_DCID).length + 1 + (spec.scid?.length ?? 0) + encodeVarint(token.length).length + token.length + 2;
}

/** Bytes a packet adds around its payload: the header, the packet number and the AEAD tag. */
export function packetOverhead(spec: InitialPacketSpec): number {
  return headerLength(spec) + (spec.pnLength ?? 4) + 16;
}

/**
 * One client Initial packet around `payload` (frames), encrypted and header-protected as RFC 9001 §5 says. A
 * payload too short for the header protection sample gets PADDING, as a sender must add.
 */
export function protectInitialPacket(payload: Uint8Array, spec: InitialPacketSpec = {}): Uint8Array {
  const version = spec.version ?? QUIC_V1;
  const params = versionParams(version);
  if (params === undefined) throw new RangeError(`no keys for version 0x${version.toString(16)}`);
  const dcid = spec.dcid ?? RFC_DCID;
  const scid = spec.scid ?? new Uint8Array(0);
  const token = spec.token ?? new Uint8Array(0);
  const pnLength = spec.pnLength ?? 4;
  const pn = spec.packetNumber ?? 0;
  const keys = spec.keys ?? deriveInitialKeys(version, dcid);
  // The sample starts 4 bytes after the packet number field and is 16 bytes long; the tag gives 16 of them.
  const plain = pnLength + payload.length < 4 ? concat(payload, paddingFrames(4 - pnLength - payload.length)) : payload;
  const length = pnLength + plain.length + 16;
  const lengthField = encodeVarint(length, length < 0x4000 ? 2 : 4);
  const first = 0xc0 | (params.initialType << 4) | ((spec.reservedBits ?? 0) << 2) | (pnLength - 1);
  const pnBytes: number[] = [];
  for (let i = pnLength - 1; i >= 0; i--) pnBytes.push(Math.floor(pn / 256 ** i) % 256);
  const header = concat(
    u8(first),
    [(version >>> 24) & 0xff, (version >>> 16) & 0xff, (version >>> 8) & 0xff, version & 0xff],
    u8(dcid.length),
    dcid,
    u8(scid.length),
    scid,
    encodeVarint(token.length),
    token,
    lengthField,
    pnBytes,
  );
  const cipher = createCipheriv('aes-128-gcm', keys.key, packetNonce(keys.iv, pn), { authTagLength: 16 });
  cipher.setAAD(header);
  const sealed = concat(cipher.update(plain), cipher.final(), cipher.getAuthTag());
  const packet = concat(header, sealed);
  const pnOffset = header.length - pnLength;
  const mask = headerProtectionMask(keys.hp, packet.subarray(pnOffset + 4, pnOffset + 20));
  packet[0]! ^= mask[0]! & 0x0f;
  for (let i = 0; i < pnLength; i++) packet[pnOffset + i]! ^= mask[1 + i]!;
  return packet;
}

export interface ClientInitialOptions extends Omit<InitialPacketSpec, 'packetNumber' | 'reservedBits'> {
  /** Packet number of the first packet; each further packet takes the next. Default 0. */
  firstPacketNumber?: number;
  /**
   * CRYPTO frames as [start, end) ranges of the message, in the order they are sent; they may overlap or repeat.
   * Default: consecutive pieces as large as `maxDatagramSize` allows, one packet per datagram, as clients do.
   */
  pieces?: readonly (readonly [number, number])[];
  /** How many of the frames, in order, each packet carries: one count for all, or one per packet. Default: all in one. */
  framesPerPacket?: number | readonly number[];
  /** How many packets, in order, each datagram carries (coalescing): one count for all, or one per datagram. Default 1. */
  packetsPerDatagram?: number | readonly number[];
  /** Each datagram's last packet gets PADDING up to this datagram size (RFC 9000 §14.1). Default 1200; 0 for none. */
  padTo?: number;
  /** Datagram size the default pieces are cut for. Default 1200. */
  maxDatagramSize?: number;
  /** Frames put in front of the first packet's CRYPTO frames (PING, ACK, …). */
  leadingFrames?: Uint8Array;
  /** Bytes put after the packets of every datagram (a coalesced Handshake packet, junk). */
  trailer?: Uint8Array;
}

function counts(spec: number | readonly number[] | undefined, total: number, fallback: number): number[] {
  const out: number[] = [];
  let left = total;
  for (let i = 0; left > 0; i++) {
    const want = spec === undefined ? fallback : typeof spec === 'number' ? spec : (spec[i] ?? spec[spec.length - 1] ?? 1);
    const n = Math.max(1, Math.min(left, want));
    out.push(n);
    left -= n;
  }
  return out;
}

/** Pieces that make each datagram at most `maxDatagramSize` with one CRYPTO frame per packet. */
function defaultPieces(length: number, spec: InitialPacketSpec, maxDatagramSize: number, leading: number): [number, number][] {
  const pieces: [number, number][] = [];
  let at = 0;
  do {
    // CRYPTO frame header: type, offset (up to 4 bytes here), length (2 bytes).
    const room = maxDatagramSize - packetOverhead(spec) - 7 - (at === 0 ? leading : 0);
    if (room <= 0) throw new RangeError('maxDatagramSize leaves no room for CRYPTO data');
    const end = Math.min(length, at + room);
    pieces.push([at, end]);
    at = end;
  } while (at < length);
  return pieces;
}

/**
 * The datagrams of a client's first flight carrying `message` (a whole ClientHello handshake message, or any
 * crypto stream) in its Initial packets, encrypted and header-protected for `version` and `dcid`.
 */
export function buildClientInitial(message: Uint8Array, options: ClientInitialOptions = {}): Uint8Array[] {
  const padTo = options.padTo ?? 1200;
  const leading = options.leadingFrames ?? new Uint8Array(0);
  const pieces = options.pieces ?? defaultPieces(message.length, options, options.maxDatagramSize ?? 1200, leading.length);
  const explicit = options.pieces !== undefined;
  const frames = pieces.map(([start, end]) => cryptoFrame(start, message.subarray(start, end)));
  const perPacket = counts(options.framesPerPacket, frames.length, explicit ? frames.length : 1);
  const payloads: Uint8Array[] = [];
  let f = 0;
  for (const n of perPacket) {
    payloads.push(concat(...(payloads.length === 0 ? [leading] : []), ...frames.slice(f, f + n)));
    f += n;
  }
  if (payloads.length === 0) payloads.push(leading);
  const perDatagram = counts(options.packetsPerDatagram, payloads.length, 1);
  const trailer = options.trailer ?? new Uint8Array(0);
  const datagrams: Uint8Array[] = [];
  let p = 0;
  let pn = options.firstPacketNumber ?? 0;
  for (const n of perDatagram) {
    const group = payloads.slice(p, p + n);
    p += n;
    const specs = group.map(() => ({ ...options, packetNumber: pn++ }));
    const size = group.reduce((s, payload, i) => s + packetOverhead(specs[i]!) + payload.length, 0) + trailer.length;
    const last = group.length - 1;
    if (padTo > size) group[last] = concat(group[last]!, paddingFrames(padTo - size));
    datagrams.push(concat(...group.map((payload, i) => protectInitialPacket(payload, specs[i])), trailer));
  }
  return datagrams;
}
