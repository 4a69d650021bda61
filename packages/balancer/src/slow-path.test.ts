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

/**
 * Installs into a memory table as the XDP datapath installs into the kernel's (EEXIST when a key is taken), then
 * takes `afterWriteMs` more to resolve; `written` holds when each write finished.
 */
function tableDatapath(afterWriteMs = 0, written: bigint[] = []): Datapath & { table: MemoryFlowTable } {
  const table = new MemoryFlowTable({ maxEntries: 64 });
  return {
    kind: 'userspace',
    table,
    start: async () => undefined,
    async install(pair: FlowPair, take: () => Buffer[]) {
      table.installPair(pair, process.hrtime.bigint());
      take();
      written.push(process.hrtime.bigint());
      if (afterWriteMs > 0) await sleep(afterWriteMs);
    },
    forwardInstalled: () => false,
    replied: () => undefined,
    flowRemoved: () => undefined,
    counters: () => undefined,
    stop: async () => undefined,
  };
}

const AFTER_WRITE_MS = 300;

describe('SlowPath flow-created setupMs', () => {
  it('runs from the first datagram to the entries being written, across wait answers, and not beyond', async () => {
    const target = { address: '127.0.0.9', port: 7000 };
    // Waits until it has seen two datagrams, as a mapper of a fragmented ClientHello does.
    const mapper: FlowMapper = {
      findFlow: (_client, packets): Decision =>
        packets.length < 2 ? { action: 'wait' } : { action: 'forward', flow: { dstAddr: target } },
    };
    const events: BalancerEvent[] = [];
    let createdAt = 0n;
    const written: bigint[] = [];
    const slow = new SlowPath({
      vip: { address: '127.0.0.1', port: 5000 },
      snatAddress: '127.0.0.1',
      reply: () => undefined,
      mapper,
      datapath: tableDatapath(AFTER_WRITE_MS, written),
      pools: new SnatPortPools({ min: 10000, max: 10010 }),
      counters: new Counters(),
      emit: (e) => {
        if (e.type === 'flow-created') createdAt = process.hrtime.bigint();
        events.push(e);
      },
      limits: { ...DEFAULT_LIMITS },
      dropHoldMs: 0,
    });
    const client = { address: '127.0.0.2', port: 4000 };
    const t0 = process.hrtime.bigint();
    try {
      slow.handleDatagram(Buffer.from('first'), client);
      await sleep(60);
      slow.handleDatagram(Buffer.from('second'), client);
      for (let i = 0; i < 1000 && createdAt === 0n; i++) await sleep(10);
    } finally {
      slow.shutdown();
    }
    const created = events.find((e) => e.type === 'flow-created');
    expect(created).toMatchObject({ type: 'flow-created', datagrams: 2 });
    const { setupMs } = created as Extract<BalancerEvent, { type: 'flow-created' }>;
    const ms = (ns: bigint): number => Number(ns) / 1e6;
    // The wait for the second datagram counts; the time the install takes after writing the entries does not.
    expect(setupMs).toBeGreaterThanOrEqual(55);
    expect(written).toHaveLength(1);
    expect(setupMs).toBeLessThanOrEqual(ms(written[0]! - t0));
    expect(ms(createdAt - t0) - setupMs).toBeGreaterThanOrEqual(AFTER_WRITE_MS - 5);
  });
});

