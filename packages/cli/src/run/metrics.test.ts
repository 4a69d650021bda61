import type { BalancerStats } from '@flowlb/balancer';
import { describe, expect, it } from 'vitest';
import { healthReport } from './health.js';
import { createMetricsRegistry } from './metrics.js';

const stats = {
  datapath: 'xdp',
  datapathReason: 'test',
  flows: { active: 3, created: 5, expired: 2, unconfirmedExpired: 1, evictedUnderPressure: 1, pressureEpisodes: 4, refused: 1, adopted: 0 },
  pending: { clients: 1, datagrams: 2, bytes: 300, held: 0 },
  datagrams: { slowPathIn: 9, forwardedNew: 7, forwardedLate: 1, userspaceForward: 0, userspaceReverse: 0, repliesSent: 11, repliesFailed: 1, dropped: 2, socketDrops: 5 },
  drops: { 'mapper-drop': 2, 'snat-exhausted': 0 },
  classification: {
    count: 4,
    sumMs: 10,
    buckets: [
      { le: 0.5, count: 1 },
      { le: 5, count: 3 },
      { le: '+Inf', count: 4 },
    ],
    calls: 6,
    inFlight: 0,
    errors: 1,
    timeouts: 0,
    replies: 12,
  },
  snat: { portsInUse: 3, pools: 2, quarantined: 1, quarantinedTotal: 7, range: { min: 10000, max: 10099 } },
} as unknown as BalancerStats;

describe('metrics', () => {
  it('exposes per-target flows and traffic, reading the targets once per scrape', async () => {
    let reads = 0;
    const registry = createMetricsRegistry({
      stats: () => stats,
      xdp: () => undefined,
      reloads: () => ({ ok: 0, failed: 0 }),
      info: () => ({ vip: '192.0.2.1:4433', datapath: 'xdp', version: '1.2.3' }),
      backends: () => {
        reads++;
        return [
          {
            target: '10.0.0.2:4433',
            names: ['api.example'],
            state: 'healthy',
            health: 'healthy',
            probes: 4,
            failures: 1,
            weight: 2,
            flows: { active: 3, created: 7, refused: 1 },
            traffic: { toTarget: { packets: 10, bytes: 1500 }, fromTarget: { packets: 9, bytes: 900 } },
          },
          // Removed from the mappings, still holding a flow; no probe, no traffic counters (userspace datapath).
          { target: '10.0.0.9:4433', names: [], state: 'draining', flows: { active: 1, created: 0, refused: 0 } },
        ];
      },
    });
    const text = await registry.metrics();
    expect(reads).toBe(1);
    expect(text).toContain('flowlb_backend_flows_active{target="10.0.0.2:4433"} 3\n');
    expect(text).toContain('flowlb_backend_flows_active{target="10.0.0.9:4433"} 1\n');
    expect(text).toContain('flowlb_backend_flows_total{target="10.0.0.2:4433",result="created"} 7\n');
    expect(text).toContain('flowlb_backend_flows_total{target="10.0.0.2:4433",result="refused"} 1\n');
    expect(text).toContain('flowlb_backend_packets_total{target="10.0.0.2:4433",direction="to_target"} 10\n');
    expect(text).toContain('flowlb_backend_bytes_total{target="10.0.0.2:4433",direction="from_target"} 900\n');
    expect(text).not.toContain('flowlb_backend_packets_total{target="10.0.0.9:4433"');
    expect(text).toContain('flowlb_backend_up{target="10.0.0.2:4433"} 1\n');
    expect(text).not.toContain('flowlb_backend_up{target="10.0.0.9:4433"}');
  });

  it("reads the balancer's stats and the XDP counters once per scrape", async () => {
    const reads = { stats: 0, xdp: 0 };
    const registry = createMetricsRegistry({
      stats: () => (reads.stats++, stats),
      xdp: () => (reads.xdp++, { fwdHit: 1 }),
      reloads: () => ({ ok: 0, failed: 0 }),
      info: () => ({ vip: '192.0.2.1:4433', datapath: 'xdp', version: '1.2.3' }),
    });
    const text = await registry.metrics();
    expect(text).toContain('flowlb_flows_active 3\n');
    expect(text).toContain('flowlb_xdp_packets_total{outcome="fwd_hit"} 1\n');
    expect(reads).toEqual({ stats: 1, xdp: 1 });
    await registry.metrics();
    expect(reads).toEqual({ stats: 2, xdp: 2 });
  });

  it('exposes the balancer and XDP counters in the Prometheus text format', async () => {
    let current: BalancerStats | undefined;
    const registry = createMetricsRegistry({
      stats: () => current,
      xdp: () => (current ? { fwdHit: 10, revHit: 12, miss: 4, notIpv4Udp: 1 } : undefined),
      reloads: () => ({ ok: 1, failed: 2 }),
      info: () => ({ vip: '192.0.2.1:4433', datapath: 'xdp', version: '1.2.3' }),
    });
    // Before the balancer starts: the help and type lines, no samples.
    const before = await registry.metrics();
    expect(before).toContain('# HELP flowlb_flows_active Flows installed now\n# TYPE flowlb_flows_active gauge\n\n');

    current = stats;
    const text = await registry.metrics();
    const expected = [
      'flowlb_info{vip="192.0.2.1:4433",datapath="xdp",version="1.2.3"} 1',
      'flowlb_flows_active 3',
      'flowlb_flows_created_total 5',
      'flowlb_flows_expired_total 2',
      'flowlb_flows_unconfirmed_expired_total 1',
      'flowlb_flows_evicted_under_pressure_total 1',
      'flowlb_pressure_episodes_total 4',
      'flowlb_flows_refused_total 1',
      'flowlb_pending_clients 1',
      'flowlb_pending_bytes 300',
      'flowlb_datagrams_total{path="slow_path_in"} 9',
      'flowlb_datagrams_total{path="forwarded_late"} 1',
      'flowlb_dropped_datagrams_total{reason="mapper-drop"} 2',
      'flowlb_socket_drops_total 5',
      'flowlb_mapper_calls_total 6',
      'flowlb_mapper_errors_total 1',
      'flowlb_mapper_replies_total 12',
      'flowlb_mapper_reply_datagrams_total 11',
      'flowlb_mapper_reply_failures_total 1',
      'flowlb_classification_seconds_bucket{le="0.0005"} 1',
      'flowlb_classification_seconds_bucket{le="0.005"} 3',
      'flowlb_classification_seconds_bucket{le="+Inf"} 4',
      'flowlb_classification_seconds_sum 0.01',
      'flowlb_classification_seconds_count 4',
      'flowlb_snat_ports_in_use 3',
      'flowlb_snat_ports_range 100',
      'flowlb_snat_ports_quarantined 1',
      'flowlb_snat_ports_quarantined_total 7',
      'flowlb_xdp_packets_total{outcome="fwd_hit"} 10',
      'flowlb_xdp_packets_total{outcome="rev_hit"} 12',
      'flowlb_xdp_packets_total{outcome="not_ipv4_udp"} 1',
      'flowlb_mapper_reloads_total{result="ok"} 1',
      'flowlb_mapper_reloads_total{result="failed"} 2',
    ];
    for (const line of expected) expect(text.split('\n')).toContain(line);
    expect(text).toContain('# TYPE flowlb_classification_seconds histogram\n');
    expect(text).toContain('# TYPE flowlb_xdp_packets_total counter\n');
  });
});

