import { describe, expect, it } from 'vitest';
import { deriveInitialKeys } from './keys.js';
import { parseInitialHeader } from './long-header.js';
import { decodePacketNumber, openInitial, packetNonce, removeHeaderProtection } from './protection.js';
import { protectInitialPacket, PING_FRAME, RFC_DCID } from './testing/initial-builder.js';
import { hex } from './testing/tls-client-hello.js';
import { QUIC_V1, QUIC_V2 } from './versions.js';

describe('decodePacketNumber', () => {
  it.each([
    // RFC 9000 Appendix A.3's example.
    [0xa82f30ea, 0x9b32, 2, 0xa82f9b32],
    // No packet yet: the number is what was sent.
    [-1, 0, 1, 0],
    [-1, 2, 4, 2],
    [-1, 0xffff_ffff, 4, 0xffff_ffff],
    // Just past a window boundary, either way.
    [0xff, 0x00, 1, 0x100],
    [0x100, 0xff, 1, 0xff],
    [0x1_0000_0005, 0x07, 1, 0x1_0000_0007],
    [0x1_0000_0005, 0xfe, 1, 0x0_ffff_fffe],
  ])('largest %d, truncated %d in %d bytes: %d', (largest, truncated, length, expected) => {
    expect(decodePacketNumber(largest, truncated, length)).toBe(expected);
  });
});

describe('packetNonce', () => {
  it.each([
    [0, 'fa044b2f42a3fd3b46fb255c'],
    [2, 'fa044b2f42a3fd3b46fb255e'],
    [0x1_0203_0405, 'fa044b2f42a3fd3a44f82159'],
  ])('XORs packet number %d into the low bytes of the IV', (pn, expected) => {
    expect(Buffer.from(packetNonce(hex('fa044b2f42a3fd3b46fb255c'), pn)).toString('hex')).toBe(expected);
  });
});

describe('removeHeaderProtection and openInitial', () => {
  it.each([
    [QUIC_V1, 1, 0],
    [QUIC_V1, 2, 0x1234],
    [QUIC_V1, 3, 0x12_3456],
    [QUIC_V2, 4, 0x1234_5678],
    [QUIC_V2, 1, 7],
  ] as const)('v%s: a %d-byte packet number %d comes back, with the header as sent', (version, pnLength, pn) => {
    const packet = protectInitialPacket(PING_FRAME, { version, pnLength, packetNumber: pn });
    const before = packet.slice();
    const parsed = parseInitialHeader(packet);
    if (!parsed.ok) throw new Error(parsed.detail);
    const keys = deriveInitialKeys(version, RFC_DCID);
    const u = removeHeaderProtection(packet, parsed.header, keys.hp);
    expect(u.pnLength).toBe(pnLength);
    expect(u.truncatedPn).toBe(pn);
    expect(u.bytes.length).toBe(parsed.header.pnOffset + pnLength);
    expect(u.firstByte & 0x0c).toBe(0);
    const opened = openInitial(packet, parsed.header, keys);
    expect(opened).toMatchObject({ pn, firstByte: u.firstByte });
    // The datagram is read, never written.
    expect(packet).toEqual(before);
  });

  it('finds the packet number relative to the largest opened so far', () => {
    const packet = protectInitialPacket(PING_FRAME, { pnLength: 1, packetNumber: 0x101 });
    const parsed = parseInitialHeader(packet);
    if (!parsed.ok) throw new Error(parsed.detail);
    const keys = deriveInitialKeys(QUIC_V1, RFC_DCID);
    expect(openInitial(packet, parsed.header, keys, -1)).toBeUndefined();
    expect(openInitial(packet, parsed.header, keys, 0xfe)?.pn).toBe(0x101);
  });

  it('pads a payload too short for the header protection sample', () => {
    const packet = protectInitialPacket(PING_FRAME, { pnLength: 1 });
    const parsed = parseInitialHeader(packet);
    if (!parsed.ok) throw new Error(parsed.detail);
    expect(parsed.header.end - parsed.header.pnOffset).toBe(20);
    expect(openInitial(packet, parsed.header, deriveInitialKeys(QUIC_V1, RFC_DCID))?.payload).toEqual(hex('010000'));
  });
});
