import { describe, expect, it } from 'vitest';
import { Cursor, encodeVarint, MAX_VARINT } from './varint.js';
import { hex } from './testing/tls-client-hello.js';

describe('Cursor.varint', () => {
  // RFC 9000 Appendix A.1's examples, plus the edges of each length.
  it.each([
    ['c2197c5eff14e88c', 151_288_809_941_952_652],
    ['9d7f3e7d', 494_878_333],
    ['7bbd', 15_293],
    ['25', 37],
    ['4025', 37],
    ['00', 0],
    ['3f', 63],
    ['7fff', 16_383],
    ['bfffffff', 1_073_741_823],
    ['ffffffffffffffff', MAX_VARINT],
  ])('reads %s as %d', (bytes, value) => {
    const c = new Cursor(hex(bytes));
    expect(c.varint()).toBe(value);
    expect(c.pos).toBe(bytes.length / 2);
  });

  it.each(['', '40', '80ffff', 'c0ffffffffffff'])('returns -1 for %j, cut off, and stays put', (bytes) => {
    const c = new Cursor(hex(bytes));
    expect(c.varint()).toBe(-1);
    expect(c.pos).toBe(0);
  });

  it('stops at `end`, not at the end of the bytes', () => {
    const c = new Cursor(hex('4025ff'), 0, 1);
    expect(c.varint()).toBe(-1);
    expect(c.u8()).toBe(0x40);
    expect(c.u8()).toBe(-1);
  });
});

describe('Cursor.take, skip, u32', () => {
  it.each([
    [3, 'aabbcc'],
    [0, ''],
  ])('take(%d) views the next bytes', (n, expected) => {
    const c = new Cursor(hex('aabbccdd'));
    expect(Buffer.from(c.take(n)!).toString('hex')).toBe(expected);
    expect(c.pos).toBe(n);
  });

  it.each([5, -1, Number.NaN, Infinity])('take(%d) and skip(%d) refuse what is not there', (n) => {
    const c = new Cursor(hex('aabbccdd'));
    expect(c.take(n)).toBeUndefined();
    expect(c.skip(n)).toBe(false);
    expect(c.pos).toBe(0);
  });

  it('reads a 32-bit value unsigned', () => {
    expect(new Cursor(hex('ffffffff')).u32()).toBe(0xffff_ffff);
    expect(new Cursor(hex('6b3343cf')).u32()).toBe(0x6b33_43cf);
    expect(new Cursor(hex('6b3343')).u32()).toBe(-1);
  });
});

describe('encodeVarint', () => {
  it.each([
    [37, undefined, '25'],
    [37, 2, '4025'],
    [15_293, undefined, '7bbd'],
    [494_878_333, undefined, '9d7f3e7d'],
    [2 ** 40, undefined, 'c000010000000000'],
    [0, 8, 'c000000000000000'],
  ] as const)('encodes %d (length %s) as %s, and reads back', (value, length, expected) => {
    const bytes = encodeVarint(value, length);
    expect(Buffer.from(bytes).toString('hex')).toBe(expected);
    expect(new Cursor(bytes).varint()).toBe(value);
  });

  it.each([
    [-1, undefined],
    [1.5, undefined],
    [64, 1],
    [2 ** 53, undefined],
  ] as const)('refuses %d in length %s', (value, length) => {
    expect(() => encodeVarint(value, length)).toThrow(RangeError);
  });
});
