import { describe, expect, it } from 'vitest';
import { Counters, DROP_REASONS, LatencyHistogram } from './stats.js';

describe('LatencyHistogram', () => {
  it('counts cumulatively per bucket, with a +Inf bucket for the rest', () => {
    const h = new LatencyHistogram([1, 10, 100]);
    for (const ms of [0, 1, 1.5, 10, 99, 1000, Number.NaN, -1]) h.observe(ms);
    const s = h.snapshot();
    expect(s.count).toBe(6);
    expect(s.sumMs).toBeCloseTo(1111.5);
    expect(s.buckets).toEqual([
      { le: 1, count: 2 },
      { le: 10, count: 4 },
      { le: 100, count: 5 },
      { le: '+Inf', count: 6 },
    ]);
    // Serialises as plain JSON.
    expect(JSON.parse(JSON.stringify(s))).toEqual(s);
  });

  it('refuses bounds that do not increase', () => {
    expect(() => new LatencyHistogram([1, 1])).toThrow(/increase/);
  });
});

describe('Counters', () => {
  it('has a zero for every drop reason and sums them', () => {
    const c = new Counters();
    expect(Object.keys(c.drops)).toEqual([...DROP_REASONS]);
    c.drop('mapper-error');
    c.drop('pending-clients-limit', 4);
    expect(c.dropped).toBe(5);
  });
});
