import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forwardEntry } from '@flowlb/flow-table';
import { LoadBalancer } from './balancer.js';
import type { BalancerEvent } from './events.js';
import type { BalancerStats } from './stats.js';
import { accountedVipDatagrams } from './test-support/accounting.js';
import { scenarioMapper } from './test-support/scenario-mapper.js';
import { EchoBackend, PushBackend, TestClient, waitUntil } from './test-support/udp-peers.js';

// Everything on loopback addresses of its own (127.77.0.0/16), in this process, without privileges.
const VIP = { address: '127.77.0.10', port: 5000 };
const VIP_TEXT = `${VIP.address}:${VIP.port}`;
const SNAT = '127.77.0.11';
const SNAT_PORTS = { min: 21000, max: 21999 };
const TARGETS = [
  { address: '127.77.0.20', port: 7000 },
  { address: '127.77.0.21', port: 7000 },
  { address: '127.77.0.22', port: 7000 },
  { address: '127.77.0.23', port: 7000 },
];

/** Conservation: every datagram that reached the VIP is forwarded, dropped or waiting, once. */
async function expectAllAccounted(lb: LoadBalancer): Promise<BalancerStats> {
  await waitUntil(() => {
    const s = lb.stats();
    return s.datagrams.slowPathIn === accountedVipDatagrams(s);
  }, 5000, 'every VIP datagram to be accounted for');
  return lb.stats();
}

