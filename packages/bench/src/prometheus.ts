/**
 * Prometheus text exposition, as `flowlb run` serves it on /metrics, read into one number per series. A series is
 * named as it appears, labels included: `flowlb_dropped_datagrams_total{reason="pending-evicted"}`. flowlb writes no
 * timestamps, so the value is the last field of a line.
 */
export type MetricSamples = Map<string, number>;

export function parsePrometheusText(text: string): MetricSamples {
  const out: MetricSamples = new Map();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    // The value follows the last space; label values may hold spaces, so the series is everything before it.
    const space = line.lastIndexOf(' ');
    if (space <= 0) continue;
    const value = line.slice(space + 1);
    const n = value === '+Inf' ? Infinity : value === '-Inf' ? -Infinity : Number(value);
    if (!Number.isNaN(n) || value === 'NaN') out.set(line.slice(0, space).trim(), n);
  }
  return out;
}

/** The series of `name` by the value of one label, e.g. drops by `reason`. */
export function byLabel(samples: MetricSamples, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  const re = new RegExp(`(?:^|[{,])${label}="((?:[^"\\\\]|\\\\.)*)"`);
  for (const [series, value] of samples) {
    if (!series.startsWith(`${name}{`)) continue;
    const m = re.exec(series.slice(name.length));
    if (m) out[m[1]!] = value;
  }
  return out;
}
