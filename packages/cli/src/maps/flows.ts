import { BpfMapFlowTable, type Endpoint, type FlowPairKind } from '@flowlb/flow-table';
import type { BpfMapLike } from '@flowlb/flow-table';

export interface FlowRow {
  client: Endpoint;
  vip: Endpoint;
  snat: Endpoint;
  target: Endpoint;
  /** `pair`, or the half that is left of a flow whose other entry is gone. */
  kind: FlowPairKind;
  /** Since the more recent of the two directions was last used. */
  idleMs: number;
  forwardIdleMs: number | null;
  reverseIdleMs: number | null;
}

function idle(now: bigint, lastUsed: bigint | undefined): number | null {
  if (lastUsed === undefined) return null;
  // A stamp ahead of now (written by a tool, or by another process an instant ago) counts as just used.
  return lastUsed >= now ? 0 : Number(now - lastUsed) / 1e6;
}

/** Every flow in a `flows` map, most recently used first. `now` is CLOCK_MONOTONIC in ns, the clock of last_used. */
export function readFlows(map: BpfMapLike, now: bigint = process.hrtime.bigint()): FlowRow[] {
  const table = new BpfMapFlowTable(map);
  const rows: FlowRow[] = [];
  for (const rec of table.pairs()) {
    const forwardIdleMs = idle(now, rec.forwardLastUsed);
    const reverseIdleMs = idle(now, rec.reverseLastUsed);
    const known = [forwardIdleMs, reverseIdleMs].filter((v): v is number => v !== null);
    rows.push({
      ...rec.pair,
      kind: rec.kind,
      idleMs: known.length > 0 ? Math.min(...known) : 0,
      forwardIdleMs,
      reverseIdleMs,
    });
  }
  return rows.sort((a, b) => a.idleMs - b.idleMs);
}
