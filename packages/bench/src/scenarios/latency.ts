import { BenchPrograms } from '../bench-object.js';
import type { BenchContext } from '../context.js';
import type { LatencyResult, LatencyRow, SystemName } from '../results.js';
import { measureRtt, startUdpEcho } from '../rtt.js';
import { measured } from '../stats.js';
import { flowlbUserspace, flowlbXdp } from '../systems/flowlb.js';
import { nftables } from '../systems/nftables.js';
import { nginx } from '../systems/nginx.js';
import type { SystemUnderTest } from '../systems/system.js';
import { attachBench } from '../systems/xdp-helpers.js';
import { BACKEND_PORT, createBenchTopology } from '../topology.js';

/**
 * The bare forwarder is left out: it rewrites no MAC address, so its frames reach the backend's device but not its
 * stack. It bounds the rate, not the latency.
 */
export const LATENCY_SYSTEMS: readonly SystemUnderTest[] = [flowlbXdp, nftables, nginx, flowlbUserspace];

const PAYLOAD = 64;

async function measureOne(ctx: BenchContext, sys: SystemUnderTest | undefined): Promise<Omit<LatencyRow, 'addedP50Us' | 'addedP99Us'>> {
  const name: SystemName | 'direct' = sys?.name ?? 'direct';
  const samples = ctx.quick ? 2000 : 20_000;
  const t = await createBenchTopology({ backends: 1, clientAddrs: 0 });
  const progs = await BenchPrograms.load();
  const links = [
    // Frames an XDP balancer sends out of its devices are delivered to a veth peer only through the peer's XDP
    // path; every system runs with these so the hosts' receive paths are the same for all.
    attachBench(progs, 'pass', t.clientNs, t.net.client.ifname),
    attachBench(progs, 'pass', t.backendNs, t.net.backends[0]?.ifname ?? 'eth0'),
  ];
  const echo = await startUdpEcho(t.topo, t.backendNs, '0.0.0.0', BACKEND_PORT);
  try {
    const running = sys ? await sys.start(t, { maxFlows: 16, cpu: 1 }) : undefined;
    try {
      const target = running?.target ?? t.backends[0];
      if (!target) throw new Error('no backend');
      const p50: number[] = [];
      const p99: number[] = [];
      for (let r = 0; r < ctx.runs; r++) {
        const s = await measureRtt(t.topo, t.clientNs, target, { count: samples, payload: PAYLOAD, warmup: 200 });
        if (s.lost > 0) throw new Error(`${s.lost} of ${s.count} round trips lost`);
        p50.push(s.p50Us);
        p99.push(s.p99Us);
      }
      ctx.log(`  ${name.padEnd(16)} p50 ${measured(p50).median.toFixed(1)} µs  p99 ${measured(p99).median.toFixed(1)} µs`);
      return { system: name, p50Us: measured(p50), p99Us: measured(p99), samples };
    } finally {
      await running?.stop();
    }
  } finally {
    await echo.stop();
    for (const l of links) l.close();
    progs.close();
    await t.destroy();
  }
}

export async function runLatency(ctx: BenchContext, systems: readonly SystemUnderTest[] = LATENCY_SYSTEMS): Promise<LatencyResult> {
  const rows: Omit<LatencyRow, 'addedP50Us' | 'addedP99Us'>[] = [];
  for (const sys of [undefined, ...systems]) {
    const name = sys?.name ?? 'direct';
    try {
      rows.push(await measureOne(ctx, sys));
    } catch (err) {
      rows.push({ system: name, p50Us: measured([0]), p99Us: measured([0]), samples: 0, error: (err as Error).message });
    }
  }
  const direct = rows.find((r) => r.system === 'direct' && !r.error);
  return {
    rows: rows.map((r) => ({
      ...r,
      addedP50Us: direct && !r.error ? r.p50Us.median - direct.p50Us.median : Number.NaN,
      addedP99Us: direct && !r.error ? r.p99Us.median - direct.p99Us.median : Number.NaN,
    })),
    payload: PAYLOAD,
    notes: [
      `A ${PAYLOAD} B datagram and its echo, one in flight at a time, ${ctx.quick ? '2,000' : '20,000'} round trips per run after 200 of warm-up (the first of which opens the flow); median of ${ctx.runs} runs per percentile.`,
      'direct: the client sends to the backend itself, routed by the balancer namespace with no balancer in the way.',
    ],
  };
}
