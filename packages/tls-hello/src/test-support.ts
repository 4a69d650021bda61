// Builders for crafted ClientHello bodies, shared by the tests (not part of the package). Real DTLS captures come
// from `dtlsCapture` in @flowlb/testkit, real TLS ones from ./tls-captures.ts.
import { expect } from 'vitest';
import { parseClientHelloBody, type ClientHello, type HelloFlavor } from './client-hello.js';

import { alpnExtension, ascii, concat, extension, hex, sniExtension, supportedVersionsExtension, u16, u8, type Bytes } from '@flowlb/testkit';

export { alpnExtension, ascii, concat, extension, sniExtension, supportedVersionsExtension, u16, u8 };
export const fromHex = hex;

/** A key_share extension (RFC 8446 §4.2.8) with one entry per [group, key] pair. */
export function keyShareExtension(...shares: [number, Bytes][]): Uint8Array {
  const list = concat(...shares.map(([group, key]) => concat(u16(group), u16(key.length), key)));
  return extension(51, concat(u16(list.length), list));
}

export interface HelloSpec {
  /** 'tls' leaves out the cookie field and defaults the version to 0x0303; 'dtls' (the default) to 0xfefd. */
  flavor?: HelloFlavor;
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

/** The ClientHello body in the first TLS record a real client sent over TCP: 5 bytes of record, 4 of handshake header. */
export function tlsHelloBodyOf(record: Uint8Array): Uint8Array {
  const length = (record[5 + 1]! << 16) | (record[5 + 2]! << 8) | record[5 + 3]!;
  return record.slice(5 + 4, 5 + 4 + length);
}

export function hello(body: Uint8Array, flavor?: HelloFlavor): ClientHello {
  const r = parseClientHelloBody(body, flavor);
  if ('kind' in r) throw new Error(`expected a hello, got ${r.reason}: ${r.detail}`);
  return r;
}

export function reasonOf(body: Uint8Array, flavor?: HelloFlavor): string {
  const r = parseClientHelloBody(body, flavor);
  return 'kind' in r ? r.reason : 'hello';
}

/** The offset where the extensions length of a parsed hello's body starts: cutting there leaves a whole hello. */
export function extensionsAt(body: Uint8Array, parsed: ClientHello): number {
  return body.length - 2 - parsed.extensions.reduce((n, e) => n + 4 + e.data.length, 0);
}

/** Every proper prefix of `body` is refused, except the one that ends right before the extensions block. */
export function expectEveryCutRefused(body: Uint8Array, flavor?: HelloFlavor): void {
  const at = extensionsAt(body, hello(body, flavor));
  for (let cut = 0; cut < body.length; cut++) {
    const r = parseClientHelloBody(body.subarray(0, cut), flavor);
    if (cut === at) expect('kind' in r, `cut ${cut}`).toBe(false);
    else expect('kind' in r && r.kind, `cut ${cut}`).toBe('invalid');
  }
}
