import type { BalancerStats } from '@flowlb/balancer';
import { STAT_NAMES, type StatName } from '@flowlb/xdp-core';
import { EXIT } from '../cli/exit-codes.js';
import type { Io } from '../cli/io.js';
import { formatCount, renderTable } from '../format/table.js';
import type { InstanceSelector } from '../maps/locate.js';
import { fetchFromInstance, openInstance, type InstanceSource } from '../maps/source.js';
import { STAT_DOCS } from '../maps/stat-docs.js';
import { readXdpStats } from '../maps/stats.js';
import type { RunState } from '../run/state-file.js';
import { parseWatch, repeatReports, type WatchOptions } from './watch.js';

export interface StatsOptions extends InstanceSelector, WatchOptions {
  json?: boolean;
}

export interface StatsSnapshot {
  /** Where the instance pins its maps; null when it pins none. */
  pinPath: string | null;
  time: string;
  /** The XDP program's counters; null when the instance runs the userspace datapath. */
  xdp: Record<StatName, number> | null;
  /** Where `xdp` was read: `<pinPath>/stats`, or the instance's metrics server when its pins cannot be read here. */
  xdpSource: string | null;
  /** The running balancer's own counters, from its metrics server; null when it cannot be reached. */
  balancer: BalancerStats | null;
  balancerSource: string | null;
  balancerError?: string;
}

async function fetchBalancerStats(url: string): Promise<BalancerStats> {
  const res = await fetch(`${url}/stats`, { signal: AbortSignal.timeout(1500) });
  if (!res.ok) throw new Error(`${url}/stats answered ${res.status}`);
  return (await res.json()) as BalancerStats;
}

type Served = BalancerStats & { xdp?: Record<StatName, number> | null };

async function snapshot(source: InstanceSource): Promise<StatsSnapshot> {
  const time = new Date().toISOString();
  if (source.kind === 'metrics') {
    // A run that pins nothing, or pins where this process cannot look, still serves every counter it has.
    const { xdp, ...balancer } = await fetchFromInstance<Served>(source, '/stats');
    const from = `${source.url}/stats`;
    return { pinPath: source.pinPath, time, xdp: xdp ?? null, xdpSource: xdp ? from : null, balancer, balancerSource: from };
  }
  const { pinPath, map, state } = source;
  const snap: StatsSnapshot = { pinPath, time, xdp: readXdpStats(map), xdpSource: `${pinPath}/stats`, balancer: null, balancerSource: null };
  return withBalancer(snap, state);
}

async function withBalancer(snap: StatsSnapshot, state: RunState | undefined): Promise<StatsSnapshot> {
  if (!state?.metricsUrl) {
    snap.balancerError = state ? 'the running instance serves no metrics (metrics_addr is not set)' : 'no running `flowlb run` found for this pin path';
    return snap;
  }
  snap.balancerSource = `${state.metricsUrl}/stats`;
  try {
    snap.balancer = await fetchBalancerStats(state.metricsUrl);
  } catch (error) {
    snap.balancerError = `${state.metricsUrl} cannot be reached from here (${(error as Error).message})`;
  }
  return snap;
}

function indent(text: string): string {
  return text.replace(/^(?=.)/gm, '  ');
}

function rate(now: number, before: number | undefined, seconds: number): string {
  if (before === undefined || seconds <= 0) return '';
  return `${formatCount(Math.round((now - before) / seconds))}/s`;
}

