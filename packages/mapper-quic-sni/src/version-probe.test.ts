import { describe, expect, it } from 'vitest';
import { parseInitialHeader } from './long-header.js';
import { isVersionNegotiation, versionNegotiationProbe, VERSION_NEGOTIATION_REPLY } from './version-probe.js';

const latin1 = (d: Uint8Array): string => Buffer.from(d).toString('latin1');

describe('the QUIC version probe', () => {
  it('is a 1200-byte long header of a reserved version, with fresh connection IDs each time', () => {
    const a = versionNegotiationProbe();
    const b = versionNegotiationProbe();
    expect(a.length).toBe(1200);
    expect(a[0]! & 0xc0).toBe(0xc0);
    const version = new DataView(a.buffer).getUint32(1);
    // 0x?a?a?a?a: the low nibble of every byte is 0xa.
    for (let i = 0; i < 4; i++) expect((version >>> (8 * i)) & 0x0f).toBe(0x0a);
    expect(a.subarray(6, 14)).not.toEqual(b.subarray(6, 14));
    // flowlb's own QUIC mapper counts it as a version it does not know.
    expect(parseInitialHeader(a)).toMatchObject({ ok: false, why: 'unsupported-version' });
  });

  it('tells Version Negotiation from anything else, with the function and with the RegExp alike', () => {
    const vn = Uint8Array.from([0x80, 0, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 1]);
    const cases: Array<[Uint8Array, boolean]> = [
      [vn, true],
      [Uint8Array.from([0xc5, 0, 0, 0, 0, 0, 0]), true],
      [Uint8Array.from([0x40, 0, 0, 0, 0, 0, 0]), false],
      [Uint8Array.from([0xc0, 0, 0, 0, 1, 0, 0]), false],
      [vn.subarray(0, 6), false],
      [versionNegotiationProbe(), false],
    ];
    for (const [d, want] of cases) {
      expect(isVersionNegotiation(d)).toBe(want);
      expect(VERSION_NEGOTIATION_REPLY.test(latin1(d))).toBe(want);
    }
  });
});
