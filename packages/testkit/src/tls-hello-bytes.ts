import { ascii, concat, u16, u8, type Bytes } from './bytes.js';

/** Builders of crafted ClientHellos for tests: extensions (RFC 8446 §4.2) and whole bodies, TLS or DTLS. */
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

/** A ClientHello body (after the handshake header), DTLS by default, with what `spec` changes. */
export interface HelloSpec {
  /** 'tls' leaves out the cookie field and defaults the version to 0x0303; 'dtls' (the default) to 0xfefd. */
  flavor?: 'tls' | 'dtls';
  version?: number;
  random?: Bytes;
  sessionId?: Bytes;
  /** DTLS only. */
  cookie?: Bytes;
  suites?: number[];
  compression?: Bytes;
  /** Extension blocks to include; null leaves out the extensions length too. */
  extensions?: Uint8Array[] | null;
}

export function clientHelloBody(spec: HelloSpec = {}): Uint8Array {
  const dtls = (spec.flavor ?? 'dtls') === 'dtls';
  const random = spec.random ?? Array.from({ length: 32 }, (_, i) => i);
  const sessionId = spec.sessionId ?? [];
  const cookie = spec.cookie ?? [];
  const suites = spec.suites ?? [0xc02b, 0xc02f];
  const compression = spec.compression ?? [0];
  const head = concat(
    u16(spec.version ?? (dtls ? 0xfefd : 0x0303)),
    random,
    u8(sessionId.length),
    sessionId,
    ...(dtls ? [u8(cookie.length), cookie] : []),
    u16(suites.length * 2),
    ...suites.map(u16),
    u8(compression.length),
    compression,
  );
  if (spec.extensions === null) return head;
  const exts = concat(...(spec.extensions ?? [sniExtension('crafted.example')]));
  return concat(head, u16(exts.length), exts);
}

/** The handshake body of the first ClientHello in a datagram made by a real DTLS client (unfragmented). */
export function helloBodyOf(datagram: Uint8Array): Uint8Array {
  const length = (datagram[13 + 1]! << 16) | (datagram[13 + 2]! << 8) | datagram[13 + 3]!;
  return datagram.slice(13 + 12, 13 + 12 + length);
}

