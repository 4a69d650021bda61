import { createDecipheriv } from 'node:crypto';
import { headerProtectionMask, SAMPLE_LENGTH, type InitialKeys } from './keys.js';
import type { InitialHeader } from './long-header.js';

/** AES-128-GCM tag length (RFC 9001 §5.3). */
export const AEAD_TAG_LENGTH = 16;

/** The header of a packet once header protection is off: what the AEAD authenticates. */
export interface UnprotectedHeader {
  /** The header bytes, from the first byte to the end of the packet number, unprotected. A copy: the datagram is never written to. */
  bytes: Uint8Array;
  /** The unprotected first byte: packet number length in the low two bits, reserved bits above them. */
  firstByte: number;
  /** 1 to 4. */
  pnLength: number;
  /** The packet number as sent, `pnLength` bytes of it. */
  truncatedPn: number;
}

/**
 * Removes header protection (RFC 9001 §5.4.1): the mask is AES-ECB of the 16 bytes that start 4 bytes past the
 * packet number field (as if the packet number were 4 bytes long, so the sample does not depend on the length it
 * hides); its first byte unmasks the low 4 bits of the first byte, which give the packet number length, and the
 * next ones the packet number. {@link parseInitialHeader} has checked that the sample is inside the packet.
 */
export function removeHeaderProtection(datagram: Uint8Array, header: InitialHeader, hp: Uint8Array): UnprotectedHeader {
  const sampleAt = header.pnOffset + 4;
  const mask = headerProtectionMask(hp, datagram.subarray(sampleAt, sampleAt + SAMPLE_LENGTH));
  const firstByte = datagram[header.start]! ^ (mask[0]! & 0x0f);
  const pnLength = (firstByte & 0x03) + 1;
  const headerLength = header.pnOffset - header.start + pnLength;
  // A copy: the datagram is the client's and goes on to the backend as it came. (A Buffer's slice() is a view,
  // hence the copy by construction.)
  const bytes = new Uint8Array(datagram.subarray(header.start, header.start + headerLength));
  bytes[0] = firstByte;
  let truncatedPn = 0;
  for (let i = 0; i < pnLength; i++) {
    const at = headerLength - pnLength + i;
    const b = bytes[at]! ^ mask[1 + i]!;
    bytes[at] = b;
    truncatedPn = truncatedPn * 256 + b;
  }
  return { bytes, firstByte, pnLength, truncatedPn };
}

/**
 * The full packet number from the `pnLength` bytes sent (RFC 9000 §17.1, Appendix A.3): the value closest to the
 * largest packet number received so far plus one. `largestPn` is -1 before any packet of the number space has
 * been opened, when the packet number is the truncated value itself.
 */
export function decodePacketNumber(largestPn: number, truncatedPn: number, pnLength: number): number {
  const expected = largestPn + 1;
  const win = 2 ** (pnLength * 8);
  const hwin = win / 2;
  // Plain arithmetic rather than bit operations: packet numbers go past 2^32.
  const candidate = expected - (expected % win) + truncatedPn;
  if (candidate <= expected - hwin && candidate < 2 ** 62 - win) return candidate + win;
  if (candidate > expected + hwin && candidate >= win) return candidate - win;
  return candidate;
}

/** The AEAD nonce of packet number `pn`: the IV with the packet number XORed into its low bytes (RFC 9001 §5.3). */
export function packetNonce(iv: Uint8Array, pn: number): Uint8Array {
  const nonce = new Uint8Array(iv);
  const n = nonce.length;
  const low = pn % 0x1_0000_0000;
  const high = Math.floor(pn / 0x1_0000_0000);
  for (let i = 0; i < 4; i++) {
    nonce[n - 1 - i]! ^= (low >>> (8 * i)) & 0xff;
    nonce[n - 5 - i]! ^= (high >>> (8 * i)) & 0xff;
  }
  return nonce;
}

/**
 * Decrypts and authenticates the payload of an Initial packet with AES-128-GCM: the nonce is the IV XOR the
 * packet number, the AAD the unprotected header. The plaintext, or undefined when the tag does not match (wrong
 * keys, a damaged or forged packet).
 */
export function decryptInitial(
  datagram: Uint8Array,
  header: InitialHeader,
  unprotected: UnprotectedHeader,
  key: Uint8Array,
  iv: Uint8Array,
  pn: number,
): Uint8Array | undefined {
  const payloadStart = header.pnOffset + unprotected.pnLength;
  const tagStart = header.end - AEAD_TAG_LENGTH;
  // parseInitialHeader guarantees 20 bytes after the packet number field, so at least the tag is there.
  if (tagStart < payloadStart) return undefined;
  try {
    const decipher = createDecipheriv('aes-128-gcm', key, packetNonce(iv, pn), { authTagLength: AEAD_TAG_LENGTH });
    decipher.setAAD(unprotected.bytes);
    decipher.setAuthTag(datagram.subarray(tagStart, header.end));
    const plain = decipher.update(datagram.subarray(payloadStart, tagStart));
    decipher.final();
    return new Uint8Array(plain.buffer, plain.byteOffset, plain.length);
  } catch {
    // final() throws when the tag does not authenticate; nothing else here can.
    return undefined;
  }
}

/** An Initial packet opened with a set of keys. */
export interface OpenedPacket {
  header: InitialHeader;
  /** The unprotected first byte. */
  firstByte: number;
  pn: number;
  payload: Uint8Array;
}

/**
 * Removes header protection and decrypts one Initial packet with `keys`; undefined when they do not open it.
 * `largestPn` is the largest packet number opened so far in the client's Initial space, -1 for none.
 */
export function openInitial(datagram: Uint8Array, header: InitialHeader, keys: InitialKeys, largestPn = -1): OpenedPacket | undefined {
  const unprotected = removeHeaderProtection(datagram, header, keys.hp);
  const pn = decodePacketNumber(largestPn, unprotected.truncatedPn, unprotected.pnLength);
  const payload = decryptInitial(datagram, header, unprotected, keys.key, keys.iv, pn);
  if (payload === undefined) return undefined;
  return { header, firstByte: unprotected.firstByte, pn, payload };
}
