import { describe, expect, it } from 'vitest';
import { parseClientHelloBody } from './client-hello.js';
import { ExtensionType } from './extensions.js';
import { dtlsCapture } from '@flowlb/testkit';
import {
  alpnExtension,
  clientHelloBody,
  concat,
  expectEveryCutRefused,
  extension,
  extensionsAt,
  fromHex,
  hello,
  helloBodyOf,
  keyShareExtension,
  reasonOf,
  sniExtension,
  supportedVersionsExtension,
  tlsHelloBodyOf,
  u16,
  type HelloSpec,
} from './test-support.js';
import { GNUTLS_TLS13_RECORD, OPENSSL_TLS13_RECORD } from './tls-captures.js';

const X25519 = 0x001d;
const KEY = Array.from({ length: 32 }, (_, i) => 0xa0 + i);
const SESSION_ID = Array.from({ length: 32 }, (_, i) => 0x50 + i);
const RANDOM = Array.from({ length: 32 }, (_, i) => 0xf0 ^ i);

/** What a QUIC client puts in its first CRYPTO frames, after the 4-byte handshake header. */
function tls13Body(spec: HelloSpec = {}): Uint8Array {
  return clientHelloBody({
    flavor: 'tls',
    random: RANDOM,
    sessionId: SESSION_ID,
    suites: [0x1301, 0x1302],
    compression: [0],
    extensions: [
      sniExtension('example.com'),
      alpnExtension('h3'),
      supportedVersionsExtension(0x0304),
      keyShareExtension([X25519, KEY]),
    ],
    ...spec,
  });
}

describe('parseClientHelloBody, TLS flavor, on a crafted TLS 1.3 hello', () => {
  it('reads every field', () => {
    const body = tls13Body();
    const h = hello(body, 'tls');
    expect(h.clientVersion).toBe(0x0303);
    expect(Array.from(h.random)).toEqual(RANDOM);
    expect(Array.from(h.sessionId)).toEqual(SESSION_ID);
    expect(h.cookie).toBeInstanceOf(Uint8Array);
    expect(h.cookie.length).toBe(0);
    expect(h.cipherSuites).toEqual([0x1301, 0x1302]);
    expect(Array.from(h.compressionMethods)).toEqual([0]);
    expect(h.extensions.map((e) => e.type)).toEqual([ExtensionType.ServerName, 16, 43, 51]);
    expect(Array.from(h.extensions[3]!.data)).toEqual([...u16(36), ...u16(X25519), ...u16(32), ...KEY]);
    expect(h).toMatchObject({ sni: 'example.com', alpn: ['h3'], versions: [0x0304] });
  });

  it('gives views into the body, never copies', () => {
    const body = tls13Body();
    const h = hello(body, 'tls');
    expect(h.random.buffer).toBe(body.buffer);
    expect(h.sessionId.buffer).toBe(body.buffer);
    expect(h.extensions[0]!.data.buffer).toBe(body.buffer);
  });

  it('refuses every cut: truncated before the extensions, malformed inside them, whole right before them', () => {
    const body = tls13Body();
    const at = extensionsAt(body, hello(body, 'tls'));
    for (let cut = 0; cut < body.length; cut++) {
      const expected = cut < at ? 'client-hello-truncated' : cut === at ? 'hello' : 'extensions-malformed';
      expect(reasonOf(body.subarray(0, cut), 'tls'), `cut ${cut}`).toBe(expected);
    }
  });

  it('names what is missing right after session_id: the cipher_suites length, not a cookie', () => {
    const body = tls13Body();
    const r = parseClientHelloBody(body.subarray(0, 2 + 32 + 1 + 32 + 1), 'tls');
    expect(r).toEqual({ kind: 'invalid', reason: 'client-hello-truncated', detail: 'ends inside session_id or before cipher_suites' });
  });

  it('accepts client_version 0x0301 to 0x0303 and refuses anything else', () => {
    for (const version of [0x0301, 0x0302, 0x0303]) expect(hello(tls13Body({ version }), 'tls').clientVersion).toBe(version);
    for (const version of [0x0300, 0x0304, 0x0203, 0x0003, 0x03ff, 0xfefd, 0xfeff, 0x0000, 0xffff]) {
      expect(reasonOf(tls13Body({ version }), 'tls'), `0x${version.toString(16)}`).toBe('client-hello-malformed');
    }
    expect(parseClientHelloBody(tls13Body({ version: 0x0304 }), 'tls')).toMatchObject({
      detail: 'client_version 0x0304 is not TLS 1.0 to 1.2',
    });
  });

  it('checks the other fields as DTLS does', () => {
    const tls = (spec: HelloSpec) => reasonOf(tls13Body(spec), 'tls');
    expect(tls({ sessionId: new Uint8Array(33) })).toBe('client-hello-malformed');
    expect(tls({ suites: [] })).toBe('client-hello-malformed');
    expect(tls({ compression: [] })).toBe('client-hello-malformed');
    expect(tls({ extensions: [sniExtension('a.example'), extension(23, []), sniExtension('b.example')] })).toBe('duplicate-extension');
    expect(tls({ extensions: [sniExtension('')] })).toBe('sni-empty');
    expect(tls({ extensions: [extension(16, [0, 1, 0])] })).toBe('alpn-malformed');
    expect(tls({ extensions: [extension(43, [2, 0x03])] })).toBe('supported-versions-malformed');
    expect(reasonOf(concat(tls13Body({ extensions: null }), [0]), 'tls')).toBe('extensions-malformed');
    expect(hello(tls13Body({ extensions: null }), 'tls').extensions).toEqual([]);
    expect(hello(tls13Body({ sessionId: [] }), 'tls').sessionId.length).toBe(0);
  });
});

