import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  describePrivileged,
  listNamespaces,
  startUdpEcho,
  twoArmedTopology,
  type Spawned,
  type TwoArmed,
  type UdpEcho,
} from '@flowlb/testkit';
import type { BalancerStats } from './stats.js';
import { accountedVipDatagrams } from './test-support/accounting.js';
import { bundlePeerCli } from './test-support/bundle.js';
import { LbProcess, runPeer, type LbEvent } from './test-support/lb-process.js';
import type { LbConfig } from './test-support/peer-cli.js';
import { waitUntil } from './test-support/udp-peers.js';

interface Reply {
  from: string;
  data: string;
}
type ClientsResult = { clients: { port: number; replies: (Reply | null)[] }[] };
type SendResult = { received: Reply[] };

const VIP_PORT = 5000;

// The balancer runs as its own process inside the LB namespace, where its VIP socket must live, with XDP attached
// to both of its interfaces; clients and backends are processes in their own namespaces.
describePrivileged('LoadBalancer, XDP datapath between network namespaces', () => {
  let net: TwoArmed;
  let bundle: { script: string; dispose: () => void } | undefined;
  let lb: LbProcess;
  let vip: { address: string; port: number };
  let snat: string;
  const echoes: UdpEcho[] = [];
  let pusher: Spawned;
  const created: string[] = [];

  const clientNs = (i: number): string => net.clients[i]!.ns;
  const clientAddr = (i: number): string => net.clients[i]!.addr;
  const vipText = (): string => `${vip.address}:${vip.port}`;
  const clients = (i: number, arg: Record<string, unknown>) =>
    runPeer<ClientsResult>(net.topology, clientNs(i), bundle!.script, 'clients', { address: clientAddr(i), target: vip, timeoutMs: 2000, ...arg });
  const send = (i: number, port: number, payloads: string[], collectMs: number, gapMs = 300) =>
    runPeer<SendResult>(net.topology, clientNs(i), bundle!.script, 'send', {
      bind: { address: clientAddr(i), port },
      target: vip,
      payloads,
      gapMs,
      collectMs,
    });
  const eventsFor = (type: string, clientPort: number): LbEvent[] =>
    lb.events.filter(
      (e) =>
        e.type === type &&
        ((e.pair as { client?: { port: number } } | undefined)?.client?.port === clientPort ||
          (e.client as { port?: number } | undefined)?.port === clientPort),
    );

  beforeAll(async () => {
    bundle = await bundlePeerCli();
    net = await twoArmedTopology({ prefix: 'lbx', clients: 5, backends: 2, xdpPassOnPeers: 'native' });
    created.push(...net.topology.namespaces);
    vip = { address: net.lb.front.addr, port: VIP_PORT };
    snat = net.lb.back.addr;
    const [b0, b1] = net.backends as [TwoArmed['backends'][number], TwoArmed['backends'][number]];
    echoes.push(await startUdpEcho(net.topology, b0.ns, { addr: b0.addr, port: 7000, prefix: 'b0|' }));
    echoes.push(await startUdpEcho(net.topology, b1.ns, { addr: b1.addr, port: 7000, prefix: 'b1|' }));
    echoes.push(await startUdpEcho(net.topology, b1.ns, { addr: b1.addr, port: 7003, prefix: 'b3|' }));
    pusher = net.topology.spawn(b0.ns, process.execPath, [
      bundle.script,
      'push',
      JSON.stringify({ bind: { address: b0.addr, port: 7001 }, count: 20, intervalMs: 150 }),
    ]);
    await waitUntil(() => pusher.output().stderr.includes('listening'), 10_000, 'the push backend');

    const config: LbConfig = {
      vip,
      snatAddress: snat,
      snatPorts: { min: 20000, max: 20999 },
      targets: [
        { address: b0.addr, port: 7000 },
        { address: b1.addr, port: 7000 },
        { address: b0.addr, port: 7001 },
        { address: b1.addr, port: 7003 },
      ],
      datapath: 'xdp',
      interfaces: [net.lb.front.ifname, net.lb.back.ifname],
      xdpMode: 'native',
      connTtlSec: 1,
      sweepIntervalMs: 100,
      dropHoldMs: 1000,
      limits: { maxPendingClients: 64, classifyTimeoutMs: 800 },
      receiveBufferBytes: 4 * 1024 * 1024,
    };
    lb = await LbProcess.start(net.topology, net.lb.ns, bundle.script, config);
  }, 120_000);

  afterAll(async () => {
    await lb?.stop();
    for (const e of echoes) await e.stop().catch(() => {});
    await net?.destroy();
    bundle?.dispose();
  });

  it('runs the XDP datapath and says why', () => {
    expect(lb.events).toContainEqual({ type: 'datapath', kind: 'xdp', reason: expect.stringMatching(/^datapath 'xdp' was asked for, @flowlb\/xdp-core loads \(libbpf /) });
    expect(lb.events.find((e) => e.type === 'started')).toMatchObject({ datapath: 'xdp', snatAddress: snat });
  });

  it('balances 50 clients over two backends; the first reply and all others come back from the VIP by XDP', async () => {
    const before = await lb.stats();
    const ports = Array.from({ length: 10 }, (_, i) => 41000 + i);
    const results = await Promise.all(
      [0, 1, 2, 3, 4].map((i) => clients(i, { ports, payload: `to:{parity}:c${i}-{port}#{seq}`, requests: 5 })),
    );
    results.forEach((r, i) => {
      expect(r.clients).toHaveLength(10);
      for (const c of r.clients) {
        c.replies.forEach((reply, seq) => {
          expect(reply, `client ${clientAddr(i)}:${c.port} reply ${seq}`).not.toBeNull();
          expect(reply!.from).toBe(vipText());
          expect(reply!.data).toBe(`b${c.port % 2}|to:${c.port % 2}:c${i}-${c.port}#${seq}`);
        });
      }
    });

    // Each backend sees each client from one SNAT port of its own.
    for (const [b, echo] of echoes.slice(0, 2).entries()) {
      const byClient = new Map<string, Set<string>>();
      for (const l of echo.lines().filter((x) => /^to:\d:c\d-\d+#\d$/.test(x.data))) {
        const who = /c(\d-\d+)#/.exec(l.data)![1]!;
        expect(Number(who.split('-')[1]) % 2).toBe(b);
        expect(l.from.startsWith(`${snat}:`)).toBe(true);
        byClient.set(who, (byClient.get(who) ?? new Set()).add(l.from));
      }
      expect(byClient.size).toBe(25);
      for (const s of byClient.values()) expect(s.size).toBe(1);
      expect(new Set([...byClient.values()].map((s) => [...s][0])).size).toBe(25);
    }

    const after = await lb.stats();
    const x = (k: string): number => (after.xdp![k] ?? 0) - (before.xdp![k] ?? 0);
    // Only each client's first datagram missed the flow table and went up to the balancer ...
    expect(x('miss')).toBe(50);
    expect(after.datagrams.slowPathIn - before.datagrams.slowPathIn).toBe(50);
    expect(after.datagrams.forwardedNew - before.datagrams.forwardedNew).toBe(50);
    expect(after.flows.created - before.flows.created).toBe(50);
    // ... the other 200 went through XDP, and all 250 replies came back through the reverse entries.
    expect(x('fwdHit') + x('fibNoNeigh')).toBeGreaterThanOrEqual(200);
    expect(x('fwdHit')).toBeGreaterThanOrEqual(190);
    expect(x('revHit') + x('fibNoNeigh')).toBeGreaterThanOrEqual(250);
    expect(x('revHit')).toBeGreaterThanOrEqual(240);
    expect(after.flows.refused - before.flows.refused).toBe(0);
  });

  it('a mapper that waits for a second datagram sees both, and the backend gets both from one SNAT port', async () => {
    const r = await send(0, 42000, ['wait:first', 'wait:second'], 1000);
    expect(r.received).toEqual([
      { from: vipText(), data: 'b0|wait:first' },
      { from: vipText(), data: 'b0|wait:second' },
    ]);
    const calls = (await lb.calls()).filter((c) => c.client === `${clientAddr(0)}:42000`);
    expect(calls.map((c) => [c.packets, c.answer])).toEqual([
      [['wait:first'], 'wait'],
      [['wait:first', 'wait:second'], 'to 0'],
    ]);
    const seen = echoes[0]!.lines().filter((l) => l.data.startsWith('wait:'));
    expect(seen.map((l) => l.data)).toEqual(['wait:first', 'wait:second']);
    expect(seen[0]!.from).toBe(seen[1]!.from);
  });

  it('forwards the IP fragments of an installed flow in the kernel, both ways, and the backend gets each datagram whole from the flow port', async () => {
    const before = await lb.stats();
    // 3000 bytes leave the client as three IP fragments, and the backend's reply too.
    const big = `to:0:big:${'x'.repeat(3000)}`;
    const r = await send(0, 42010, ['to:0:frag-setup', big], 1000, 200);
    expect(r.received).toEqual([
      { from: vipText(), data: 'b0|to:0:frag-setup' },
      { from: vipText(), data: `b0|${big}` },
    ]);
    const lines = echoes[0]!.lines();
    const setup = lines.find((l) => l.data === 'to:0:frag-setup');
    const whole = lines.find((l) => l.data === big);
    expect(whole?.from).toBe(setup?.from);
    expect(whole?.len).toBe(big.length);
    const after = await lb.stats();
    expect(after.flows.created - before.flows.created).toBe(1);
    // None of it went up to the control plane.
    expect(after.datagrams.forwardedLate - before.datagrams.forwardedLate).toBe(0);
    expect(after.xdp!.fragmentFwd! - before.xdp!.fragmentFwd!).toBe(6);
    expect(after.xdp!.fragment! - before.xdp!.fragment!).toBe(0);
  });

  it('keeps a flow whose traffic goes from server to client only', async () => {
    const before = await lb.stats();
    // 20 pushes 150 ms apart: three seconds of a silent client with a one-second TTL. Had the flow expired on the
    // way, the later pushes would find no reverse entry and never reach the client. Collecting stops soon after
    // the last push, well before the flow, idle from then on, can expire.
    const r = await send(1, 42001, ['to:2:push'], 3300);
    expect(r.received).toEqual(Array.from({ length: 20 }, (_, i) => ({ from: vipText(), data: `push ${i}` })));
    expect(eventsFor('flow-expired', 42001)).toEqual([]);
    const flows = await lb.flows();
    expect(flows.some((f) => f.pair.client.address === clientAddr(1) && f.pair.client.port === 42001)).toBe(true);
    const after = await lb.stats();
    expect(after.xdp!.revHit! - before.xdp!.revHit!).toBeGreaterThanOrEqual(19);
    // Once the pushes stop, the flow is idle in both directions and goes.
    await waitUntil(() => eventsFor('flow-expired', 42001).length === 1, 10_000, 'the flow to expire once idle');
  });

  it('expires an idle flow after the TTL and frees its SNAT port, which rests while others are free', async () => {
    const a = await send(2, 42002, ['to:3:a'], 500);
    expect(a.received).toEqual([{ from: vipText(), data: 'b3|to:3:a' }]);
    const portA = echoes[2]!.lines().find((l) => l.data === 'to:3:a')!.from;
    await waitUntil(() => eventsFor('flow-expired', 42002).length > 0, 10_000, 'the idle flow to expire');
    const expired = eventsFor('flow-expired', 42002)[0] as unknown as { idleMs: number; pair: { snat: { address: string; port: number } } };
    expect(expired.idleMs).toBeGreaterThan(1000);
    expect(`${expired.pair.snat.address}:${expired.pair.snat.port}`).toBe(portA);
    expect((await lb.flows()).some((f) => f.pair.client.port === 42002)).toBe(false);

    const b = await send(3, 42003, ['to:3:b'], 500);
    expect(b.received).toEqual([{ from: vipText(), data: 'b3|to:3:b' }]);
    // The next client of that backend does not get the port the expired flow has just left.
    const portB = echoes[2]!.lines().find((l) => l.data === 'to:3:b')!.from;
    expect(portB.split(':')[0]).toBe(portA.split(':')[0]);
    expect(portB).not.toBe(portA);
  });

  it('a mapper that throws or never answers hurts no other flow', async () => {
    const before = await lb.stats();
    const [thrown, hung, good] = await Promise.all([
      send(4, 42004, ['throw:x'], 500),
      send(4, 42005, ['hang:x'], 500),
      clients(0, { ports: Array.from({ length: 10 }, (_, i) => 43000 + i), payload: 'to:{parity}:g{port}#{seq}', requests: 5 }),
    ]);
    expect(thrown.received).toEqual([]);
    expect(hung.received).toEqual([]);
    for (const c of good.clients) {
      expect(c.replies.map((r) => r?.data)).toEqual(c.replies.map((_, seq) => `b${c.port % 2}|to:${c.port % 2}:g${c.port}#${seq}`));
    }
    expect(eventsFor('mapper-error', 42004)).toHaveLength(1);
    // Bounded poll: the hung call times out 800 ms after its datagram.
    let after: BalancerStats = await lb.stats();
    for (let i = 0; i < 50 && after.classification.timeouts === before.classification.timeouts; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await lb.stats();
    }
    expect(after.drops['mapper-error'] - before.drops['mapper-error']).toBe(1);
    expect(after.drops['classify-timeout'] - before.drops['classify-timeout']).toBe(1);
    expect(after.classification.errors - before.classification.errors).toBe(1);
    expect(after.flows.created - before.flows.created).toBe(10);
  });

  it('a flood of junk from thousands of source ports stays within the limits while established flows keep flowing', async () => {
    // The established client's flow is in place before the flood starts; it keeps talking throughout.
    const established = clients(0, { ports: [44000], payload: 'to:0:e#{seq}', requests: 40, gapMs: 50 });
    const hasFlow = async (): Promise<boolean> => (await lb.flows()).some((f) => f.pair.client.port === 44000);
    for (let i = 0; i < 100 && !(await hasFlow()); i++) await new Promise((r) => setTimeout(r, 50));
    expect(await hasFlow()).toBe(true);
    const floods = await Promise.all(
      [1, 2, 3, 4].map((i) =>
        runPeer<{ sent: number }>(net.topology, clientNs(i), bundle!.script, 'flood', {
          address: clientAddr(i),
          sources: 1000,
          perSource: 2,
          size: 100,
          batch: 200,
          target: vip,
        }),
      ),
    );
    expect(floods.reduce((n, f) => n + f.sent, 0)).toBe(8000);
    const during = await lb.stats();
    const e = (await established).clients[0]!;
    expect(e.replies.map((r) => r?.data)).toEqual(e.replies.map((_, seq) => `b0|to:0:e#${seq}`));

    expect(during.pending.clients).toBeLessThanOrEqual(64);
    // The table stays full: each new junk client pushes out the one that has waited longest.
    expect(during.drops['pending-evicted']).toBeGreaterThan(1000);

    let settled = during;
    for (let i = 0; i < 100; i++) {
      settled = await lb.stats();
      if (settled.pending.clients === 0 && settled.datagrams.slowPathIn === accountedVipDatagrams(settled)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(settled.pending.clients).toBe(0);
    // The call that never answers (the test before) still holds its one datagram, and only that.
    expect(settled.classification.inFlight).toBe(1);
    expect(settled.pending.bytes).toBe('hang:x'.length);
    // Every datagram that reached the balancer was forwarded, or dropped and counted.
    expect(settled.datagrams.slowPathIn).toBe(accountedVipDatagrams(settled));
    expect(settled.drops['classify-timeout']).toBeGreaterThan(0);
  });

  it('stops cleanly: the XDP program is detached from both interfaces', async () => {
    const last = await lb.stop();
    expect(last?.datapath).toBe('xdp');
    const { withNetns, xdpAttachment } = await import('@flowlb/xdp-core');
    withNetns(net.lb.ns, () => {
      expect(xdpAttachment(net.lb.front.ifname).progId).toBe(0);
      expect(xdpAttachment(net.lb.back.ifname).progId).toBe(0);
    });
  });

  it('leaves no namespace behind', async () => {
    await net.destroy();
    expect(created.length).toBeGreaterThan(4);
    const left = new Set(await listNamespaces());
    expect(created.filter((n) => left.has(n))).toEqual([]);
  });
});
