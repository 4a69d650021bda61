import { MemoryFlowTable, type FlowPair } from '@flowlb/flow-table';
import type { Decision, FlowMapper } from '@flowlb/mapper-api';
import { describe, expect, it } from 'vitest';
import type { Datapath } from './datapath.js';
import type { BalancerEvent } from './events.js';
import { DEFAULT_LIMITS } from './options.js';
import { SlowPath } from './slow-path.js';
import { SnatPortPools } from './snat-pool.js';
import { Counters } from './stats.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A datapath whose install writes the table at once and then takes `afterWriteMs` more to resolve. */
function slowSendingDatapath(afterWriteMs: number): Datapath {
  const table = new MemoryFlowTable({ maxEntries: 64 });
  return {
    kind: 'userspace',
    table,
    start: async () => undefined,
    async install(pair: FlowPair, take: () => Buffer[]) {
      table.installPair(pair, process.hrtime.bigint());
      take();
      await sleep(afterWriteMs);
    },
    forwardInstalled: () => false,
    flowRemoved: () => undefined,
    counters: () => undefined,
    stop: async () => undefined,
  };
}

describe('SlowPath flow-created setupMs', () => {
  it('runs from the first datagram to the entries being written, across wait answers, and not beyond', async () => {
    const target = { address: '127.0.0.9', port: 7000 };
    // Waits until it has seen two datagrams, as a mapper of a fragmented ClientHello does.
    const mapper: FlowMapper = {
      findFlow: (_client, packets): Decision =>
        packets.length < 2 ? { action: 'wait' } : { action: 'forward', flow: { dstAddr: target } },
    };
    const events: BalancerEvent[] = [];
    const slow = new SlowPath({
      vip: { address: '127.0.0.1', port: 5000 },
      snatAddress: '127.0.0.1',
      mapper,
      datapath: slowSendingDatapath(300),
      pools: new SnatPortPools({ min: 10000, max: 10010 }),
      counters: new Counters(),
      emit: (e) => events.push(e),
      limits: { ...DEFAULT_LIMITS },
      dropHoldMs: 0,
    });
    const client = { address: '127.0.0.2', port: 4000 };
    try {
      slow.handleDatagram(Buffer.from('first'), client);
      await sleep(60);
      slow.handleDatagram(Buffer.from('second'), client);
      for (let i = 0; i < 100 && !events.some((e) => e.type === 'flow-created'); i++) await sleep(10);
    } finally {
      slow.shutdown();
    }
    const created = events.find((e) => e.type === 'flow-created');
    expect(created).toMatchObject({ type: 'flow-created', datagrams: 2 });
    const { setupMs } = created as Extract<BalancerEvent, { type: 'flow-created' }>;
    // The wait for the second datagram counts; the 300 ms the install takes after writing the entries does not.
    expect(setupMs).toBeGreaterThanOrEqual(55);
    expect(setupMs).toBeLessThan(250);
  });
});
