import { describe, expect, it } from 'vitest';
import { fmix32, fnv1a32 } from './hash.js';

describe('fnv1a32', () => {
  it('matches the published FNV-1a 32-bit test vectors', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
  });

  it('continues a hash across calls as if over the concatenation', () => {
    expect(fnv1a32('bar', fnv1a32('foo'))).toBe(fnv1a32('foobar'));
  });

  it('hashes the UTF-8 bytes of non-ASCII text', () => {
    // "é" is 0xC3 0xA9 in UTF-8.
    let h = 0x811c9dc5;
    for (const b of [0xc3, 0xa9]) h = Math.imul(h ^ b, 0x01000193);
    expect(fnv1a32('é')).toBe(h >>> 0);
  });
});

describe('fmix32', () => {
  it('matches MurmurHash3 fmix32 on known inputs', () => {
    expect(fmix32(0)).toBe(0);
    expect(fmix32(1)).toBe(0x514e28b7);
  });

  it('flips about half the output bits when one input bit flips', () => {
    let total = 0;
    let samples = 0;
    for (let x = 1; x < 2000; x += 7) {
      for (let bit = 0; bit < 32; bit++) {
        const diff = (fmix32(x) ^ fmix32((x ^ (1 << bit)) >>> 0)) >>> 0;
        total += popcount(diff);
        samples++;
      }
    }
    expect(total / samples).toBeGreaterThan(15);
    expect(total / samples).toBeLessThan(17);
  });
});

function popcount(n: number): number {
  let c = 0;
  for (let v = n; v !== 0; v >>>= 1) c += v & 1;
  return c;
}
