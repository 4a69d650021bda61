// Builds TLS 1.3 ClientHello messages as a QUIC client sends them in its Initial crypto stream, for the tests and
// the bench. Not part of the published package.

import { alpnExtension, ascii, concat, extension, hex, sniExtension, u16, u24, u8 } from '@flowlb/testkit';

export { alpnExtension, ascii, concat, extension, hex, sniExtension, u16, u24, u8 };

/** A deterministic byte pattern, so that vectors are the same on every run. */
export function pattern(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** X25519 (0x001d) and the hybrid post-quantum X25519MLKEM768 (0x11ec), whose key share is 1216 bytes. */
export const GROUP_X25519 = 0x001d;
export const GROUP_X25519_MLKEM768 = 0x11ec;

export interface TlsClientHelloOptions {
  /** The server_name; null leaves the extension out. Default "example.com". */
  sni?: string | null;
  /** ALPN protocols; empty or null leaves the extension out. Default ["h3"]. */
  alpn?: readonly string[] | null;
  /** Bytes of the one key share. Default 32 (X25519); 1200 or more makes a hello that needs two datagrams. */
  keyShareLength?: number;
  /** Group of the key share. Default X25519, or X25519MLKEM768 for key shares over 32 bytes. */
  keyShareGroup?: number;
  /** Extensions added at the end, as whole extension blocks. */
  extraExtensions?: Uint8Array[];
  /** Seeds the random and the key share. */
  seed?: number;
}

/**
 * A whole ClientHello handshake message (type 1, 24-bit length, body) of the shape QUIC clients send: TLS 1.3
 * only, an empty legacy_session_id (RFC 9001 §8.4), and a quic_transport_parameters extension.
 */
export function tlsClientHello(options: TlsClientHelloOptions = {}): Uint8Array {
  const seed = options.seed ?? 7;
  const keyShareLength = options.keyShareLength ?? 32;
  const group = options.keyShareGroup ?? (keyShareLength > 32 ? GROUP_X25519_MLKEM768 : GROUP_X25519);
  const extensions: Uint8Array[] = [];
  const sni = options.sni === undefined ? 'example.com' : options.sni;
  if (sni !== null) extensions.push(sniExtension(sni));
  extensions.push(extension(10, concat(u16(4), u16(group), u16(GROUP_X25519)))); // supported_groups
  extensions.push(extension(13, concat(u16(6), u16(0x0403), u16(0x0804), u16(0x0401)))); // signature_algorithms
  const alpn = options.alpn === undefined ? ['h3'] : options.alpn;
  if (alpn !== null && alpn.length > 0) extensions.push(alpnExtension(...alpn));
  extensions.push(extension(43, concat(u8(2), u16(0x0304)))); // supported_versions: TLS 1.3
  extensions.push(extension(45, concat(u8(1), u8(1)))); // psk_key_exchange_modes: psk_dhe_ke
  const share = concat(u16(group), u16(keyShareLength), pattern(keyShareLength, seed + 1));
  extensions.push(extension(51, concat(u16(share.length), share))); // key_share
  // quic_transport_parameters: initial_max_data (0x04) and initial_source_connection_id (0x0f), empty.
  extensions.push(extension(57, concat(u8(0x04), u8(4), [0x80, 0x10, 0x00, 0x00], u8(0x0f), u8(0))));
  extensions.push(...(options.extraExtensions ?? []));
  const exts = concat(...extensions);
  const body = concat(
    u16(0x0303),
    pattern(32, seed),
    u8(0), // legacy_session_id
    u16(6),
    u16(0x1301),
    u16(0x1302),
    u16(0x1303),
    u8(1),
    u8(0), // legacy_compression_methods: null
    u16(exts.length),
    exts,
  );
  return concat(u8(1), u24(body.length), body);
}