describe('LoadBalancer, userspace datapath on loopback', () => {
  const mapper = scenarioMapper(TARGETS);
  const events: BalancerEvent[] = [];
  const clients: TestClient[] = [];
  let lb: LoadBalancer;
  let echoes: EchoBackend[];
  let pusher: PushBackend;

  const client = async (address: string, port = 0): Promise<TestClient> => {
    const c = await TestClient.open(address, port);
    clients.push(c);
    return c;
  };
  const callsOf = (c: TestClient) => mapper.calls.filter((k) => k.client === c.local);

  beforeAll(async () => {
    echoes = [
      await EchoBackend.start('b0', TARGETS[0]!.address, TARGETS[0]!.port),
      await EchoBackend.start('b1', TARGETS[1]!.address, TARGETS[1]!.port),
      await EchoBackend.start('b3', TARGETS[3]!.address, TARGETS[3]!.port),
    ];
    pusher = await PushBackend.start(TARGETS[2]!.address, TARGETS[2]!.port, 20, 150);
    lb = new LoadBalancer({
      vip: VIP,
      snatAddress: SNAT,
      snatPorts: SNAT_PORTS,
      mapper,
      datapath: 'userspace',
      connTtlSec: 1,
      sweepIntervalMs: 100,
      dropHoldMs: 1000,
      limits: { classifyTimeoutMs: 500 },
      onEvent: (e) => events.push(e),
    });
    await lb.start();
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await lb?.stop();
    for (const e of echoes ?? []) e.close();
    pusher?.close();
  });

  it('reports the datapath it runs and why', () => {
    expect(lb.state).toBe('running');
    expect(lb.datapath).toBe('userspace');
    expect(lb.datapathChoice?.reason).toMatch(/userspace/);
    expect(events).toContainEqual({ type: 'datapath', kind: 'userspace', reason: lb.datapathChoice!.reason });
    expect(lb.stats().datapath).toBe('userspace');
  });

  it('balances 50 clients over two backends; every reply, the first included, comes back from the VIP', async () => {
    const many = await Promise.all(Array.from({ length: 50 }, (_, i) => client(`127.77.1.${1 + (i % 5)}`)));
    const before = lb.stats();
    const results = await Promise.all(
      many.map(async (c, i) => {
        const replies = [];
        for (let seq = 0; seq < 5; seq++) replies.push(await c.request(`to:${i % 2}:c${i}#${seq}`, VIP));
        return replies;
      }),
    );
    results.forEach((replies, i) => {
      replies.forEach((r, seq) => {
        expect(r, `client ${i} reply ${seq}`).toBeDefined();
        expect(r!.from).toBe(VIP_TEXT);
        expect(r!.data).toBe(`b${i % 2}|to:${i % 2}:c${i}#${seq}`);
      });
    });

    // Each backend saw each of its clients from one SNAT port of its own, in the configured range.
    for (const [b, echo] of echoes.slice(0, 2).entries()) {
      const portByClient = new Map<string, Set<string>>();
      for (const r of echo.received.filter((x) => /#\d$/.test(x.data))) {
        const who = /c(\d+)#/.exec(r.data)![1]!;
        expect(Number(who) % 2).toBe(b);
        const [addr, port] = r.from.split(':');
        expect(addr).toBe(SNAT);
        expect(Number(port)).toBeGreaterThanOrEqual(SNAT_PORTS.min);
        expect(Number(port)).toBeLessThanOrEqual(SNAT_PORTS.max);
        portByClient.set(who, (portByClient.get(who) ?? new Set()).add(r.from));
      }
      expect(portByClient.size).toBe(25);
      for (const ports of portByClient.values()) expect(ports.size).toBe(1);
      expect(new Set([...portByClient.values()].map((s) => [...s][0])).size).toBe(25);
    }
    // One pool per target: the same SNAT ports serve both backends at once, without a clash.
    const portsOf = (e: EchoBackend) => new Set(e.received.map((r) => r.from));
    const shared = [...portsOf(echoes[0]!)].filter((p) => portsOf(echoes[1]!).has(p));
    expect(shared.length).toBeGreaterThanOrEqual(20);
    expect(events.filter((e) => e.type === 'snat-port-quarantined')).toEqual([]);

    const s = await expectAllAccounted(lb);
    expect(s.flows.created - before.flows.created).toBe(50);
    expect(s.datagrams.forwardedNew - before.datagrams.forwardedNew).toBe(50);
    expect(s.datagrams.userspaceForward - before.datagrams.userspaceForward).toBe(200);
    expect(s.datagrams.userspaceReverse - before.datagrams.userspaceReverse).toBe(250);
    expect(s.classification.calls - before.classification.calls).toBe(50);
    expect(s.classification.count).toBe(s.classification.calls - s.classification.inFlight);
    expect(JSON.parse(JSON.stringify(s))).toEqual(s);
  });

  it('a mapper that waits for a second datagram sees both, and the backend gets both from the flow port', async () => {
    const c = await client('127.77.1.10');
    await c.send('wait:first', VIP);
    await waitUntil(() => callsOf(c).length === 1, 2000, 'the first mapper call');
    expect(c.received).toEqual([]);
    await c.send('wait:second', VIP);
    await waitUntil(() => c.received.length === 2, 2000, 'two replies');
    expect(callsOf(c).map((k) => [k.packets, k.answer])).toEqual([
      [['wait:first'], 'wait'],
      [['wait:first', 'wait:second'], 'to 0'],
    ]);
    expect(c.received).toEqual([
      { from: VIP_TEXT, data: 'b0|wait:first' },
      { from: VIP_TEXT, data: 'b0|wait:second' },
    ]);
    const seen = echoes[0]!.received.filter((r) => r.data.startsWith('wait:'));
    expect(seen.map((r) => r.data)).toEqual(['wait:first', 'wait:second']);
    expect(seen[0]!.from).toBe(seen[1]!.from);
  });

  it('buffers datagrams that arrive while the mapper decides and asks again with all of them', async () => {
    const c = await client('127.77.1.11');
    for (const n of [1, 2, 3]) await c.send(`slowwait:${n}`, VIP);
    await waitUntil(() => c.received.length === 3, 3000, 'three replies');
    // One call ran while datagrams 2 and 3 arrived; it said wait, so the second call saw all three.
    const calls = callsOf(c);
    expect(calls.map((k) => k.packets.length)).toEqual([1, 3]);
    expect(c.received.map((r) => r.data)).toEqual(['b0|slowwait:1', 'b0|slowwait:2', 'b0|slowwait:3']);

    const d = await client('127.77.1.12');
    for (const n of [1, 2, 3, 4]) await d.send(`slow:${n}`, VIP);
    await waitUntil(() => d.received.length === 4, 3000, 'four replies');
    expect(callsOf(d)).toHaveLength(1);
    expect(d.received.map((r) => r.data)).toEqual(['b0|slow:1', 'b0|slow:2', 'b0|slow:3', 'b0|slow:4']);
  });

  it('keeps a flow whose traffic goes from server to client only', async () => {
    const c = await client('127.77.1.20');
    await c.send('to:2:push me', VIP);
    // 20 pushes, 150 ms apart: three seconds of a silent client with a one-second TTL.
    await waitUntil(() => c.received.length === 20, 10_000, 'twenty pushes');
    expect(c.received.every((r) => r.from === VIP_TEXT)).toBe(true);
    expect(c.received.map((r) => r.data)).toEqual(Array.from({ length: 20 }, (_, i) => `push ${i}`));
    const expired = events.filter((e) => e.type === 'flow-expired' && e.pair.client.port === c.port);
    expect(expired).toEqual([]);
    const fwd = forwardEntry({
      client: { address: '127.77.1.20', port: c.port },
      vip: VIP,
      snat: { address: SNAT, port: 0 },
      target: TARGETS[2]!,
    })[0];
    expect(lb.table!.get(fwd)).toBeDefined();
  });

  it('expires an idle flow after the TTL, closes its socket and frees its port, which rests while others are free', async () => {
    const a = await client('127.77.1.30');
    expect((await a.request('to:3:a', VIP))?.data).toBe('b3|to:3:a');
    const portA = echoes[2]!.received.at(-1)!.from;
    const sockets = (): number => lb.stats().userspace!.flowSockets!;
    const open = sockets();
    const isA = (e: BalancerEvent): boolean => e.type === 'flow-expired' && e.pair.client.port === a.port;
    await waitUntil(() => events.some(isA), 10_000, 'the idle flow to expire');
    const expiredEvent = events.find(isA) as Extract<BalancerEvent, { type: 'flow-expired' }>;
    expect(expiredEvent.idleMs).toBeGreaterThan(1000);
    expect(`${expiredEvent.pair.snat.address}:${expiredEvent.pair.snat.port}`).toBe(portA);
    expect(sockets()).toBeLessThan(open);

    const inUse = lb.stats().snat.portsInUse;
    const b = await client('127.77.1.31');
    expect((await b.request('to:3:b', VIP))?.data).toBe('b3|to:3:b');
    // The next client of that backend does not get the port the expired flow has just left.
    expect(echoes[2]!.received.at(-1)!.from).not.toBe(portA);
    expect(lb.stats().snat.portsInUse).toBe(inUse + 1);
    // The expired client is a new flow now, classified afresh.
    const callsBefore = callsOf(a).length;
    expect((await a.request('to:3:again', VIP))?.data).toBe('b3|to:3:again');
    expect(callsOf(a)).toHaveLength(callsBefore + 1);
  });

  it('a mapper that throws, rejects, hangs, drops or answers nonsense hurts no other flow', async () => {
    const bad = {
      throw: await client('127.77.1.40'),
      reject: await client('127.77.1.41'),
      hang: await client('127.77.1.42'),
      drop: await client('127.77.1.43'),
      garbage: await client('127.77.1.44'),
    };
    const good = await Promise.all(Array.from({ length: 10 }, () => client('127.77.1.45')));
    const before = lb.stats();
    for (const [kind, c] of Object.entries(bad)) await c.send(`${kind}:x`, VIP);
    const replies = await Promise.all(
      good.map(async (c, i) => {
        const out = [];
        for (let seq = 0; seq < 5; seq++) out.push(await c.request(`to:${i % 2}:g${i}#${seq}`, VIP));
        return out;
      }),
    );
    for (const [i, r] of replies.entries()) expect(r.map((x) => x?.data)).toEqual(r.map((_, seq) => `b${i % 2}|to:${i % 2}:g${i}#${seq}`));

    await waitUntil(() => lb.stats().classification.timeouts > before.classification.timeouts, 5000, 'the hanging call to time out');
    const s = await expectAllAccounted(lb);
    expect(s.drops['mapper-error'] - before.drops['mapper-error']).toBe(2);
    expect(s.classification.errors - before.classification.errors).toBe(2);
    expect(s.drops['mapper-drop'] - before.drops['mapper-drop']).toBe(1);
    expect(s.drops['invalid-decision'] - before.drops['invalid-decision']).toBe(1);
    expect(s.drops['classify-timeout'] - before.drops['classify-timeout']).toBe(1);
    expect(s.classification.inFlight).toBe(1);
    for (const c of Object.values(bad)) expect(c.received).toEqual([]);

    const errorEvents = events.filter((e) => e.type === 'mapper-error').map((e) => (e as { client: { port: number } }).client.port);
    expect(errorEvents).toEqual(expect.arrayContaining([bad.throw.port, bad.reject.port]));
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'client-dropped', reason: 'classify-timeout', client: { address: '127.77.1.42', port: bad.hang.port } }),
    );

  });

  it('holds a dropped client off for dropHoldMs without asking the mapper, then classifies it afresh', async () => {
    const c = await client('127.77.1.46');
    const failed = (): boolean => events.some((e) => e.type === 'mapper-error' && e.client.port === c.port);
    await c.send('throw:first', VIP);
    await waitUntil(failed, 2000, 'the mapper error');
    const held = lb.stats().drops['drop-hold'];
    await c.send('to:0:retry', VIP);
    await waitUntil(() => lb.stats().drops['drop-hold'] === held + 1, 2000, 'a held datagram');
    expect(callsOf(c)).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 1100));
    expect((await c.request('to:0:later', VIP))?.data).toBe('b0|to:0:later');
    expect(callsOf(c).map((k) => k.answer)).toEqual(['throw', 'to 0']);
  });
});

