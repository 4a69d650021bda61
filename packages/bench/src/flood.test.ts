import { describe, expect, it } from 'vitest';
import { floodLimits } from './flood.js';
import { floodRowFixture } from './test-support/flood-row.js';

describe('floodLimits', () => {
  it('says a step held, and what it held despite', () => {
    expect(floodLimits(floodRowFixture())).toBe('held');
    expect(floodLimits(floodRowFixture({ drops: { 'pending-evicted': 1200 } }))).toBe(
      'held, despite: pending table full (1,200 waiting clients pushed out or refused)',
    );
  });

  it('names the VIP socket, the CPU behind it, SNAT ports and the pending table when real handshakes failed', () => {
    const failed = { successes: 36, successRate: 0.9 };
    const sock = { vipSocketIn: 400_000, socketDrops: 100_000 };
    expect(
      floodLimits(floodRowFixture({ ...failed, socketDrops: 300_000, whileMeasured: sock, drops: { 'snat-exhausted': 5000, 'pending-evicted': 7 } })),
    ).toBe(
      'balancer CPU (97 % busy, 92 % in its process; 20 % of datagrams to the VIP dropped at its socket while real clients ran); SNAT ports of the backend exhausted ' +
        '(5,000 new flows refused); pending table full (7 waiting clients pushed out or refused)',
    );
    expect(floodLimits(floodRowFixture({ ...failed, whileMeasured: sock, balancerBusy: 0.4, balancerCpuBusy: 0.45 }))).toBe(
      'VIP socket buffer (20 % of datagrams to the VIP dropped at its socket while real clients ran)',
    );
    expect(floodLimits(floodRowFixture({ ...failed, whileMeasured: sock, balancerBusy: 0.7, balancerCpuBusy: 0.95 }))).toBe(
      "balancer CPU (95 % busy, 70 % in its process; 20 % of datagrams to the VIP dropped at its socket while real clients ran); its CPU shared (25 % of it outside the balancer's process)",
    );
    // Drops in the flood's first seconds, before the real clients, are not theirs.
    expect(floodLimits(floodRowFixture({ ...failed, socketDrops: 300_000 }))).toBe('nothing the counters show (see the handshake times)');
    expect(floodLimits(floodRowFixture({ ...failed, whileMeasured: { vipSocketIn: 0, socketDrops: null } }))).toBe(
      'nothing the counters show (see the handshake times)',
    );
  });

  it('says when the generator fell short of the asked rate', () => {
    expect(floodLimits(floodRowFixture({ offeredCompletePerSec: 12_000, offeredPartialPerSec: 12_000 }))).toBe(
      'held; the generator (24,000/s of the 40,000/s asked)',
    );
  });
});
