import { describe, expect, it } from 'vitest';
import type { BenchRun } from './results.js';
import { checkTargets, highestHeld } from './targets.js';
import { floodRowFixture } from './test-support/flood-row.js';

const run = (flood: BenchRun['flood']): BenchRun => ({
  startedAt: '',
  finishedAt: '',
  machine: { cpus: 2, cpuModel: 'x', kernel: '6.18', node: 'v20', memoryGiB: 24 },
  settings: { runs: 1, quick: true },
  targets: [],
  errors: [],
  ...(flood ? { flood } : {}),
});

const TARGET = '≥ 99 % of real DTLS handshakes under 20,000 forged whole and 20,000 forged partial ClientHellos/s';

describe('the flood target', () => {
  const at = (rate: number, ok: number, helloVerify = false) =>
    floodRowFixture({ askedCompletePerSec: rate, askedPartialPerSec: rate, successes: ok, successRate: ok / 40, helloVerify, limitedBy: 'balancer CPU' });

  it('is the highest step that held with every step below it', () => {
    const rows = [at(2000, 40), at(5000, 40), at(10_000, 39), at(20_000, 40)];
    expect(highestHeld(rows, false)).toBe(5000);
    expect(highestHeld(rows, true)).toBe(null);
    expect(highestHeld([at(2000, 30)], false)).toBe(null);
  });

  it('is checked at 20,000 + 20,000/s, with helloVerify when that was measured', () => {
    const flood = (rows: ReturnType<typeof at>[]) => ({ rows, helloVerify: { available: true }, notes: [] });
    const without = checkTargets(run(flood([at(5000, 40), at(20_000, 36)]))).find((t) => t.target === TARGET);
    expect(without).toEqual({
      target: TARGET,
      measured: '90.0 % (36 of 40), without helloVerify; held up to 5,000 + 5,000/s',
      met: false,
      note: 'Held back by: balancer CPU. More in the notes under Flood of forged DTLS clients.',
    });
    const withIt = checkTargets(run(flood([at(20_000, 36), at(20_000, 40, true)]))).find((t) => t.target === TARGET);
    expect(withIt).toMatchObject({ measured: '100.0 % (40 of 40), with helloVerify; held up to 20,000 + 20,000/s', met: true });
    expect(checkTargets(run(undefined)).find((t) => t.target === TARGET)).toEqual({ target: TARGET, measured: 'not measured', met: null });
  });
});