describe('LoadBalancer, userspace datapath under a flood', () => {
  const FLOOD_VIP = { address: '127.77.0.50', port: 5000 };
  const target = { address: '127.77.0.51', port: 7000 };
  let lb: LoadBalancer;
  let echo: EchoBackend;
  const sockets: TestClient[] = [];

  beforeAll(async () => {
    echo = await EchoBackend.start('e', target.address, target.port);
    lb = new LoadBalancer({
      vip: FLOOD_VIP,
      snatPorts: { min: 22000, max: 22999 },
      mapper: scenarioMapper([target]),
      datapath: 'userspace',
      limits: { maxPendingClients: 100, maxDatagramsPerClient: 4, maxTotalBytes: 16 * 1024, classifyTimeoutMs: 1500 },
      receiveBufferBytes: 4 * 1024 * 1024,
    });
    await lb.start();
  });

  afterAll(async () => {
    for (const s of sockets) s.close();
    await lb?.stop();
    echo?.close();
  });

  it('keeps pending clients and bytes within the limits, counts every drop, and established flows keep flowing', async () => {
    const established = await TestClient.open('127.77.3.1');
    sockets.push(established);
    expect((await established.request('to:0:hello', FLOOD_VIP))?.data).toBe('e|to:0:hello');
    // One source that keeps sending junk hits the per-client datagram limit.
    const chatty = await TestClient.open('127.77.4.2');
    sockets.push(chatty);
    for (let i = 0; i < 20; i++) await chatty.send('junk', FLOOD_VIP);
    await waitUntil(() => lb.stats().drops['client-datagrams-limit'] === 16, 2000, 'the chatty client to hit its limit');

    // 3000 junk sources, 200 at a time, two datagrams each; the established client keeps talking throughout.
    const payload = Buffer.alloc(100, 'j');
    let exchanges = 0;
    let answered = 0;
    for (let batch = 0; batch < 15; batch++) {
      const junk = await Promise.all(Array.from({ length: 200 }, () => TestClient.open('127.77.4.1')));
      await Promise.all(junk.map(async (j) => {
        await j.send(payload, FLOOD_VIP);
        await j.send(payload, FLOOD_VIP);
      }));
      exchanges++;
      if ((await established.request(`to:0:during ${batch}`, FLOOD_VIP))?.data === `e|to:0:during ${batch}`) answered++;
      for (const j of junk) j.close();
    }

    const s = await expectAllAccounted(lb);
    expect(answered).toBe(exchanges);
    expect(s.pending.clients).toBeLessThanOrEqual(100);
    expect(s.pending.bytes).toBeLessThanOrEqual(16 * 1024);
    expect(s.pending.datagrams).toBeLessThanOrEqual(400);
    // The table stays full: each new junk client pushes out the one that has waited longest.
    expect(s.drops['pending-evicted']).toBeGreaterThan(2000);
    expect(s.drops['client-datagrams-limit']).toBe(16);
    expect(s.datagrams.slowPathIn).toBeGreaterThan(3000);
    // What the kernel dropped before the balancer read it is counted apart, never silently.
    expect(s.datagrams.socketDrops).toBeTypeOf('number');
    expect(s.datagrams.slowPathIn + s.datagrams.socketDrops!).toBeGreaterThanOrEqual(6000 + 20);
    expect(s.flows.created).toBe(1);

    // Once their time is up, the junk clients go and the memory with them.
    await waitUntil(() => lb.stats().pending.clients === 0, 10_000, 'the pending clients to time out');
    const after = await expectAllAccounted(lb);
    expect(after.pending.bytes).toBe(0);
    expect(after.drops['classify-timeout']).toBeGreaterThan(0);
    expect((await established.request('to:0:after', FLOOD_VIP))?.data).toBe('e|to:0:after');
  });
});