describe('SlowPath SNAT quarantine', () => {
  it("gives a set-aside port back once: a later flow's port is not freed by the quarantine's timer", async () => {
    const QUARANTINE_MS = 40;
    const vip = { address: '127.0.0.1', port: 5000 };
    const target = { address: '127.0.0.9', port: 7000 };
    const datapath = tableDatapath();
    const pools = new SnatPortPools({ min: 10000, max: 10001 });
    const events: BalancerEvent[] = [];
    const slow = new SlowPath({
      vip,
      snatAddress: '127.0.0.1',
      reply: () => undefined,
      mapper: { findFlow: () => ({ action: 'forward', flow: { dstAddr: target } }) },
      datapath,
      pools,
      counters: new Counters(),
      emit: (e) => events.push(e),
      limits: { ...DEFAULT_LIMITS },
      dropHoldMs: 0,
      quarantineMs: QUARANTINE_MS,
    });
    const created = (n: number) => events.filter((e) => e.type === 'flow-created').length >= n;
    const until = async (what: () => boolean): Promise<void> => {
      for (let i = 0; i < 500 && !what(); i++) await sleep(5);
    };
    // A flow that is in the table but not in the pools (written by someone else) holds SNAT port 10000.
    const foreign: FlowPair = { client: { address: '127.0.0.50', port: 1 }, vip, snat: { address: '127.0.0.1', port: 10000 }, target };
    datapath.table.installPair(foreign, 1n);
    try {
      slow.handleDatagram(Buffer.from('a'), { address: '127.0.0.2', port: 4000 });
      await until(() => created(1));
      expect(events.find((e) => e.type === 'snat-port-quarantined')).toMatchObject({ snat: { port: 10000 } });
      expect(events.find((e) => e.type === 'flow-created')).toMatchObject({ pair: { snat: { port: 10001 } } });
      expect(slow.quarantined).toBe(1);

      // The foreign flow expires: its port is free, and the next client gets it.
      datapath.table.removePair(foreign);
      slow.flowRemoved(foreign);
      expect(slow.quarantined).toBe(0);
      slow.handleDatagram(Buffer.from('b'), { address: '127.0.0.3', port: 4000 });
      await until(() => created(2));
      expect(events.filter((e) => e.type === 'flow-created').at(-1)).toMatchObject({ pair: { snat: { port: 10000 } } });

      // Past the quarantine's time, the port still belongs to the second flow.
      await sleep(QUARANTINE_MS * 3);
      expect(pools.has('127.0.0.1', target, 10000)).toBe(true);
      expect(pools.inUse).toBe(2);
      expect(slow.activeFlows).toBe(2);
    } finally {
      slow.shutdown();
    }
  });
});


describe('SlowPath with a slow mapper', () => {
  it('runs one call per client at a time, and counts what a timed-out call holds until it answers', async () => {
    const answers: Array<(d: Decision) => void> = [];
    const counters = new Counters();
    const slow = new SlowPath({
      vip: { address: '127.0.0.1', port: 5000 },
      snatAddress: '127.0.0.1',
      reply: () => undefined,
      mapper: { findFlow: () => new Promise<Decision>((resolve) => answers.push(resolve)) },
      datapath: tableDatapath(),
      pools: new SnatPortPools({ min: 10000, max: 10010 }),
      counters,
      emit: () => undefined,
      limits: { ...DEFAULT_LIMITS, classifyTimeoutMs: 30 },
      dropHoldMs: 0,
    });
    const client = { address: '127.0.0.2', port: 4000 };
    try {
      slow.handleDatagram(Buffer.alloc(500), client);
      expect(answers).toHaveLength(1);
      for (let i = 0; i < 200 && counters.classifyTimeouts === 0; i++) await sleep(5);
      expect(counters.classifyTimeouts).toBe(1);
      expect(slow.pending.bytes).toBe(500);
      // The first call still runs: the client's next datagrams start no second one.
      slow.handleDatagram(Buffer.alloc(500), client);
      slow.handleDatagram(Buffer.alloc(500), client);
      expect(answers).toHaveLength(1);
      expect(counters.drops['mapper-busy']).toBe(2);
      answers[0]!({ action: 'wait' });
      await sleep(0);
      expect(slow.pending.bytes).toBe(0);
      slow.handleDatagram(Buffer.alloc(500), client);
      expect(answers).toHaveLength(2);
      expect(counters.mapperCalls).toBe(2);
    } finally {
      slow.shutdown();
    }
  });
});

describe('SlowPath under a flood of first datagrams that never go on', () => {
  it('pushes out the client that has waited longest, so a real client still gets its flow', async () => {
    const target = { address: '127.0.0.9', port: 7000 };
    const events: BalancerEvent[] = [];
    const counters = new Counters();
    const slow = new SlowPath({
      vip: { address: '127.0.0.1', port: 5000 },
      snatAddress: '127.0.0.1',
      reply: () => undefined,
      // A hello in two datagrams: the forged clients only ever send the first.
      mapper: { findFlow: (_c, packets) => (packets.length < 2 ? { action: 'wait' } : { action: 'forward', flow: { dstAddr: target } }) },
      datapath: tableDatapath(),
      pools: new SnatPortPools({ min: 10000, max: 10010 }),
      counters,
      emit: (e) => events.push(e),
      limits: { ...DEFAULT_LIMITS, maxPendingClients: 50 },
      dropHoldMs: 0,
    });
    try {
      for (let i = 0; i < 1000; i++) slow.handleDatagram(Buffer.from('first'), { address: `10.9.${i >> 8}.${i & 255}`, port: 4000 });
      expect(slow.pending.size).toBe(50);
      expect(counters.drops['pending-evicted']).toBe(950);
      const real = { address: '192.0.2.7', port: 5555 };
      slow.handleDatagram(Buffer.from('first'), real);
      slow.handleDatagram(Buffer.from('second'), real);
      for (let i = 0; i < 200 && !events.some((e) => e.type === 'flow-created'); i++) await sleep(5);
      expect(events.find((e) => e.type === 'flow-created')).toMatchObject({ pair: { client: real }, datagrams: 2 });
      expect(events.filter((e) => e.type === 'client-dropped' && e.reason === 'pending-evicted')).toHaveLength(951);
    } finally {
      slow.shutdown();
    }
  });
});

