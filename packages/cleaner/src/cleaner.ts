import type { FlowKey, FlowPair, FlowValue, IdleScanBatch, ScanCursor } from '@flowlb/flow-table';
import { expireIfIdle } from './expire-flow.js';
import type { ExpiredFlow, SweepableTable } from './expire-flow.js';

export interface CleanerOptions {
  /** A flow is removed once all its entries have been idle for longer than this (the seed's `conn_ttl_sec`). */
  ttlMs: number;
  /**
   * A flow whose client has not spoken since the install (its forward entry is not confirmed) is removed once the
   * forward entry is older than this, however active the backend's side is: such a flow may have been made by one
   * forged datagram, and holds a SNAT port and two entries. Default `ttlMs` (no shorter TTL).
   */
  unconfirmedTtlMs?: number;
  /**
   * Entries read per step of a sweep; between steps the sweep lets the event loop run, and a step that removes
   * many flows yields part-way too. Default 4096.
   */
  batchSize?: number;
  /**
   * Nanoseconds of the clock that stamps `last_used`. Default `process.hrtime.bigint()`, CLOCK_MONOTONIC; the XDP
   * program stamps its coarse variant, at most a tick behind, so a flow may expire a tick late.
   */
  clock?: () => bigint;
  /**
   * The flows this cleaner looks after, judged from either of their entries; the others are left alone. For
   * balancer processes that share one table, each freeing the SNAT ports of its own flows. Default: every flow.
   */
  owns?: (key: FlowKey, value: FlowValue) => boolean;
  /** Called once per removed flow, so its owner can free the SNAT port. */
  onExpire?: (pair: FlowPair, flow: ExpiredFlow) => void;
  /** Called after each sweep with its figures. */
  onSweep?: (stats: SweepStats) => void;
  /**
   * Called at the start of every sweep with the clock's `now`, for other deadlines that should run on the same
   * beat, typically `pending.expire(now)` of a `TimeoutSet` of unclassified clients. A returned number is
   * reported as `pendingExpired`.
   */
  expirePending?: (now: bigint) => number | void;
  /**
   * Receives what a callback threw and what made a scheduled sweep fail; the cleaner carries on either way.
   * Default: a process warning.
   */
  onError?: (error: unknown) => void;
  /** Let the process exit while the cleaner is scheduled. Default true. */
  unref?: boolean;
}

export interface SweepStats {
  /** Entries read. */
  scanned: number;
  /** Flows removed, whole pairs and halves. */
  expired: number;
  /** Of the removed flows, how many were halves (one entry whose partner was gone). */
  halfPairs: number;
  /** What `expirePending` reported. */
  pendingExpired: number;
  /** Batches read from the table; the event loop ran between any two (and within one that removed many flows). */
  batches: number;
  durationMs: number;
  /** False when `stop()` ended the sweep before it had read the whole table. */
  completed: boolean;
}

const DEFAULT_BATCH_SIZE = 4096;
/**
 * Milliseconds of removals after which a step yields even in the middle of a batch. Reading a batch of 4,096
 * entries takes about 1.5 ms (nearly all of it in the kernel), so a step stays well under 10 ms either way.
 */
const STEP_BUDGET_MS = 4;

interface SweepToken {
  stopped: boolean;
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Expires idle flows from a FlowTable. A sweep reads the table in batches and yields to the event loop between
 * them; only one sweep runs at a time (a second `sweep()` call shares the running one); `start` repeats sweeps
 * with `intervalMs` between the end of one and the start of the next.
 */
export class Cleaner {
  readonly #table: SweepableTable;
  readonly #ttlNs: bigint;
  #unconfirmedTtlNs: bigint;
  readonly #batchSize: number;
  readonly #clock: () => bigint;
  readonly #options: CleanerOptions;
  #running: Promise<SweepStats> | undefined;
  /** The running sweep's; stop() marks it, so that a sweep started after stop() is not ended by it. */
  #token: SweepToken | undefined;
  #timer: NodeJS.Timeout | undefined;
  #intervalMs: number | undefined;
  #last: SweepStats | undefined;

