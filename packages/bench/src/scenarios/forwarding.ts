import { BenchPrograms } from '../bench-object.js';
import type { BenchContext } from '../context.js';
import type { ForwardingCell, ForwardingResult, SystemName } from '../results.js';
import { measured } from '../stats.js';
import { bareXdp } from '../systems/bare-xdp.js';
import { flowlbUserspace, flowlbXdp, flowlbXdpLookup } from '../systems/flowlb.js';
import { nftables } from '../systems/nftables.js';
import { nginx } from '../systems/nginx.js';
import type { RunningSystem, SystemUnderTest } from '../systems/system.js';
import { attachBench } from '../systems/xdp-helpers.js';
import { clientAddrsFor, createBenchTopology, descriptorLimit, pinDeviceNapi, type BenchTopology } from '../topology.js';
import { GENERATOR_CPU, SYSTEM_CPU, blast, clientSpread, pacedPasses } from '../traffic.js';

export const SYSTEMS: readonly SystemUnderTest[] = [bareXdp, flowlbXdp, flowlbXdpLookup, nftables, nginx, flowlbUserspace];

/** Backends behind every balancer: enough SNAT ports (one per flow and backend) for a million flows. */
const BACKENDS = 25;
const MAX_SETTLE_PASSES = 6;
/** Beyond this many flows a system that can be filled directly is, rather than through its slow path. */
const SLOW_PATH_WARMUP_MAX = 100_000;

export interface ForwardingPlan {
  payloads: number[];
  flows: number[];
  seconds: number;
  /** Cells measured for one system only, on top of the grid (the million-flow table). */
  extra: { system: SystemName; flows: number; payload: number }[];
}

export function forwardingPlan(ctx: BenchContext): ForwardingPlan {
  return ctx.quick
    ? { payloads: [64, 1472], flows: [1, 1000], seconds: 1, extra: [] }
    : { payloads: [64, 1472], flows: [1, 1000, 100_000], seconds: 3, extra: [{ system: 'flowlb-xdp', flows: 1_000_000, payload: 64 }] };
}

/**
 * Every client sends once, slowly, until the system has a flow for each: the measured runs then see established
 * flows only, as a balancer in service mostly does. A system that tells what took its slow path is passed over
 * again until a whole pass stays on the fast path.
 */
async function warmUp(t: BenchTopology, sys: SystemUnderTest, running: RunningSystem, flows: number): Promise<string | undefined> {
  if (sys.warmupPps === 0) return undefined;
  if (flows > SLOW_PATH_WARMUP_MAX && running.prefill) {
    running.prefill(clientSpread(t, flows));
    const before = running.slowPathDatagrams?.() ?? 0;
    await pacedPasses(t, running.target, Math.min(flows, 10_000), 10_000, 1);
    const moved = (running.slowPathDatagrams?.() ?? 0) - before;
    return `${sys.name} with ${flows.toLocaleString('en')} flows: the flows were written into its table directly, as its slow path would (filling it at the slow path's rate would take minutes)${moved ? `; ${moved} datagrams of a check pass still missed` : ''}`;
  }
  const pps = Math.min(sys.warmupPps, Math.max(1000, flows));
  await pacedPasses(t, running.target, flows, pps, 1);
  if (!running.slowPathDatagrams) {
    await pacedPasses(t, running.target, flows, pps, 1);
    return undefined;
  }
  for (let i = 0; i < MAX_SETTLE_PASSES; i++) {
    const before = running.slowPathDatagrams();
    await pacedPasses(t, running.target, flows, pps, 1);
    const moved = running.slowPathDatagrams() - before;
    if (moved === 0) return undefined;
  }
  return `${sys.name} with ${flows.toLocaleString('en')} flows: some clients still took the slow path after ${MAX_SETTLE_PASSES + 1} warm-up passes`;
}

