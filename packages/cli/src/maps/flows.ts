import { setImmediate as nextTurn } from 'node:timers/promises';
import { BpfMapFlowTable, type Endpoint, type FlowPairKind, type FlowPairRecord } from '@flowlb/flow-table';
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

function flowRow(rec: FlowPairRecord, now: bigint): FlowRow {
  const forwardIdleMs = idle(now, rec.forwardLastUsed);
  const reverseIdleMs = idle(now, rec.reverseLastUsed);
  const known = [forwardIdleMs, reverseIdleMs].filter((v): v is number => v !== null);
  return {
    ...rec.pair,
    kind: rec.kind,
    idleMs: known.length > 0 ? Math.min(...known) : 0,
    forwardIdleMs,
    reverseIdleMs,
  };
}

const byIdle = (a: FlowRow, b: FlowRow): number => a.idleMs - b.idleMs;

/** Every flow in a `flows` map, most recently used first. `now` is CLOCK_MONOTONIC in ns, the clock of last_used. */
export function readFlows(map: BpfMapLike, now: bigint = process.hrtime.bigint()): FlowRow[] {
  const rows: FlowRow[] = [];
  for (const rec of new BpfMapFlowTable(map).pairs()) rows.push(flowRow(rec, now));
  return rows.sort(byIdle);
}

export interface FlowsPage {
  /** Every flow there is. */
  count: number;
  /** The `limit` most recently used of them, most recent first. */
  flows: FlowRow[];
  truncated: boolean;
}

const ep = (e: Endpoint): string => `${e.address}:${e.port}`;

/** The `limit` rows that were used last, each flow once. */
function mostRecent(rows: FlowRow[], limit: number): FlowRow[] {
  const seen = new Set<string>();
  const out: FlowRow[] = [];
  for (const row of rows.sort(byIdle)) {
    const id = `${ep(row.client)} ${ep(row.vip)} ${ep(row.snat)} ${ep(row.target)}`;
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(row);
    if (out.length === limit) break;
  }
  return out;
}

/**
 * The `limit` most recently used flows of a table that a running balancer keeps using. It gives way to the event
 * loop every `yieldEvery` flows, since a kernel map can hold millions of entries and the balancer's datagrams must
 * not wait for the walk; memory stays within twice `limit` rows. A kernel map walked while flows are deleted starts
 * over from its first key, so the walk stops after `maxRecords` (the table's size) and a flow seen twice is listed
 * once; `count` is then an estimate.
 */
export async function collectFlows(
  records: Iterable<FlowPairRecord>,
  limit: number,
  { now = process.hrtime.bigint(), yieldEvery = 1024, maxRecords = Infinity }: { now?: bigint; yieldEvery?: number; maxRecords?: number } = {},
): Promise<FlowsPage> {
  let rows: FlowRow[] = [];
  let count = 0;
  for (const rec of records) {
    rows.push(flowRow(rec, now));
    count++;
    if (rows.length >= 2 * limit) rows = mostRecent(rows, limit);
    if (count >= maxRecords) break;
    if (count % yieldEvery === 0) await nextTurn();
  }
  return { count, flows: mostRecent(rows, limit), truncated: count > limit };
}
