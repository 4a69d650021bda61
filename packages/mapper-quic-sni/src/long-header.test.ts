import { describe, expect, it } from 'vitest';
import { parseInitialHeader, parseInitialPackets } from './long-header.js';
import { buildClientInitial, protectInitialPacket, RFC_DCID, PING_FRAME } from './testing/initial-builder.js';
import { concat, hex } from './testing/tls-client-hello.js';
import { QUIC_V1, QUIC_V2 } from './versions.js';

const V1 = '00000001';
const DCID8 = '088394c8f03e515708';
/** A v1 Initial header up to the Length field, given the first byte; Length 20 and 20 bytes of "payload". */
const initial = (first: string, rest = `${DCID8}00` + '00' + '14'): Uint8Array => hex(first + V1 + rest + '00'.repeat(20));

describe('parseInitialHeader', () => {
  it('reads every field of a v1 and a v2 Initial', () => {
    for (const version of [QUIC_V1, QUIC_V2]) {
      const token = hex('746f6b656e');
      const packet = protectInitialPacket(PING_FRAME, { version, scid: hex('0102'), token, pnLength: 2 });
      const r = parseInitialHeader(packet);
      expect(r.ok).toBe(true);
      if (!r.ok) continue;
      expect(r.header.version).toBe(version);
      expect(r.header.dcid).toEqual(RFC_DCID);
      expect(r.header.scid).toEqual(hex('0102'));
      expect(r.header.token).toEqual(token);
      // 1 + 4 + 1 + 8 + 1 + 2 + 1 + 5 + 2 (Length in 2 bytes)
      expect(r.header.pnOffset).toBe(25);
      expect(r.header.end).toBe(packet.length);
    }
  });

  it.each([
    ['an empty datagram', '', 'malformed'],
    ['a short header', '40' + '00'.repeat(30), 'short-header'],
    ['a long header cut off in its version', 'c00000', 'malformed'],
    ['Version Negotiation', 'c000000000' + '00'.repeat(30), 'version-negotiation'],
    ['an unknown version', 'c0ff00001d' + '00'.repeat(30), 'unsupported-version'],
    ['an unknown version, fixed bit clear', '80abcdef01' + '00'.repeat(30), 'unsupported-version'],
    ['v1 with the fixed bit clear', '80' + V1 + DCID8 + '000014' + '00'.repeat(20), 'malformed'],
    ['a v1 0-RTT packet', 'd0' + V1 + DCID8 + '0014' + '00'.repeat(20), 'not-initial'],
    ['a v1 Handshake packet', 'e0' + V1 + DCID8 + '0014' + '00'.repeat(20), 'not-initial'],
    ['a v1 Retry packet', 'f0' + V1 + DCID8 + '00' + '00'.repeat(20), 'not-initial'],
    ['a v2 packet with the v1 Initial type (Retry in v2)', 'c06b3343cf' + DCID8 + '00' + '00'.repeat(20), 'not-initial'],
    ['a DCID of 21 bytes', 'c0' + V1 + '15' + '00'.repeat(40), 'malformed'],
    ['an SCID of 21 bytes', 'c0' + V1 + DCID8 + '15' + '00'.repeat(40), 'malformed'],
    ['a DCID cut off', 'c0' + V1 + '08' + '8394', 'malformed'],
    ['a token longer than the datagram', 'c0' + V1 + DCID8 + '00' + '4100' + '00'.repeat(20), 'malformed'],
    ['a Length longer than the datagram', 'c0' + V1 + DCID8 + '00' + '00' + '15' + '00'.repeat(20), 'malformed'],
    ['a Length too short for the sample', 'c0' + V1 + DCID8 + '00' + '00' + '13' + '00'.repeat(19), 'malformed'],
    ['no Length field', 'c0' + V1 + DCID8 + '00' + '00', 'malformed'],
  ])('%s: %s', (_name, bytes, why) => {
    const r = parseInitialHeader(hex(bytes));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.why).toBe(why);
  });

  it('says which unknown version it saw', () => {
    const r = parseInitialHeader(hex('c0ff00001d' + '00'.repeat(30)));
    expect(r).toMatchObject({ ok: false, why: 'unsupported-version', version: 0xff00001d });
  });

  it('accepts the smallest packet with a sample, and empty connection IDs', () => {
    expect(parseInitialHeader(initial('c0'))).toMatchObject({ ok: true, header: { pnOffset: 17, end: 37 } });
    expect(parseInitialHeader(hex('c0' + V1 + '000000' + '14' + '00'.repeat(20)))).toMatchObject({ ok: true, header: { pnOffset: 9 } });
  });
});

describe('parseInitialPackets', () => {
  const one = (version = QUIC_V1, dcid = RFC_DCID): Uint8Array => protectInitialPacket(PING_FRAME, { version, dcid });
  const handshake = hex('e0' + V1 + DCID8 + '00' + '14' + '00'.repeat(20));

  it.each([
    ['one Initial', [one()], 1, undefined],
    ['three coalesced Initials', [one(), one(), one()], 3, undefined],
    ['an Initial then a Handshake packet', [one(), handshake, one()], 1, 'not-initial'],
    ['an Initial then a short header', [one(), hex('40' + '00'.repeat(30))], 1, 'short-header'],
    ['an Initial then trailing zeros', [one(), new Uint8Array(40)], 1, 'short-header'],
    ['an Initial then one of the other version', [one(), one(QUIC_V2)], 1, 'other-version'],
    ['an Initial then one with another DCID', [one(), one(QUIC_V1, hex('0102030405060708'))], 1, 'other-dcid'],
    ['an Initial then a cut-off one', [one(), one().subarray(0, 30)], 1, 'malformed'],
  ])('%s', (_name, parts, count, stopped) => {
    const datagram = concat(...parts);
    const r = parseInitialPackets(datagram);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.packets).toHaveLength(count);
    expect(r.stopped).toBe(stopped);
    expect(r.stoppedAt).toBe(stopped === undefined ? datagram.length : r.packets.at(-1)!.end);
  });

  it('fails as the first packet does', () => {
    expect(parseInitialPackets(hex('40' + '00'.repeat(30)))).toMatchObject({ ok: false, why: 'short-header' });
    expect(parseInitialPackets(buildClientInitial(hex('01000000'))[0]!.subarray(0, 100))).toMatchObject({ ok: false, why: 'malformed' });
  });
});