export async function measureSystem(
  ctx: BenchContext,
  sys: SystemUnderTest,
  cells: { flows: number; payload: number }[],
  seconds: number,
  notes: string[],
): Promise<ForwardingCell[]> {
  const out: ForwardingCell[] = [];
  const fdLimit = descriptorLimit();
  // Leave room for the process's own descriptors beside its flows' sockets.
  const tooMany = (flows: number): boolean => sys.socketPerFlow === true && flows > fdLimit - 1000;
  const feasible = cells.filter((c) => !tooMany(c.flows));
  const maxFlows = Math.max(1, ...feasible.map((c) => c.flows));
  const fail = (flows: number, payload: number, error: string): ForwardingCell => {
    ctx.log(`  ${sys.name} ${payload} B ${flows.toLocaleString('en')} flows failed: ${error}`);
    return failed(flows, payload, error);
  };
  const failed = (flows: number, payload: number, error: string): ForwardingCell => ({
    system: sys.name,
    payload,
    flows,
    pps: measured([0]),
    offeredPps: measured([0]),
    payloadBps: 0,
    error,
  });
  let t: BenchTopology | undefined;
  let sink: BenchPrograms | undefined;
  let running: RunningSystem | undefined;
  try {
    t = await createBenchTopology({ backends: BACKENDS, clientAddrs: clientAddrsFor(maxFlows) });
    sink = await BenchPrograms.load();
    const backendIf = t.net.backends[0]?.ifname ?? 'eth0';
    const sinkLink = attachBench(sink, 'sink', t.backendNs, backendIf);
    try {
      // The system's own CPU runs its forwarding: the receive path for systems in the kernel, the process for proxies.
      // A process beside an in-kernel datapath (flowlb's control plane) only installs and expires flows; it runs
      // beside the generator so that its housekeeping is not counted against the forwarding.
      running = await sys.start(t, { maxFlows, cpu: sys.runsIn === 'kernel' ? GENERATOR_CPU : SYSTEM_CPU });
      if (sys.runsIn === 'kernel') {
        const threads = await pinDeviceNapi(t.topo, t.lbNs, t.net.lb.front.ifname, SYSTEM_CPU);
        if (threads === 0) notes.push(`${sys.name}: the balancer's receive processing could not be moved to CPU ${SYSTEM_CPU}`);
      }
      // The backend's receive path (the sink) stays on the system's CPU. Left alone, it runs wherever it was first
      // scheduled and stays there while busy: on the generator's CPU in some runs and not in others, which moved
      // every rate by a factor of two from one run to the next. At a real-time priority it runs as soon as frames
      // reach it; as an ordinary thread it waited its turn behind the balancer's, and the backend's 256-frame veth
      // ring overflowed meanwhile, dropping a third or more of what a system had forwarded.
      const backendThreads = await pinDeviceNapi(t.topo, t.backendNs, backendIf, SYSTEM_CPU, { realtime: true });
      if (backendThreads === 0) notes.push(`${sys.name}: the backend's receive processing could not be pinned to CPU ${SYSTEM_CPU}`);
      let warmed = 0;
      for (const cell of cells.filter((c) => tooMany(c.flows))) {
        out.push(
          fail(
            cell.flows,
            cell.payload,
            `needs a socket per flow: ${cell.flows.toLocaleString('en')} flows need more file descriptors than a process may have here (${fdLimit.toLocaleString('en')})`,
          ),
        );
      }
      for (const cell of [...feasible].sort((a, b) => a.flows - b.flows || a.payload - b.payload)) {
        try {
          if (cell.flows !== warmed) {
            ctx.log(`  ${sys.name}: warming up ${cell.flows.toLocaleString('en')} flows`);
            const note = await warmUp(t, sys, running, cell.flows);
            if (note) notes.push(note);
            warmed = cell.flows;
          }
          const delivered: number[] = [];
          const offered: number[] = [];
          const slowBefore = running.slowPathDatagrams?.();
          for (let r = 0; r < ctx.runs; r++) {
            const b = await blast(t, sink, running.target, cell.flows, cell.payload, seconds);
            delivered.push(b.deliveredPps);
            offered.push(b.offeredPps);
          }
          const slow = slowBefore === undefined ? 0 : (running.slowPathDatagrams?.() ?? 0) - slowBefore;
          if (slow > 0) {
            notes.push(`${sys.name}, ${cell.flows.toLocaleString('en')} flows, ${cell.payload} B: ${slow.toLocaleString('en')} datagrams took the slow path during the measured runs`);
          }
          const pps = measured(delivered);
          ctx.log(
            `  ${sys.name.padEnd(16)} ${String(cell.payload).padStart(4)} B ${cell.flows.toLocaleString('en').padStart(9)} flows: ${(pps.median / 1e6).toFixed(3)} Mpps (offered ${(measured(offered).median / 1e6).toFixed(2)})`,
          );
          out.push({
            system: sys.name,
            payload: cell.payload,
            flows: cell.flows,
            pps,
            offeredPps: measured(offered),
            payloadBps: pps.median * cell.payload * 8,
          });
        } catch (err) {
          out.push(fail(cell.flows, cell.payload, (err as Error).message));
        }
      }
    } finally {
      await running?.stop().catch((err: unknown) => notes.push(`${sys.name}: stopping failed: ${(err as Error).message}`));
      sinkLink.close();
    }
  } catch (err) {
    const have = new Set(out.map((c) => `${c.flows}/${c.payload}`));
    for (const c of cells) if (!have.has(`${c.flows}/${c.payload}`)) out.push(fail(c.flows, c.payload, (err as Error).message));
  } finally {
    sink?.close();
    await t?.destroy().catch((err: unknown) => notes.push((err as Error).message));
  }
  return out;
}

export async function runForwarding(ctx: BenchContext, systems: readonly SystemUnderTest[] = SYSTEMS): Promise<ForwardingResult> {
  const plan = forwardingPlan(ctx);
  const notes: string[] = [];
  const cells: ForwardingCell[] = [];
  for (const sys of systems) {
    ctx.log(`forwarding: ${sys.name}`);
    const grid = plan.flows.flatMap((flows) => plan.payloads.map((payload) => ({ flows, payload })));
    const extra = plan.extra.filter((e) => e.system === sys.name);
    cells.push(...(await measureSystem(ctx, sys, [...grid, ...extra], plan.seconds, notes)));
  }
  return { cells, runSeconds: plan.seconds, notes };
}
