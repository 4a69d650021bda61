import type { FlowPair } from '@flowlb/flow-table';
import { endpointKey, type UdpEndpoint } from '@flowlb/mapper-api';

export interface ReplyWatchOptions {
  /** How long a new flow towards `target` may wait for the target's first reply; undefined leaves it unwatched. */
  timeoutMs(target: UdpEndpoint): number | undefined;
  /** Whether the target has answered the flow; undefined when the flow is gone (nothing to conclude). */
  replied(pair: FlowPair): boolean | undefined;
  onUnanswered(pair: FlowPair, waitedMs: number): void;
  onError(error: unknown): void;
}

/** Targets watched at once; a mapper that invents targets cannot make the timers grow past it. */
export const MAX_WATCHED_TARGETS = 4096;

/**
 * Tells when a target stops answering the new flows it is given, with no probe: one new flow per target at a time is
 * checked, once its wait is over, for a first reply. One at a time keeps the cost to a timer and a table lookup per
 * target and wait, however many flows are made, and a run of unanswered ones still shows in as many waits.
 */
export class ReplyWatch {
  readonly #o: ReplyWatchOptions;
  readonly #watched = new Map<string, NodeJS.Timeout>();
  #stopped = false;

  constructor(options: ReplyWatchOptions) {
    this.#o = options;
  }

  /** Targets with a flow under watch. */
  get size(): number {
    return this.#watched.size;
  }

  flowCreated(pair: FlowPair): void {
    if (this.#stopped) return;
    const key = endpointKey(pair.target);
    if (this.#watched.has(key) || this.#watched.size >= MAX_WATCHED_TARGETS) return;
    let waitMs: number | undefined;
    try {
      waitMs = this.#o.timeoutMs(pair.target);
    } catch (error) {
      this.#o.onError(error);
      return;
    }
    if (waitMs === undefined || !(waitMs > 0) || !Number.isFinite(waitMs)) return;
    const timer = setTimeout(() => {
      this.#watched.delete(key);
      try {
        if (this.#o.replied(pair) === false) this.#o.onUnanswered(pair, waitMs);
      } catch (error) {
        this.#o.onError(error);
      }
    }, waitMs);
    timer.unref();
    this.#watched.set(key, timer);
  }

  stop(): void {
    this.#stopped = true;
    for (const t of this.#watched.values()) clearTimeout(t);
    this.#watched.clear();
  }
}
