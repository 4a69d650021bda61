import { CliError, EXIT } from '../cli/exit-codes.js';

/** `--watch [seconds]` and `--count <n>` as the commands that repeat take them. */
export interface WatchOptions {
  /** Seconds between reports; true for the default. */
  watch?: boolean | string;
  /** With --watch: stop after this many reports. */
  count?: string;
}

export interface WatchPlan {
  /** Seconds between reports; undefined for one report. */
  every: number | undefined;
  count: number;
}

export const DEFAULT_WATCH_SECONDS = 2;

export function parseWatch(opts: WatchOptions): WatchPlan {
  let every: number | undefined;
  if (opts.watch === true) every = DEFAULT_WATCH_SECONDS;
  else if (opts.watch !== undefined && opts.watch !== false) {
    every = Number(opts.watch);
    if (!Number.isFinite(every) || every < 0.1) throw new CliError(`--watch: expected seconds (at least 0.1), got ${JSON.stringify(opts.watch)}`, EXIT.USAGE);
  }
  const count = opts.count === undefined ? Infinity : Number(opts.count);
  if (!(count >= 1) || (count !== Infinity && !Number.isInteger(count))) {
    throw new CliError(`--count: expected a whole number of reports, got ${JSON.stringify(opts.count)}`, EXIT.USAGE);
  }
  return { every, count };
}

/** Runs `report` once, or every `plan.every` seconds until `plan.count` reports or until `signal` fires. */
export async function repeatReports(plan: WatchPlan, signal: AbortSignal | undefined, report: (i: number) => Promise<void>): Promise<void> {
  for (let i = 0; ; i++) {
    await report(i);
    if (plan.every === undefined || i + 1 >= plan.count || signal?.aborted) return;
    if (await sleep(plan.every * 1000, signal)) return;
  }
}

/** Resolves true when `signal` ended the wait. */
function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(false);
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
