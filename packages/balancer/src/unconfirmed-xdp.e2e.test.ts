import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged } from '@flowlb/testkit';
import type { LbEvent } from './test-support/lb-process.js';
import { waitUntil } from './test-support/udp-peers.js';
import { startXdpBed, type XdpBed } from './test-support/xdp-bed.js';

// The XDP program confirms a flow when its client's next datagram reaches the forward entry; only then does the flow
// outlive unconfirmedTtlSec. Those datagrams never reach userspace, so the program's own mark is all that keeps it.
describePrivileged('unconfirmed flows on the XDP datapath', () => {
  let bed: XdpBed | undefined;

  beforeAll(async () => {
    bed = await startXdpBed('lbu', { snatPorts: { min: 21000, max: 21999 }, connTtlSec: 30, unconfirmedTtlSec: 1, sweepIntervalMs: 100 });
  }, 120_000);

  afterAll(async () => {
    await bed?.stop();
  });

  it('removes a flow whose client sent one datagram, and keeps one whose client the program saw again', async () => {
    const { lb } = bed!;
    const [once, again] = await Promise.all([bed!.send(0, 41000, ['to:0:once']), bed!.send(1, 41001, ['to:0:a', 'to:0:b', 'to:0:c'])]);
    expect(once.received.map((r) => r.data)).toEqual(['b|to:0:once']);
    expect(again.received.map((r) => r.data)).toEqual(['b|to:0:a', 'b|to:0:b', 'b|to:0:c']);
    const expired = (port: number) => (e: LbEvent): boolean =>
      e.type === 'flow-expired' && (e.pair as { client: { port: number } }).client.port === port;
    await waitUntil(() => lb.events.some(expired(41000)), 10_000, 'the one-datagram flow to expire');
    expect(lb.events.find(expired(41000))).toMatchObject({ unconfirmed: true });
    // Well past the short TTL, the flow whose client spoke again is still there.
    await new Promise((r) => setTimeout(r, 1500));
    expect(lb.events.some(expired(41001))).toBe(false);
    expect((await lb.flows()).map((f) => f.pair.client.port)).toEqual([41001]);
  }, 60_000);
});
