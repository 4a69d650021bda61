import { randomBytes } from 'node:crypto';

/**
 * A version of the reserved 0x?a?a?a?a pattern (RFC 9000 §15): no server speaks it, so every server must answer a
 * client Initial of it with Version Negotiation (§6.1), from no state at all.
 */
const RESERVED_VERSION = 0x1a2a3a4a;
/** Servers answer only datagrams of at least the smallest maximum datagram size (RFC 9000 §14.1). */
const PROBE_SIZE = 1200;
const CID_LENGTH = 8;

/**
 * The datagram of a QUIC health probe: a long header of a reserved version with fresh connection IDs, padded to
 * 1200 bytes. A live QUIC server answers it with Version Negotiation, without creating a connection, so a probe
 * costs the server a table lookup and one small datagram.
 */
export function versionNegotiationProbe(): Uint8Array {
  const d = new Uint8Array(PROBE_SIZE);
  d[0] = 0xc0;
  new DataView(d.buffer).setUint32(1, RESERVED_VERSION);
  d[5] = CID_LENGTH;
  d.set(randomBytes(CID_LENGTH), 6);
  d[6 + CID_LENGTH] = CID_LENGTH;
  d.set(randomBytes(CID_LENGTH), 7 + CID_LENGTH);
  return d;
}

/** Whether a datagram is a Version Negotiation packet: a long header whose version is 0 (RFC 9000 §17.2.1). */
export function isVersionNegotiation(datagram: Uint8Array): boolean {
  return datagram.length >= 7 && (datagram[0]! & 0x80) !== 0 && datagram[1] === 0 && datagram[2] === 0 && datagram[3] === 0 && datagram[4] === 0;
}

/** `isVersionNegotiation` as a RegExp over the reply's bytes read as latin1, for probes that match replies so. */
export const VERSION_NEGOTIATION_REPLY = /^[\x80-\xff]\x00\x00\x00\x00[\s\S]{2}/;
