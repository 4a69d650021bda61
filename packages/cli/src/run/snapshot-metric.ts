import type { Registry } from 'prom-client';

export interface SampleValue {
  value: number;
  labels?: Record<string, string | number>;
  metricName?: string;
}

/**
 * A metric whose samples are computed at scrape time from a snapshot (the balancer's counters, the XDP map), so
 * nothing has to be copied into prom-client on every datagram. Counters stay counters: prom-client's Counter has
 * no way to be set from a total kept elsewhere.
 */
export function registerSnapshotMetric(
  registry: Registry,
  spec: { name: string; help: string; type: 'counter' | 'gauge' | 'histogram'; values: () => SampleValue[] },
): void {
  const metric = {
    name: spec.name,
    help: spec.help,
    type: spec.type,
    aggregator: 'sum' as const,
    get: async () => ({ name: spec.name, help: spec.help, type: spec.type, aggregator: 'sum', values: spec.values() }),
    reset: () => {},
  };
  registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]);
}