export function renderStats(s: StatsSnapshot, previous?: StatsSnapshot): string {
  const dt = previous ? (Date.parse(s.time) - Date.parse(previous.time)) / 1000 : 0;
  let out: string;
  const xdp = s.xdp;
  if (xdp) {
    const before = previous?.xdp ?? undefined;
    const xdpRows = STAT_NAMES.map((n) =>
      previous ? [n, formatCount(xdp[n]), rate(xdp[n], before?.[n], dt), STAT_DOCS[n]] : [n, formatCount(xdp[n]), STAT_DOCS[n]],
    );
    out = `XDP program (${s.xdpSource}, summed over CPUs) at ${s.time}\n`;
    out += indent(renderTable(previous ? ['COUNTER', 'TOTAL', 'RATE', 'MEANING'] : ['COUNTER', 'TOTAL', 'MEANING'], xdpRows));
    const fast = xdp.fwdHit + xdp.revHit + xdp.fragmentFwd;
    const all = STAT_NAMES.reduce((n, k) => n + xdp[k], 0);
    out += `  fast path: ${formatCount(fast)} of ${formatCount(all)} packets${all > 0 ? ` (${((100 * fast) / all).toFixed(1)} %)` : ''}\n`;
  } else if (s.balancer?.datapath === 'xdp') {
    out = `XDP program: its counters could not be read at ${s.time}\n`;
  } else {
    out = `XDP program: none at ${s.time}; the userspace datapath passes every datagram through the balancer's sockets\n`;
  }
  const b = s.balancer;
  if (!b) {
    out += `balancer counters: unavailable: ${s.balancerError ?? 'unknown'}\n`;
    return out;
  }
  out += `balancer (${s.balancerSource}), ${b.datapath ?? 'not started'} datapath\n`;
  const rows: string[][] = [
    ['flows active', formatCount(b.flows.active)],
    ['flows created', formatCount(b.flows.created)],
    ['flows expired', formatCount(b.flows.expired)],
    ...(b.flows.unconfirmedExpired ? [['  of which the client never spoke again', formatCount(b.flows.unconfirmedExpired)]] : []),
    ...(b.flows.evictedUnderPressure ? [['    removed early under pressure', formatCount(b.flows.evictedUnderPressure)]] : []),
    ['flows refused', formatCount(b.flows.refused)],
    ...(b.flows.pressureEpisodes ? [['  times SNAT ports or table entries ran short', formatCount(b.flows.pressureEpisodes)]] : []),
    ['pending clients', formatCount(b.pending.clients)],
    ['slow path datagrams in', formatCount(b.datagrams.slowPathIn)],
    ['datagrams forwarded (new flows)', formatCount(b.datagrams.forwardedNew)],
    ['datagrams dropped', formatCount(b.datagrams.dropped)],
    ...(typeof b.datagrams.socketDrops === 'number' ? [['dropped by the kernel (receive buffer full)', formatCount(b.datagrams.socketDrops)]] : []),
    ['mapper calls', formatCount(b.classification.calls)],
    ...(b.classification.replies ? [['clients answered by the mapper (stateless challenge)', formatCount(b.classification.replies)]] : []),
    ['SNAT ports in use', formatCount(b.snat.portsInUse)],
    ...(b.snat.quarantinedTotal ? [['SNAT ports set aside (held by others)', `${formatCount(b.snat.quarantined)} now, ${formatCount(b.snat.quarantinedTotal)} since start`]] : []),
  ];
  for (const [reason, n] of Object.entries(b.drops)) if (n > 0) rows.push([`  dropped: ${reason}`, formatCount(n)]);
  out += indent(renderTable(['COUNTER', 'VALUE'], rows));
  return out;
}

export async function statsCommand(opts: StatsOptions, io: Io, signal?: AbortSignal): Promise<number> {
  const plan = parseWatch(opts);
  const source = await openInstance(opts, io.env, 'stats');
  try {
    let previous: StatsSnapshot | undefined;
    await repeatReports(plan, signal, async (i) => {
      const s = await snapshot(source);
      if (opts.json) io.out(plan.every === undefined ? `${JSON.stringify(s, null, 2)}\n` : `${JSON.stringify(s)}\n`);
      else io.out(`${i > 0 ? '\n' : ''}${renderStats(s, previous)}`);
      previous = s;
    });
  } finally {
    if (source.kind === 'pinned') source.map.close();
  }
  return EXIT.OK;
}
