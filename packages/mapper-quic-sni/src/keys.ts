import { createCipheriv, createHmac, type Cipher } from 'node:crypto';
import { versionParams, type QuicVersion } from './versions.js';

/** AES-128-GCM: the AEAD of every Initial packet (RFC 9001 §5.2). */
export const INITIAL_KEY_LENGTH = 16;
export const INITIAL_IV_LENGTH = 12;
export const HP_KEY_LENGTH = 16;
/** Bytes of ciphertext header protection samples (RFC 9001 §5.4.2). */
export const SAMPLE_LENGTH = 16;
/** SHA-256 output, the length of the Initial secrets. */
const SECRET_LENGTH = 32;

/** The keys that protect one side's Initial packets of one connection. */
export interface InitialKeys {
  version: QuicVersion;
  /** AES-128-GCM key of the payload. */
  key: Uint8Array;
  /** XORed with the packet number to make each packet's nonce. */
  iv: Uint8Array;
  /** AES-128 key of the header protection mask. */
  hp: Uint8Array;
}

function hmac(key: Uint8Array, data: Uint8Array): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/**
 * HKDF-Expand-Label of TLS 1.3 (RFC 8446 §7.1) with an empty context, for outputs of at most one SHA-256 block,
 * which is all QUIC's Initial keys need: HKDF-Expand is then one HMAC of the HkdfLabel and the counter byte 1.
 */
export function hkdfExpandLabel(secret: Uint8Array, label: string, length: number): Uint8Array {
  if (!(length > 0 && length <= SECRET_LENGTH)) throw new RangeError(`HKDF-Expand-Label length ${length} is not 1..32`);
  const full = `tls13 ${label}`;
  // struct { uint16 length; opaque label<7..255>; opaque context<0..255>; } then the HKDF-Expand counter.
  const info = new Uint8Array(2 + 1 + full.length + 1 + 1);
  info[0] = length >> 8;
  info[1] = length & 0xff;
  info[2] = full.length;
  for (let i = 0; i < full.length; i++) info[3 + i] = full.charCodeAt(i);
  info[3 + full.length] = 0; // empty context
  info[4 + full.length] = 1; // T(1)
  return new Uint8Array(hmac(secret, info).subarray(0, length));
}

/**
 * The client's Initial keys for a packet whose Destination Connection ID is `dcid` (RFC 9001 §5.2): the Initial
 * secret is HKDF-Extract of the DCID under the version's salt, "client in" gives the client's secret, and the
 * version's labels give the key, IV and header protection key. Anyone can compute these: Initial protection keeps
 * out middleboxes that do not know the version, not observers, which is what lets a load balancer read the SNI.
 *
 * Throws a RangeError for a version this package does not know.
 */
export function deriveInitialKeys(version: number, dcid: Uint8Array): InitialKeys {
  const params = versionParams(version);
  if (params === undefined) throw new RangeError(`unsupported QUIC version 0x${(version >>> 0).toString(16).padStart(8, '0')}`);
  const initialSecret = hmac(params.initialSalt, dcid);
  const clientSecret = hkdfExpandLabel(initialSecret, 'client in', SECRET_LENGTH);
  return {
    version: params.version,
    key: hkdfExpandLabel(clientSecret, params.keyLabel, INITIAL_KEY_LENGTH),
    iv: hkdfExpandLabel(clientSecret, params.ivLabel, INITIAL_IV_LENGTH),
    hp: hkdfExpandLabel(clientSecret, params.hpLabel, HP_KEY_LENGTH),
  };
}

/**
 * One AES-128-ECB cipher per header protection key, reused for every mask: ECB without padding turns each 16-byte
 * `update` into one encrypted block and keeps no state between blocks, and setting up a cipher costs several
 * times more than the block itself.
 */
const hpCiphers = new WeakMap<Uint8Array, Cipher>();

/** The 5 bytes of AES-ECB(hp, sample) that header protection uses (RFC 9001 §5.4.3); `sample` is 16 bytes. */
export function headerProtectionMask(hp: Uint8Array, sample: Uint8Array): Uint8Array {
  // A shorter sample would stay buffered in the shared cipher and shift every later mask.
  if (sample.length !== SAMPLE_LENGTH) throw new RangeError(`header protection sample of ${sample.length} bytes, not 16`);
  let cipher = hpCiphers.get(hp);
  if (cipher === undefined) {
    cipher = createCipheriv('aes-128-ecb', hp, null);
    cipher.setAutoPadding(false);
    hpCiphers.set(hp, cipher);
  }
  return cipher.update(sample).subarray(0, 5);
}
