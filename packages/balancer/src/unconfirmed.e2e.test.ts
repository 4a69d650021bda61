import { afterAll, describe, expect, it } from 'vitest';
import { LoadBalancer } from './balancer.js';
import type { BalancerEvent } from './events.js';
import { scenarioMapper } from './test-support/scenario-mapper.js';
import { EchoBackend, TestClient, waitUntil } from './test-support/udp-peers.js';

// Loopback, userspace datapath: the same cleaner and flags as with XDP, where the program confirms the forward entry.
describe('flows whose client never speaks again', () => {
  const vip = { address: '127.77.7.1', port: 5000 };
  const target = { address: '127.77.7.2', port: 7000 };
  const closers: Array<() => unknown> = [];
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
  });

  it('go after unconfirmedTtlSec, however the target answers, while a client that spoke again keeps its flow', async () => {
    const echo = await EchoBackend.start('t', target.address, target.port);
    closers.push(() => echo.close());
    const events: BalancerEvent[] = [];
    const lb = new LoadBalancer({
      vip,
      mapper: scenarioMapper([target]),
      datapath: 'userspace',
      snatPorts: { min: 23000, max: 23099 },
      connTtlSec: 30,
      unconfirmedTtlSec: 0.5,
      onEvent: (e) => events.push(e),
    });
    await lb.start();
    closers.push(() => lb.stop());
    const once = await TestClient.open('127.77.7.10');
    const twice = await TestClient.open('127.77.7.11');
    closers.push(() => once.close(), () => twice.close());
    expect((await once.request('to:0:hello', vip))?.data).toBe('t|to:0:hello');
    expect((await twice.request('to:0:hello', vip))?.data).toBe('t|to:0:hello');
    expect((await twice.request('to:0:again', vip))?.data).toBe('t|to:0:again');

    const expiredOnce = (e: BalancerEvent): boolean => e.type === 'flow-expired' && e.pair.client.port === once.port;
    await waitUntil(() => events.some(expiredOnce), 10_000, 'the flow of the client that spoke once to expire');
    expect(events.find(expiredOnce)).toMatchObject({ kind: 'pair', unconfirmed: true });
    expect(lb.stats().flows).toMatchObject({ expired: 1, unconfirmedExpired: 1, active: 1 });
    // The other client's flow is still there, and answers without asking the mapper again.
    expect(events.some((e) => e.type === 'flow-expired' && e.pair.client.port === twice.port)).toBe(false);
    expect((await twice.request('to:0:later', vip))?.data).toBe('t|to:0:later');
    expect(lb.stats().flows.created).toBe(2);
  });

  it('under SNAT pressure go within about a second, so that a real client retrying gets a port', async () => {
    const pressured = { address: '127.77.7.20', port: 5000 };
    const backend = { address: '127.77.7.21', port: 7000 };
    const echo = await EchoBackend.start('p', backend.address, backend.port);
    closers.push(() => echo.close());
    const events: BalancerEvent[] = [];
    const lb = new LoadBalancer({
      vip: pressured,
      mapper: scenarioMapper([backend]),
      datapath: 'userspace',
      // Four ports: four one-datagram clients take them all.
      snatPorts: { min: 23100, max: 23103 },
      connTtlSec: 60,
      unconfirmedTtlSec: 30,
      dropHoldMs: 0,
      onEvent: (e) => events.push(e),
    });
    await lb.start();
    closers.push(() => lb.stop());
    for (let i = 0; i < 4; i++) {
      const forged = await TestClient.open(`127.77.7.${30 + i}`);
      closers.push(() => forged.close());
      expect((await forged.request('to:0:hello', pressured))?.data).toBe('p|to:0:hello');
    }
    expect(lb.stats().snat.portsInUse).toBe(4);
    // Old enough to count as abandoned under pressure, far from the 30 s of calm times.
    await new Promise((r) => setTimeout(r, 1100));

    const real = await TestClient.open('127.77.7.40');
    closers.push(() => real.close());
    // The first try is refused, and starts the pressure; the client retransmits, as DTLS clients do.
    expect(await real.request('to:0:hello', pressured, 300)).toBeUndefined();
    expect(events).toContainEqual({ type: 'pressure', active: true, reason: 'snat-exhausted', unconfirmedTtlMs: 1000 });
    await waitUntil(() => lb.stats().flows.evictedUnderPressure === 4, 5000, 'the one-datagram flows to go');
    expect((await real.request('to:0:again', pressured))?.data).toBe('p|to:0:again');
    expect(lb.stats().flows).toMatchObject({ created: 5, unconfirmedExpired: 4, evictedUnderPressure: 4, pressureEpisodes: 1 });
  });
});
