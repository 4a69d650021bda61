import { describe, expect, it } from 'vitest';
import type { NewFlowsRow } from '../results.js';
import { measured } from '../stats.js';
import { limitingStage, quicBesideDtls } from './new-flows.js';

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

describe('quicBesideDtls', () => {
  const row = (mapper: NewFlowsRow['mapper'], datapath: NewFlowsRow['datapath'], workers: number, perSec: number[], error?: string): NewFlowsRow => ({
    mapper,
    datapath,
    workers,
    flows: 20_000,
    flowsPerSec: measured(perSec),
    installP50Ms: measured([0.02]),
    installP99Ms: measured([0.06]),
    refused: 0,
    ...(error ? { error } : {}),
  });

  it('puts each QUIC row beside the DTLS row of the same datapath and workers', () => {
    const rows = [
      row('trivial', 'xdp', 1, [30_000]),
      row('dtls-sni', 'xdp', 1, [26_000]),
      row('dtls-sni', 'xdp', 2, [40_000]),
      row('quic-sni', 'xdp', 1, [20_800]),
      row('quic-sni', 'xdp', 2, [36_000]),
      row('dtls-sni', 'userspace', 1, [5_000]),
      row('quic-sni', 'userspace', 1, [4_000]),
    ];
    expect(quicBesideDtls(rows)).toBe(
      'New QUIC flows beside new DTLS flows, medians: XDP: QUIC 20,800 flows/s, DTLS 26,000 (0.80×); ' +
        'XDP, 2 workers: QUIC 36,000 flows/s, DTLS 40,000 (0.90×); userspace: QUIC 4,000 flows/s, DTLS 5,000 (0.80×).',
    );
  });

  it('leaves out rows that failed or have no DTLS row to stand beside', () => {
    expect(quicBesideDtls([row('quic-sni', 'xdp', 1, [20_000]), row('dtls-sni', 'xdp', 2, [40_000])])).toBeUndefined();
    expect(quicBesideDtls([row('quic-sni', 'xdp', 1, [], 'no QUIC Initials'), row('dtls-sni', 'xdp', 1, [26_000])])).toBeUndefined();
  });
});
