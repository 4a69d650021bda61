// RFC 9001 Appendix A (QUIC v1) and RFC 9369 Appendix A (QUIC v2): the keys of DCID 0x8394c8f03e515708, and the
// sample client Initial of each, a 1200-byte datagram copied from the RFC text.
import { parseClientHelloBody } from '@flowlb/tls-hello';
import { describe, expect, it } from 'vitest';
import { readInitialFlight } from './flight-reader.js';
import { parseInitialFrames } from './frames.js';
import { deriveInitialKeys, headerProtectionMask, hkdfExpandLabel } from './keys.js';
import { parseInitialPackets } from './long-header.js';
import { openInitial, removeHeaderProtection } from './protection.js';
import { QUIC_V1, QUIC_V2 } from './versions.js';
import { hex } from './testing/tls-client-hello.js';
import { CRYPTO_FRAME, V1_CLIENT_INITIAL, V2_CLIENT_INITIAL } from './testing/rfc-samples.js';

const DCID = hex('8394c8f03e515708');
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

const VECTORS = [
  {
    name: 'RFC 9001 (v1)',
    version: QUIC_V1,
    packet: V1_CLIENT_INITIAL,
    keyLabels: ['quic key', 'quic iv', 'quic hp'],
    clientSecret: 'c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea',
    key: '1f369613dd76d5467730efcbe3b1a22d',
    iv: 'fa044b2f42a3fd3b46fb255c',
    hp: '9f50449e04a0e810283a1e9933adedd2',
    sample: 'd1b1c98dd7689fb8ec11d242b123dc9b',
    mask: '437b9aec36',
    unprotectedHeader: 'c300000001088394c8f03e5157080000449e00000002',
  },
  {
    name: 'RFC 9369 (v2)',
    version: QUIC_V2,
    packet: V2_CLIENT_INITIAL,
    keyLabels: ['quicv2 key', 'quicv2 iv', 'quicv2 hp'],
    clientSecret: '14ec9d6eb9fd7af83bf5a668bc17a7e283766aade7ecd0891f70f9ff7f4bf47b',
    key: '8b1a0bc121284290a29e0971b5cd045d',
    iv: '91f73e2351d8fa91660e909f',
    hp: '45b95e15235d6f45a6b19cbcb0294ba9',
    sample: 'ffe67b6abcdb4298b485dd04de806071',
    mask: '94a0c95e80',
    unprotectedHeader: 'd36b3343cf088394c8f03e5157080000449e00000002',
  },
] as const;

describe.each(VECTORS)('$name Appendix A', (v) => {
  it('derives the client key, iv and hp from the DCID', () => {
    const keys = deriveInitialKeys(v.version, DCID);
    expect({ key: toHex(keys.key), iv: toHex(keys.iv), hp: toHex(keys.hp) }).toEqual({ key: v.key, iv: v.iv, hp: v.hp });
    expect(keys.version).toBe(v.version);
    // The intermediate client_initial_secret, through the labels alone.
    const secret = hex(v.clientSecret);
    expect(toHex(hkdfExpandLabel(secret, v.keyLabels[0], 16))).toBe(v.key);
    expect(toHex(hkdfExpandLabel(secret, v.keyLabels[1], 12))).toBe(v.iv);
    expect(toHex(hkdfExpandLabel(secret, v.keyLabels[2], 16))).toBe(v.hp);
  });

  it('computes the header protection mask of the sample', () => {
    expect(toHex(headerProtectionMask(hex(v.hp), hex(v.sample)))).toBe(v.mask);
  });

  it('reads the long header of the 1200-byte datagram', () => {
    expect(v.packet.length).toBe(1200);
    const parsed = parseInitialPackets(v.packet);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.packets).toHaveLength(1);
    const h = parsed.packets[0]!;
    expect({ version: h.version, dcid: toHex(h.dcid), scid: h.scid.length, token: h.token.length }).toEqual({
      version: v.version,
      dcid: toHex(DCID),
      scid: 0,
      token: 0,
    });
    expect([h.pnOffset, h.end]).toEqual([18, 1200]);
  });

  it('removes header protection and decrypts the payload: the CRYPTO frame, then PADDING', () => {
    const parsed = parseInitialPackets(v.packet);
    if (!parsed.ok) throw new Error(parsed.detail);
    const header = parsed.packets[0]!;
    const keys = deriveInitialKeys(v.version, DCID);
    const unprotected = removeHeaderProtection(v.packet, header, keys.hp);
    expect(toHex(unprotected.bytes)).toBe(v.unprotectedHeader);
    expect({ pnLength: unprotected.pnLength, pn: unprotected.truncatedPn }).toEqual({ pnLength: 4, pn: 2 });
    const opened = openInitial(v.packet, header, keys);
    expect(opened?.pn).toBe(2);
    const payload = opened!.payload;
    expect(payload.length).toBe(1162);
    expect(toHex(payload.subarray(0, CRYPTO_FRAME.length))).toBe(toHex(CRYPTO_FRAME));
    expect(payload.subarray(CRYPTO_FRAME.length).every((b) => b === 0)).toBe(true);
    const frames = parseInitialFrames(payload);
    expect(frames).toMatchObject({ ok: true, connectionClose: false });
    if (frames.ok) expect(frames.crypto.map((f) => [f.offset, f.data.length])).toEqual([[0, 241]]);
  });

  it('holds a ClientHello for example.com, with what the RFC put in it', () => {
    const flight = readInitialFlight([v.packet]);
    expect(flight.kind).toBe('client-hello');
    if (flight.kind !== 'client-hello') return;
    expect(flight.version).toBe(v.version);
    expect(flight.body.length).toBe(0xed);
    const hello = parseClientHelloBody(flight.body, 'tls');
    if ('kind' in hello) throw new Error(`${hello.reason}: ${hello.detail}`);
    expect(hello.sni).toBe('example.com');
    // The appendix's client offers the protocol literally named "alpn", and only TLS 1.3.
    expect(hello.alpn).toEqual(['alpn']);
    expect(hello.versions).toEqual([0x0304]);
    expect(hello.clientVersion).toBe(0x0303);
    expect(hello.cipherSuites).toEqual([0x1301, 0x1302]);
    expect(hello.sessionId.length).toBe(0);
    expect(toHex(hello.random)).toBe('ebf8fa56f12939b9584a3896472ec40bb863cfd3e86804fe3a47f06a2b69484c');
    // server_name, renegotiation_info, supported_groups, ALPN, status_request, key_share, supported_versions,
    // signature_algorithms, psk_key_exchange_modes, record_size_limit, quic_transport_parameters.
    expect(hello.extensions.map((e) => e.type)).toEqual([0x0000, 0xff01, 0x000a, 0x0010, 0x0005, 0x0033, 0x002b, 0x000d, 0x002d, 0x001c, 0x0039]);
  });

  it('does not open under the other version, nor under another DCID', () => {
    const parsed = parseInitialPackets(v.packet);
    if (!parsed.ok) throw new Error(parsed.detail);
    const other = v.version === QUIC_V1 ? QUIC_V2 : QUIC_V1;
    expect(openInitial(v.packet, parsed.packets[0]!, deriveInitialKeys(other, DCID))).toBeUndefined();
    expect(openInitial(v.packet, parsed.packets[0]!, deriveInitialKeys(v.version, hex('8394c8f03e515709')))).toBeUndefined();
  });
});
