import type { BalancerStats } from '@flowlb/balancer';
import { describe, expect, it } from 'vitest';
import { mergeStats } from './merge-stats.js';

function stats(n: number, socketDrops: number | null): BalancerStats {
  return {
    datapath: 'xdp',
    datapathReason: `worker ${n}`,
    flows: { active: n, created: 10 * n, expired: 0, unconfirmedExpired: 0, evictedUnderPressure: 0, pressureEpisodes: 0, refused: 0, adopted: 0, reset: 0 },
    // Each worker has flows to a target of its own and to one they share.
    targets: {
      '10.0.0.2:443': { active: n, created: 2 * n, refused: 0 },
      [`10.0.1.${n}:443`]: { active: 1, created: 1, refused: n },
    },
    pending: { clients: n, datagrams: 0, bytes: 0, held: 0 },
    datagrams: {
      slowPathIn: n,
      forwardedNew: n,
      forwardedLate: 0,
      userspaceForward: 0,
      userspaceReverse: 0,
      repliesSent: 0,
      repliesFailed: 0,
      dropped: 0,
      socketDrops,
    },
    drops: { 'mapper-drop': n } as BalancerStats['drops'],
    classification: {
      count: n,
      sumMs: n,
      buckets: [
        { le: 1, count: n },
        { le: '+Inf', count: 2 * n },
      ],
      calls: n,
      inFlight: 0,
      errors: 0,
      timeouts: 0,
      replies: 0,
    },
    snat: { portsInUse: n, pools: 1, quarantined: 0, quarantinedTotal: 0, range: { min: 10000, max: 10999 } },
  };
}

describe('mergeStats', () => {
  it('adds the counters of every worker, bucket by bucket, and keeps the rest from the first', () => {
    const m = mergeStats([stats(1, 5), stats(2, 7), stats(3, 6)])!;
    expect(m.flows.created).toBe(60);
    expect(m.flows.active).toBe(6);
    expect(m.drops['mapper-drop']).toBe(6);
    expect(m.classification.buckets).toEqual([
      { le: 1, count: 6 },
      { le: '+Inf', count: 12 },
    ]);
    expect(m.snat.range).toEqual({ min: 10000, max: 10999 });
    // Targets add up by name, not by position.
    expect(m.targets).toEqual({
      '10.0.0.2:443': { active: 6, created: 12, refused: 0 },
      '10.0.1.1:443': { active: 1, created: 1, refused: 1 },
      '10.0.1.2:443': { active: 1, created: 1, refused: 2 },
      '10.0.1.3:443': { active: 1, created: 1, refused: 3 },
    });
    expect(m.datapathReason).toBe('worker 1');
    // Every worker reads the drops of all the VIP sockets.
    expect(m.datagrams.socketDrops).toBe(7);
    expect(mergeStats([stats(1, 5), stats(2, null)])!.datagrams.socketDrops).toBeNull();
    expect(mergeStats([])).toBeUndefined();
  });
});
