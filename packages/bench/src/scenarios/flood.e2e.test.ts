import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged, describeWithDtlsTools, dtlsToolsCheck } from '@flowlb/testkit';
import { createFloodBed, describeFloodRow, runFloodStep, type FloodBed } from '../flood.js';
import { FLOOD_TARGET } from '../targets.js';
import { floodSpec } from './flood.js';

/** `pending.max_clients` and the SNAT range of `flowlb run` by default, which the flood runs with. */
const PENDING_MAX_CLIENTS = 10_000;
const SNAT_PORTS = 20_000;
/** Far above what the balancer needs here (about 200 MiB of RSS, 100 MiB of heap), far below unbounded growth. */
const RSS_MAX_MIB = 512;
/**
 * Forged datagrams a second of each kind. The target is 20,000 + 20,000 (FLOOD_TARGET), which `pnpm bench`
 * measures and reports: on this 2-CPU machine kind it holds on a normal day with the balancer's core 85-95 % busy,
 * and falls to 91-95 % on a slow one. A test must not depend on the day, so it floods at the highest step that holds
 * with room to spare (about half the core busy, also on slow days).
 */
const FORGED_PER_SEC = 10_000;
const HEAP_MAX_MIB = 384;

// Both conditions apply; the tools' check speaks first when they are missing.
(dtlsToolsCheck().ok ? describePrivileged : describeWithDtlsTools)('a flood of forged DTLS clients, end to end', () => {
  let bed: FloodBed | undefined;

  beforeAll(async () => {
    bed = await createFloodBed();
  }, 120_000);

  afterAll(async () => {
    await bed?.destroy();
  }, 60_000);

  it(`keeps ≥ ${FLOOD_TARGET.successRate * 100} % of real openssl handshakes under ${FORGED_PER_SEC.toLocaleString('en')} forged whole and ${FORGED_PER_SEC.toLocaleString('en')} forged partial ClientHellos a second, with memory and pending clients bounded`, async () => {
    // The defence meant for this flood: forged complete hellos get a HelloVerifyRequest and no state.
    const row = await runFloodStep(bed!, {
      ...floodSpec(false),
      completePerSec: FORGED_PER_SEC,
      partialPerSec: FORGED_PER_SEC,
      helloVerify: true,
    });
    console.log(`flood e2e: ${describeFloodRow(row)}`);

    expect.soft(row.offeredCompletePerSec).toBeGreaterThanOrEqual(0.9 * FORGED_PER_SEC);
    expect.soft(row.offeredPartialPerSec).toBeGreaterThanOrEqual(0.9 * FORGED_PER_SEC);
    expect.soft(row.pendingClientsMax).toBeLessThanOrEqual(PENDING_MAX_CLIENTS);
    expect.soft(row.snatPortsMax).toBeLessThanOrEqual(SNAT_PORTS);
    expect.soft(row.rssMaxMiB).toBeLessThan(RSS_MAX_MIB);
    expect.soft(row.heapUsedMaxMiB).toBeLessThan(HEAP_MAX_MIB);
    // One failure in fewer than 100 would already be below 99 %.
    expect.soft(row.attempts).toBeGreaterThanOrEqual(100);
    expect.soft(row.successRate, `${row.successes} of ${row.attempts} real handshakes; limited by ${row.limitedBy}`).toBeGreaterThanOrEqual(
      FLOOD_TARGET.successRate,
    );
  }, 240_000);
});