describe('LoadBalancer, userspace datapath at its limits', () => {
  const LIMIT_VIP = { address: '127.77.0.60', port: 5000 };
  const targets = [
    { address: '127.77.0.61', port: 7000 },
    { address: '127.77.0.62', port: 7000 },
    { address: '127.77.0.63', port: 7000 },
  ];
  const events: BalancerEvent[] = [];
  const open: TestClient[] = [];
  let lb: LoadBalancer;
  let echoes: EchoBackend[];

  const ask = async (payload: string): Promise<string | undefined> => {
    const c = await TestClient.open('127.77.5.1');
    open.push(c);
    return (await c.request(payload, LIMIT_VIP, 1000))?.data;
  };

  beforeAll(async () => {
    echoes = await Promise.all(targets.map((t, i) => EchoBackend.start(`t${i}`, t.address, t.port)));
    lb = new LoadBalancer({
      vip: LIMIT_VIP,
      snatPorts: { min: 23000, max: 23001 },
      mapper: scenarioMapper(targets),
      datapath: 'userspace',
      limits: { maxFlows: 4 },
      onEvent: (e) => events.push(e),
    });
    await lb.start();
  });

  afterAll(async () => {
    for (const c of open) c.close();
    await lb?.stop();
    for (const e of echoes ?? []) e.close();
  });

  it('refuses a new flow when its target has no SNAT port left, counts and reports it, and serves other targets', async () => {
    expect(await ask('to:0:a')).toBe('t0|to:0:a');
    expect(await ask('to:0:b')).toBe('t0|to:0:b');
    expect(await ask('to:0:c')).toBeUndefined();
    const s = lb.stats();
    expect(s.flows.refused).toBe(1);
    expect(s.drops['snat-exhausted']).toBe(1);
    expect(s.snat.portsInUse).toBe(2);
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'flow-refused', reason: 'snat-exhausted', target: targets[0] }),
    );
    // Another target has a pool of its own: the same two ports are free there.
    expect(await ask('to:1:d')).toBe('t1|to:1:d');
    expect(echoes[1]!.received[0]!.from).toBe('127.77.0.60:23000');
  });

  it('refuses flows beyond limits.maxFlows', async () => {
    expect(await ask('to:1:e')).toBe('t1|to:1:e');
    expect(lb.stats().flows.active).toBe(4);
    expect(await ask('to:2:f')).toBeUndefined();
    const s = lb.stats();
    expect(s.drops['flow-limit']).toBe(1);
    expect(s.flows.refused).toBe(2);
    expect(events).toContainEqual(expect.objectContaining({ type: 'flow-refused', reason: 'flow-limit', target: targets[2] }));
    expect(echoes[2]!.received).toEqual([]);
  });
});

