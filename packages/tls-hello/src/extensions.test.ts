import { describe, expect, it } from 'vitest';
import { parseAlpn, parseServerName, parseSupportedVersions } from './extensions.js';
import { ascii, clientHelloBody, concat, extension, hello, reasonOf, sniExtension, u16, u8 } from './test-support.js';

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