describe('healthReport', () => {
  const base = {
    state: 'running',
    datapath: 'xdp' as const,
    vip: '192.0.2.1:4433',
    interfaces: ['front', 'back'],
    attachments: [
      { iface: 'front', expectedProgId: 7, actualProgId: 7 },
      { iface: 'back', expectedProgId: 7, actualProgId: 7 },
    ],
    readSysctl: (rel: string) =>
      ({
        'conf/all/accept_local': '0',
        'conf/all/rp_filter': '0',
        'conf/front/forwarding': '1',
        'conf/back/forwarding': '1',
        'conf/front/accept_local': '1',
        'conf/back/accept_local': '1',
        'conf/front/rp_filter': '2',
        'conf/back/rp_filter': '0',
      })[rel],
  };

  it('is ok when the VIP socket is bound and every interface runs the program', () => {
    expect(healthReport(base)).toEqual({
      status: 'ok',
      state: 'running',
      datapath: 'xdp',
      checks: [
        { name: 'vip-socket', ok: true, detail: 'bound on 192.0.2.1:4433' },
        { name: 'xdp:front', ok: true, detail: 'program 7 attached' },
        { name: 'xdp:back', ok: true, detail: 'program 7 attached' },
      ],
      warnings: [],
    });
  });

  it('is unhealthy when a program is gone or replaced, and reports sysctl problems', () => {
    const h = healthReport({
      ...base,
      attachments: [
        { iface: 'front', expectedProgId: 7, actualProgId: 0 },
        { iface: 'back', expectedProgId: 7, actualProgId: 9 },
      ],
      readSysctl: (rel) =>
        ({ 'conf/all/rp_filter': '1', 'conf/back/forwarding': '1', 'conf/back/accept_local': '1', 'conf/back/rp_filter': '2' })[rel] ?? '0',
    });
    expect(h.status).toBe('unhealthy');
    expect(h.checks.slice(1).map((c) => c.detail)).toEqual(['no XDP program is attached', 'another program (9) is attached instead of 7']);
    // back is loose on its own although conf/all is strict: the larger counts.
    expect(h.warnings).toEqual([
      'net.ipv4.conf.front.forwarding is not 1: packets of known flows that arrive on front and are passed to the kernel are not forwarded',
      'net.ipv4.conf.front.accept_local is not 1: rewritten packets passed to the kernel are dropped as martians',
      'net.ipv4.conf.front.rp_filter is strict (1, the larger of conf/all and conf/front): rewritten packets passed to the kernel are dropped as martians; 2 (loose) lets them through',
    ]);
  });

  it('is unhealthy while the balancer is not running; userspace has no XDP checks', () => {
    const h = healthReport({ ...base, state: 'stopping', datapath: 'userspace', attachments: [] });
    expect(h).toMatchObject({ status: 'unhealthy', checks: [{ name: 'vip-socket', ok: false, detail: 'the balancer is stopping' }], warnings: [] });
  });
});
