import type { UdpEndpoint } from '@flowlb/mapper-api';
import type { Probe, ProbeOutcome } from '../src/types.js';

export interface ProbeCall {
  /** When the probe was called, by the clock given to scriptedProbe. */
  at: number;
  target: UdpEndpoint;
  timeoutMs: number;
  signal: AbortSignal;
  resolve(outcome: ProbeOutcome): void;
  reject(error: unknown): void;
}

/** A probe whose every call stays pending until the test settles it through `calls`. */
export function scriptedProbe(now: () => number = Date.now): { probe: Probe; calls: ProbeCall[]; running(): number } {
  const calls: ProbeCall[] = [];
  let running = 0;
  const probe: Probe = (target, { timeoutMs, signal }) =>
    new Promise<ProbeOutcome>((resolve, reject) => {
      running++;
      let settled = false;
      const once =
        <T>(fn: (value: T) => void) =>
        (value: T): void => {
          if (settled) return;
          settled = true;
          running--;
          fn(value);
        };
      calls.push({ at: now(), target, timeoutMs, signal, resolve: once(resolve), reject: once(reject) });
    });
  return { probe, calls, running: () => running };
}

/** A probe that answers at once with whatever `answer` holds when it is called. */
export function answeringProbe(first: ProbeOutcome): { probe: Probe; answer(outcome: ProbeOutcome): void; count(): number } {
  let current = first;
  let count = 0;
  const probe: Probe = () => {
    count++;
    return Promise.resolve(current);
  };
  return { probe, answer: (outcome) => (current = outcome), count: () => count };
}
