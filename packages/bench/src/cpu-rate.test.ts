import { describe, expect, it } from 'vitest';
import { callsPerCpuSecond } from './cpu-rate.js';

describe('callsPerCpuSecond', () => {
  it('gives a positive rate per round, after the warm-up calls', () => {
    let calls = 0;
    const rates = callsPerCpuSecond(
      () => {
        calls++;
        for (let i = 0; i < 1000; i++) Math.sqrt(i);
      },
      { warmup: 10, roundMs: 5, rounds: 3, batch: 50 },
    );
    expect(rates).toHaveLength(3);
    for (const r of rates) expect(r).toBeGreaterThan(0);
    expect(calls).toBeGreaterThanOrEqual(10 + 3 * 50);
    expect((calls - 10) % 50).toBe(0);
  });
});
