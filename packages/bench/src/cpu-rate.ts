export interface CpuRateOptions {
  /** Calls made first and not counted, so that the measured ones run optimised code. */
  warmup: number;
  /** Wall time each round lasts at least. */
  roundMs: number;
  rounds: number;
  /** Calls between looks at the clock. */
  batch: number;
}

/**
 * Calls of `fn` per second of this process's CPU time (user + system), one figure per round. CPU time rather than
 * wall time, so that other work on the machine does not count against `fn`: the figure is what one core does.
 */
export function callsPerCpuSecond(fn: () => void, o: CpuRateOptions): number[] {
  for (let i = 0; i < o.warmup; i++) fn();
  const rates: number[] = [];
  for (let r = 0; r < o.rounds; r++) {
    let n = 0;
    const wallEnd = process.hrtime.bigint() + BigInt(Math.round(o.roundMs * 1e6));
    const cpu0 = process.cpuUsage();
    do {
      for (let i = 0; i < o.batch; i++) fn();
      n += o.batch;
    } while (process.hrtime.bigint() < wallEnd);
    const cpu = process.cpuUsage(cpu0);
    const seconds = (cpu.user + cpu.system) / 1e6;
    rates.push(seconds > 0 ? n / seconds : Number.NaN);
  }
  return rates;
}
