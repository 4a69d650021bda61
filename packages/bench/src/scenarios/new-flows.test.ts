import { describe, expect, it } from 'vitest';
import { limitingStage } from './new-flows.js';

describe('limitingStage', () => {
  const run = { offered: 100_000, offeredPerSec: 50_000, askedPerSec: 50_000, reachedVip: 100_000, socketDrops: 0, created: 100_000, busy: 0.5 };

  it('names the stage that held a run down', () => {
    expect(limitingStage(run)).toBe('offered rate (the balancer kept up)');
    expect(limitingStage({ ...run, offeredPerSec: 1_139 })).toBe('the generator (1,139/s of the 50,000/s asked; the balancer kept up)');
    expect(limitingStage({ ...run, reachedVip: 30_000, socketDrops: 70_000, created: 30_000, busy: 0.97 })).toBe(
      'balancer CPU (VIP socket overflowed)',
    );
    expect(limitingStage({ ...run, reachedVip: 60_000, socketDrops: 40_000, created: 60_000, busy: 0.3 })).toBe('VIP socket buffer');
    expect(limitingStage({ ...run, reachedVip: 20_000, socketDrops: 0, created: 20_000, busy: 0.14 })).toBe(
      'kernel receive path (datagrams lost before the VIP socket)',
    );
    expect(limitingStage({ ...run, created: 50_000 })).toBe('balancer (read, not set up)');
  });

  it('does not blame the socket when its drops cannot be read', () => {
    expect(limitingStage({ ...run, reachedVip: 20_000, socketDrops: null, created: 20_000 })).toBe(
      'kernel receive path (datagrams lost before the VIP socket)',
    );
  });
});
