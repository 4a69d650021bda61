import { expect, it } from 'vitest';
import { describePrivileged } from '@flowlb/testkit';
import { LoadBalancer } from './balancer.js';
import type { LoadBalancerOptions } from './options.js';
import type { BalancerEvent } from './events.js';
import { scenarioMapper } from './test-support/scenario-mapper.js';
import { useLoopbackForwarder } from './test-support/loopback-forwarder.js';
import { TestClient, waitUntil } from './test-support/udp-peers.js';

const CLIENTS = 120;
const SNAT = { min: 25000, max: 25999 };

// Two workers on one VIP and one flow map, in this process: the kernel spreads clients over their VIP sockets, each
// hands out its own SNAT ports, expires only its own flows, and a worker started again takes back exactly its own.
describePrivileged('LoadBalancer workers', () => {
  const VIP = { address: '127.77.11.1', port: 5000 };
  const target = { address: '127.77.11.2', port: 7000 };
  const bed = useLoopbackForwarder(target);

  const worker = (index: number, created: Array<{ port: number; client: string }>, options: Partial<LoadBalancerOptions> = {}) =>
    new LoadBalancer({
      vip: VIP,
      snatPorts: SNAT,
      mapper: scenarioMapper([target]),
      xdp: { forwarder: bed.forwarder },
      worker: { index, count: 2 },
      onEvent: (e: BalancerEvent) => {
        if (e.type === 'flow-created') created.push({ port: e.pair.snat.port, client: `${e.pair.client.address}:${e.pair.client.port}` });
      },
      ...options,
    });

  it('share the VIP and the SNAT range without ever handing out one port twice, and take back only their own flows', async () => {
    const created: Array<Array<{ port: number; client: string }>> = [[], []];
    let workers = [worker(0, created[0]!), worker(1, created[1]!)];
    await Promise.all(workers.map((w) => w.start()));
    try {
      for (let i = 0; i < CLIENTS; i++) {
        const c = await TestClient.open('127.77.11.100');
        bed.clients.push(c);
        await c.send(`to:0:client ${i}`, VIP);
      }
      await waitUntil(() => bed.echo.received.length === CLIENTS, 10_000, `${CLIENTS} datagrams at the backend`);
      // Each worker made some of the flows (the kernel hashes each client to one socket), on its own ports only.
      for (const index of [0, 1]) {
        expect(created[index]!.length).toBeGreaterThan(0);
        expect(created[index]!.every((f) => (f.port - SNAT.min) % 2 === index)).toBe(true);
        expect(workers[index]!.stats().flows.active).toBe(created[index]!.length);
      }
      const all = [...created[0]!, ...created[1]!];
      expect(all).toHaveLength(CLIENTS);
      expect(new Set(all.map((f) => f.port)).size).toBe(CLIENTS);
      expect(new Set(all.map((f) => f.client)).size).toBe(CLIENTS);
      expect(new Set(bed.echo.received.map((r) => r.from)).size).toBe(CLIENTS);

      // Worker 1 goes away and comes back: its flows stayed in the map, and it adopts those and no others.
      await workers[1]!.stop();
      expect(bed.forwarder.table.count()).toBe(2 * CLIENTS);
      const again: Array<{ port: number; client: string }> = [];
      workers[1] = worker(1, again);
      await workers[1].start();
      expect(workers[1].stats().flows.adopted).toBe(created[1]!.length);
      expect(workers[0]!.stats().snat.portsInUse + workers[1].stats().snat.portsInUse).toBe(CLIENTS);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
    }

    // Each expires its own flows and frees their ports: together, all of them.
    const expired = [0, 0];
    workers = [0, 1].map((index) =>
      worker(index, [], {
        connTtlSec: 0.2,
        sweepIntervalMs: 100,
        onEvent: (e: BalancerEvent) => {
          if (e.type === 'flow-expired') {
            expect((e.pair.snat.port - SNAT.min) % 2).toBe(index);
            expired[index]!++;
          }
        },
      }),
    );
    await Promise.all(workers.map((w) => w.start()));
    try {
      await waitUntil(() => bed.forwarder.table.count() === 0, 10_000, 'every flow to expire');
      expect(expired).toEqual([created[0]!.length, created[1]!.length]);
      for (const w of workers) expect(w.stats().snat.portsInUse).toBe(0);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
    }
  });

  it('refuses to run as a worker on the userspace datapath', () => {
    expect(() => new LoadBalancer({ vip: VIP, mapper: scenarioMapper([target]), datapath: 'userspace', worker: { index: 0, count: 2 } })).toThrow(
      /worker needs the XDP datapath/,
    );
    expect(() => new LoadBalancer({ vip: VIP, mapper: scenarioMapper([target]), worker: { index: 2, count: 2 } })).toThrow(/is not a slice/);
  });
});
