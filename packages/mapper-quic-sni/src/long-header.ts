import { SAMPLE_LENGTH } from './keys.js';
import { Cursor } from './varint.js';
import { versionParams, type QuicVersion } from './versions.js';

/** RFC 9000 §17.2: QUIC v1 (and v2) connection IDs are at most 20 bytes; longer ones make the packet invalid. */
export const MAX_CONNECTION_ID_LENGTH = 20;

/** Header protection samples the 16 bytes that start 4 bytes past the packet number field (RFC 9001 §5.4.2). */
const MIN_PROTECTED_LENGTH = 4 + SAMPLE_LENGTH;

const HEADER_FORM_LONG = 0x80;
const FIXED_BIT = 0x40;
const TYPE_MASK = 0x30;

/** The cleartext fields of an Initial packet's long header (RFC 9000 §17.2.2), all views into the datagram. */
export interface InitialHeader {
  version: QuicVersion;
  /** Offset of the packet's first byte in the datagram. */
  start: number;
  dcid: Uint8Array;
  scid: Uint8Array;
  /** Empty in a first Initial; the server's token after a Retry or from NEW_TOKEN. */
  token: Uint8Array;
  /** Offset of the (protected) packet number: header protection and the AAD are measured from here. */
  pnOffset: number;
  /** Offset just past the packet: pnOffset plus the Length field. */
  end: number;
}

/** Why the bytes at some offset of a datagram are not an Initial packet this package can open. */
export type NotInitial =
  /** Short header (form bit 0): a 1-RTT packet, or not QUIC. */
  | 'short-header'
  /** Version 0: a Version Negotiation packet, which only servers send. */
  | 'version-negotiation'
  /** A long header of a version this package does not know. */
  | 'unsupported-version'
  /** A long header of a known version but another packet type (0-RTT, Handshake, Retry). */
  | 'not-initial'
  /** Fixed bit clear, a connection ID over 20 bytes, a field cut off, or too short to carry a protection sample. */
  | 'malformed';

export type LongHeaderResult =
  | { ok: true; header: InitialHeader }
  | { ok: false; why: NotInitial; detail: string; version?: number };

function notInitial(why: NotInitial, detail: string, version?: number): LongHeaderResult {
  return version === undefined ? { ok: false, why, detail } : { ok: false, why, detail, version };
}

const hex32 = (v: number): string => `0x${v.toString(16).padStart(8, '0')}`;

/**
 * Reads the long header of the packet that starts at `start` of `datagram`, if it is a client Initial of QUIC v1
 * or v2. The packet number and the first byte's low bits are still protected: they need the keys, which need the
 * DCID read here. Checks every length against the bytes that remain; never throws.
 */
export function parseInitialHeader(datagram: Uint8Array, start = 0): LongHeaderResult {
  const c = new Cursor(datagram, start);
  const first = c.u8();
  if (first < 0) return notInitial('malformed', 'empty');
  if ((first & HEADER_FORM_LONG) === 0) return notInitial('short-header', 'short header');
  const version = c.u32();
  if (version < 0) return notInitial('malformed', 'long header cut off before its version');
  if (version === 0) return notInitial('version-negotiation', 'version 0 (Version Negotiation)', 0);
  const params = versionParams(version);
  // Checked before anything version-specific: the fixed bit and packet types mean nothing in an unknown version.
  if (params === undefined) return notInitial('unsupported-version', `version ${hex32(version)}`, version);
  if ((first & FIXED_BIT) === 0) return notInitial('malformed', 'fixed bit clear', version);
  if ((first & TYPE_MASK) >> 4 !== params.initialType) {
    return notInitial('not-initial', `packet type ${(first & TYPE_MASK) >> 4} of ${hex32(version)} is not Initial`, version);
  }
  const dcidLength = c.u8();
  if (dcidLength > MAX_CONNECTION_ID_LENGTH) return notInitial('malformed', `DCID of ${dcidLength} bytes`, version);
  const dcid = c.take(dcidLength);
  const scidLength = c.u8();
  if (dcid === undefined || scidLength < 0) return notInitial('malformed', 'cut off in the DCID', version);
  if (scidLength > MAX_CONNECTION_ID_LENGTH) return notInitial('malformed', `SCID of ${scidLength} bytes`, version);
  const scid = c.take(scidLength);
  if (scid === undefined) return notInitial('malformed', 'cut off in the SCID', version);
  const tokenLength = c.varint();
  const token = c.take(tokenLength);
  if (token === undefined) return notInitial('malformed', 'token cut off', version);
  const length = c.varint();
  if (length < 0) return notInitial('malformed', 'cut off before the Length field', version);
  if (length > c.remaining) {
    return notInitial('malformed', `Length ${length} but ${c.remaining} bytes left in the datagram`, version);
  }
  if (length < MIN_PROTECTED_LENGTH) {
    return notInitial('malformed', `Length ${length} is too short for a header protection sample`, version);
  }
  return {
    ok: true,
    header: { version: params.version, start, dcid, scid, token, pnOffset: c.pos, end: c.pos + length },
  };
}

/** The Initial packets of one datagram, in order; see {@link parseInitialPackets}. */
export type InitialPacketsResult =
  | {
      ok: true;
      packets: InitialHeader[];
      /** Offset where reading stopped: the datagram's length, or the first byte of what was not read. */
      stoppedAt: number;
      /** Why reading stopped before the end of the datagram. */
      stopped?: NotInitial | 'other-version' | 'other-dcid';
    }
  | { ok: false; why: NotInitial; detail: string; version?: number };

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Reads the Initial packets coalesced at the start of a datagram (RFC 9000 §12.2): the first packet must be an
 * Initial of v1 or v2, or the result says why not; reading goes on while packets are Initials of the same version
 * and Destination Connection ID, and stops quietly at the first that is not (a Handshake or 0-RTT packet, which
 * a client may coalesce after its Initial, a short header, or trailing bytes). Receivers are told to ignore
 * coalesced packets with another DCID, and a client sends Initials of one version only.
 */
export function parseInitialPackets(datagram: Uint8Array): InitialPacketsResult {
  const first = parseInitialHeader(datagram, 0);
  if (!first.ok) return first;
  const packets = [first.header];
  let at = first.header.end;
  while (at < datagram.length) {
    const next = parseInitialHeader(datagram, at);
    if (!next.ok) return { ok: true, packets, stoppedAt: at, stopped: next.why };
    if (next.header.version !== first.header.version) return { ok: true, packets, stoppedAt: at, stopped: 'other-version' };
    if (!sameBytes(next.header.dcid, first.header.dcid)) return { ok: true, packets, stoppedAt: at, stopped: 'other-dcid' };
    packets.push(next.header);
    at = next.header.end;
  }
  return { ok: true, packets, stoppedAt: at };
}
