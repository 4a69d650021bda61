import type { BalancerStats } from '@flowlb/balancer';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { registerSnapshotMetric, type SampleValue } from './snapshot-metric.js';
import type { BackendReport } from '../mapper/backend-health.js';

export interface MetricsSources {
  /** The balancer's counters; undefined before it has started. */
  stats(): BalancerStats | undefined;
  /** The XDP program's counters summed over CPUs; undefined on the userspace datapath. */
  xdp(): Record<string, number> | undefined;
  reloads(): { ok: number; failed: number };
  info(): { vip: string; datapath: string; version: string };
  /** The targets with their health, flows and traffic. */
  backends?(): BackendReport[];
}

type DatagramPath = 'slowPathIn' | 'forwardedNew' | 'forwardedLate' | 'userspaceForward' | 'userspaceReverse';

const DATAGRAM_PATHS: Array<[DatagramPath, string]> = [
  ['slowPathIn', 'slow_path_in'],
  ['forwardedNew', 'forwarded_new'],
  ['forwardedLate', 'forwarded_late'],
  ['userspaceForward', 'userspace_forward'],
  ['userspaceReverse', 'userspace_reverse'],
];

function snake(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`).replace(/-/g, '_');
}

/** What the metrics server needs of a registry. */
export type MetricsRegistry = Pick<Registry, 'metrics' | 'contentType'>;

/**
 * The Prometheus registry of `flowlb run`: process metrics plus the balancer's and the XDP program's counters.
 * Each scrape reads the balancer's stats (which read /proc/net/udp) and the XDP counters once, however many metrics
 * come from them, so a scrape costs the same with ten metrics as with one.
 */
export function createMetricsRegistry(sources: MetricsSources): MetricsRegistry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  let scrape: { stats: BalancerStats | undefined; xdp: Record<string, number> | undefined; backends?: BackendReport[] } | undefined;
  const src: MetricsSources = {
    ...sources,
    stats: () => (scrape ? scrape.stats : sources.stats()),
    xdp: () => (scrape ? scrape.xdp : sources.xdp()),
  };
  const s = src.stats;
  const one = (f: (st: BalancerStats) => number) => (): SampleValue[] => {
    const st = s();
    return st ? [{ value: f(st) }] : [];
  };
  const gauge = (name: string, help: string, f: (st: BalancerStats) => number) =>
    registerSnapshotMetric(registry, { name, help, type: 'gauge', values: one(f) });
  const counter = (name: string, help: string, f: (st: BalancerStats) => number) =>
    registerSnapshotMetric(registry, { name, help, type: 'counter', values: one(f) });

  registerSnapshotMetric(registry, {
    name: 'flowlb_info',
    help: 'Always 1; the labels say which VIP and datapath this process runs',
    type: 'gauge',
    values: () => [{ value: 1, labels: src.info() }],
  });
  gauge('flowlb_flows_active', 'Flows installed now', (st) => st.flows.active);
  counter('flowlb_flows_created_total', 'Flows installed since start', (st) => st.flows.created);
  counter('flowlb_flows_expired_total', 'Flows removed after conn_ttl_sec of idleness', (st) => st.flows.expired);
  counter(
    'flowlb_flows_unconfirmed_expired_total',
    'Of the expired flows, those whose client never spoke after its first datagram (unconfirmed_ttl_sec)',
    (st) => st.flows.unconfirmedExpired,
  );
  counter(
    'flowlb_flows_evicted_under_pressure_total',
    'Unconfirmed flows removed early while new flows were refused for want of SNAT ports or table entries',
    (st) => st.flows.evictedUnderPressure,
  );
  counter(
    'flowlb_pressure_episodes_total',
    'Times new flows began to be refused for want of SNAT ports or table entries',
    (st) => st.flows.pressureEpisodes,
  );
  counter('flowlb_flows_refused_total', 'New flows refused (no SNAT port, flow limit, table full, install error)', (st) => st.flows.refused);
  counter('flowlb_flows_adopted_total', 'Flows found in the pinned map at start', (st) => st.flows.adopted);
  counter('flowlb_flows_reset_total', 'Flows removed because their target went down (on_down: reset)', (st) => st.flows.reset);
  gauge('flowlb_pending_clients', 'Clients waiting for a decision or for their flow to be installed', (st) => st.pending.clients);
  gauge('flowlb_pending_datagrams', 'Datagrams buffered for waiting clients', (st) => st.pending.datagrams);
  gauge('flowlb_pending_bytes', 'Bytes buffered for waiting clients', (st) => st.pending.bytes);
  gauge('flowlb_held_clients', 'Clients held off after a drop', (st) => st.pending.held);
  registerSnapshotMetric(registry, {
    name: 'flowlb_datagrams_total',
    help: 'Datagrams handled by the control plane, by path',
    type: 'counter',
    values: () => {
      const st = s();
      return st ? DATAGRAM_PATHS.map(([k, path]) => ({ value: st.datagrams[k], labels: { path } })) : [];
    },
  });
  registerSnapshotMetric(registry, {
    name: 'flowlb_socket_drops_total',
    help: "Datagrams the kernel dropped because the VIP socket's receive buffer was full",
    type: 'counter',
    values: () => {
      const n = s()?.datagrams.socketDrops;
      return typeof n === 'number' ? [{ value: n }] : [];
    },
  });
  registerSnapshotMetric(registry, {
    name: 'flowlb_dropped_datagrams_total',
    help: 'Datagrams the balancer gave up on, by reason',
    type: 'counter',
    values: () => {
      const st = s();
      return st ? Object.entries(st.drops).map(([reason, value]) => ({ value, labels: { reason } })) : [];
    },
  });
  counter('flowlb_mapper_calls_total', 'Calls of the mapper', (st) => st.classification.calls);
  counter('flowlb_mapper_errors_total', 'Mapper calls that threw or rejected', (st) => st.classification.errors);
  counter('flowlb_classify_timeouts_total', 'Clients not decided within pending.timeout_ms', (st) => st.classification.timeouts);
  counter('flowlb_mapper_replies_total', 'Clients the mapper answered itself (stateless challenges such as a DTLS HelloVerifyRequest)', (st) => st.classification.replies);
  counter('flowlb_mapper_reply_datagrams_total', 'Datagrams of mapper replies sent from the VIP', (st) => st.datagrams.repliesSent);
  counter('flowlb_mapper_reply_failures_total', 'Datagrams of mapper replies whose send failed', (st) => st.datagrams.repliesFailed);
  gauge('flowlb_mapper_in_flight', 'Mapper calls running now', (st) => st.classification.inFlight);
  registerSnapshotMetric(registry, {
    name: 'flowlb_classification_seconds',
    help: "Time from a client's first datagram to the mapper's decision",
    type: 'histogram',
    values: () => {
      const st = s();
      if (!st) return [];
      const c = st.classification;
      return [
        ...c.buckets.map((b) => ({
          metricName: 'flowlb_classification_seconds_bucket',
          labels: { le: b.le === '+Inf' ? '+Inf' : b.le / 1000 },
          value: b.count,
        })),
        { metricName: 'flowlb_classification_seconds_sum', value: c.sumMs / 1000 },
        { metricName: 'flowlb_classification_seconds_count', value: c.count },
      ];
    },
  });
  gauge('flowlb_snat_ports_in_use', 'SNAT ports held by flows', (st) => st.snat.portsInUse);
  gauge('flowlb_snat_ports_range', 'SNAT ports in the configured range (per target)', (st) => st.snat.range.max - st.snat.range.min + 1);
  gauge('flowlb_snat_pools', '(SNAT address, target) pools holding a port', (st) => st.snat.pools);
  gauge('flowlb_snat_ports_quarantined', 'SNAT ports set aside because another socket had bound them', (st) => st.snat.quarantined);
  counter(
    'flowlb_snat_ports_quarantined_total',
    'SNAT ports set aside since start because another socket or table entry held them',
    (st) => st.snat.quarantinedTotal,
  );
  registerSnapshotMetric(registry, {
    name: 'flowlb_xdp_packets_total',
    help: 'Packets seen by the XDP program, by outcome (per-CPU counters summed)',
    type: 'counter',
    values: () => Object.entries(src.xdp() ?? {}).map(([outcome, value]) => ({ value, labels: { outcome: snake(outcome) } })),
  });
  registerSnapshotMetric(registry, {
    name: 'flowlb_mapper_reloads_total',
    help: 'Mapping reloads (SIGHUP), by result; a failed reload keeps the previous mappings',
    type: 'counter',
    values: () => {
      const r = src.reloads();
      return [
        { value: r.ok, labels: { result: 'ok' } },
        { value: r.failed, labels: { result: 'failed' } },
      ];
    },
  });
  const fetchBackends = sources.backends;
  if (fetchBackends) {
    // Read once a scrape, like the stats it is made from.
    const backends = (): BackendReport[] => (scrape ? (scrape.backends ??= fetchBackends()) : fetchBackends());
    const probed = (): BackendReport[] => backends().filter((b) => b.health !== undefined);
    registerSnapshotMetric(registry, {
      name: 'flowlb_backend_up',
      help: 'Whether a target may take new clients: 1 healthy or not yet known, 0 unhealthy or draining (probed targets)',
      type: 'gauge',
      values: () => probed().map((b) => ({ value: b.state === 'unhealthy' || b.state === 'draining' ? 0 : 1, labels: { target: b.target } })),
    });
    registerSnapshotMetric(registry, {
      name: 'flowlb_backend_probes_total',
      help: 'Health probes of a target, and of them the failed ones (result="failed")',
      type: 'counter',
      values: () =>
        probed().flatMap((b) => [
          { value: b.probes ?? 0, labels: { target: b.target, result: 'all' } },
          { value: b.failures ?? 0, labels: { target: b.target, result: 'failed' } },
        ]),
    });
    registerSnapshotMetric(registry, {
      name: 'flowlb_backend_probe_rtt_seconds',
      help: 'Round trip of the last successful health probe of a target',
      type: 'gauge',
      values: () => probed().flatMap((b) => (b.lastRttMs === undefined ? [] : [{ value: b.lastRttMs / 1000, labels: { target: b.target } }])),
    });
    registerSnapshotMetric(registry, {
      name: 'flowlb_backend_flows_active',
      help: 'Flows towards a target now',
      type: 'gauge',
      values: () => backends().flatMap((b) => (b.flows ? [{ value: b.flows.active, labels: { target: b.target } }] : [])),
    });
    registerSnapshotMetric(registry, {
      name: 'flowlb_backend_flows_total',
      help: 'New flows towards a target: installed (result="created") or refused for want of SNAT ports or table entries',
      type: 'counter',
      values: () =>
        backends().flatMap((b) =>
          b.flows
            ? [
                { value: b.flows.created, labels: { target: b.target, result: 'created' } },
                { value: b.flows.refused, labels: { target: b.target, result: 'refused' } },
              ]
            : [],
        ),
    });
    const traffic = (name: string, help: string, pick: (t: { packets: number; bytes: number }) => number): void =>
      registerSnapshotMetric(registry, {
        name,
        help,
        type: 'counter',
        values: () =>
          backends().flatMap((b) =>
            b.traffic
              ? [
                  { value: pick(b.traffic.toTarget), labels: { target: b.target, direction: 'to_target' } },
                  { value: pick(b.traffic.fromTarget), labels: { target: b.target, direction: 'from_target' } },
                ]
              : [],
          ),
      });
    traffic('flowlb_backend_packets_total', 'Datagrams of a target\'s flows the XDP program forwarded, each way', (t) => t.packets);
    traffic('flowlb_backend_bytes_total', 'IP bytes of a target\'s flows the XDP program forwarded, each way', (t) => t.bytes);
  }
  return {
    contentType: registry.contentType,
    async metrics() {
      scrape = { stats: sources.stats(), xdp: sources.xdp() };
      try {
        return await registry.metrics();
      } finally {
        scrape = undefined;
      }
    },
  };
}
