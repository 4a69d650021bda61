import { Cursor } from './varint.js';

/** A CRYPTO frame's offset plus length may not exceed 2^62 - 1 (RFC 9000 §19.6): it stays below 2^62, exact as a double. */
const STREAM_BOUND = 2 ** 62;

/** Frame types an Initial packet may carry (RFC 9000 §12.4, Table 3; §17.2.2). */
export const FrameType = {
  Padding: 0x00,
  Ping: 0x01,
  Ack: 0x02,
  AckEcn: 0x03,
  Crypto: 0x06,
  /** The transport variant. The application variant, 0x1d, must not appear in Initial packets. */
  ConnectionClose: 0x1c,
} as const;

/** A CRYPTO frame: `data` goes at `offset` of the Initial crypto stream. `data` is a view into the plaintext. */
export interface CryptoFrame {
  offset: number;
  data: Uint8Array;
}

export type InitialFramesResult =
  | {
      ok: true;
      crypto: CryptoFrame[];
      /** Whether the packet carries a CONNECTION_CLOSE: the client is giving up on the connection. */
      connectionClose: boolean;
    }
  | { ok: false; detail: string };

function violation(detail: string): InitialFramesResult {
  return { ok: false, detail };
}

/**
 * Skips the body of an ACK frame (RFC 9000 §19.3) and checks that its ranges stay at or above packet number 0,
 * as receivers must. A client's first flight rarely has one, but its Initials carry ACKs of the server's once it
 * has heard from it, and those can come in datagrams the balancer still holds.
 */
function skipAck(c: Cursor, ecn: boolean): string | undefined {
  const largest = c.varint();
  const delay = c.varint();
  const count = c.varint();
  const firstRange = c.varint();
  if (largest < 0 || delay < 0 || count < 0 || firstRange < 0) return 'ACK frame cut off';
  if (firstRange > largest) return 'ACK First ACK Range goes below packet number 0';
  // Each further range takes at least 2 bytes: a count beyond that is cut off, whatever follows.
  if (count > c.remaining / 2) return `ACK Range Count ${count} with ${c.remaining} bytes left`;
  let smallest = largest - firstRange;
  for (let i = 0; i < count; i++) {
    const gap = c.varint();
    const length = c.varint();
    if (gap < 0 || length < 0) return 'ACK range cut off';
    // Past 2^53 the arithmetic rounds; real packet numbers are nowhere near, and the backend checks again anyway.
    const rangeLargest = smallest - gap - 2;
    if (rangeLargest < 0 || length > rangeLargest) return 'ACK range goes below packet number 0';
    smallest = rangeLargest - length;
  }
  if (ecn && (c.varint() < 0 || c.varint() < 0 || c.varint() < 0)) return 'ACK ECN counts cut off';
  return undefined;
}

/**
 * Walks the frames of a decrypted Initial payload and collects its CRYPTO frames. An Initial may carry only
 * PADDING, PING, ACK, CRYPTO and the transport CONNECTION_CLOSE; any other frame type, a frame type not in its
 * shortest encoding (RFC 9000 §12.4), a frame cut off, or a payload with no frame at all is a protocol violation
 * (the detail says which), and a receiver closes the connection on it.
 */
export function parseInitialFrames(payload: Uint8Array): InitialFramesResult {
  if (payload.length === 0) return violation('packet with no frames');
  const c = new Cursor(payload);
  const bytes = payload;
  const end = payload.length;
  const crypto: CryptoFrame[] = [];
  let connectionClose = false;
  while (c.pos < end) {
    // All allowed types are below 0x40, so one byte; a first byte of 0x40 or more is another type or a
    // two-byte encoding of a small one, which must not be used.
    const type = bytes[c.pos++]!;
    switch (type) {
      case FrameType.Padding:
        while (c.pos < end && bytes[c.pos] === 0) c.pos++;
        break;
      case FrameType.Ping:
        break;
      case FrameType.Ack:
      case FrameType.AckEcn: {
        const problem = skipAck(c, type === FrameType.AckEcn);
        if (problem !== undefined) return violation(problem);
        break;
      }
      case FrameType.Crypto: {
        const offset = c.varint();
        const length = c.varint();
        if (offset < 0 || length < 0) return violation('CRYPTO frame cut off');
        // Above 2^53 the sum rounds, at worst calling a frame that ends just short of the bound a violation rather
        // than too large: both are dropped.
        if (offset + length >= STREAM_BOUND) return violation(`CRYPTO frame ends past 2^62 - 1`);
        const data = c.take(length);
        if (data === undefined) return violation(`CRYPTO frame of ${length} bytes with ${c.remaining} left`);
        crypto.push({ offset, data });
        break;
      }
      case FrameType.ConnectionClose: {
        const errorCode = c.varint();
        const frameType = c.varint();
        const reasonLength = c.varint();
        if (errorCode < 0 || frameType < 0 || reasonLength < 0 || !c.skip(reasonLength)) {
          return violation('CONNECTION_CLOSE frame cut off');
        }
        connectionClose = true;
        break;
      }
      default:
        return violation(`frame type 0x${type.toString(16).padStart(2, '0')} is not allowed in an Initial packet`);
    }
  }
  return { ok: true, crypto, connectionClose };
}
