/**
 * Traffic generator, run as its own process inside the client namespace (`ip netns exec`): the gen program in
 * live-frames mode transmits frames out of a device at whatever rate one CPU can make them.
 *
 *   node generator.js '<GeneratorJob JSON>'
 *
 * Prints one JSON line when it is ready to send, then one with what it sent.
 */
import { performance } from 'node:perf_hooks';
import { ifIndex } from '@flowlb/xdp-core';
import { BenchPrograms, LIVE_BATCH_MAX, LIVE_RUN_MAX, type ClientSpread, type GeneratorFrame } from './bench-object.js';

export interface GeneratorJob {
  ifname: string;
  frame: GeneratorFrame;
  clients: ClientSpread;
  /** 'blast': as fast as possible for `seconds`. 'paced': `passes` passes over every client at `pps`. */
  mode: 'blast' | 'paced';
  seconds?: number;
  pps?: number;
  passes?: number;
}

export interface GeneratorReport {
  sent: number;
  ms: number;
}

/** Frames per live call when blasting: large enough that the syscall is noise, small enough to stop on time. */
const BLAST_CHUNK = 1 << 18;

async function main(job: GeneratorJob): Promise<GeneratorReport> {
  const progs = await BenchPrograms.load();
  try {
    const data = progs.configureGenerator(job.frame, job.clients);
    const gen = progs.program('gen');
    const ingressIfindex = ifIndex(job.ifname);
    process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
    const t0 = performance.now();
    let sent = 0;
    if (job.mode === 'blast') {
      const deadline = t0 + (job.seconds ?? 3) * 1000;
      while (performance.now() < deadline) {
        gen.runLive({ data, ingressIfindex, repeat: BLAST_CHUNK, batchSize: LIVE_BATCH_MAX });
        sent += BLAST_CHUNK;
      }
    } else {
      const total = job.clients.flows * (job.passes ?? 1);
      const pps = job.pps ?? 10_000;
      // A bound in time too: a pass that cannot keep its pace must not run forever.
      const deadline = t0 + (total / pps) * 3000 + 5000;
      while (sent < total && performance.now() < deadline) {
        const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * pps));
        if (due > sent) {
          const n = Math.min(due - sent, LIVE_RUN_MAX);
          gen.runLive({ data, ingressIfindex, repeat: n, batchSize: Math.min(n, LIVE_BATCH_MAX) });
          sent += n;
        } else {
          await new Promise((r) => setTimeout(r, 1));
        }
      }
    }
    return { sent, ms: performance.now() - t0 };
  } finally {
    progs.close();
  }
}

const arg = process.argv[2];
if (!arg) {
  process.stderr.write('usage: generator.js <job JSON>\n');
  process.exit(64);
}
main(JSON.parse(arg) as GeneratorJob).then(
  (report) => {
    process.stdout.write(`${JSON.stringify(report)}\n`);
  },
  (err: unknown) => {
    process.stderr.write(`generator: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
