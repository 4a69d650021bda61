import type { BalancerStats } from '@flowlb/balancer';

/**
 * The counters of several workers as one balancer's: numbers add up, element by element in arrays (histogram
 * buckets); anything else (the datapath, its reason, the SNAT range) is the first worker's. `socketDrops` is read
 * by each worker for every VIP socket at once, so the largest reading stands rather than the sum.
 */
export function mergeStats(all: readonly BalancerStats[]): BalancerStats | undefined {
  const [first, ...rest] = all;
  if (!first) return undefined;
  let merged = structuredClone(first);
  for (const s of rest) merged = add(merged, s) as BalancerStats;
  const drops = all.map((s) => s.datagrams.socketDrops);
  merged.datagrams.socketDrops = drops.some((d) => d === null) ? null : Math.max(...(drops as number[]));
  return merged;
}

/** Fields that say what a number is rather than count something: a bucket's bound, the SNAT range. */
const LABELS: ReadonlySet<string> = new Set(['le', 'range']);

function add(a: unknown, b: unknown): unknown {
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (Array.isArray(a) && Array.isArray(b)) return a.map((x, i) => add(x, b[i]));
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
    for (const [k, v] of Object.entries(b as Record<string, unknown>)) {
      if (!(k in out)) out[k] = v;
      else if (!LABELS.has(k)) out[k] = add(out[k], v);
    }
    return out;
  }
  return a;
}
