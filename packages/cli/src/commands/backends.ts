import { CliError, EXIT } from '../cli/exit-codes.js';
import type { Io } from '../cli/io.js';
import { renderTable } from '../format/table.js';
import type { InstanceSelector } from '../maps/locate.js';
import { fetchFromInstance, openRunningInstance } from '../maps/source.js';
import type { BackendReport } from '../mapper/backend-health.js';

export interface BackendsOptions extends InstanceSelector {
  json?: boolean;
}

function ago(iso: string | undefined, now: number): string {
  if (!iso) return '';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

export function renderBackends(rows: readonly BackendReport[], now = Date.now()): string {
  if (rows.length === 0) return 'no targets: the running mapper has none it reports (only --mappings does)\n';
  return renderTable(
    ['TARGET', 'STATE', 'SINCE', 'PROBE', 'RTT', 'PROBES', 'FAILED', 'WEIGHT', 'NAMES', 'LAST FAILURE'],
    rows.map((b) => [
      b.target,
      b.state === 'draining' && b.health ? `draining (${b.health})` : b.state,
      ago(b.since, now),
      b.probe ?? 'none',
      b.lastRttMs === undefined ? '' : `${b.lastRttMs.toFixed(1)} ms`,
      b.probes === undefined ? '' : String(b.probes),
      b.failures === undefined ? '' : String(b.failures),
      String(b.weight),
      b.names.join(', '),
      b.lastFailure ?? '',
    ]),
  );
}

/** `flowlb backends`: the targets of a running balancer's mappings, with their health, from its /backends. */
export async function backendsCommand(opts: BackendsOptions, io: Io): Promise<number> {
  const source = await openRunningInstance(opts, io.env);
  let rows: BackendReport[];
  try {
    rows = await fetchFromInstance<BackendReport[]>(source, '/backends');
  } catch (error) {
    if (error instanceof CliError && /404/.test(error.message)) {
      throw new CliError('the running balancer reports no targets: /backends comes with --mappings (the DTLS SNI mapper)', EXIT.FAILURE);
    }
    throw error;
  }
  io.out(opts.json ? `${JSON.stringify(rows, null, 2)}\n` : renderBackends(rows));
  return EXIT.OK;
}