describe('parseClientHelloBody, TLS flavor, on real TLS 1.3 hellos', () => {
  it('reads every field of the OpenSSL hello', () => {
    const h = hello(tlsHelloBodyOf(fromHex(OPENSSL_TLS13_RECORD)), 'tls');
    expect(h.clientVersion).toBe(0x0303);
    expect(h.random.length).toBe(32);
    expect(h.sessionId.length).toBe(32);
    expect(h.cookie.length).toBe(0);
    expect(h.cipherSuites).toEqual([0x1302, 0x1303, 0x1301, 0x00ff]);
    expect(Array.from(h.compressionMethods)).toEqual([0]);
    expect(h.extensions.map((e) => e.type)).toEqual([0, 11, 10, 35, 16, 22, 23, 13, 43, 45, 51]);
    expect(h).toMatchObject({ sni: 'example.com', alpn: ['h3'], versions: [0x0304] });
  });

  it('finds the name in the GnuTLS hello, where server_name comes after the key shares', () => {
    const h = hello(tlsHelloBodyOf(fromHex(GNUTLS_TLS13_RECORD)), 'tls');
    const types = h.extensions.map((e) => e.type);
    expect(types.indexOf(0)).toBeGreaterThan(types.indexOf(51));
    expect(h).toMatchObject({ sni: 'example.org', alpn: ['h3'], versions: [0x0304] });
  });

  it('refuses a real hello cut at every length, except right before the extensions', () => {
    expectEveryCutRefused(tlsHelloBodyOf(fromHex(OPENSSL_TLS13_RECORD)), 'tls');
    expectEveryCutRefused(tlsHelloBodyOf(fromHex(GNUTLS_TLS13_RECORD)), 'tls');
  });
});

describe('the flavors do not mix', () => {
  it('refuses a DTLS body read as TLS', () => {
    expect(reasonOf(clientHelloBody({ flavor: 'dtls' }), 'tls')).toBe('client-hello-malformed');
    expect(reasonOf(helloBodyOf(dtlsCapture('ossl_foo')[0]!), 'tls')).toBe('client-hello-malformed');
    expect(reasonOf(helloBodyOf(dtlsCapture('ossl_cookie')[1]!), 'tls')).toBe('client-hello-malformed');
  });

  it('refuses a TLS body read as DTLS, the default', () => {
    expect(reasonOf(tls13Body(), 'dtls')).toBe('client-hello-malformed');
    expect(reasonOf(tls13Body())).toBe('client-hello-malformed');
    expect(reasonOf(tlsHelloBodyOf(fromHex(OPENSSL_TLS13_RECORD)), 'dtls')).toBe('client-hello-malformed');
    expect(parseClientHelloBody(tls13Body(), 'dtls')).toMatchObject({ detail: 'client_version 0x0303 is not DTLS' });
  });

  it('reads the same DTLS hello with the flavor given or left out', () => {
    const body = helloBodyOf(dtlsCapture('ossl_cookie')[1]!);
    expect(hello(body, 'dtls')).toEqual(hello(body));
  });

  it('throws on a flavor that is neither, rather than guess', () => {
    expect(() => parseClientHelloBody(tls13Body(), 'quic' as never)).toThrow(TypeError);
  });
});
