import { afterAll, beforeAll, expect, it } from 'vitest';
import { Topology, buildUdpFrame, describePrivileged } from '@flowlb/testkit';
import { XdpForwarder, ifIndex, withNetns } from './index.js';

/** One counter of /proc/net/snmp as the namespace's stack sees it. */
async function snmp(topo: Topology, ns: string, proto: 'Ip' | 'Udp', name: string): Promise<number> {
  const { stdout } = await topo.exec(ns, 'cat', ['/proc/net/snmp']);
  const lines = stdout.split('\n').filter((l) => l.startsWith(`${proto}:`));
  const names = (lines[0] ?? '').split(/\s+/);
  const values = (lines[1] ?? '').split(/\s+/);
  const i = names.indexOf(name);
  if (i < 0) throw new Error(`no ${proto} ${name} in /proc/net/snmp`);
  return Number(values[i]);
}

describePrivileged('Program.runLive: live frames through the kernel', () => {
  let topo: Topology;
  let ns: string;
  let fwd: XdpForwarder;

  beforeAll(async () => {
    topo = new Topology({ prefix: 'xlive' });
    ns = await topo.addNamespace('live');
    await topo.addVethPair(ns, 'v0', ns, 'v1', { addrA: '10.77.0.1/24', macA: '02:00:00:77:00:01' });
    fwd = await XdpForwarder.load({ flowsMaxEntries: 16 });
  });

  afterAll(async () => {
    fwd?.close();
    await topo?.destroy();
  });

  it('carries out the verdicts: missed datagrams enter the stack of the ingress device, each one', async () => {
    const frame = buildUdpFrame({
      eth: { src: '02:00:00:77:00:02', dst: '02:00:00:77:00:01' },
      ip: { src: '10.77.0.2', dst: '10.77.0.1' },
      // A port nothing listens on: the stack counts each datagram that reaches it as NoPorts.
      udp: { srcPort: 40000, dstPort: 9 },
      payload: 'live',
    });
    const ifindex = withNetns(ns, () => ifIndex('v0'));
    const ipBefore = await snmp(topo, ns, 'Ip', 'InReceives');
    const noPortsBefore = await snmp(topo, ns, 'Udp', 'NoPorts');
    const missBefore = fwd.stats().miss;
    const r = withNetns(ns, () => fwd.program.runLive({ data: frame, ingressIfindex: ifindex, repeat: 1000, batchSize: 32 }));
    expect(r.durationNs).toBeGreaterThan(0);
    expect(fwd.stats().miss - missBefore).toBe(1000);
    expect((await snmp(topo, ns, 'Ip', 'InReceives')) - ipBefore).toBe(1000);
    expect((await snmp(topo, ns, 'Udp', 'NoPorts')) - noPortsBefore).toBe(1000);
  });

  it('says what is wrong with its options before calling the kernel', () => {
    const data = Buffer.alloc(64);
    expect(() => fwd.program.runLive({ data, ingressIfindex: 0 })).toThrow(/ifindex of the device/);
    expect(() => fwd.program.runLive({ data, ingressIfindex: 1, batchSize: 257 })).toThrow(/batchSize must be an integer from 1 to 256/);
  });

  it('fails like a Node system error for a device that does not exist', () => {
    expect(() => fwd.program.runLive({ data: Buffer.alloc(64), ingressIfindex: 999_999 })).toThrow(
      expect.objectContaining({ syscall: 'bpf_prog_test_run_opts', code: expect.any(String) }),
    );
  });
});
