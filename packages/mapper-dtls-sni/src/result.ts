import type { ClientHello, HelloInvalidReason } from '@flowlb/tls-hello';

/**
 * Why a set of datagrams cannot be a DTLS ClientHello. The set is closed on purpose: counters are kept per reason,
 * so a reason must never carry data from the packet (that goes into `detail`).
 */
export type InvalidReason =
  /** No datagram had any bytes. */
  | 'empty-datagram'
  /** The first datagram does not start with a DTLS record header (content type, version). */
  | 'not-dtls'
  /** The first record of the first datagram claims more bytes than the datagram holds. */
  | 'truncated-record'
  /** There is no plaintext (epoch 0) handshake record at all. */
  | 'no-handshake'
  /** There are handshake messages, but none is a ClientHello. */
  | 'no-client-hello'
  /** A handshake header or fragment runs past the end of its record. */
  | 'handshake-truncated'
  /** A ClientHello claims a length above the configured maximum. */
  | 'message-too-large'
  /** fragment_offset + fragment_length exceeds the message length. */
  | 'fragment-out-of-range'
  /** Fragments of the same message disagree on the message length. */
  | 'length-mismatch'
  /** Overlapping fragments of the same message carry different bytes. */
  | 'fragment-conflict'
  /** More distinct ClientHello message_seq values than any real client sends. */
  | 'too-many-messages'
  /** The ClientHello body itself: its fields and extensions (see @flowlb/tls-hello). */
  | HelloInvalidReason;

export interface InvalidResult {
  kind: 'invalid';
  reason: InvalidReason;
  /** Human-readable specifics for logs; may quote lengths and offsets from the packet. */
  detail?: string;
}

export interface NeedMoreResult {
  kind: 'need-more';
}

export interface HelloResult extends ClientHello {
  kind: 'hello';
  /** message_seq of the ClientHello that was parsed: 0 for a first hello, 1 for the retry with a cookie. */
  messageSeq: number;
  /** Record-layer version of the first record that carried part of this ClientHello. */
  recordVersion: number;
  /**
   * The highest record sequence number among the records that carried this ClientHello (epoch 0). A server's
   * HelloVerifyRequest repeats it (RFC 6347 §4.2.1), so that each answer to a retransmitted hello has a record
   * number of its own.
   */
  recordSequence: number;
}

export type ParseResult = HelloResult | NeedMoreResult | InvalidResult;

export function invalid(reason: InvalidReason, detail?: string): InvalidResult {
  return detail === undefined ? { kind: 'invalid', reason } : { kind: 'invalid', reason, detail };
}

export const NEED_MORE: NeedMoreResult = Object.freeze({ kind: 'need-more' }) as NeedMoreResult;
