import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { assertPort, formatIPv4, parseIPv4 } from './ipv4.js';

describe('parseIPv4 / formatIPv4', () => {
  it('reads the first octet as the most significant byte', () => {
    expect(parseIPv4('10.0.0.1')).toBe(0x0a000001);
    expect(parseIPv4('255.255.255.255')).toBe(0xffffffff);
    expect(parseIPv4('0.0.0.0')).toBe(0);
    expect(formatIPv4(0xc0a80102)).toBe('192.168.1.2');
  });

  it('round-trips every 32-bit value', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (n) => {
        expect(parseIPv4(formatIPv4(n))).toBe(n);
      }),
    );
  });

  it('rejects anything but a canonical dotted quad, naming the field', () => {
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.0.0.1', '1.2.3.04', ' 1.2.3.4', '1.2.3.4 ', 'a.b.c.d', '1..2.3']) {
      expect(() => parseIPv4(bad, 'srcAddr'), bad).toThrow(/^srcAddr: /);
    }
    expect(() => parseIPv4('::1', 'dstAddr')).toThrow(/IPv4 only/);
    expect(() => parseIPv4(undefined as unknown as string)).toThrow(/expected an IPv4 address string/);
  });
});

describe('assertPort', () => {
  it('accepts 0..65535 and rejects the rest', () => {
    expect(() => assertPort(0)).not.toThrow();
    expect(() => assertPort(65535)).not.toThrow();
    for (const bad of [-1, 65536, 1.5, Number.NaN, '80' as unknown as number]) {
      expect(() => assertPort(bad, 'dstPort')).toThrow(/^dstPort: .* is not a port/);
    }
  });
});
