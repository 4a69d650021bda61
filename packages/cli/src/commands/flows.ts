import type { Endpoint } from '@flowlb/flow-table';
import { EXIT } from '../cli/exit-codes.js';
import type { Io } from '../cli/io.js';
import { formatDuration, renderTable } from '../format/table.js';
import { readFlows, type FlowRow } from '../maps/flows.js';
import { resolvePinPath, type InstanceSelector } from '../maps/locate.js';
import { openPinnedMap } from '../maps/pinned.js';

export interface FlowsOptions extends InstanceSelector {
  json?: boolean;
}

const ep = (e: Endpoint): string => `${e.address}:${e.port}`;

export function renderFlows(rows: readonly FlowRow[], pinPath: string): string {
  if (rows.length === 0) return `no flows (pinned at ${pinPath})\n`;
  const vips = [...new Set(rows.map((r) => ep(r.vip)))];
  const table = renderTable(
    ['CLIENT', 'TARGET', 'SNAT', 'IDLE', 'NOTE'],
    rows.map((r) => [
      ep(r.client),
      ep(r.target),
      ep(r.snat),
      formatDuration(r.idleMs),
      r.kind === 'pair' ? '' : r.kind === 'forward-only' ? 'reverse entry missing' : 'forward entry missing',
    ]),
  );
  return `${table}${rows.length} flow${rows.length === 1 ? '' : 's'} on VIP ${vips.join(', ')} (pinned at ${pinPath})\n`;
}

export async function flowsCommand(opts: FlowsOptions, io: Io): Promise<number> {
  const pinPath = await resolvePinPath(opts, io.env);
  const map = await openPinnedMap(pinPath, 'flows');
  try {
    const rows = readFlows(map);
    io.out(opts.json ? `${JSON.stringify({ pinPath, count: rows.length, flows: rows }, null, 2)}\n` : renderFlows(rows, pinPath));
  } finally {
    map.close();
  }
  return EXIT.OK;
}
