import { CliError, EXIT } from '../cli/exit-codes.js';
import type { Io } from '../cli/io.js';
import { formatCount, renderTable } from '../format/table.js';
import type { InstanceSelector } from '../maps/locate.js';
import { fetchFromInstance, openRunningInstance } from '../maps/source.js';
import type { BackendReport, TargetTraffic } from '../mapper/backend-health.js';
import { parseWatch, repeatReports, type WatchOptions } from './watch.js';

export interface BackendsOptions extends InstanceSelector, WatchOptions {
  json?: boolean;
}

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];

/** 1.5 kB, 12 MB: decimal units, three digits at most. */
function formatBytes(n: number): string {
  let i = 0;
  let v = n;
  while (v >= 1000 && i < UNITS.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${n} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${UNITS[i]}`;
}

function formatTraffic(t: TargetTraffic['toTarget'] | undefined): string {
  return t ? `${formatCount(t.packets)} / ${formatBytes(t.bytes)}` : '';
}

function ago(iso: string | undefined, now: number): string {
  if (!iso) return '';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

export function renderBackends(rows: readonly BackendReport[], now = Date.now()): string {
  if (rows.length === 0) return 'no targets: the running mapper lists none and no flow has been sent to one yet\n';
  return renderTable(
    ['TARGET', 'STATE', 'SINCE', 'PROBE', 'RTT', 'PROBES', 'FAILED', 'WEIGHT', 'FLOWS', 'NEW', 'REFUSED', 'TO TARGET', 'FROM TARGET', 'NAMES', 'LAST FAILURE'],
    rows.map((b) => [
      b.target,
      b.state === 'draining' && b.health ? `draining (${b.health})` : b.state,
      ago(b.since, now),
      b.probe ?? 'none',
      b.lastRttMs === undefined ? '' : `${b.lastRttMs.toFixed(1)} ms`,
      b.probes === undefined ? '' : String(b.probes),
      b.failures === undefined ? '' : String(b.failures),
      b.weight === undefined ? '' : String(b.weight),
      b.flows ? formatCount(b.flows.active) : '',
      b.flows ? formatCount(b.flows.created) : '',
      b.flows ? formatCount(b.flows.refused) : '',
      formatTraffic(b.traffic?.toTarget),
      formatTraffic(b.traffic?.fromTarget),
      b.names.join(', '),
      b.lastFailure ?? '',
    ]),
  );
}

/**
 * `flowlb backends`: the targets of a running balancer, with their health, flows and traffic, from its /backends;
 * with --watch, again every few seconds.
 */
export async function backendsCommand(opts: BackendsOptions, io: Io, signal?: AbortSignal): Promise<number> {
  const plan = parseWatch(opts);
  const source = await openRunningInstance(opts, io.env);
  await repeatReports(plan, signal, async (i) => {
    let rows: BackendReport[];
    try {
      rows = await fetchFromInstance<BackendReport[]>(source, '/backends');
    } catch (error) {
      if (error instanceof CliError && /404/.test(error.message)) {
        throw new CliError('the running balancer serves no /backends: it is older than this flowlb', EXIT.FAILURE);
      }
      throw error;
    }
    if (opts.json) io.out(plan.every === undefined ? `${JSON.stringify(rows, null, 2)}\n` : `${JSON.stringify({ time: new Date().toISOString(), backends: rows })}\n`);
    else if (plan.every === undefined) io.out(renderBackends(rows));
    else io.out(`${i > 0 ? '\n' : ''}${new Date().toISOString()}\n${renderBackends(rows)}`);
  });
  return EXIT.OK;
}
