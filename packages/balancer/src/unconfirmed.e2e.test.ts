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
});