describe("LoadBalancer with datapath 'auto' and no interfaces", () => {
  it('chooses userspace, says why, and frees the VIP on stop', async () => {
    const vip = { address: '127.77.0.70', port: 5000 };
    const events: BalancerEvent[] = [];
    const lb = new LoadBalancer({ vip, mapper: scenarioMapper([]), onEvent: (e) => events.push(e) });
    await lb.start();
    try {
      expect(lb.datapathChoice).toEqual({ kind: 'userspace', reason: 'auto: no interfaces were given to attach XDP to' });
      expect(lb.stats().datapathReason).toBe('auto: no interfaces were given to attach XDP to');
      expect(events[0]).toEqual({ type: 'datapath', kind: 'userspace', reason: 'auto: no interfaces were given to attach XDP to' });
      await expect(lb.start()).rejects.toThrow(/start\(\) called in state 'running'/);
    } finally {
      await lb.stop();
    }
    expect(lb.state).toBe('stopped');
    expect(events.at(-1)).toEqual({ type: 'stopped' });
    // The VIP is free again.
    const again = new LoadBalancer({ vip, mapper: scenarioMapper([]) });
    await again.start();
    await again.stop();
  });

  it('refuses to start on a VIP that is taken, saying so, and leaves nothing running', async () => {
    const vip = { address: '127.77.0.71', port: 5000 };
    const holder = await TestClient.open(vip.address, vip.port);
    try {
      const lb = new LoadBalancer({ vip, mapper: scenarioMapper([]), datapath: 'userspace' });
      await expect(lb.start()).rejects.toThrow('LoadBalancer: cannot bind the VIP 127.77.0.71:5000 (EADDRINUSE): another socket is bound there');
      expect(lb.state).toBe('stopped');
    } finally {
      holder.close();
    }
  });
});
