import { describe, expect, it } from 'vitest';
import { parseClientHelloBody } from './client-hello.js';
import type { HelloInvalid } from './result.js';
import { dtlsCapture } from '@flowlb/testkit';
import {
  alpnExtension,
  clientHelloBody,
  concat,
  extension,
  hello,
  helloBodyOf,
  reasonOf,
  sniExtension,
  supportedVersionsExtension,
  u16,
} from './test-support.js';

// The DTLS flavor, which is the default: these tests came with the parser from @flowlb/mapper-dtls-sni unchanged.

describe('parseClientHelloBody on real hellos', () => {
  it('reads every field of the OpenSSL hello', () => {
    const h = hello(helloBodyOf(dtlsCapture('ossl_foo')[0]!));
    expect(h.clientVersion).toBe(0xfefd);
    expect(h.random.length).toBe(32);
    expect(h.sessionId.length).toBe(0);
    expect(h.cookie.length).toBe(0);
    expect(h.cipherSuites).toHaveLength(28);
    expect(h.cipherSuites[0]).toBe(0xc02c);
    expect(h.cipherSuites).toContain(0x00ff);
    expect(Array.from(h.compressionMethods)).toEqual([0]);
    expect(h.extensions.map((e) => e.type)).toEqual([0, 11, 10, 35, 22, 23, 13]);
    expect(h.sni).toBe('foo.example');
    expect(h.alpn).toBeUndefined();
    expect(h.versions).toBeUndefined();
  });

  it('finds the name in the GnuTLS hello, where server_name is not the first extension', () => {
    const h = hello(helloBodyOf(dtlsCapture('gnutls_bar')[0]!));
    expect(h.extensions[0]!.type).not.toBe(0);
    expect(h.extensions.map((e) => e.type)).toContain(0);
    expect(h.sni).toBe('bar.example');
  });

  it('reads the cookie of the retried hello', () => {
    const h = hello(helloBodyOf(dtlsCapture('ossl_cookie')[1]!));
    expect(h.cookie.length).toBe(20);
    expect(Buffer.from(h.cookie).toString('hex')).toBe('d7196e925ffbf4257dc23ba661e47f6cb92241d4');
    expect(h.sni).toBe('cookie.example');
  });
});

describe('parseClientHelloBody on crafted hellos', () => {
  it('parses a hello with every optional part', () => {
    const h = hello(
      clientHelloBody({
        version: 0xfefd,
        sessionId: [1, 2, 3],
        cookie: [9, 9],
        suites: [0x1301, 0xc02b],
        compression: [0],
        extensions: [sniExtension('a.example'), alpnExtension('h2', 'coap'), supportedVersionsExtension(0xfefc, 0xfefd)],
      }),
    );
    expect(Array.from(h.sessionId)).toEqual([1, 2, 3]);
    expect(Array.from(h.cookie)).toEqual([9, 9]);
    expect(h.cipherSuites).toEqual([0x1301, 0xc02b]);
    expect(h).toMatchObject({ sni: 'a.example', alpn: ['h2', 'coap'], versions: [0xfefc, 0xfefd] });
  });

  it('parses a hello with no extensions block at all, and one with an empty block', () => {
    expect(hello(clientHelloBody({ extensions: null })).extensions).toEqual([]);
    const empty = hello(clientHelloBody({ extensions: [] }));
    expect(empty.extensions).toEqual([]);
    expect(empty.sni).toBeUndefined();
  });

  it('refuses a 34-byte hello (version and random only)', () => {
    const body = clientHelloBody().subarray(0, 34);
    expect(body.length).toBe(34);
    expect(reasonOf(body)).toBe('client-hello-truncated');
    expect(reasonOf(new Uint8Array(0))).toBe('client-hello-truncated');
  });

  it('refuses a real hello cut at every length, except right after compression_methods', () => {
    const body = helloBodyOf(dtlsCapture('gnutls_bar')[0]!);
    const full = hello(body);
    const extensionsAt = body.length - 2 - full.extensions.reduce((n, e) => n + 4 + e.data.length, 0);
    for (let cut = 0; cut < body.length; cut++) {
      const r = parseClientHelloBody(body.subarray(0, cut));
      if (cut === extensionsAt) {
        expect('kind' in r, `cut ${cut}`).toBe(false);
      } else {
        expect((r as HelloInvalid).kind, `cut ${cut}`).toBe('invalid');
      }
    }
  });

  it('refuses a client_version that is not DTLS', () => {
    expect(reasonOf(clientHelloBody({ version: 0x0303 }))).toBe('client-hello-malformed');
  });

  it('refuses impossible field lengths', () => {
    expect(reasonOf(clientHelloBody({ sessionId: new Uint8Array(33) }))).toBe('client-hello-malformed');
    expect(reasonOf(clientHelloBody({ suites: [] }))).toBe('client-hello-malformed');
    expect(reasonOf(clientHelloBody({ compression: [] }))).toBe('client-hello-malformed');
    const odd = clientHelloBody({ suites: [0xc02b] });
    odd[2 + 32 + 1 + 1 + 1] = 3; // cipher_suites length 3
    expect(reasonOf(odd)).toBe('client-hello-malformed');
  });

  it('refuses extension lengths that overrun or leave bytes over', () => {
    const ok = clientHelloBody({ extensions: [sniExtension('x.example')] });
    const extLenAt = ok.length - sniExtension('x.example').length - 2;
    const longer = ok.slice();
    longer[extLenAt + 1] = longer[extLenAt + 1]! + 1;
    expect(reasonOf(longer)).toBe('extensions-malformed');
    const shorter = ok.slice();
    shorter[extLenAt + 1] = shorter[extLenAt + 1]! - 1;
    expect(reasonOf(shorter)).toBe('extensions-malformed');
    expect(reasonOf(concat(clientHelloBody({ extensions: null }), [0]))).toBe('extensions-malformed');

    const inner = concat(u16(0), u16(50), [1, 2, 3]); // server_name claiming 50 bytes, 3 present
    expect(reasonOf(concat(clientHelloBody({ extensions: null }), u16(inner.length), inner))).toBe('extensions-malformed');
    const stub = concat(clientHelloBody({ extensions: null }), u16(3), [0, 0, 0]); // 3 bytes, a header needs 4
    expect(reasonOf(stub)).toBe('extensions-malformed');
  });

  it('refuses the same extension twice', () => {
    const body = clientHelloBody({ extensions: [extension(23, []), sniExtension('a.example'), extension(23, [])] });
    expect(reasonOf(body)).toBe('duplicate-extension');
    const twoSni = clientHelloBody({ extensions: [sniExtension('a.example'), sniExtension('b.example')] });
    expect(reasonOf(twoSni)).toBe('duplicate-extension');
  });

  it('stays linear on a hello made of thousands of empty extensions', () => {
    const exts = Array.from({ length: 4000 }, (_, i) => extension(1000 + i, []));
    const h = hello(clientHelloBody({ extensions: exts }));
    expect(h.extensions).toHaveLength(4000);
    expect(reasonOf(clientHelloBody({ extensions: [...exts, extension(1002, [])] }))).toBe('duplicate-extension');
    expect(reasonOf(clientHelloBody({ extensions: [...exts.slice(0, 33), extension(1032, [])] }))).toBe('duplicate-extension');
    expect(reasonOf(clientHelloBody({ extensions: [...exts.slice(0, 32), extension(1031, [])] }))).toBe('duplicate-extension');
  });
});
