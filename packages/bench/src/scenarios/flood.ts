import type { BenchContext } from '../context.js';
import {
  createFloodBed,
  describeFloodRow,
  floodMethodNotes,
  runFloodStep,
  type FloodStepSpec,
} from '../flood.js';
import type { FloodResult, FloodRow } from '../results.js';
import { FLOOD_TARGET, highestHeld } from '../targets.js';


/** Forged first datagrams a second, of each kind, per step. */
const STEPS = [2_000, 5_000, 10_000, 20_000, 40_000];
const QUICK_STEPS = [5_000, 20_000];

/**
 * New clients a second per source address and per /24 in the XDP program: what an operator under attack would set,
 * well above one real host's handshakes. Forged sources spread over 4,096 /24s stay under it.
 */
const RATE_LIMIT = { perSource: 50, per24: 500 };

/** A step's settings besides its rates; the end-to-end test takes the same. */
export function floodSpec(quick: boolean): Omit<FloodStepSpec, 'completePerSec' | 'partialPerSec' | 'helloVerify'> {
  return {
    rateLimit: RATE_LIMIT,
    settleSeconds: quick ? 2 : 3,
    measureSeconds: quick ? 10 : 20,
    // 99 % of 100 handshakes leaves room for one failure; of fewer, for none.
    minAttempts: quick ? 50 : 100,
    maxSeconds: 60,
    clientTimeoutMs: 5000,
    clientIntervalMs: 200,
  };
}

/**
 * Real DTLS handshakes through the balancer while forged first datagrams arrive from random sources, at rising
 * rates, with and without `helloVerify` in the mappings.
 */
export async function runFlood(ctx: BenchContext): Promise<FloodResult> {
  const steps = ctx.quick ? QUICK_STEPS : STEPS;
  const base = floodSpec(ctx.quick);
  const modes = [false, true];
  const rows: FloodRow[] = [];
  const bed = await createFloodBed();
  try {
    for (const hv of modes) {
      for (const rate of steps) {
        ctx.log(`flood: ${rate.toLocaleString('en')} + ${rate.toLocaleString('en')} forged/s, helloVerify ${hv ? 'on' : 'off'}`);
        try {
          const row = await runFloodStep(bed, { ...base, completePerSec: rate, partialPerSec: rate, helloVerify: hv }, ctx.log);
          rows.push(row);
          ctx.log(`flood: ${describeFloodRow(row)}`);
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          ctx.log(`flood: step failed: ${message}`);
          rows.push(failedRow(rate, hv, base.clientTimeoutMs, message));
        }
      }
    }
  } finally {
    await bed.destroy();
  }
  return { rows, notes: floodNotes(rows, base) };
}

function floodNotes(rows: FloodRow[], spec: ReturnType<typeof floodSpec>): string[] {
  const notes = floodMethodNotes(spec);
  for (const mode of [false, true]) {
    const held = highestHeld(rows, mode);
    const label = mode ? 'with helloVerify' : 'without helloVerify';
    notes.push(
      held === null
        ? `${label}: ≥ ${FLOOD_TARGET.successRate * 100} % of real handshakes did not hold at any step.`
        : `${label}: ≥ ${FLOOD_TARGET.successRate * 100} % of real handshakes held up to ${held.toLocaleString('en')} + ${held.toLocaleString('en')} forged/s` +
            `${held === Math.max(...rows.filter((r) => r.helloVerify === mode).map((r) => r.askedCompletePerSec)) ? ' (the highest step)' : ''}.`,
    );
  }
  return notes;
}

function failedRow(rate: number, helloVerify: boolean, clientTimeoutMs: number, error: string): FloodRow {
  return {
    askedCompletePerSec: rate,
    askedPartialPerSec: rate,
    offeredCompletePerSec: 0,
    offeredPartialPerSec: 0,
    helloVerify,
    floodSeconds: 0,
    attempts: 0,
    successes: 0,
    successRate: 0,
    clientTimeoutMs,
    handshakeP50Ms: Number.NaN,
    handshakeP99Ms: Number.NaN,
    retransmitted: 0,
    failedWithout: { flow: 0, confirmation: 0 },
    snatPortsMax: 0,
    pendingClientsMax: 0,
    flowsActiveMax: 0,
    rssMaxMiB: 0,
    heapUsedMaxMiB: 0,
    rssBeforeMiB: 0,
    heapUsedBeforeMiB: 0,
    balancerBusy: 0,
    balancerCpuBusy: 0,
    vipSocketIn: 0,
    socketDrops: null,
    socketDropsBySecond: [],
    whileMeasured: { vipSocketIn: 0, socketDrops: null },
    drops: {},
    rateLimited: 0,
    mapperReplies: 0,
    repliesSent: 0,
    kernelReplies: 0,
    flowsCreated: 0,
    flowsRefused: 0,
    unconfirmedExpired: 0,
    evictedUnderPressure: 0,
    forgedAtBackend: 0,
    limitedBy: '',
    error,
  };
}
