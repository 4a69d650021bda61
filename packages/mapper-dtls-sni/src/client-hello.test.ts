import { describe, expect, it } from 'vitest';
import { parseClientHelloBody, type ClientHello } from './client-hello.js';
import { parseAlpn, parseServerName, parseSupportedVersions } from './extensions.js';
import type { InvalidResult } from './result.js';
import { dtlsCapture } from '@flowlb/testkit';
import { alpnExtension, ascii, clientHelloBody, concat, extension, helloBodyOf, sniExtension, supportedVersionsExtension, u16, u8 } from './test-support.js';

function hello(body: Uint8Array): ClientHello {
  const r = parseClientHelloBody(body);
  if ('kind' in r) throw new Error(`expected a hello, got ${r.reason}: ${r.detail}`);
  return r;
}

function reasonOf(body: Uint8Array): string {
  const r = parseClientHelloBody(body);
  return 'kind' in r ? r.reason : 'hello';
}

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
        expect((r as InvalidResult).kind, `cut ${cut}`).toBe('invalid');
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

describe('server_name', () => {
  const withSni = (...names: (string | Uint8Array)[]): Uint8Array =>
    clientHelloBody({ extensions: [sniExtension(...names)] });

  it('keeps the name as sent: case and trailing dot', () => {
    expect(hello(withSni('Foo.Example.')).sni).toBe('Foo.Example.');
  });

  it('refuses two host_name entries', () => {
    expect(reasonOf(withSni('a.example', 'b.example'))).toBe('sni-duplicate');
    expect(reasonOf(withSni('a.example', 'a.example'))).toBe('sni-duplicate');
  });

  it('refuses an empty name', () => {
    expect(reasonOf(withSni(''))).toBe('sni-empty');
  });

  it('accepts names up to 253 characters (254 with the final dot) and refuses longer ones', () => {
    const label = 'a'.repeat(61);
    const name253 = `${label}.${label}.${label}.${label}.b`; // 4*62 + 1 = 249
    const exact = `${name253}.bcd`;
    expect(exact.length).toBe(253);
    expect(hello(withSni(exact)).sni).toBe(exact);
    expect(hello(withSni(`${exact}.`)).sni).toBe(`${exact}.`);
    expect(reasonOf(withSni(`${exact}e`))).toBe('sni-too-long');
    expect(reasonOf(withSni('x'.repeat(5000)))).toBe('sni-too-long');
  });

  it('refuses bytes outside letters, digits, "-", "_" and "."', () => {
    expect(reasonOf(withSni(new Uint8Array(Buffer.from('bücher.example', 'utf8'))))).toBe('sni-bad-characters');
    expect(reasonOf(withSni('a b.example'))).toBe('sni-bad-characters');
    expect(reasonOf(withSni('a\u0000.example'))).toBe('sni-bad-characters');
    expect(reasonOf(withSni('*.example'))).toBe('sni-bad-characters');
    expect(hello(withSni('_srv.xn--bcher-kva.example')).sni).toBe('_srv.xn--bcher-kva.example');
  });

  it('refuses inconsistent inner lengths', () => {
    const ext = (data: number[] | Uint8Array) => clientHelloBody({ extensions: [extension(0, data)] });
    expect(reasonOf(ext([]))).toBe('sni-malformed');
    expect(reasonOf(ext([0, 0]))).toBe('sni-malformed');
    expect(reasonOf(ext([0, 5, 0, 0, 2, 0x61]))).toBe('sni-malformed');
    expect(reasonOf(ext([0, 4, 0, 0, 9, 0x61]))).toBe('sni-malformed');
    expect(reasonOf(ext([0, 2, 0, 0]))).toBe('sni-malformed');
  });

  it('skips entries of unknown name types', () => {
    const entries = concat(u8(7), u16(3), ascii('xyz'), u8(0), u16(9), ascii('a.example'));
    const body = clientHelloBody({ extensions: [extension(0, concat(u16(entries.length), entries))] });
    expect(hello(body).sni).toBe('a.example');
    const onlyUnknown = concat(u8(7), u16(1), [1]);
    const r = parseServerName(concat(u16(onlyUnknown.length), onlyUnknown));
    expect(r).toEqual({ name: undefined });
  });
});

describe('ALPN and supported_versions', () => {
  it('reads protocol names byte for byte', () => {
    expect(parseAlpn(concat(u16(6), [2, 0x68, 0x32, 2, 0xff, 0x00]))).toEqual({ protocols: ['h2', '\u00ff\u0000'] });
  });

  it('refuses malformed ALPN lists', () => {
    expect(parseAlpn(new Uint8Array([0]))).toMatchObject({ reason: 'alpn-malformed' });
    expect(parseAlpn(concat(u16(0)))).toMatchObject({ reason: 'alpn-malformed' });
    expect(parseAlpn(concat(u16(3), [0, 1, 0x61]))).toMatchObject({ reason: 'alpn-malformed' });
    expect(parseAlpn(concat(u16(3), [3, 1, 0x61]))).toMatchObject({ reason: 'alpn-malformed' });
    expect(parseAlpn(concat(u16(9), [2, 0x68, 0x32]))).toMatchObject({ reason: 'alpn-malformed' });
    const body = clientHelloBody({ extensions: [extension(16, concat(u16(3), [5, 1, 2]))] });
    expect(reasonOf(body)).toBe('alpn-malformed');
  });

  it('reads offered versions, GREASE values included', () => {
    expect(parseSupportedVersions(new Uint8Array([4, 0xfe, 0xfc, 0x1a, 0x1a]))).toEqual({ versions: [0xfefc, 0x1a1a] });
  });

  it('refuses malformed supported_versions', () => {
    expect(parseSupportedVersions(new Uint8Array([]))).toMatchObject({ reason: 'supported-versions-malformed' });
    expect(parseSupportedVersions(new Uint8Array([0]))).toMatchObject({ reason: 'supported-versions-malformed' });
    expect(parseSupportedVersions(new Uint8Array([3, 0xfe, 0xfc, 0]))).toMatchObject({
      reason: 'supported-versions-malformed',
    });
    expect(parseSupportedVersions(new Uint8Array([4, 0xfe, 0xfc]))).toMatchObject({
      reason: 'supported-versions-malformed',
    });
    const body = clientHelloBody({ extensions: [extension(43, [2, 0xfe])] });
    expect(reasonOf(body)).toBe('supported-versions-malformed');
  });
});
