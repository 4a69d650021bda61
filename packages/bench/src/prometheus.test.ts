import { describe, expect, it } from 'vitest';
import { byLabel, parsePrometheusText } from './prometheus.js';

describe('parsePrometheusText', () => {
  const text = [
    '# HELP flowlb_pending_clients Clients waiting',
    '# TYPE flowlb_pending_clients gauge',
    'flowlb_pending_clients 9876',
    'flowlb_dropped_datagrams_total{reason="pending-evicted"} 120',
    'flowlb_dropped_datagrams_total{reason="snat-exhausted"} 3',
    'flowlb_classification_seconds_bucket{le="+Inf"} 42',
    'flowlb_info{vip="10.0.0.1:4433",datapath="xdp",version="1.0 beta"} 1',
    'process_resident_memory_bytes 1.5e8',
    'nodejs_gc_duration_seconds_sum{kind="major"} NaN',
    '',
  ].join('\n');
  const m = parsePrometheusText(text);

  it('reads one value per series, labels included, comments skipped', () => {
    expect(m.get('flowlb_pending_clients')).toBe(9876);
    expect(m.get('process_resident_memory_bytes')).toBe(1.5e8);
    expect(m.get('flowlb_classification_seconds_bucket{le="+Inf"}')).toBe(42);
    expect(m.get('flowlb_info{vip="10.0.0.1:4433",datapath="xdp",version="1.0 beta"}')).toBe(1);
    expect(Number.isNaN(m.get('nodejs_gc_duration_seconds_sum{kind="major"}'))).toBe(true);
    expect([...m.keys()].some((k) => k.startsWith('#'))).toBe(false);
  });

  it('groups a metric by one label', () => {
    expect(byLabel(m, 'flowlb_dropped_datagrams_total', 'reason')).toEqual({ 'pending-evicted': 120, 'snat-exhausted': 3 });
    expect(byLabel(m, 'flowlb_info', 'datapath')).toEqual({ xdp: 1 });
    expect(byLabel(m, 'flowlb_missing_total', 'reason')).toEqual({});
  });
});