  constructor(table: SweepableTable, options: CleanerOptions) {
    const { ttlMs, batchSize = DEFAULT_BATCH_SIZE } = options;
    if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || ttlMs <= 0) {
      throw new RangeError(`Cleaner: ttlMs ${String(ttlMs)} is not a positive number of milliseconds`);
    }
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new RangeError(`Cleaner: batchSize ${String(batchSize)} is not a positive integer`);
    }
    this.#table = table;
    this.#ttlNs = BigInt(Math.round(ttlMs * 1e6));
    const unconfirmedTtlMs = options.unconfirmedTtlMs ?? ttlMs;
    if (typeof unconfirmedTtlMs !== 'number' || !Number.isFinite(unconfirmedTtlMs) || unconfirmedTtlMs <= 0) {
      throw new RangeError(`Cleaner: unconfirmedTtlMs ${String(unconfirmedTtlMs)} is not a positive number of milliseconds`);
    }
    const unconfirmedTtlNs = BigInt(Math.round(unconfirmedTtlMs * 1e6));
    this.#unconfirmedTtlNs = unconfirmedTtlNs < this.#ttlNs ? unconfirmedTtlNs : this.#ttlNs;
    this.#batchSize = batchSize;
    this.#clock = options.clock ?? (() => process.hrtime.bigint());
    this.#options = options;
  }

  /** True between `start` and `stop`. */
  get started(): boolean {
    return this.#intervalMs !== undefined;
  }

  get sweeping(): boolean {
    return this.#running !== undefined;
  }

  /** The figures of the last finished sweep. */
  get lastSweep(): SweepStats | undefined {
    return this.#last;
  }

  /** Runs a sweep now, or joins the one that is running. Rejects if the table fails. */
  /** The TTL of unconfirmed flows in force, in milliseconds. */
  get unconfirmedTtlMs(): number {
    return Number(this.#unconfirmedTtlNs) / 1e6;
  }

  /**
   * Changes the TTL of unconfirmed flows from the next sweep on (never beyond `ttlMs`): shortened while something
   * they hold runs short, so that flows made by forged datagrams make room sooner.
   */
  set unconfirmedTtlMs(ms: number) {
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0) {
      throw new RangeError(`Cleaner: unconfirmedTtlMs ${String(ms)} is not a positive number of milliseconds`);
    }
    const ns = BigInt(Math.round(ms * 1e6));
    this.#unconfirmedTtlNs = ns < this.#ttlNs ? ns : this.#ttlNs;
  }

  sweep(): Promise<SweepStats> {
    this.#running ??= this.#sweep().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  /** Sweeps every `intervalMs`, first after one interval; calling it again changes the interval. */
  start(intervalMs: number): void {
    if (typeof intervalMs !== 'number' || !Number.isFinite(intervalMs) || intervalMs <= 0) {
      throw new RangeError(`Cleaner: intervalMs ${String(intervalMs)} is not a positive number`);
    }
    this.#intervalMs = intervalMs;
    this.#schedule();
  }

  /** Stops the schedule and ends a running sweep after its current step; resolves once it has ended. */
  async stop(): Promise<void> {
    this.#intervalMs = undefined;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const running = this.#running;
    if (!running) return;
    if (this.#token) this.#token.stopped = true;
    try {
      await running;
    } catch {
      // A failing sweep has been reported to its own caller; stopping has succeeded all the same.
    }
  }

  #schedule(): void {
    clearTimeout(this.#timer);
    if (this.#intervalMs === undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.sweep().then(
        () => this.#schedule(),
        (error: unknown) => {
          this.#report(error);
          this.#schedule();
        },
      );
    }, this.#intervalMs);
    if (this.#options.unref ?? true) this.#timer.unref();
  }

  async #sweep(): Promise<SweepStats> {
    const started = performance.now();
    const token: SweepToken = { stopped: false };
    this.#token = token;
    const stats: SweepStats = {
      scanned: 0,
      expired: 0,
      halfPairs: 0,
      pendingExpired: 0,
      batches: 0,
      durationMs: 0,
      completed: false,
    };
    try {
      this.#expirePending(stats);
      await this.#walk(token, stats);
    } finally {
      if (this.#token === token) this.#token = undefined;
    }
    stats.durationMs = performance.now() - started;
    this.#last = stats;
    this.#call(() => this.#options.onSweep?.(stats));
    return stats;
  }

  async #walk(token: SweepToken, stats: SweepStats): Promise<void> {
    let cursor: ScanCursor | undefined;
    let stepStarted = performance.now();
    for (;;) {
      let now = this.#clock();
      const idle = this.#scanIdle(now, cursor);
      stats.batches++;
      stats.scanned += idle.scanned;
      const owns = this.#options.owns;
      for (const [key, value] of idle.entries) {
        if (owns && !owns(key, value)) continue;
        // Each removal is a few system calls; a step that finds thousands of idle flows (traffic has stopped)
        // yields part-way rather than hold the event loop for all of them.
        if (performance.now() - stepStarted > STEP_BUDGET_MS) {
          await yieldToEventLoop();
          if (token.stopped) return;
          stepStarted = performance.now();
          // The entries are read afresh below, so a later `now` only lets them be as fresh as they really are.
          now = this.#clock();
        }
        const expired = expireIfIdle(this.#table, key, now, this.#ttlNs, this.#unconfirmedTtlNs);
        if (expired === undefined) continue;
        stats.expired++;
        if (expired.kind !== 'pair') stats.halfPairs++;
        this.#call(() => this.#options.onExpire?.(expired.pair, expired));
      }
      cursor = idle.cursor;
      if (cursor === undefined) {
        stats.completed = true;
        return;
      }
      await yieldToEventLoop();
      if (token.stopped) return;
      stepStarted = performance.now();
    }
  }

  /**
   * One batch of the entries that may expire at `now`, that is those with `now - last_used` beyond the shorter of
   * the two TTLs; `expireIfIdle` tells which really do. A table with `scanIdle` picks them out before decoding; the
   * others are filtered here.
   */
  #scanIdle(now: bigint, cursor: ScanCursor | undefined): IdleScanBatch {
    const idleBefore = now - this.#unconfirmedTtlNs;
    if (typeof this.#table.scanIdle === 'function') return this.#table.scanIdle(this.#batchSize, idleBefore, cursor);
    const batch = this.#table.scan(this.#batchSize, cursor);
    return {
      entries: batch.entries.filter(([, value]) => value.lastUsed < idleBefore),
      scanned: batch.entries.length,
      cursor: batch.cursor,
    };
  }

  #expirePending(stats: SweepStats): void {
    const hook = this.#options.expirePending;
    if (!hook) return;
    this.#call(() => {
      const n = hook(this.#clock());
      if (typeof n === 'number') stats.pendingExpired = n;
    });
  }

  /** Runs a user callback; what it throws, or how its promise fails, goes to onError and stops nothing. */
  #call(fn: () => unknown): void {
    try {
      const result = fn();
      if (typeof (result as PromiseLike<unknown> | undefined)?.then === 'function') {
        (result as PromiseLike<unknown>).then(undefined, (error: unknown) => this.#report(error));
      }
    } catch (error) {
      this.#report(error);
    }
  }

  #report(error: unknown): void {
    const onError = this.#options.onError;
    if (onError) {
      try {
        onError(error);
        return;
      } catch (inner) {
        error = inner;
      }
    }
    process.emitWarning(error instanceof Error ? error : new Error(String(error)), { code: 'FLOWLB_CLEANER' });
  }
}

export function createCleaner(table: SweepableTable, options: CleanerOptions): Cleaner {
  return new Cleaner(table, options);
}
