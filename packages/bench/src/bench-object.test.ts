import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describePrivileged, parseFrame, verifyChecksums } from '@flowlb/testkit';
import { XDP_DROP, XDP_PASS, XDP_TX } from '@flowlb/xdp-core';
import { BenchPrograms, generatorTemplate, spreadClient, type GeneratorFrame } from './bench-object.js';

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

  it('gen scatters clients over a block of addresses, each address once per round, as spreadClient says', () => {
    const clients = { flows: 8 * 3, firstAddr: '10.128.0.0', firstPort: 1024, portsPerAddr: 1, scatterBits: 3 };
    const data = progs.configureGenerator(FRAME, clients);
    // Where the walk stands from earlier runs does not matter: read one whole pass from wherever it is.
    const seen: string[] = [];
    for (let i = 0; i < clients.flows; i++) {
      const r = progs.program('gen').testRun({ data });
      expect(r.retval).toBe(XDP_TX);
      expect(verifyChecksums(r.data)).toEqual({ ip: true, udp: true });
      const p = parseFrame(r.data);
      seen.push(`${p.ipv4?.src}:${p.udp?.srcPort}`);
    }
    const expected = Array.from({ length: clients.flows }, (_, i) => spreadClient(clients, i)).map((c) => `${c.address}:${c.port}`);
    const start = expected.indexOf(seen[0]!);
    expect(start).toBeGreaterThanOrEqual(0);
    expect(seen).toEqual([...expected.slice(start), ...expected.slice(0, start)]);
    expect(new Set(seen).size).toBe(clients.flows);
  });

  it('mark_drop drops only UDP datagrams with the mark at its offset, and counts them', () => {
    const mark = Buffer.alloc(32, 0xab);
    const payload = Buffer.alloc(100, 0x11);
    mark.copy(payload, 27);
    const marked = generatorTemplate({ ...FRAME, payload }).frame;
    const other = generatorTemplate({ ...FRAME, payload: Buffer.alloc(100, 0x11) }).frame;
    const short = generatorTemplate({ ...FRAME, payload: payload.subarray(0, 50) }).frame;
    // Not configured: everything passes.
    expect(progs.program('mark_drop').testRun({ data: marked }).retval).toBe(XDP_PASS);
    progs.setDropMark(27, mark);
    const before = progs.markDrops();
    expect(progs.program('mark_drop').testRun({ data: marked, repeat: 3 }).retval).toBe(XDP_DROP);
    expect(progs.program('mark_drop').testRun({ data: other }).retval).toBe(XDP_PASS);
    expect(progs.program('mark_drop').testRun({ data: short }).retval).toBe(XDP_PASS);
    expect(progs.markDrops() - before).toBe(3);
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

describe('spreadClient', () => {
  it('walks the ports of one address first, or scatters over a block, never twice in a round', () => {
    const seq = { flows: 5, firstAddr: '10.201.1.100', firstPort: 10_000, portsPerAddr: 2 };
    expect([0, 1, 2, 4].map((i) => spreadClient(seq, i))).toEqual([
      { address: '10.201.1.100', port: 10_000 },
      { address: '10.201.1.100', port: 10_001 },
      { address: '10.201.1.101', port: 10_000 },
      { address: '10.201.1.102', port: 10_000 },
    ]);
    const scattered = { flows: 2 << 16, firstAddr: '10.128.0.0', firstPort: 1024, portsPerAddr: 1, scatterBits: 16 };
    const round = Array.from({ length: 1 << 16 }, (_, i) => spreadClient(scattered, i));
    expect(new Set(round.map((c) => c.address)).size).toBe(1 << 16);
    expect(round.every((c) => c.port === 1024 && c.address.startsWith('10.128.'))).toBe(true);
    expect(spreadClient(scattered, 1 << 16)).toEqual({ address: '10.128.0.0', port: 1025 });
    // Consecutive clients fall in different /24s.
    const nets = round.slice(0, 64).map((c) => c.address.split('.').slice(0, 3).join('.'));
    expect(new Set(nets).size).toBeGreaterThan(60);
  });
});
