import { ascii, concat, u16, u8, type Bytes } from './bytes.js';

/** Builders of TLS ClientHello extensions (RFC 8446 §4.2) for crafted hellos in tests. */
export function extension(type: number, data: Bytes): Uint8Array {
  return concat(u16(type), u16(data.length), data);
}

/** A server_name extension with one host_name entry per argument (strings as latin1 bytes). */
export function sniExtension(...names: (string | Uint8Array)[]): Uint8Array {
  const entries = names.map((n) => {
    const b = typeof n === 'string' ? ascii(n) : n;
    return concat(u8(0), u16(b.length), b);
  });
  const list = concat(...entries);
  return extension(0, concat(u16(list.length), list));
}

export function alpnExtension(...protocols: string[]): Uint8Array {
  const list = concat(...protocols.map((p) => concat(u8(p.length), ascii(p))));
  return extension(16, concat(u16(list.length), list));
}

export function supportedVersionsExtension(...versions: number[]): Uint8Array {
  return extension(43, concat(u8(versions.length * 2), ...versions.map(u16)));
}
