import { HANDSHAKE_HEADER_LENGTH, HandshakeType } from './handshake.js';
import { ContentType, DtlsVersion, RECORD_HEADER_LENGTH } from './record.js';

/** The DTLS cookie vector has a one-byte length (RFC 6347 §4.2.1). */
export const MAX_COOKIE_LENGTH = 255;

/** server_version(2) + cookie length(1). */
const BODY_FIXED_LENGTH = 3;

/** The record sequence number is 48 bits wide. */
const MAX_RECORD_SEQUENCE = 2 ** 48 - 1;

export interface HelloVerifyRequestOptions {
  /**
   * Record sequence number of the ClientHello being answered. RFC 6347 §4.2.1 has the server repeat it, so that
   * several HelloVerifyRequests sent without state never share a record number at the client.
   */
  recordSequence: number;
  /**
   * message_seq of the ClientHello being answered. A client reads a server message only when its message_seq is
   * the next it expects, which is 0 before any HelloVerifyRequest and one more after each: that is the hello's own
   * message_seq when every earlier hello got one HelloVerifyRequest. For a first hello this is the 0 that
   * RFC 6347 §4.2.2 prescribes; for a retry whose cookie was refused, any other value would be ignored by the client.
   */
  messageSeq: number;
}

/**
 * One datagram holding one record with a whole HelloVerifyRequest carrying `cookie`:
 *
 * - record: content type handshake (22), version DTLS 1.0 (`fe ff`: RFC 6347 §4.2.1 has servers use it here
 *   whatever version they will negotiate), epoch 0, the given sequence number, the length of what follows;
 * - handshake header: type hello_verify_request (3), length, message_seq, fragment_offset 0, fragment_length equal
 *   to the length (never fragmented);
 * - body: server_version `fe ff`, then the cookie with its one-byte length.
 */
export function helloVerifyRequest(cookie: Uint8Array, options: HelloVerifyRequestOptions): Uint8Array {
  const { recordSequence, messageSeq } = options;
  if (cookie.length > MAX_COOKIE_LENGTH) {
    throw new RangeError(`a cookie has at most ${MAX_COOKIE_LENGTH} bytes, got ${cookie.length}`);
  }
  if (!(Number.isSafeInteger(recordSequence) && recordSequence >= 0 && recordSequence <= MAX_RECORD_SEQUENCE)) {
    throw new RangeError(`recordSequence must be an integer from 0 to 2^48 - 1, got ${String(recordSequence)}`);
  }
  if (!(Number.isInteger(messageSeq) && messageSeq >= 0 && messageSeq <= 0xffff)) {
    throw new RangeError(`messageSeq must be an integer from 0 to 65535, got ${String(messageSeq)}`);
  }
  const bodyLength = BODY_FIXED_LENGTH + cookie.length;
  const out = Buffer.alloc(RECORD_HEADER_LENGTH + HANDSHAKE_HEADER_LENGTH + bodyLength);
  let pos = 0;
  pos = out.writeUInt8(ContentType.Handshake, pos);
  pos = out.writeUInt16BE(DtlsVersion.Dtls1_0, pos);
  pos = out.writeUInt16BE(0, pos);
  pos = out.writeUIntBE(recordSequence, pos, 6);
  pos = out.writeUInt16BE(HANDSHAKE_HEADER_LENGTH + bodyLength, pos);
  pos = out.writeUInt8(HandshakeType.HelloVerifyRequest, pos);
  pos = out.writeUIntBE(bodyLength, pos, 3);
  pos = out.writeUInt16BE(messageSeq, pos);
  pos = out.writeUIntBE(0, pos, 3);
  pos = out.writeUIntBE(bodyLength, pos, 3);
  pos = out.writeUInt16BE(DtlsVersion.Dtls1_0, pos);
  pos = out.writeUInt8(cookie.length, pos);
  out.set(cookie, pos);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}
