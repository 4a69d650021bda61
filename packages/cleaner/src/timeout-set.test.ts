import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TimeoutSet } from './timeout-set.js';

describe('TimeoutSet', () => {
  it('expires keys at or before now, earliest first, and only once', () => {
    const s = new TimeoutSet();
    s.add('c', 30);
    s.add('a', 10);
    s.add('b', 20);
    expect(s.nextDeadline()).toBe(10);
    expect(s.expire(20)).toEqual(['a', 'b']);
    expect(s.expire(20)).toEqual([]);
    expect(s.size).toBe(1);
    expect(s.has('c')).toBe(true);
    expect(s.expire(1000)).toEqual(['c']);
    expect(s.nextDeadline()).toBeUndefined();
  });

  it('replaces the deadline of a key added again', () => {
    const s = new TimeoutSet();
    s.add('a', 10);
    s.add('a', 50);
    expect(s.deadlineOf('a')).toBe(50);
    expect(s.expire(20)).toEqual([]);
    expect(s.nextDeadline()).toBe(50);
    expect(s.expire(50)).toEqual(['a']);
  });

  it('forgets deleted keys', () => {
    const s = new TimeoutSet();
    s.add('a', 10);
    expect(s.delete('a')).toBe(true);
    expect(s.delete('a')).toBe(false);
    expect(s.expire(100)).toEqual([]);
    s.add('b', 1);
    s.clear();
    expect(s.size).toBe(0);
    expect(s.expire(100)).toEqual([]);
  });

  it('expires equal deadlines in the order they were set', () => {
    const s = new TimeoutSet();
    for (const k of ['x', 'y', 'z']) s.add(k, 5);
    s.add('x', 5);
    expect(s.expire(5)).toEqual(['y', 'z', 'x']);
  });

  it('works with bigint deadlines of the flow clock', () => {
    const s = new TimeoutSet<string, bigint>();
    s.add('10.0.0.1:5000', 2_000_000_000n);
    s.add('10.0.0.2:5000', 1_000_000_000n);
    expect(s.expire(1_500_000_000n)).toEqual(['10.0.0.2:5000']);
  });

  it('rejects a NaN deadline', () => {
    expect(() => new TimeoutSet().add('a', Number.NaN)).toThrow(/NaN/);
  });

  it('behaves like a plain map of deadlines under any sequence of operations', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('add' as const), key: fc.integer({ min: 0, max: 20 }), at: fc.integer({ min: 0, max: 100 }) }),
      fc.record({ kind: fc.constant('delete' as const), key: fc.integer({ min: 0, max: 20 }) }),
      fc.record({ kind: fc.constant('expire' as const), now: fc.integer({ min: 0, max: 100 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const s = new TimeoutSet();
        const model = new Map<string, { at: number; seq: number }>();
        let seq = 0;
        for (const o of ops) {
          if (o.kind === 'add') {
            s.add(`k${o.key}`, o.at);
            model.set(`k${o.key}`, { at: o.at, seq: seq++ });
          } else if (o.kind === 'delete') {
            expect(s.delete(`k${o.key}`)).toBe(model.delete(`k${o.key}`));
          } else {
            const due = [...model.entries()]
              .filter(([, v]) => v.at <= o.now)
              .sort(([, a], [, b]) => a.at - b.at || a.seq - b.seq)
              .map(([k]) => k);
            for (const k of due) model.delete(k);
            expect(s.expire(o.now)).toEqual(due);
          }
          expect(s.size).toBe(model.size);
          const next = Math.min(...[...model.values()].map((v) => v.at));
          expect(s.nextDeadline()).toBe(model.size ? next : undefined);
        }
      }),
    );
  });

  it('does not grow without bound when one key is re-armed over and over', () => {
    const s = new TimeoutSet();
    for (let i = 0; i < 100_000; i++) s.add('a', i);
    expect(s.size).toBe(1);
    expect(s.expire(99_998)).toEqual([]);
    expect(s.expire(99_999)).toEqual(['a']);
  });
});
