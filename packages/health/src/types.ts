import type { UdpEndpoint } from '@flowlb/mapper-api';

export type ProbeOutcome = { ok: true } | { ok: false; reason: string };

/**
 * One probe of one target. It must settle within about `timeoutMs`, and stop early when `signal` aborts: the checker
 * gives up on it at `timeoutMs` anyway, so anything it still holds after that is only wasted.
 */
export type Probe = (target: UdpEndpoint, options: { timeoutMs: number; signal: AbortSignal }) => Promise<ProbeOutcome>;

export interface HealthSettings {
  /** Time from the start of one probe to the start of the next; integer, at least 10. */
  intervalMs: number;
  /** A probe that has not settled by then is a failure with reason `timeout`; integer from 1 to `intervalMs`. */
  timeoutMs: number;
  /** Successes in a row that make a target healthy; integer from 1 to 100. */
  rise: number;
  /** Failures in a row that make a target unhealthy; integer from 1 to 100. */
  fall: number;
}

export type HealthState = 'unknown' | 'healthy' | 'unhealthy';

export interface TargetHealth {
  target: UdpEndpoint;
  state: HealthState;
  /** ms since epoch of the last state change (or of watching it) */
  since: number;
  /** ms since epoch at which the last probe result (or passive failure) was counted. */
  lastProbeAt?: number;
  /** Round trip of the last successful probe, in ms. */
  lastRttMs?: number;
  /** Reason of the last failure, kept after later successes. */
  lastFailure?: string;
  successesInRow: number;
  failuresInRow: number;
  /** Probe results counted, passive failures included. */
  probes: number;
  /** Failures counted, passive ones included. */
  failures: number;
}

/** Time and timers, injectable so that tests can drive a checker without waiting. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}
