/**
 * Paced sending for the bench's live-frame senders: each stream offers its frames at its own rate, and whatever is
 * due goes out at once, in runs of up to `maxRun` frames, since the kernel's per-run cost dwarfs the per-frame one
 * (see LIVE_RUN_MAX in bench-object.ts).
 */

export interface PacedStream<T> {
  /** Frames per second. */
  pps: number;
  /** Frames to send in all. */
  total: number;
  /** What a run is made from (a gen template); the stream takes the next one for each run. */
  templates: readonly T[];
}

export interface PacerOptions<T> {
  streams: readonly PacedStream<T>[];
  /** Sends `n` frames made from `template` in one live run. */
  run(template: T, n: number): void;
  maxRun: number;
  /** Time (on `now`'s clock) at which sending stops, whatever is left: a pace that cannot be kept must end. */
  deadline: number;
  /** Asked between runs: true ends the sending early. */
  stopped?: () => boolean;
  /** Called about every `progressEveryMs` (default 1000) with the frames sent per stream so far. */
  onProgress?: (sent: readonly number[], ms: number) => void;
  progressEveryMs?: number;
  /** How long to wait when nothing is due (default 1 ms): fewer, larger runs when longer. */
  tickMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export interface PacerReport {
  /** Frames sent, per stream. */
  sent: number[];
  ms: number;
}

export async function pacedLiveRuns<T>(o: PacerOptions<T>): Promise<PacerReport> {
  const now = o.now ?? (() => performance.now());
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const every = o.progressEveryMs ?? 1000;
  const sent = o.streams.map(() => 0);
  const next = o.streams.map(() => 0);
  const t0 = now();
  let nextProgress = t0 + every;
  const finished = (): boolean => o.streams.every((s, i) => sent[i]! >= s.total);
  while (!finished() && now() < o.deadline && !o.stopped?.()) {
    if (o.onProgress && now() >= nextProgress) {
      o.onProgress(sent, now() - t0);
      nextProgress += every;
    }
    const elapsedSec = (now() - t0) / 1000;
    let ran = false;
    o.streams.forEach((s, i) => {
      const due = Math.min(s.total, Math.floor(elapsedSec * s.pps));
      let done = sent[i]!;
      while (done < due) {
        const n = Math.min(due - done, o.maxRun);
        const k = next[i]!;
        next[i] = k + 1;
        o.run(s.templates[k % s.templates.length]!, n);
        done += n;
        sent[i] = done;
        ran = true;
      }
    });
    if (!ran) await sleep(o.tickMs ?? 1);
  }
  return { sent, ms: now() - t0 };
}
