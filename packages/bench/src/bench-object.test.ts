import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged, parseFrame, verifyChecksums } from '@flowlb/testkit';
import { XDP_DROP, XDP_PASS, XDP_TX } from '@flowlb/xdp-core';
import { BenchPrograms, generatorTemplate, type GeneratorFrame } from './bench-object.js';

const FRAME: GeneratorFrame = {
  srcMac: '02:00:0a:c9:01:02',
  dstMac: '02:00:0a:c9:01:01',
  dst: { address: '10.201.1.1', port: 4433 },
  payload: 64,
};

describePrivileged('bench XDP programs', () => {
  let progs: BenchPrograms;
  beforeAll(async () => {
    progs = await BenchPrograms.load();
  });
  afterAll(() => progs?.close());

  it('gen walks the clients in order, writing every header byte and valid checksums', () => {
    const data = progs.configureGenerator(FRAME, { flows: 5, firstAddr: '10.201.1.100', firstPort: 10_000, portsPerAddr: 2 });
    const template = generatorTemplate(FRAME).frame;
    expect(data).toEqual(template);
    // What a frame looks like when its page comes back from a trip through a balancer: every header byte changed.
    const recycled = Buffer.from(data);
    recycled.fill(0xee, 0, 42);
    const seen: string[] = [];
    for (let i = 0; i < 7; i++) {
      const r = progs.program('gen').testRun({ data: i % 2 ? recycled : data });
      expect(r.retval).toBe(XDP_TX);
      const p = parseFrame(r.data);
      expect(verifyChecksums(r.data)).toEqual({ ip: true, udp: true });
      expect(p.eth).toMatchObject({ src: FRAME.srcMac, dst: FRAME.dstMac });
      expect(p.ipv4).toMatchObject({ dst: '10.201.1.1', ttl: 64, protocol: 17, totalLength: 92 });
      expect(p.udp).toMatchObject({ dstPort: 4433, length: 72 });
      expect(r.data.subarray(42)).toEqual(template.subarray(42));
      seen.push(`${p.ipv4?.src}:${p.udp?.srcPort}`);
    }
    expect(seen).toEqual([
      '10.201.1.100:10000',
      '10.201.1.100:10001',
      '10.201.1.101:10000',
      '10.201.1.101:10001',
      '10.201.1.102:10000',
      '10.201.1.100:10000',
      '10.201.1.100:10001',
    ]);
  });

  it('floor_tx bounces UDP and leaves the rest to the stack; sink counts UDP only', () => {
    const udp = generatorTemplate(FRAME).frame;
    const arp = Buffer.alloc(60);
    arp.writeUInt16BE(0x0806, 12);
    expect(progs.program('floor_tx').testRun({ data: udp }).retval).toBe(XDP_TX);
    expect(progs.program('floor_tx').testRun({ data: arp }).retval).toBe(XDP_PASS);
    const before = progs.sinkCounts();
    expect(progs.program('sink').testRun({ data: udp, repeat: 10 }).retval).toBe(XDP_DROP);
    expect(progs.program('sink').testRun({ data: arp }).retval).toBe(XDP_PASS);
    const after = progs.sinkCounts();
    expect(after.packets - before.packets).toBe(10);
    expect(after.bytes - before.bytes).toBe(10 * udp.length);
  });
});