describe('SlowPath when the pending bytes run out', () => {
  it('pushes out the oldest waiting clients for a new one, and never another datagram of a known client', () => {
    const counters = new Counters();
    const slow = new SlowPath({
      vip: { address: '127.0.0.1', port: 5000 },
      snatAddress: '127.0.0.1',
      reply: () => undefined,
      mapper: { findFlow: () => ({ action: 'wait' }) },
      datapath: tableDatapath(),
      pools: new SnatPortPools({ min: 10000, max: 10010 }),
      counters,
      emit: () => undefined,
      limits: { ...DEFAULT_LIMITS, maxTotalBytes: 1000 },
      dropHoldMs: 0,
    });
    const from = (i: number) => ({ address: `10.9.0.${i}`, port: 4000 });
    try {
      for (let i = 1; i <= 3; i++) slow.handleDatagram(Buffer.alloc(300), from(i));
      // A known client's next datagram does not push anyone out.
      slow.handleDatagram(Buffer.alloc(300), from(3));
      expect(counters.drops['total-bytes-limit']).toBe(1);
      // A new client of 600 bytes makes room by pushing out the two oldest.
      slow.handleDatagram(Buffer.alloc(600), from(4));
      expect(counters.drops['pending-evicted']).toBe(2);
      expect([1, 2, 3, 4].map((i) => slow.pending.get(`10.9.0.${i}:4000`) !== undefined)).toEqual([false, false, true, true]);
      expect(slow.pending.bytes).toBe(900);
    } finally {
      slow.shutdown();
    }
  });
});

describe('SlowPath mapper replies', () => {
  function replying(decide: (packets: readonly Uint8Array[]) => Decision) {
    const sent: { to: { address: string; port: number }; datagrams: Buffer[] }[] = [];
    const counters = new Counters();
    const events: BalancerEvent[] = [];
    const datapath = tableDatapath();
    const slow = new SlowPath({
      vip: { address: '127.0.0.1', port: 5000 },
      snatAddress: '127.0.0.1',
      reply: (to, datagrams) => sent.push({ to, datagrams: [...datagrams] }),
      mapper: { findFlow: (_c, packets) => decide(packets) },
      datapath,
      pools: new SnatPortPools({ min: 10000, max: 10010 }),
      counters,
      emit: (e) => events.push(e),
      limits: { ...DEFAULT_LIMITS },
      dropHoldMs: 10_000,
    });
    return { slow, sent, counters, events, datapath };
  }
  const client = { address: '127.0.0.2', port: 4000 };

  it('answers the client, keeps no state, and classifies its next datagram afresh', () => {
    const challenge = Buffer.from('come back with this');
    const target = { address: '127.0.0.9', port: 7000 };
    const { slow, sent, counters, datapath } = replying((packets) =>
      Buffer.from(packets[0]!).toString().startsWith('cookie') ? { action: 'forward', flow: { dstAddr: target } } : { action: 'reply', datagrams: [challenge], reason: 'no cookie' },
    );
    try {
      slow.handleDatagram(Buffer.from('first hello, a little longer than the answer'), client);
      expect(sent).toEqual([{ to: client, datagrams: [challenge] }]);
      expect(slow.pending.size).toBe(0);
      expect(slow.held).toBe(0);
      expect(counters.mapperReplies).toBe(1);
      expect(counters.drops.answered).toBe(1);
      // Not held off: the answer asked the client to come back.
      slow.handleDatagram(Buffer.from('cookie: come back with this'), client);
      expect(counters.drops['drop-hold']).toBe(0);
      expect(counters.mapperCalls).toBe(2);
    } finally {
      slow.shutdown();
    }
    return new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      expect(counters.flowsCreated).toBe(1);
      expect(datapath.table.size).toBe(2);
    });
  });

  it('refuses a reply larger than what the client sent, and replies that are not datagrams', () => {
    for (const datagrams of [[Buffer.alloc(100)], [], ['text'], undefined]) {
      const { slow, sent, counters, events } = replying(() => ({ action: 'reply', datagrams, reason: 'x' }) as unknown as Decision);
      try {
        slow.handleDatagram(Buffer.alloc(40), client);
        expect(sent).toEqual([]);
        expect(counters.drops['invalid-decision']).toBe(1);
        expect(events.find((e) => e.type === 'client-dropped')).toMatchObject({ reason: 'invalid-decision' });
      } finally {
        slow.shutdown();
      }
    }
  });
});

