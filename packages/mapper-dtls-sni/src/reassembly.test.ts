import { describe, expect, it } from 'vitest';
import { MessageReassembler } from './reassembly.js';

const message = Uint8Array.from({ length: 100 }, (_, i) => (i * 7 + 3) & 0xff);
const slice = (start: number, end: number): Uint8Array => message.slice(start, end);

describe('MessageReassembler', () => {
  it('keeps a message that arrives whole without copying it', () => {
    const r = new MessageReassembler(100);
    expect(r.add(0, message)).toBe('ok');
    expect(r.complete).toBe(true);
    expect(r.message()).toBe(message);
  });

  it('completes from fragments in any order and reports progress', () => {
    const r = new MessageReassembler(100);
    expect(r.add(60, slice(60, 100))).toBe('ok');
    expect(r.complete).toBe(false);
    expect(r.message()).toBeUndefined();
    expect(r.receivedBytes).toBe(40);
    expect(r.add(0, slice(0, 30))).toBe('ok');
    expect(r.receivedBytes).toBe(70);
    expect(r.add(30, slice(30, 60))).toBe('ok');
    expect(r.complete).toBe(true);
    expect(Array.from(r.message()!)).toEqual(Array.from(message));
  });

  it('accepts duplicates and overlaps whose bytes agree', () => {
    const r = new MessageReassembler(100);
    r.add(0, slice(0, 50));
    expect(r.add(0, slice(0, 50))).toBe('ok');
    expect(r.add(40, slice(40, 70))).toBe('ok');
    expect(r.receivedBytes).toBe(70);
    expect(r.add(10, slice(10, 100))).toBe('ok');
    expect(Array.from(r.message()!)).toEqual(Array.from(message));
    expect(r.add(20, slice(20, 30))).toBe('ok');
  });

  it('refuses an overlap that disagrees, and leaves its state untouched', () => {
    const r = new MessageReassembler(100);
    r.add(0, slice(0, 50));
    const bad = slice(45, 80);
    bad[2] = bad[2]! ^ 0xff;
    expect(r.add(45, bad)).toBe('conflict');
    expect(r.receivedBytes).toBe(50);
    r.add(50, slice(50, 100));
    expect(Array.from(r.message()!)).toEqual(Array.from(message));
  });

  it('refuses a disagreeing fragment after completion, including against a whole first fragment', () => {
    const r = new MessageReassembler(100);
    r.add(0, message);
    const bad = slice(90, 100);
    bad[9] = bad[9]! ^ 1;
    expect(r.add(90, bad)).toBe('conflict');
    const agreeing = slice(90, 100);
    expect(r.add(90, agreeing)).toBe('ok');
  });

  it('checks earlier partial bytes when a whole copy arrives later', () => {
    const r = new MessageReassembler(100);
    r.add(10, slice(10, 20));
    const other = message.slice();
    other[15] = other[15]! ^ 1;
    expect(r.add(0, other)).toBe('conflict');
    expect(r.add(0, message)).toBe('ok');
    expect(r.complete).toBe(true);
  });

  it('refuses fragments beyond the message length', () => {
    const r = new MessageReassembler(100);
    expect(r.add(90, new Uint8Array(11))).toBe('out-of-range');
    expect(r.add(101, new Uint8Array(0))).toBe('out-of-range');
    expect(r.add(100, new Uint8Array(0))).toBe('ok');
    expect(r.receivedBytes).toBe(0);
  });

  it('ignores zero-length fragments and completes a zero-length message at once', () => {
    const r = new MessageReassembler(100);
    expect(r.add(50, new Uint8Array(0))).toBe('ok');
    expect(r.complete).toBe(false);
    const empty = new MessageReassembler(0);
    expect(empty.complete).toBe(true);
    expect(empty.message()!.length).toBe(0);
    expect(empty.add(0, new Uint8Array(1))).toBe('out-of-range');
  });

  it('handles many small fragments (past the few it keeps as views) in a scrambled order', () => {
    const order = Array.from({ length: 25 }, (_, i) => (i * 7) % 25);
    const r = new MessageReassembler(100);
    let expected = 0;
    for (const k of order.slice(0, 24)) {
      expect(r.add(k * 4, slice(k * 4, k * 4 + 4))).toBe('ok');
      expected += 4;
      expect(r.receivedBytes).toBe(expected);
      expect(r.complete).toBe(false);
    }
    // Overlapping again, agreeing and not, once the byte map is in use.
    expect(r.add(2, slice(2, 30))).toBe('ok');
    const bad = slice(40, 50);
    bad[0] = bad[0]! ^ 0x80;
    expect(r.add(40, bad)).toBe('conflict');
    expect(r.receivedBytes).toBe(96);
    const last = order[24]!;
    expect(r.add(last * 4, slice(last * 4, last * 4 + 4))).toBe('ok');
    expect(r.complete).toBe(true);
    expect(Array.from(r.message()!)).toEqual(Array.from(message));
  });

  it('counts overlapping views once', () => {
    const r = new MessageReassembler(100);
    r.add(10, slice(10, 40));
    r.add(30, slice(30, 60));
    r.add(0, slice(0, 20));
    expect(r.receivedBytes).toBe(60);
    r.add(55, slice(55, 100));
    expect(r.complete).toBe(true);
    expect(Array.from(r.message()!)).toEqual(Array.from(message));
  });
});
