import { describe, expect, it } from 'vitest';
import { pacedLiveRuns } from './live-pacer.js';

/** A clock that only moves when the pacer sleeps, so every run is due exactly when the test says. */
function fakeClock() {
  let t = 0;
  return { now: () => t, sleep: async (ms: number) => void (t += ms) };
}

describe('pacedLiveRuns', () => {
  it('sends each stream at its own rate, everything due at once, templates in turn', async () => {
    const clock = fakeClock();
    const runs: [string, number, number][] = [];
    const r = await pacedLiveRuns({
      streams: [
        { pps: 2000, total: 10, templates: ['a1', 'a2'] },
        { pps: 1000, total: 4, templates: ['b'] },
      ],
      run: (t, n) => void runs.push([t, n, clock.now()]),
      maxRun: 1000,
      deadline: 1000,
      tickMs: 2,
      ...clock,
    });
    expect(r.sent).toEqual([10, 4]);
    expect(r.ms).toBe(6);
    expect(runs).toEqual([
      ['a1', 4, 2],
      ['b', 2, 2],
      ['a2', 4, 4],
      ['b', 2, 4],
      ['a1', 2, 6],
    ]);
  });

  it('splits what is due into runs of at most maxRun frames', async () => {
    const clock = fakeClock();
    const sizes: number[] = [];
    const r = await pacedLiveRuns({ streams: [{ pps: 1_000_000, total: 2500, templates: [0] }], run: (_, n) => void sizes.push(n), maxRun: 1000, deadline: 100, ...clock });
    expect(r.sent).toEqual([2500]);
    expect(sizes).toEqual([1000, 1000, 500]);
  });

  it('stops at the deadline or when asked, and reports progress on the way', async () => {
    const clock = fakeClock();
    const progress: number[][] = [];
    const late = await pacedLiveRuns({
      streams: [{ pps: 1000, total: 1_000_000, templates: [0] }],
      run: () => {},
      maxRun: 1000,
      deadline: 3500,
      onProgress: (sent) => void progress.push([...sent]),
      ...clock,
    });
    expect(late.sent[0]).toBeLessThanOrEqual(3500);
    expect(late.sent[0]).toBeGreaterThan(3400);
    // Reported before the second's own frames go out.
    expect(progress.map((p) => p[0])).toEqual([999, 1999, 2999]);

    let stop = false;
    const asked = await pacedLiveRuns({
      streams: [{ pps: 1000, total: 1_000_000, templates: [0] }],
      run: (_, n) => void (stop = stop || n > 0),
      maxRun: 1000,
      deadline: 1e9,
      stopped: () => stop,
      ...fakeClock(),
    });
    expect(asked.sent).toEqual([1]);
  });
});
