import { afterAll, beforeAll, expect, it } from 'vitest';
import type { FlowPair } from '@flowlb/flow-table';
import {
  describePrivileged,
  runUdpClient,
  startUdpEcho,
  twoArmedTopology,
  type ClientSummary,
  type EchoRecord,
  type TwoArmed,
  type UdpEcho,
} from '@flowlb/testkit';
import { XdpForwarder } from './index.js';

const VIP_PORT = 5000;
const BACKEND_PORT = 7000;
/** The stream: a datagram every few ms for a few seconds, long enough for a change in its middle. */
const STREAM = { count: 600, intervalMs: 4 };
/** Datagrams that may still have been on their way when a change became known. */
const IN_FLIGHT = 4;

const seqOf = (r: { data: string }): number => Number(/#(\d+)$/.exec(r.data)?.[1] ?? -1);

/** Resolves once `cond` holds, checking every few ms; rejects after `timeoutMs`. */
async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/*
 * The program caches next hops; the forwarder drops them when rtnetlink reports a change. While a stream of
 * datagrams runs, a backend's MAC changes, then its route moves to another interface and gateway, then that link goes
 * down: once the forwarder has seen each change, every datagram goes the new way and none the old.
 */
describePrivileged('XdpForwarder follows route, neighbour and link changes', () => {
  let net: TwoArmed;
  let fwd: XdpForwarder;
  let be1: UdpEcho;
  let be2: UdpEcho;
  let be2Ns: string;
  const alt = { lb: '10.201.3.1', be2: '10.201.3.10' };
  let altIf: string;
  let port = 44000;

  beforeAll(async () => {
    net = await twoArmedTopology({ clients: 1, backends: 1, xdpPassOnPeers: 'native', staticNeighbors: true });
    const topo = net.topology;
    // A second path to the backend's address: another interface of the balancer, to a host that has it too.
    be2Ns = await topo.addNamespace('be2');
    altIf = topo.uniqueIfname('alt');
    await topo.addVethPair(net.lb.ns, altIf, be2Ns, 'eth0', { addrA: `${alt.lb}/24`, addrB: `${alt.be2}/24` });
    await topo.addAddress(be2Ns, 'eth0', `${net.backends[0]!.addr}/32`);
    await topo.addRoute(be2Ns, 'default', { via: alt.lb });
    await topo.attachXdpPass(be2Ns, 'eth0');
    await topo.addNeighbor(net.lb.ns, altIf, alt.be2, await topo.mac(be2Ns, 'eth0'));
    await topo.sysctl(be2Ns, { 'net.ipv4.conf.all.rp_filter': 0, 'net.ipv4.conf.eth0.rp_filter': 0 });

    fwd = await XdpForwarder.load({ netns: net.lb.ns, flowsMaxEntries: 1024 });
    fwd.attach([net.lb.front.ifname, net.lb.back.ifname, altIf], { mode: 'native' });
    const addr = net.backends[0]!.addr;
    be1 = await startUdpEcho(topo, net.backends[0]!.ns, { addr, port: BACKEND_PORT, prefix: 'be1:' });
    be2 = await startUdpEcho(topo, be2Ns, { addr, port: BACKEND_PORT, prefix: 'be2:' });
  });

  afterAll(async () => {
    await be1?.stop().catch(() => {});
    await be2?.stop().catch(() => {});
    fwd?.close();
    await net?.destroy();
  });

  /**
   * Runs a stream through a new flow and makes `change` in its middle. Returns, for the datagrams sent after the
   * forwarder took the change into account, which backend got each, and what the client heard back.
   */
  async function streamAcross(change: () => Promise<void>): Promise<{ after: number; got: Map<number, string>; client: ClientSummary }> {
    const vip = { address: net.lb.front.addr, port: VIP_PORT };
    const pair: FlowPair = {
      client: { address: net.client.addr, port: ++port },
      vip,
      snat: { address: net.lb.back.addr, port: port - 20000 },
      target: { address: net.backends[0]!.addr, port: BACKEND_PORT },
    };
    fwd.table.installPair(pair, process.hrtime.bigint());
    const mine = (r: EchoRecord): boolean => r.from === `${pair.snat.address}:${pair.snat.port}`;
    const received = (): EchoRecord[] => [...be1.lines(), ...be2.lines()].filter(mine);
    const stream = runUdpClient(net.topology, net.client.ns, {
      target: vip,
      bind: `${pair.client.address}:${pair.client.port}`,
      ...STREAM,
      payload: 'stream #{seq}',
      timeoutMs: 2000,
    });
    await until(() => received().length >= 50, 10_000, 'the stream to reach a backend');
    const gen = fwd.nextHopGeneration;
    await change();
    await until(() => fwd.nextHopGeneration !== gen, 5_000, 'the forwarder to see the change');
    // Everything sent from here on must go the new way.
    const after = Math.max(-1, ...received().map(seqOf)) + IN_FLIGHT + 1;
    const client = await stream;
    const got = new Map<number, string>();
    for (const r of be1.lines().filter(mine)) got.set(seqOf(r), 'be1');
    for (const r of be2.lines().filter(mine)) got.set(seqOf(r), got.has(seqOf(r)) ? 'both' : 'be2');
    expect(after).toBeLessThan(STREAM.count - 100);
    return { after, got, client };
  }

  function expectAllTo(r: { after: number; got: Map<number, string>; client: ClientSummary }, backend: 'be1' | 'be2'): void {
    const wrong: string[] = [];
    for (let seq = r.after; seq < STREAM.count; seq++) {
      if (r.got.get(seq) !== backend) wrong.push(`#${seq}: ${r.got.get(seq) ?? 'lost'}`);
    }
    expect(wrong, `datagrams sent after the change was known that did not reach ${backend}`).toEqual([]);
    expect(r.client.lostSeqs.filter((s) => s >= r.after)).toEqual([]);
  }

  it('a backend whose MAC changed: once its neighbour entry says so, nothing goes to the old MAC', async () => {
    const topo = net.topology;
    const b = net.backends[0]!;
    const r = await streamAcross(async () => {
      // The backend's interface takes a new address (as a new card would); frames to the old one are lost from here.
      await topo.ip(b.ns, 'link', 'set', 'dev', 'eth0', 'address', '02:00:00:99:00:01');
      await topo.addNeighbor(net.lb.ns, net.lb.back.ifname, b.addr, '02:00:00:99:00:01');
    });
    expectAllTo(r, 'be1');
  });

  it('a route moved to another interface and gateway: every datagram follows it', async () => {
    const r = await streamAcross(async () => {
      await net.topology.addRoute(net.lb.ns, `${net.backends[0]!.addr}/32`, { via: alt.be2, dev: altIf });
    });
    expectAllTo(r, 'be2');
  });

  it('the link of that route going down: every datagram goes back to the route that is left', async () => {
    const r = await streamAcross(async () => {
      await net.topology.setLinkUp(net.lb.ns, altIf, false);
    });
    expectAllTo(r, 'be1');
  });
});