describe('SlowPath and mappers that keep state per client', () => {
  it('releases every client once the balancer is done with it: forwarded, dropped or timed out', async () => {
    const released: string[] = [];
    const target = { address: '127.0.0.9', port: 7000 };
    const mapper: FlowMapper = {
      findFlow: (_c, packets): Decision => {
        const text = Buffer.from(packets.at(-1)!).toString();
        if (text === 'go') return { action: 'forward', flow: { dstAddr: target } };
        if (text === 'no') return { action: 'drop', reason: 'no' };
        return { action: 'wait' };
      },
      release: (c) => released.push(`${c.address}:${c.port}`),
    };
    const slow = new SlowPath({
      vip: { address: '127.0.0.1', port: 5000 },
      snatAddress: '127.0.0.1',
      reply: () => undefined,
      mapper,
      datapath: tableDatapath(),
      pools: new SnatPortPools({ min: 10000, max: 10010 }),
      counters: new Counters(),
      emit: () => undefined,
      limits: { ...DEFAULT_LIMITS, classifyTimeoutMs: 50 },
      dropHoldMs: 0,
    });
    try {
      slow.handleDatagram(Buffer.from('hello'), { address: '127.0.0.2', port: 1 });
      slow.handleDatagram(Buffer.from('go'), { address: '127.0.0.2', port: 1 });
      slow.handleDatagram(Buffer.from('no'), { address: '127.0.0.2', port: 2 });
      slow.handleDatagram(Buffer.from('hello'), { address: '127.0.0.2', port: 3 });
      await sleep(20);
      expect(released.sort()).toEqual(['127.0.0.2:1', '127.0.0.2:2']);
      for (let i = 0; i < 100 && released.length < 3; i++) await sleep(20);
      expect(released.sort()).toEqual(['127.0.0.2:1', '127.0.0.2:2', '127.0.0.2:3']);
    } finally {
      slow.shutdown();
    }
  });
});

describe('SlowPath flows per target', () => {
  it('counts created, refused and active flows under the target the mapper chose', async () => {
    const a = { address: '127.0.0.9', port: 7000 };
    const b = { address: '127.0.0.10', port: 7000 };
    // Clients on an even port go to a, odd ones to b.
    const mapper: FlowMapper = {
      findFlow: (client): Decision => ({ action: 'forward', flow: { dstAddr: client.port % 2 === 0 ? a : b } }),
    };
    const counters = new Counters();
    const pools = new SnatPortPools({ min: 10000, max: 10002 });
    const datapath = tableDatapath();
    const slow = new SlowPath({
      vip: { address: '127.0.0.1', port: 5000 },
      snatAddress: '127.0.0.1',
      reply: () => undefined,
      mapper,
      datapath,
      pools,
      counters,
      emit: () => undefined,
      limits: { ...DEFAULT_LIMITS },
      dropHoldMs: 0,
    });
    try {
      // Three ports per target: a's fourth and fifth clients are refused, b takes its two.
      for (const port of [4000, 4002, 4004, 4006, 4008, 4001, 4003]) slow.handleDatagram(Buffer.from('x'), { address: '127.0.0.2', port });
      for (let i = 0; i < 200 && counters.flowsCreated + counters.flowsRefused < 7; i++) await sleep(5);
    } finally {
      slow.shutdown();
    }
    expect(counters.targets.snapshot(pools.inUseByTarget())).toEqual({
      '127.0.0.9:7000': { active: 3, created: 3, refused: 2 },
      '127.0.0.10:7000': { active: 2, created: 2, refused: 0 },
    });
    // A flow that ends leaves its target's created count and lowers its active one.
    const [record] = [...datapath.table.pairs()].filter((r) => r.pair.target.port === 7000 && r.pair.target.address === b.address);
    datapath.table.removePair(record!.pair);
    slow.flowRemoved(record!.pair);
    expect(counters.targets.snapshot(pools.inUseByTarget())['127.0.0.10:7000']).toEqual({ active: 1, created: 2, refused: 0 });
  });
});
