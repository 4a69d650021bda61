/**
 * `pnpm bench`: every scenario in one run, on this machine, written to bench/results/ and BENCHMARKS.md.
 *
 *   node dist/run.js [--quick] [--runs N] [--only kernel-cost,forwarding,latency,hello-parse,new-flows,scale,flood]
 *                    [--systems bare-xdp,flowlb-xdp,nftables,nginx,flowlb-userspace] [--no-write]
 *   node dist/run.js --report-from bench/results/<run>.json     BENCHMARKS.md again from a run's results
 *
 * Needs root: network namespaces, XDP, BPF.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { canRunPrivileged } from '@flowlb/testkit';
import { DIST_DIR, type BenchContext } from './context.js';
import { installComparisons } from './install.js';
import { writeReport } from './report/write.js';
import type { BenchRun, Machine } from './results.js';
import { SYSTEMS, runForwarding } from './scenarios/forwarding.js';
import { runFlood } from './scenarios/flood.js';
import { runHelloParse } from './scenarios/hello-parse.js';
import { runKernelCost } from './scenarios/kernel-cost.js';
import { LATENCY_SYSTEMS, runLatency } from './scenarios/latency.js';
import { runNewFlows } from './scenarios/new-flows.js';
import { runScale } from './scenarios/scale.js';
import { checkTargets } from './targets.js';

const SCENARIOS = ['kernel-cost', 'forwarding', 'latency', 'hello-parse', 'new-flows', 'scale', 'flood'] as const;
type Scenario = (typeof SCENARIOS)[number];

const REPO_ROOT = join(DIST_DIR, '..', '..', '..');

function machine(): Machine {
  let commit: string | undefined;
  try {
    commit = execFileSync('git', ['describe', '--always', '--dirty'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    // not a git checkout
  }
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    kernel: release(),
    node: process.version,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    ...(commit ? { commit } : {}),
  };
}

function usage(message: string): never {
  process.stderr.write(`${message}\nusage: pnpm bench [--quick] [--runs N] [--only ${SCENARIOS.join(',')}] [--systems ${SYSTEMS.map((x) => x.name).join(',')}] [--no-write] | --report-from FILE\n`);
  process.exit(64);
}

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        runs: { type: 'string' },
        only: { type: 'string' },
        systems: { type: 'string' },
        'report-from': { type: 'string' },
        'no-write': { type: 'boolean', default: false },
      },
      // pnpm passes a lone `--` through when called as `pnpm bench -- --quick`.
      allowPositionals: true,
    }).values;
  } catch (err) {
    usage((err as Error).message);
  }
  const runs = args.runs === undefined ? 3 : Number(args.runs);
  if (!Number.isInteger(runs) || runs < 1) usage(`--runs wants a whole number of at least 1, got '${args.runs}'`);
  const only = args.only?.split(',').map((s) => s.trim()) as Scenario[] | undefined;
  const unknown = only?.filter((s) => !SCENARIOS.includes(s));
  if (unknown?.length) usage(`unknown scenario ${unknown.join(', ')}`);

  const systems = args.systems?.split(',').map((s) => s.trim());
  const unknownSystems = systems?.filter((s) => !SYSTEMS.some((x) => x.name === s));
  if (unknownSystems?.length) usage(`unknown system ${unknownSystems.join(', ')}; the systems are ${SYSTEMS.map((x) => x.name).join(', ')}`);
  const pick = <T extends { name: string }>(all: readonly T[]): readonly T[] => (systems ? all.filter((x) => systems.includes(x.name)) : all);

  const from = args['report-from'];
  if (from) {
    // Renders BENCHMARKS.md again from a run's JSON, with the current report code and target checks.
    const run = JSON.parse(readFileSync(from, 'utf8')) as BenchRun;
    run.targets = checkTargets(run);
    const written = await writeReport(run, REPO_ROOT);
    process.stdout.write(`wrote ${relative(process.cwd(), written.markdown)} from ${from}\n`);
    return 0;
  }

  const check = canRunPrivileged();
  if (!check.ok) {
    process.stderr.write(`flowlb bench needs root (network namespaces, XDP, BPF): ${check.reason}\nrun it as root: sudo pnpm bench\n`);
    return 77;
  }
  const m = machine();
  const log = (line: string): void => void process.stdout.write(`${line}\n`);
  log(`flowlb bench on ${m.cpus} CPUs (${m.cpuModel}), Linux ${m.kernel}, Node ${m.node}${m.commit ? `, ${m.commit}` : ''}`);
  if (m.cpus < 2) log('warning: the generator and the system under test want a CPU each; this machine has one');
  const ctx: BenchContext = { runs, quick: args.quick === true, log };
  const want = (s: Scenario): boolean => !only || only.includes(s);

  const run: BenchRun = {
    startedAt: new Date().toISOString(),
    finishedAt: '',
    machine: m,
    settings: { runs, quick: ctx.quick, ...(only ? { only } : {}), ...(systems ? { systems } : {}) },
    targets: [],
    errors: [],
  };
  const step = async <T>(name: Scenario, fn: () => Promise<T>): Promise<T | undefined> => {
    if (!want(name)) return undefined;
    log(`\n== ${name}`);
    const t0 = performance.now();
    try {
      return await fn();
    } catch (err) {
      run.errors.push({ scenario: name, message: (err as Error).message });
      log(`${name} failed: ${(err as Error).stack ?? String(err)}`);
      return undefined;
    } finally {
      log(`(${name}: ${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    }
  };

  if (want('forwarding') || want('latency')) {
    try {
      installComparisons(log);
    } catch (err) {
      run.errors.push({ scenario: 'install', message: (err as Error).message });
      log(`installing nginx and nftables failed: ${(err as Error).message}; their rows will show the error`);
    }
  }
  run.kernelCost = await step('kernel-cost', () => runKernelCost(ctx));
  run.forwarding = await step('forwarding', () => runForwarding(ctx, pick(SYSTEMS)));
  run.latency = await step('latency', () => runLatency(ctx, pick(LATENCY_SYSTEMS)));
  run.helloParse = await step('hello-parse', () => runHelloParse(ctx));
  run.newFlows = await step('new-flows', () => runNewFlows(ctx));
  run.scale = await step('scale', () => runScale(ctx));
  run.flood = await step('flood', () => runFlood(ctx));
  if (run.scale && run.forwarding) {
    for (const row of run.scale.rows) {
      const cell = run.forwarding.cells.find((c) => c.system === 'flowlb-xdp' && c.flows === row.flows && c.payload === 64 && !c.error);
      if (cell) row.forwardingPps = cell.pps;
    }
  }
  run.finishedAt = new Date().toISOString();
  run.targets = checkTargets(run);

  log('\n== targets');
  for (const t of run.targets) log(`${t.met === null ? '—' : t.met ? 'met ' : 'MISS'}  ${t.target}: ${t.measured}`);
  if (!args['no-write']) {
    const written = await writeReport(run, REPO_ROOT);
    log(`\nwrote ${relative(process.cwd(), written.markdown)}, ${relative(process.cwd(), written.json)}`);
  }
  return run.errors.length > 0 ? 1 : 0;
}


main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
