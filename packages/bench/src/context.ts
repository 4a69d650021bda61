import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** What every scenario gets from the runner. */
export interface BenchContext {
  /** Measured repetitions per scenario cell (median reported); at least 3 in a full run. */
  runs: number;
  /** Smaller sizes and shorter runs, for trying the bench out; its numbers are not for BENCHMARKS.md. */
  quick: boolean;
  /** Progress lines for the person watching; results go in the returned objects. */
  log: (line: string) => void;
}

const here = dirname(fileURLToPath(import.meta.url));

/**
 * The package's dist/ directory: the built scripts, bench.bpf.o and the compiled tools. Tests run this module from
 * src/, beside it.
 */
export const DIST_DIR = basename(here) === 'dist' ? here : join(here, '..', 'dist');

export const BENCH_BPF_OBJECT = join(DIST_DIR, 'bench.bpf.o');

/**
 * FLOWLB_BENCH_CPU_PROFILE=<dir> has each balancer process a scenario starts write a V8 CPU profile there (open it
 * in Chrome's DevTools or speedscope), to see where a row's CPU goes. Node refuses --cpu-prof in NODE_OPTIONS, so
 * the scenarios put these arguments on the command line.
 */
export function profileArgs(): string[] {
  const dir = process.env.FLOWLB_BENCH_CPU_PROFILE;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}
