// Builders for crafted ClientHello bodies, shared by the tests (not part of the package). Real DTLS captures come
// from `dtlsCapture` in @flowlb/testkit, real TLS ones from ./tls-captures.ts.
import { expect } from 'vitest';
import { parseClientHelloBody, type ClientHello, type HelloFlavor } from './client-hello.js';

import { alpnExtension, ascii, clientHelloBody, concat, extension, helloBodyOf, hex, sniExtension, supportedVersionsExtension, u16, u8, type Bytes, type HelloSpec } from '@flowlb/testkit';

export { alpnExtension, ascii, clientHelloBody, concat, extension, helloBodyOf, sniExtension, supportedVersionsExtension, u16, u8, type HelloSpec };
export const fromHex = hex;

/** A key_share extension (RFC 8446 §4.2.8) with one entry per [group, key] pair. */
export function keyShareExtension(...shares: [number, Bytes][]): Uint8Array {
  const list = concat(...shares.map(([group, key]) => concat(u16(group), u16(key.length), key)));
  return extension(51, concat(u16(list.length), list));
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
