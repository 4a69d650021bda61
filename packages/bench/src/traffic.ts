import { join } from 'node:path';
import type { Topology } from '@flowlb/testkit';
import type { BenchPrograms, ClientSpread, GeneratorFrame } from './bench-object.js';
import { DIST_DIR } from './context.js';
import type { GeneratorJob, GeneratorReport } from './generator.js';
import { waitForOutput } from './systems/system.js';
import type { BenchTopology } from './topology.js';
import { CLIENT_FIRST_PORT, CLIENT_PORTS_PER_ADDR } from './topology.js';

export const GENERATOR_CPU = 0;
export const SYSTEM_CPU = 1;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function clientSpread(t: BenchTopology, flows: number): ClientSpread {
  return { flows, firstAddr: t.firstClientAddr, firstPort: CLIENT_FIRST_PORT, portsPerAddr: CLIENT_PORTS_PER_ADDR };
}

export function generatorFrame(t: BenchTopology, target: { address: string; port: number }, payload: number): GeneratorFrame {
  return { srcMac: t.clientMac, dstMac: t.lbFrontMac, dst: target, payload };
}

/** Starts the generator in the client namespace on its own CPU; resolves once it is about to send. */
async function startGenerator(topo: Topology, ns: string, job: GeneratorJob) {
  const proc = topo.spawn(ns, 'taskset', [
    '-c',
    String(GENERATOR_CPU),
    process.execPath,
    join(DIST_DIR, 'generator.js'),
    JSON.stringify(job),
  ]);
  await waitForOutput(() => proc.output(), proc.exited, (out) => out.includes('"ready"'), 'traffic generator');
  const report = async (): Promise<GeneratorReport> => {
    const status = await proc.closed;
    const lines = proc.output().stdout.trim().split('\n');
    const last = lines[lines.length - 1] ?? '';
    if (status.code !== 0 || !last.includes('"sent"')) {
      throw new Error(`traffic generator failed (${status.code ?? status.signal}): ${proc.output().stderr}`);
    }
    return JSON.parse(last) as GeneratorReport;
  };
  return { proc, report };
}

/** One pass (or more) over every client at a rate the system's slow path can take. */
export async function pacedPasses(
  t: BenchTopology,
  target: { address: string; port: number },
  flows: number,
  pps: number,
  passes: number,
): Promise<GeneratorReport> {
  const g = await startGenerator(t.topo, t.clientNs, {
    ifname: t.net.client.ifname,
    frame: generatorFrame(t, target, 64),
    clients: clientSpread(t, flows),
    mode: 'paced',
    pps,
    passes,
  });
  return g.report();
}

export interface BlastResult {
  deliveredPps: number;
  offeredPps: number;
}

/**
 * Sends as fast as the generator can for `seconds` plus a ramp, and counts what the sink received in the steady
 * middle of it.
 */
export async function blast(
  t: BenchTopology,
  sink: BenchPrograms,
  target: { address: string; port: number },
  flows: number,
  payload: number,
  seconds: number,
): Promise<BlastResult> {
  const rampMs = 700;
  const g = await startGenerator(t.topo, t.clientNs, {
    ifname: t.net.client.ifname,
    frame: generatorFrame(t, target, payload),
    clients: clientSpread(t, flows),
    mode: 'blast',
    seconds: seconds + (rampMs + 400) / 1000,
  });
  await sleep(rampMs);
  const a = sink.sinkCounts();
  const ta = performance.now();
  await sleep(seconds * 1000);
  const b = sink.sinkCounts();
  const tb = performance.now();
  const r = await g.report();
  return { deliveredPps: (b.packets - a.packets) / ((tb - ta) / 1000), offeredPps: r.sent / (r.ms / 1000) };
}
