// One registry of message types serves TLS, DTLS and QUIC; it lives with the ClientHello parser.
export { HandshakeType } from '@flowlb/tls-hello';

/** msg_type(1) length(3) message_seq(2) fragment_offset(3) fragment_length(3). */
export const HANDSHAKE_HEADER_LENGTH = 12;

export interface HandshakeFragment {
  msgType: number;
  /** Length of the whole message, not of this fragment. */
  length: number;
  messageSeq: number;
  fragmentOffset: number;
  /** The fragment's bytes, a view into the record; its length is fragment_length. */
  body: Uint8Array;
}

export type HandshakeLayerResult =
  | { ok: true; fragments: HandshakeFragment[] }
  | { ok: false; reason: 'handshake-truncated'; detail: string };

/**
 * Splits the body of a handshake record into handshake fragments. A record may carry several; each must lie
 * wholly inside the record (DTLS never continues a fragment in the next record), so anything that runs past the
 * end is an error rather than something to wait for.
 */
export function parseHandshakeFragments(record: Uint8Array): HandshakeLayerResult {
  const fragments: HandshakeFragment[] = [];
  const end = record.length;
  let pos = 0;
  while (pos < end) {
    if (end - pos < HANDSHAKE_HEADER_LENGTH) {
      return {
        ok: false,
        reason: 'handshake-truncated',
        detail: `${end - pos} bytes left in the record, a handshake header needs ${HANDSHAKE_HEADER_LENGTH}`,
      };
    }
    const msgType = record[pos]!;
    const length = (record[pos + 1]! << 16) | (record[pos + 2]! << 8) | record[pos + 3]!;
    const messageSeq = (record[pos + 4]! << 8) | record[pos + 5]!;
    const fragmentOffset = (record[pos + 6]! << 16) | (record[pos + 7]! << 8) | record[pos + 8]!;
    const fragmentLength = (record[pos + 9]! << 16) | (record[pos + 10]! << 8) | record[pos + 11]!;
    const start = pos + HANDSHAKE_HEADER_LENGTH;
    if (fragmentLength > end - start) {
      return {
        ok: false,
        reason: 'handshake-truncated',
        detail: `fragment_length ${fragmentLength}, ${end - start} bytes left in the record`,
      };
    }
    fragments.push({ msgType, length, messageSeq, fragmentOffset, body: record.subarray(start, start + fragmentLength) });
    pos = start + fragmentLength;
  }
  return { ok: true, fragments };
}
