import { describe, expect, it } from 'vitest';
import { CryptoReassembler } from './crypto-reassembler.js';
import { pattern } from './testing/tls-client-hello.js';

const stream = pattern(3000, 42);
const piece = (start: number, end: number): [number, Uint8Array] => [start, stream.slice(start, end)];

type Step = [number, Uint8Array, 'ok' | 'too-large' | 'conflict'];

describe('CryptoReassembler', () => {
  it.each<[string, Step[], number]>([
    ['one piece at 0', [[...piece(0, 300), 'ok']], 300],
    ['two pieces in order', [[...piece(0, 300), 'ok'], [...piece(300, 1700), 'ok']], 1700],
    ['two pieces backwards', [[...piece(300, 1700), 'ok'], [...piece(0, 300), 'ok']], 1700],
    ['a gap', [[...piece(0, 100), 'ok'], [...piece(200, 300), 'ok']], 100],
    ['a gap filled', [[...piece(0, 100), 'ok'], [...piece(200, 300), 'ok'], [...piece(100, 200), 'ok']], 300],
    ['a repeat', [[...piece(0, 300), 'ok'], [...piece(0, 300), 'ok']], 300],
    ['a piece inside the first', [[...piece(0, 300), 'ok'], [...piece(10, 20), 'ok']], 300],
    ['overlaps that agree', [[...piece(50, 200), 'ok'], [...piece(0, 100), 'ok'], [...piece(150, 400), 'ok']], 400],
    ['an empty piece, anywhere', [[5000, new Uint8Array(0), 'ok'], [-3, new Uint8Array(0), 'ok']], 0],
    ['nothing at 0', [[...piece(1, 300), 'ok']], 0],
    ['the limit reached exactly', [[...piece(0, 2048), 'ok']], 2048],
    ['one byte past the limit', [[...piece(0, 2049), 'too-large']], 0],
    ['an offset past the limit', [[4096, stream.slice(0, 1), 'too-large']], 0],
    ['a negative offset', [[-1, stream.slice(0, 1), 'too-large']], 0],
  ])('%s', (_name, steps, contiguous) => {
    const r = new CryptoReassembler(2048);
    for (const [offset, data, result] of steps) expect(r.add(offset, data)).toBe(result);
    expect(r.contiguous).toBe(contiguous);
    expect(r.prefix(contiguous)).toEqual(stream.subarray(0, contiguous));
    expect(r.prefix(contiguous + 1)).toBeUndefined();
  });

  it.each<[string, [number, number][], [number, number]]>([
    ['against the first piece', [[0, 300]], [100, 200]],
    ['against a buffered piece', [[0, 100], [200, 300]], [250, 260]],
    ['straddling two pieces', [[0, 100], [100, 300]], [50, 150]],
    ['against a piece received out of order', [[500, 700]], [600, 800]],
  ])('refuses bytes that disagree %s, and keeps what it had', (_name, pieces, [start, end]) => {
    const r = new CryptoReassembler();
    for (const [s, e] of pieces) expect(r.add(...piece(s, e))).toBe('ok');
    const before = { contiguous: r.contiguous, received: r.received };
    const bad = stream.slice(start, end);
    bad[0]! ^= 0x01;
    expect(r.add(start, bad)).toBe('conflict');
    expect({ contiguous: r.contiguous, received: r.received }).toEqual(before);
    // The bytes as they were still fit.
    expect(r.add(...piece(start, end))).toBe('ok');
  });

  it('keeps a piece at 0 as a view, and copies only when a second one comes', () => {
    const r = new CryptoReassembler();
    const [, first] = piece(0, 300);
    r.add(0, first);
    expect(r.prefix(300)!.buffer).toBe(first.buffer);
    expect(r.footprint).toBe(300);
    r.add(...piece(300, 400));
    expect(r.prefix(400)!.buffer).not.toBe(first.buffer);
    expect(r.footprint).toBe(2 * 1024);
  });

  it('grows with the highest offset received, never past the limit', () => {
    const r = new CryptoReassembler(3000);
    r.add(...piece(2000, 2100));
    // Doubling from 1024 would give 4096: capped at the limit.
    expect(r.footprint).toBe(2 * 3000);
    r.add(...piece(2999, 3000));
    expect(r.footprint).toBeLessThanOrEqual(2 * 3000);
    expect(r.received).toBe(101);
  });

  it('works through many small pieces in a shuffled order', () => {
    const r = new CryptoReassembler();
    const order = Array.from({ length: 300 }, (_, i) => (i * 7919) % 300);
    for (const i of order) expect(r.add(...piece(i * 10, i * 10 + 10))).toBe('ok');
    expect(r.contiguous).toBe(3000);
    expect(r.received).toBe(3000);
    expect(r.prefix(3000)).toEqual(stream);
  });
});
