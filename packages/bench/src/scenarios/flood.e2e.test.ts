import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged, describeWithDtlsTools, dtlsToolsCheck } from '@flowlb/testkit';
import { createFloodBed, describeFloodRow, handshakesWithoutFlood, runFloodStep, type FloodBed } from '../flood.js';
import { FLOOD_TARGET } from '../targets.js';
import { floodSpec } from './flood.js';

/** `pending.max_clients` and the SNAT range of `flowlb run` by default, which the flood runs with. */
const PENDING_MAX_CLIENTS = 10_000;
const SNAT_PORTS = 20_000;
/** Far above what the balancer needs here (about 200 MiB of RSS, 100 MiB of heap), far below unbounded growth. */
const RSS_MAX_MIB = 512;
/**
 * Forged datagrams a second of each kind: the issue's target (FLOOD_TARGET). Every route of the bed's mappings asks
 * for a cookie, so the XDP program answers the forged hellos itself and the balancer's process hardly sees them.
 */
const FORGED_PER_SEC = FLOOD_TARGET.perKindPerSec;
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

  it('answers the first hellos of openssl and gnutls clients in the XDP program, a fragmented one too, and each handshake completes', async () => {
    const r = await handshakesWithoutFlood(bed!, { helloVerify: true }, [
      { tool: 'openssl' },
      { tool: 'openssl', mtu: 256 },
      { tool: 'gnutls' },
      { tool: 'gnutls', mtu: 256 },
    ]);
    for (const x of r.results) expect.soft(x.ok, `${x.client.tool}${x.client.mtu ? ` -mtu ${x.client.mtu}` : ''}: ${x.detail}`).toBe(true);
    // One answer per client (two for the fragmented ones, whose fragments are each answered), none by the mapper.
    expect.soft(r.kernelReplies).toBeGreaterThanOrEqual(4);
    expect.soft(r.kernelReplies).toBeLessThanOrEqual(8);
    expect.soft(r.mapperReplies).toBe(0);
  }, 120_000);

  it("with two workers, a retry that lands on the second is checked against the XDP program's keys, and forwarded", async () => {
    // SO_REUSEPORT spreads the clients' retries over both workers by their ports.
    const clients = Array.from({ length: 8 }, () => ({ tool: 'openssl' as const }));
    const r = await handshakesWithoutFlood(bed!, { helloVerify: true, workers: 2 }, clients);
    for (const x of r.results) expect.soft(x.ok, x.detail).toBe(true);
    expect.soft(r.kernelReplies).toBe(clients.length);
    // A worker with a cookie secret of its own would refuse the program's cookies and send one of its own.
    expect.soft(r.mapperReplies).toBe(0);
  }, 120_000);

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
    // Answered in the kernel: nearly every forged hello (the rest were still queued when the step was read).
    expect.soft(row.kernelReplies).toBeGreaterThanOrEqual(0.9 * (row.offeredCompletePerSec + row.offeredPartialPerSec) * row.floodSeconds * 0.9);
    expect.soft(row.mapperReplies).toBeLessThan(row.attempts * 3);
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
