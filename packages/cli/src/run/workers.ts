import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { BalancerStats } from '@flowlb/balancer';
import type { PassiveFailure, SharedHealth } from '../mapper/backend-health.js';
import type { Logger } from './logger.js';

/** What a worker process tells the one that started it. */
export type WorkerMessage =
  | { type: 'ready' }
  | { type: 'stats'; stats: BalancerStats }
  /** A target failed one of the worker's flows (it left a new flow unanswered): for worker 0's health checks. */
  | { type: 'passive'; failure: PassiveFailure };

/** What worker 0 tells the workers it started. */
export type ParentMessage = { type: 'health'; states: SharedHealth };

/** How often a worker sends its counters, for the metrics of the whole balancer. */
export const WORKER_STATS_INTERVAL_MS = 1000;

/** A worker that dies this soon after starting is started again after a growing delay, up to the longest. */
const QUICK_DEATH_MS = 10_000;
const FIRST_RESTART_DELAY_MS = 500;
const LONGEST_RESTART_DELAY_MS = 30_000;

interface Slot {
  index: number;
  child: ChildProcess | undefined;
  startedAt: number;
  delayMs: number;
  timer: NodeJS.Timeout | undefined;
  stats: BalancerStats | undefined;
  restarts: number;
}

/**
 * Where a worker finds the DTLS cookie secret worker 0 made: in its environment rather than its arguments, which any
 * user of the host can read.
 */
export const COOKIE_SECRET_ENV = 'FLOWLB_COOKIE_SECRET';

export interface WorkerPoolOptions {
  /** Workers in all, this process (worker 0) included. */
  count: number;
  /** The arguments of `flowlb` for worker `index`. */
  args: (index: number) => string[];
  log: Logger;
  /** Added to the workers' environment. */
  env?: Record<string, string>;
  /** The `flowlb` script to start; default the one beside this module (dist/bin.js). */
  entry?: string;
  /** A worker is running (again): what it should be told first. */
  onReady?: (index: number) => ParentMessage | undefined;
  /** A worker's passive health failure. */
  onPassive?: (failure: PassiveFailure) => void;
}

/** The script that workers run: the CLI itself, from this package's dist folder. */
export function defaultWorkerEntry(): string {
  const beside = fileURLToPath(new URL('./bin.js', import.meta.url));
  if (existsSync(beside)) return beside;
  const argv1 = process.argv[1];
  if (argv1 && existsSync(argv1)) return argv1;
  throw new Error('cannot find the flowlb script to start workers with (dist/bin.js of @flowlb/cli)');
}

/**
 * Workers 1 to count-1 of `flowlb run`, as child processes of worker 0: each runs the slow path on its own core,
 * sends its counters every second, and is started again when it dies, after a delay that grows while it keeps dying
 * at once. The flows of a dead worker keep forwarding in the kernel meanwhile; started again, it takes them back.
 */
export class WorkerPool {
  readonly #o: WorkerPoolOptions;
  readonly #entry: string;
  readonly #slots: Slot[] = [];
  #stopping = false;

  constructor(options: WorkerPoolOptions) {
    this.#o = options;
    this.#entry = options.entry ?? defaultWorkerEntry();
    for (let index = 1; index < options.count; index++) {
      this.#slots.push({ index, child: undefined, startedAt: 0, delayMs: FIRST_RESTART_DELAY_MS, timer: undefined, stats: undefined, restarts: 0 });
    }
  }

  start(): void {
    for (const slot of this.#slots) this.#spawn(slot);
  }

  /** The latest counters of each live worker. */
  stats(): BalancerStats[] {
    return this.#slots.flatMap((s) => (s.child && s.stats ? [s.stats] : []));
  }

  /** Process ids of the live workers, by index. */
  pids(): Array<{ index: number; pid: number | undefined }> {
    return this.#slots.map((s) => ({ index: s.index, pid: s.child?.pid }));
  }

  /** Times the workers were started again after dying. */
  get restarts(): number {
    return this.#slots.reduce((n, s) => n + s.restarts, 0);
  }

  /** Tells every live worker. */
  broadcast(message: ParentMessage): void {
    for (const s of this.#slots) this.#send(s, message);
  }

  #send(slot: Slot, message: ParentMessage): void {
    const child = slot.child;
    if (!child?.connected) return;
    // A worker that is going away as this is sent misses nothing it will need.
    child.send(message, (error) => {
      if (error) this.#o.log.debug({ worker: slot.index, error: error.message }, 'cannot tell a worker');
    });
  }

  /** Passes a signal on (SIGHUP: reload the mappings). */
  signal(signal: NodeJS.Signals): void {
    for (const s of this.#slots) s.child?.kill(signal);
  }

  /** Stops every worker: SIGTERM, then SIGKILL for one that has not exited within `timeoutMs`. */
  async stop(timeoutMs = 10_000): Promise<void> {
    this.#stopping = true;
    await Promise.all(
      this.#slots.map(async (slot) => {
        clearTimeout(slot.timer);
        const child = slot.child;
        if (!child || child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        await exited;
        clearTimeout(timer);
      }),
    );
  }

  #spawn(slot: Slot): void {
    if (this.#stopping) return;
    const log = this.#o.log;
    const child = fork(this.#entry, this.#o.args(slot.index), {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, ...this.#o.env },
    });
    slot.child = child;
    slot.stats = undefined;
    slot.startedAt = Date.now();
    child.on('message', (m: WorkerMessage) => {
      if (m?.type === 'stats') slot.stats = m.stats;
      else if (m?.type === 'passive') this.#o.onPassive?.(m.failure);
      else if (m?.type === 'ready') {
        log.info({ worker: slot.index, workerPid: child.pid }, 'worker running');
        const first = this.#o.onReady?.(slot.index);
        if (first) this.#send(slot, first);
      }
    });
    child.on('error', (error) => log.error({ worker: slot.index, error: error.message }, 'worker process error'));
    child.once('exit', (code, signal) => {
      if (slot.child === child) {
        slot.child = undefined;
        slot.stats = undefined;
      }
      if (this.#stopping) return;
      const quick = Date.now() - slot.startedAt < QUICK_DEATH_MS;
      slot.delayMs = quick ? Math.min(LONGEST_RESTART_DELAY_MS, slot.delayMs * 2) : FIRST_RESTART_DELAY_MS;
      log.error(
        { worker: slot.index, workerPid: child.pid, code, signal, restartInMs: slot.delayMs },
        'worker exited; starting it again (its flows keep forwarding meanwhile)',
      );
      slot.timer = setTimeout(() => {
        slot.restarts++;
        this.#spawn(slot);
      }, slot.delayMs);
    });
  }
}
