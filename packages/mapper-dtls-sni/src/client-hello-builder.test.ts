import { describe, expect, it } from 'vitest';
import { buildClientHello, CLIENT_HELLO_CIPHER_SUITES } from './client-hello-builder.js';
import { ExtensionType } from './extensions.js';
import { HandshakeType, parseHandshakeFragments } from './handshake.js';
import { parseClientHello } from './parser.js';
import { ContentType, DtlsVersion, parseRecords } from './record.js';
import type { HelloResult, ParseResult } from './result.js';

function expectHello(result: ParseResult): HelloResult {
  if (result.kind !== 'hello') {
    throw new Error(`expected a hello, got ${result.kind}${result.kind === 'invalid' ? `: ${result.reason} (${result.detail})` : ''}`);
  }
  return result;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const bytes = (n: number, start: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);

/** The extension bodies the builder always sends, by type, exactly as on the wire. */
const FIXED_EXTENSIONS: [number, string][] = [
  [10, '0006' + '001d' + '0017' + '0018'],
  [11, '01' + '00'],
  [13, '0012' + '0403' + '0503' + '0603' + '0804' + '0805' + '0806' + '0401' + '0501' + '0601'],
  [23, ''],
  [0xff01, '00'],
];

describe('buildClientHello', () => {
  it('round-trips every field through the parser, with a server name', () => {
    const random = bytes(32, 0x40);
    const sessionId = bytes(32, 0x90);
    const cookie = bytes(255, 0x10);
    const datagram = buildClientHello({
      serverName: 'probe.backend.example',
      random,
      sessionId,
      cookie,
      messageSeq: 0x0102,
      recordSequence: 0x0102_0304_0506,
    });
    const hello = expectHello(parseClientHello(datagram));
    expect(hello).toMatchObject({
      sni: 'probe.backend.example',
      messageSeq: 0x0102,
      recordSequence: 0x0102_0304_0506,
      recordVersion: DtlsVersion.Dtls1_0,
      clientVersion: DtlsVersion.Dtls1_2,
      cipherSuites: CLIENT_HELLO_CIPHER_SUITES,
    });
    expect(hex(hello.random)).toBe(hex(random));
    expect(hex(hello.sessionId)).toBe(hex(sessionId));
    expect(hex(hello.cookie)).toBe(hex(cookie));
    expect([...hello.compressionMethods]).toEqual([0]);
    expect(hello.extensions.map((e) => [e.type, hex(e.data)])).toEqual([
      [ExtensionType.ServerName, '0018' + '00' + '0015' + hex(Buffer.from('probe.backend.example'))],
      ...FIXED_EXTENSIONS,
    ]);
  });

  it('round-trips without a server name, and leaves the extension out', () => {
    const hello = expectHello(parseClientHello(buildClientHello({ random: bytes(32, 1) })));
    expect(hello.sni).toBeUndefined();
    expect(hello.extensions.map((e) => [e.type, hex(e.data)])).toEqual(FIXED_EXTENSIONS);
    expect(hex(hello.random)).toBe(hex(bytes(32, 1)));
  });

  it('defaults to a first hello: fresh random, no session id or cookie, message_seq 0, record 0', () => {
    const a = expectHello(parseClientHello(buildClientHello()));
    const b = expectHello(parseClientHello(buildClientHello()));
    expect(a).toMatchObject({ messageSeq: 0, recordSequence: 0 });
    expect(a.sessionId.length).toBe(0);
    expect(a.cookie.length).toBe(0);
    expect(a.random.length).toBe(32);
    expect(hex(a.random)).not.toBe(hex(b.random));
  });

  it('is one record of one unfragmented ClientHello, epoch 0, nothing after it', () => {
    const datagram = buildClientHello({ serverName: 'a.example', recordSequence: 7, messageSeq: 1 });
    const layer = parseRecords(datagram);
    if (!layer.ok) throw new Error(layer.detail);
    expect(layer).toMatchObject({ stop: 'end', trailingBytes: 0 });
    expect(layer.records).toHaveLength(1);
    const [record] = layer.records;
    expect(record).toMatchObject({ contentType: ContentType.Handshake, version: 0xfeff, epoch: 0, sequence: 7 });
    const handshake = parseHandshakeFragments(record!.fragment);
    if (!handshake.ok) throw new Error(handshake.detail);
    expect(handshake.fragments).toHaveLength(1);
    const [fragment] = handshake.fragments;
    expect(fragment).toMatchObject({ msgType: HandshakeType.ClientHello, messageSeq: 1, fragmentOffset: 0 });
    expect(fragment!.body.length).toBe(fragment!.length);
    expect(datagram.length).toBe(13 + 12 + fragment!.length);
  });

  it('sends names the way mappings compare them: lower case, no trailing dot', () => {
    expect(expectHello(parseClientHello(buildClientHello({ serverName: 'Probe.EXAMPLE.org.' }))).sni).toBe('probe.example.org');
  });

  it('takes the longest name a ClientHello can carry', () => {
    const name = [63, 63, 63, 61].map((n, i) => String.fromCharCode(0x61 + i).repeat(n)).join('.');
    expect(name.length).toBe(253);
    expect(expectHello(parseClientHello(buildClientHello({ serverName: name }))).sni).toBe(name);
  });

  it.each([
    ['a name longer than 253 bytes', { serverName: `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(62)}` }],
    ['a label longer than 63 bytes', { serverName: `${'a'.repeat(64)}.example` }],
    ['a space', { serverName: 'bad name.example' }],
    ['a slash', { serverName: 'bad/name.example' }],
    ['a non-ASCII name', { serverName: 'bücher.example' }],
    ['an empty name', { serverName: '' }],
    ['an empty label', { serverName: 'a..example' }],
    ['a wildcard', { serverName: '*.example' }],
    ['a random of 31 bytes', { random: new Uint8Array(31) }],
    ['a session id of 33 bytes', { sessionId: new Uint8Array(33) }],
    ['a cookie of 256 bytes', { cookie: new Uint8Array(256) }],
    ['a message_seq above 16 bits', { messageSeq: 0x1_0000 }],
    ['a negative message_seq', { messageSeq: -1 }],
    ['a record number above 48 bits', { recordSequence: 2 ** 48 }],
    ['a fractional record number', { recordSequence: 1.5 }],
  ])('throws a RangeError for %s', (_what, options) => {
    expect(() => buildClientHello(options)).toThrow(RangeError);
  });
});
