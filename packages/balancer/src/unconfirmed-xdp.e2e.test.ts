import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged, startUdpEcho, twoArmedTopology, type TwoArmed, type UdpEcho } from '@flowlb/testkit';
import { bundlePeerCli } from './test-support/bundle.js';
import { LbProcess, runPeer, type LbEvent } from './test-support/lb-process.js';
import { waitUntil } from './test-support/udp-peers.js';

// The XDP program confirms a flow when its client's next datagram reaches the forward entry; only then does the flow
// outlive unconfirmedTtlSec. Those datagrams never reach userspace, so the program's own mark is all that keeps it.
describePrivileged('unconfirmed flows on the XDP datapath', () => {
  let net: TwoArmed;
  let bundle: { script: string; dispose: () => void } | undefined;
  let lb: LbProcess | undefined;
  let echo: UdpEcho | undefined;

  beforeAll(async () => {
    bundle = await bundlePeerCli();
    net = await twoArmedTopology({ prefix: 'lbu', clients: 2, backends: 1, xdpPassOnPeers: 'native' });
    const backend = net.backends[0]!;
    echo = await startUdpEcho(net.topology, backend.ns, { addr: backend.addr, port: 7000, prefix: 'b|' });
    lb = await LbProcess.start(net.topology, net.lb.ns, bundle.script, {
      vip: { address: net.lb.front.addr, port: 5000 },
      snatAddress: net.lb.back.addr,
      snatPorts: { min: 21000, max: 21999 },
      targets: [{ address: backend.addr, port: 7000 }],
      datapath: 'xdp',
      interfaces: [net.lb.front.ifname, net.lb.back.ifname],
      connTtlSec: 30,
      unconfirmedTtlSec: 1,
      sweepIntervalMs: 100,
    });
  }, 120_000);

  afterAll(async () => {
    await lb?.stop();
    await echo?.stop().catch(() => undefined);
    await net?.destroy();
    bundle?.dispose();
  });

  it('removes a flow whose client sent one datagram, and keeps one whose client the program saw again', async () => {
    const send = (i: number, port: number, payloads: string[]) =>
      runPeer<{ received: { from: string; data: string }[] }>(net.topology, net.clients[i]!.ns, bundle!.script, 'send', {
        bind: { address: net.clients[i]!.addr, port },
        target: { address: net.lb.front.addr, port: 5000 },
        payloads,
        gapMs: 200,
        collectMs: 500,
      });
    const [once, again] = await Promise.all([send(0, 41000, ['to:0:once']), send(1, 41001, ['to:0:a', 'to:0:b', 'to:0:c'])]);
    expect(once.received.map((r) => r.data)).toEqual(['b|to:0:once']);
    expect(again.received.map((r) => r.data)).toEqual(['b|to:0:a', 'b|to:0:b', 'b|to:0:c']);
    const expired = (port: number) => (e: LbEvent): boolean =>
      e.type === 'flow-expired' && (e.pair as { client: { port: number } }).client.port === port;
    await waitUntil(() => lb!.events.some(expired(41000)), 10_000, 'the one-datagram flow to expire');
    expect(lb!.events.find(expired(41000))).toMatchObject({ unconfirmed: true });
    // Well past the short TTL, the flow whose client spoke again is still there.
    await new Promise((r) => setTimeout(r, 1500));
    expect(lb!.events.some(expired(41001))).toBe(false);
    expect((await lb!.flows()).map((f) => f.pair.client.port)).toEqual([41001]);
  }, 60_000);
});
