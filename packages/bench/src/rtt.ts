import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CommandError, type Topology } from '@flowlb/testkit';
import { DIST_DIR } from './context.js';

/** The native round-trip tool (tools/udp-rtt.c), built by `make -C tools`. */
export const UDP_RTT = join(DIST_DIR, 'udp-rtt');

/** Round-trip times of the recorded (non-warm-up) exchanges, in microseconds; percentiles are nearest-rank. */
export interface RttSummary {
  /** Probes recorded, answered or not. */
  count: number;
  lost: number;
  minUs: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  meanUs: number;
}

export interface RttOptions {
  count: number;
  /** Datagram size in bytes, 8..65507 (the first 8 carry the sequence number). */
  payload: number;
  /** Unrecorded exchanges first (default 100). */
  warmup?: number;
  /** How long each probe waits for its reply before it counts as lost (default 1000). */
  timeoutMs?: number;
  /** Local `addr` or `addr:port` to send from. */
  bind?: string;
  /** Minimum spacing between probes (default 0: the next one goes as soon as the previous is answered). */
  intervalUs?: number;
  /** Kill the measurement after this long; by default derived from the probe count, interval and timeout. */
  maxDurationMs?: number;
}

/** The tool's exit code when a run gave up on an unreachable target. */
export const RTT_EXIT_LOST = 2;

/** A measurement that failed: `exitCode` is {@link RTT_EXIT_LOST} when the target stopped answering. */
export class RttError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | string | null,
    readonly stderr: string,
    readonly timedOut: boolean,
  ) {
    super(message);
    this.name = 'RttError';
  }
}

const READY_TIMEOUT_MS = 5000;

function assertBuilt(): void {
  if (!existsSync(UDP_RTT)) throw new Error(`${UDP_RTT} is missing: build it with 'make -C tools' in packages/bench`);
}

/** Starts the echo side inside `ns` and resolves once its socket is bound. */
export async function startUdpEcho(
  topo: Topology,
  ns: string,
  address: string,
  port: number,
): Promise<{ stop(): Promise<void> }> {
  assertBuilt();
  const proc = topo.spawn(ns, UDP_RTT, ['echo', address, String(port)]);
  const where = `udp-rtt echo on ${address}:${port} in ${ns}`;

  const ready = new Promise<void>((resolve, reject) => {
    const check = (): void => {
      if (/^ready$/m.test(proc.output().stdout)) {
        cleanup();
        resolve();
      }
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${where} not ready after ${READY_TIMEOUT_MS} ms; stderr: ${proc.output().stderr.trim()}`));
    }, READY_TIMEOUT_MS);
    const cleanup = (): void => {
      clearTimeout(timer);
      proc.child.stdout?.removeListener('data', check);
    };
    // Listeners run after the one that records output, so output() already holds the chunk.
    proc.child.stdout?.on('data', check);
    // `closed` waits for stderr to end, so the reason it died is complete.
    void proc.closed.then((status) => {
      cleanup();
      const how = status.error ? status.error.message : status.signal ? `signal ${status.signal}` : `exit ${String(status.code)}`;
      reject(new Error(`${where} ended before it was ready (${how}): ${proc.output().stderr.trim()}`));
    });
    check();
  });

  try {
    await ready;
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return {
    stop: async () => {
      await proc.stop();
    },
  };
}

/** The tool's own limit: it gives up after this many unanswered probes in a row. */
const MAX_CONSECUTIVE_LOST = 10;

function defaultMaxDurationMs(probes: number, timeoutMs: number, intervalUs: number): number {
  // Generous per probe (a slow path is still measured), plus the full failure budget of the tool.
  return 30_000 + probes * (intervalUs / 1000 + 1) + (MAX_CONSECUTIVE_LOST + 1) * timeoutMs;
}

function parseSummary(stdout: string): RttSummary {
  const keys = ['count', 'lost', 'minUs', 'p50Us', 'p90Us', 'p99Us', 'p999Us', 'maxUs', 'meanUs'] as const;
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout.trim());
  } catch {
    throw new Error(`udp-rtt printed no JSON: ${stdout.trim().slice(0, 200)}`);
  }
  if (typeof parsed !== 'object' || parsed === null) throw new Error(`udp-rtt printed no object: ${stdout.trim()}`);
  const rec = parsed as Record<string, unknown>;
  const out = {} as RttSummary;
  for (const k of keys) {
    const v = rec[k];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`udp-rtt output lacks a number '${k}': ${stdout.trim()}`);
    out[k] = v;
  }
  return out;
}

/**
 * Measures round trips from `ns` to `target` with one datagram in flight at a time. Rejects with
 * {@link RttError} when the target stops answering or the run exceeds its time budget.
 */
export async function measureRtt(
  topo: Topology,
  ns: string,
  target: { address: string; port: number },
  options: RttOptions,
): Promise<RttSummary> {
  assertBuilt();
  const warmup = options.warmup ?? 100;
  const timeoutMs = options.timeoutMs ?? 1000;
  const intervalUs = options.intervalUs ?? 0;
  const args = [
    'ping',
    target.address,
    String(target.port),
    '--count',
    String(options.count),
    '--payload',
    String(options.payload),
    '--warmup',
    String(warmup),
    '--timeout-ms',
    String(timeoutMs),
    '--interval-us',
    String(intervalUs),
  ];
  if (options.bind !== undefined) args.push('--bind', options.bind);
  const maxDurationMs = options.maxDurationMs ?? defaultMaxDurationMs(warmup + options.count, timeoutMs, intervalUs);

  let stdout: string;
  try {
    ({ stdout } = await topo.exec(ns, UDP_RTT, args, { timeoutMs: maxDurationMs }));
  } catch (err) {
    if (!(err instanceof CommandError)) throw err;
    const where = `udp-rtt ping ${target.address}:${target.port} from ${ns}`;
    const detail = err.timedOut ? `did not finish within ${maxDurationMs} ms` : `exit ${String(err.code)}`;
    const stderr = err.stderr.trim();
    throw new RttError(`${where}: ${detail}${stderr ? `: ${stderr}` : ''}`, err.code, err.stderr, err.timedOut);
  }
  return parseSummary(stdout);
}
