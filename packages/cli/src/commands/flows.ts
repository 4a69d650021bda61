import type { Endpoint } from '@flowlb/flow-table';
import { EXIT } from '../cli/exit-codes.js';
import type { Io } from '../cli/io.js';
import { formatDuration, renderTable } from '../format/table.js';
import { readFlows, type FlowRow, type FlowsPage } from '../maps/flows.js';
import type { InstanceSelector } from '../maps/locate.js';
import { fetchFromInstance, openInstance } from '../maps/source.js';
import { FLOWS_MAX_LIMIT } from '../run/http-server.js';

export interface FlowsOptions extends InstanceSelector {
  json?: boolean;
}

const ep = (e: Endpoint): string => `${e.address}:${e.port}`;

/** The table of flows; `origin` says where they were read, e.g. `pinned at /sys/fs/bpf/flowlb/x`. */
export function renderFlows(rows: readonly FlowRow[], origin: string, total = rows.length): string {
  if (rows.length === 0) return `no flows (${origin})\n`;
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
  const counted = total > rows.length ? `the ${rows.length} most recently used of ${total} flows` : `${rows.length} flow${rows.length === 1 ? '' : 's'}`;
  return `${table}${counted} on VIP ${vips.join(', ')} (${origin})\n`;
}

interface ServedFlows extends FlowsPage {
  vip: string;
  datapath: string;
}

export async function flowsCommand(opts: FlowsOptions, io: Io): Promise<number> {
  const source = await openInstance(opts, io.env, 'flows');
  if (source.kind === 'metrics') {
    const served = await fetchFromInstance<ServedFlows>(source, `/flows?limit=${FLOWS_MAX_LIMIT}`);
    const from = `${source.url}/flows`;
    if (opts.json) {
      const out = { pinPath: source.pinPath, source: from, datapath: served.datapath, count: served.count, truncated: served.truncated, flows: served.flows };
      io.out(`${JSON.stringify(out, null, 2)}\n`);
    } else {
      io.out(renderFlows(served.flows, `${served.datapath} datapath, from ${from}`, served.count));
    }
    return EXIT.OK;
  }
  const { pinPath, map } = source;
  try {
    const rows = readFlows(map);
    io.out(opts.json ? `${JSON.stringify({ pinPath, count: rows.length, flows: rows }, null, 2)}\n` : renderFlows(rows, `pinned at ${pinPath}`));
  } finally {
    map.close();
  }
  return EXIT.OK;
}
