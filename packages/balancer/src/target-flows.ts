import { endpointKey, type UdpEndpoint } from '@flowlb/mapper-api';

/** The flows of one target, as `stats().targets` reports them. */
export interface TargetFlows {
  /** Flows towards it now: the SNAT ports held for it. */
  active: number;
  /** New flows installed towards it since start. */
  created: number;
  /** New flows the mapper sent to it that could not be installed (no SNAT port, flow limit, install error). */
  refused: number;
}

/** Targets counted one by one; a mapper that invents targets cannot make the counters grow past it. */
export const MAX_COUNTED_TARGETS = 4096;

/**
 * Flows created and refused per target. Targets come from the mapper, which may be user code with any number of
 * them: past `MAX_COUNTED_TARGETS` a new target is counted only in the balancer's totals.
 */
export class TargetFlowCounters {
  readonly #counts = new Map<string, { created: number; refused: number }>();
  readonly #max: number;

  constructor(max = MAX_COUNTED_TARGETS) {
    this.#max = max;
  }

  created(target: UdpEndpoint): void {
    const c = this.#entry(target);
    if (c) c.created++;
  }

  refused(target: UdpEndpoint): void {
    const c = this.#entry(target);
    if (c) c.refused++;
  }

  /** Every target counted or holding a flow, keyed `ip:port`. */
  snapshot(active: ReadonlyMap<string, number>): Record<string, TargetFlows> {
    const out: Record<string, TargetFlows> = {};
    for (const [key, c] of this.#counts) out[key] = { active: active.get(key) ?? 0, created: c.created, refused: c.refused };
    for (const [key, n] of active) out[key] ??= { active: n, created: 0, refused: 0 };
    return out;
  }

  #entry(target: UdpEndpoint): { created: number; refused: number } | undefined {
    const key = endpointKey(target);
    let c = this.#counts.get(key);
    if (!c && this.#counts.size < this.#max) {
      c = { created: 0, refused: 0 };
      this.#counts.set(key, c);
    }
    return c;
  }
}
