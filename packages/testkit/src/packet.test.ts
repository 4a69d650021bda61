import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { findExecutable } from './exec.js';
import {
  ETH_P_8021AD,
  ETH_P_8021Q,
  ETH_P_ARP,
  ETH_P_IPV4,
  IPPROTO_TCP,
  buildArpFrame,
  buildIpv4Frame,
  buildIpv6UdpFrame,
  buildUdpFragments,
  buildUdpFrame,
  formatIpv6,
  ipv4Checksum,
  ipv4Options,
  pad,
  padTo,
  parseFrame,
  parseIpv6,
  payloadForUdpChecksum,
  toPcap,
  truncate,
  truncateAt,
  udpChecksum,
  verifyChecksums,
  type UdpFrameSpec,
} from './packet.js';
import { isCi } from './privileges.js';

const base: UdpFrameSpec = {
  eth: { src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' },
  ip: { src: '10.1.2.3', dst: '10.4.5.6', id: 0x1234, ttl: 17 },
  udp: { srcPort: 40001, dstPort: 40002 },
  payload: 'hello',
};

function frame(over: Partial<UdpFrameSpec> = {}): Buffer {
  return buildUdpFrame({ ...base, ...over, ip: { ...base.ip, ...over.ip }, udp: { ...base.udp, ...over.udp } });
}

/** tcpdump -vv decodes the frames and verifies every checksum on its own; one output block per frame. */
function tcpdump(frames: Buffer[]): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'tk-pcap-'));
  try {
    const file = join(dir, 'frames.pcap');
    writeFileSync(file, toPcap(frames));
    const out = execFileSync('tcpdump', ['-nn', '-vv', '-e', '-r', file], { encoding: 'utf8', stdio: 'pipe' });
    // A frame's block starts with its timestamp; continuation lines are indented.
    return out.split(/\n(?=\d\d:\d\d:\d\d\.)/).map((b) => b.trim());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const haveTcpdump = findExecutable('tcpdump') !== undefined;
const describeTcpdump = haveTcpdump || isCi() ? describe : describe.skip;

describe('checksums', () => {
  it('matches the textbook IPv4 header example', () => {
    const hdr = Buffer.from('450000730000400040110000c0a80001c0a800c7', 'hex');
    expect(ipv4Checksum(hdr)).toBe(0xb861);
    // The field itself is ignored, so a filled-in header gives the same value.
    hdr.writeUInt16BE(0xb861, 10);
    expect(ipv4Checksum(hdr)).toBe(0xb861);
  });

  it('computes the UDP checksum of a known datagram', () => {
    // 192.168.0.31:20 -> 192.168.0.30:10, payload "Hi", checked against tcpdump below as well.
    const seg = Buffer.from('0014000a000a00004869', 'hex');
    const sum = udpChecksum('192.168.0.31', '192.168.0.30', seg);
    // Independent arithmetic: pseudo header + segment words.
    const words = [0xc0a8, 0x001f, 0xc0a8, 0x001e, 0x0011, 0x000a, 0x0014, 0x000a, 0x000a, 0x0000, 0x4869];
    let s = words.reduce((a, b) => a + b, 0);
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    expect(sum).toBe(~s & 0xffff);
  });

  it('verifies built frames and spots broken ones', () => {
    expect(verifyChecksums(frame())).toEqual({ ip: true, udp: true });
    expect(verifyChecksums(frame({ udp: { srcPort: 40001, dstPort: 40002, checksum: 0x1234 } }))).toEqual({ ip: true, udp: false });
    expect(verifyChecksums(frame({ ip: { src: '10.1.2.3', dst: '10.4.5.6', checksum: 0x1111 } }))).toEqual({ ip: false, udp: true });
    expect(verifyChecksums(frame({ udp: { srcPort: 40001, dstPort: 40002, checksum: 'none' } }))).toEqual({ ip: true, udp: 'none' });
    const f = frame();
    f.writeUInt8(f.readUInt8(f.length - 1) ^ 1, f.length - 1);
    expect(verifyChecksums(f).udp).toBe(false);
  });

  it('crafts payloads whose UDP checksum is any target, including 0 (sent as 0xffff)', () => {
    for (const payload of ['', 'a', 'ab', 'abc', 'odd-length!']) {
      for (const target of [0, 1, 0x1234, 0x8000, 0xfffe]) {
        const p = payloadForUdpChecksum(target, { srcIp: '10.1.2.3', dstIp: '10.4.5.6', srcPort: 40001, dstPort: 40002, payload });
        expect(p.length).toBe(payload.length + 2);
        expect(p.subarray(0, payload.length).toString()).toBe(payload);
        const f = frame({ payload: p });
        const udp = parseFrame(f).udp!;
        expect(udp.checksum).toBe(target === 0 ? 0xffff : target);
        expect(verifyChecksums(f)).toEqual({ ip: true, udp: true });
      }
    }
    expect(() => payloadForUdpChecksum(0xffff, { srcIp: '1.2.3.4', dstIp: '5.6.7.8', srcPort: 1, dstPort: 2 })).toThrow();
  });

  it('handles IPv6 pseudo headers', () => {
    const f = buildIpv6UdpFrame({ ip: { src: 'fd00::1', dst: 'fd00::2' }, udp: { srcPort: 1000, dstPort: 2000 }, payload: 'six' });
    expect(verifyChecksums(f)).toEqual({ ip: true, udp: true });
    const p = payloadForUdpChecksum(0, { srcIp: 'fd00::1', dstIp: 'fd00::2', srcPort: 1000, dstPort: 2000, payload: 'x' });
    const g = buildIpv6UdpFrame({ ip: { src: 'fd00::1', dst: 'fd00::2' }, udp: { srcPort: 1000, dstPort: 2000 }, payload: p });
    expect(parseFrame(g).udp!.checksum).toBe(0xffff);
    expect(verifyChecksums(g).udp).toBe(true);
  });
});

describe('builder and parser', () => {
  it('round-trips every field of an Ethernet/IPv4/UDP frame', () => {
    const f = frame({ ip: { src: '10.1.2.3', dst: '10.4.5.6', tos: 0x2e, id: 7, ttl: 3, df: true } });
    expect(f.length).toBe(14 + 20 + 8 + 5);
    const p = parseFrame(f);
    expect(p.eth).toEqual({ dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', vlans: [], ethertype: ETH_P_IPV4, headerLength: 14 });
    expect(p.ipv4).toMatchObject({
      offset: 14,
      version: 4,
      ihl: 5,
      headerLength: 20,
      tos: 0x2e,
      totalLength: 33,
      id: 7,
      flags: 2,
      df: true,
      mf: false,
      reservedFlag: false,
      fragOffset: 0,
      isFragment: false,
      ttl: 3,
      protocol: 17,
      src: '10.1.2.3',
      dst: '10.4.5.6',
    });
    expect(p.ipv4!.checksum).toBe(ipv4Checksum(f.subarray(14, 34)));
    expect(p.udp).toMatchObject({ offset: 34, srcPort: 40001, dstPort: 40002, length: 13 });
    expect(p.l4Offset).toBe(34);
    expect(p.payload.toString()).toBe('hello');
    expect(p.trailer.length).toBe(0);
    expect(p.truncated).toBe(false);
  });

  it('builds any IHL from options', () => {
    for (let ihl = 5; ihl <= 15; ihl++) {
      const f = frame({ ip: { src: '10.1.2.3', dst: '10.4.5.6', options: ipv4Options(4 * (ihl - 5)) } });
      const p = parseFrame(f);
      expect(p.ipv4!.ihl).toBe(ihl);
      expect(p.ipv4!.options.length).toBe(4 * (ihl - 5));
      expect(p.udp!.offset).toBe(14 + 4 * ihl);
      expect(verifyChecksums(f)).toEqual({ ip: true, udp: true });
    }
    // Odd-sized options are padded to a 32-bit boundary.
    expect(parseFrame(frame({ ip: { src: '10.1.2.3', dst: '10.4.5.6', options: Buffer.from([7, 3, 4]) } })).ipv4!.ihl).toBe(6);
  });

  it('keeps Ethernet padding out of the IP and UDP lengths', () => {
    const f = frame({ padding: Buffer.from('trailer!') });
    const p = parseFrame(f);
    expect(p.ipv4!.totalLength).toBe(33);
    expect(p.payload.toString()).toBe('hello');
    expect(p.trailer.toString()).toBe('trailer!');
    expect(verifyChecksums(f)).toEqual({ ip: true, udp: true });
    const short = frame({ payload: '', minFrame: true });
    expect(short.length).toBe(60);
    expect(parseFrame(short).trailer.length).toBe(60 - 42);
    expect(padTo(frame({ payload: '' })).length).toBe(60);
    expect(pad(f, 3).length).toBe(f.length + 3);
  });

  it('parses VLAN tags, single and stacked', () => {
    const one = parseFrame(frame({ eth: { vlan: { id: 42, pcp: 5, dei: true } } }));
    expect(one.eth.vlans).toEqual([{ tpid: ETH_P_8021Q, id: 42, pcp: 5, dei: true }]);
    expect(one.eth.headerLength).toBe(18);
    expect(one.udp!.dstPort).toBe(40002);
    const two = parseFrame(frame({ eth: { vlan: [{ id: 100, tpid: ETH_P_8021AD }, { id: 200 }] } }));
    expect(two.eth.vlans.map((v) => [v.tpid, v.id])).toEqual([
      [ETH_P_8021AD, 100],
      [ETH_P_8021Q, 200],
    ]);
    expect(two.ipv4!.offset).toBe(22);
  });

  it('builds fragments with the right offsets and flags', () => {
    const frags = buildUdpFragments({ ...base, ip: { ...base.ip }, udp: { ...base.udp }, payload: 'x'.repeat(40), fragmentSize: 20 });
    expect(frags.length).toBe(3);
    const parsed = frags.map((f) => parseFrame(f).ipv4!);
    expect(parsed.map((p) => [p.fragOffset, p.mf, p.isFragment])).toEqual([
      [0, true, true],
      [2, true, true],
      [4, false, true],
    ]);
    expect(parseFrame(frags[0]!).udp?.length).toBe(48);
    expect(parseFrame(frags[1]!).udp).toBeUndefined();
    expect(frags.map((f) => verifyChecksums(f))).toEqual(new Array(3).fill({ ip: true, udp: 'n/a' }));
    const lone = parseFrame(frame({ ip: { src: '10.1.2.3', dst: '10.4.5.6', mf: false, fragOffset: 100 } })).ipv4!;
    expect(lone.isFragment).toBe(true);
  });

  it('builds other protocols, ARP and IPv6', () => {
    const tcp = parseFrame(buildIpv4Frame({ ip: { src: '10.0.0.1', dst: '10.0.0.2', protocol: IPPROTO_TCP }, payload: Buffer.alloc(20) }));
    expect(tcp.ipv4!.protocol).toBe(IPPROTO_TCP);
    expect(tcp.udp).toBeUndefined();
    expect(verifyChecksums(buildIpv4Frame({ ip: { src: '10.0.0.1', dst: '10.0.0.2', protocol: 6 } }))).toEqual({ ip: true, udp: 'n/a' });

    const arp = parseFrame(buildArpFrame({ senderMac: '02:00:00:00:00:01', senderIp: '10.0.0.1', targetIp: '10.0.0.2', minFrame: true }));
    expect(arp.eth.ethertype).toBe(ETH_P_ARP);
    expect(arp.eth.dst).toBe('ff:ff:ff:ff:ff:ff');
    expect(arp.arp).toEqual({
      htype: 1,
      ptype: ETH_P_IPV4,
      op: 1,
      senderMac: '02:00:00:00:00:01',
      senderIp: '10.0.0.1',
      targetMac: '00:00:00:00:00:00',
      targetIp: '10.0.0.2',
    });
    expect(arp.length).toBe(60);
    expect(() => verifyChecksums(buildArpFrame({ senderMac: '02:00:00:00:00:01', senderIp: '1.1.1.1', targetIp: '1.1.1.2' }))).toThrow(
      /not an IP frame/,
    );

    const v6 = parseFrame(
      buildIpv6UdpFrame({ ip: { src: 'fd00::1', dst: 'fd00:0:0:1::ff', hopLimit: 9, flowLabel: 0x12345, trafficClass: 0xb8 }, udp: { srcPort: 1, dstPort: 2 }, payload: 'x' }),
    );
    expect(v6.ipv6).toMatchObject({ version: 6, src: 'fd00::1', dst: 'fd00:0:0:1::ff', hopLimit: 9, flowLabel: 0x12345, trafficClass: 0xb8, nextHeader: 17, payloadLength: 9 });
    expect(v6.udp).toMatchObject({ srcPort: 1, dstPort: 2, length: 9 });
  });

  it('parses and formats IPv6 addresses', () => {
    for (const [text, canon] of [
      ['::', '::'],
      ['::1', '::1'],
      ['fd00::', 'fd00::'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:DB8::0:1', '2001:db8::1'],
      ['::ffff:10.1.2.3', '::ffff:a01:203'],
      ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ] as const) {
      expect(formatIpv6(parseIpv6(text))).toBe(canon);
    }
    expect(() => parseIpv6('1::2::3')).toThrow();
    expect(() => parseIpv6('1:2:3')).toThrow();
  });

  it('truncates at any layer and reports truncation', () => {
    const f = frame({ eth: { vlan: { id: 5 } }, ip: { src: '10.1.2.3', dst: '10.4.5.6', options: ipv4Options(8) } });
    expect(truncateAt(f, 'ip').length).toBe(18);
    expect(truncateAt(f, 'l4', 4).length).toBe(18 + 28 + 4);
    expect(parseFrame(truncateAt(f, 'ip', 10)).ipv4).toBeUndefined();
    expect(parseFrame(truncateAt(f, 'ip', 10)).truncated).toBe(true);
    const cutUdp = parseFrame(truncateAt(f, 'l4', 4));
    expect(cutUdp.ipv4).toBeDefined();
    expect(cutUdp.udp).toBeUndefined();
    expect(cutUdp.truncated).toBe(true);
    const cutPayload = truncate(f, f.length - 2);
    expect(parseFrame(cutPayload).truncated).toBe(true);
    expect(verifyChecksums(cutPayload).udp).toBe(false);
    expect(() => parseFrame(truncate(f, 13))).toThrow();
  });

  it('lets every length and checksum be forced', () => {
    const f = frame({ ip: { src: '10.1.2.3', dst: '10.4.5.6', totalLength: 1000, ihl: 4, version: 6 }, udp: { srcPort: 1, dstPort: 2, length: 3 } });
    const p = parseFrame(f);
    expect(p.ipv4!.totalLength).toBe(1000);
    expect(p.ipv4!.ihl).toBe(4);
    expect(p.ipv4!.version).toBe(6);
    expect(p.truncated).toBe(true);
  });
});

describe('properties', () => {
  const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
  const port = fc.integer({ min: 1, max: 65535 });

  it('every built frame parses back to its fields with valid checksums', () => {
    fc.assert(
      fc.property(
        ipv4,
        ipv4,
        port,
        port,
        fc.uint8Array({ maxLength: 80 }),
        fc.integer({ min: 0, max: 10 }),
        fc.option(fc.integer({ min: 0, max: 4095 }), { nil: undefined }),
        fc.integer({ min: 0, max: 20 }),
        (src, dst, sp, dp, payload, optWords, vlan, padding) => {
          const f = buildUdpFrame({
            eth: vlan === undefined ? {} : { vlan: { id: vlan } },
            ip: { src, dst, options: ipv4Options(optWords * 4) },
            udp: { srcPort: sp, dstPort: dp },
            payload,
            padding,
          });
          const p = parseFrame(f);
          expect(p.ipv4).toMatchObject({ src, dst, ihl: 5 + optWords });
          expect(p.udp).toMatchObject({ srcPort: sp, dstPort: dp, length: 8 + payload.length });
          expect(p.udp!.checksum).not.toBe(0);
          expect(p.payload.equals(Buffer.from(payload))).toBe(true);
          expect(p.trailer.length).toBe(padding);
          expect(verifyChecksums(f)).toEqual({ ip: true, udp: true });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('payloadForUdpChecksum reaches any reachable target', () => {
    fc.assert(
      fc.property(ipv4, ipv4, port, port, fc.uint8Array({ maxLength: 40 }), fc.integer({ min: 0, max: 0xfffe }), (src, dst, sp, dp, payload, target) => {
        const p = payloadForUdpChecksum(target, { srcIp: src, dstIp: dst, srcPort: sp, dstPort: dp, payload });
        const f = buildUdpFrame({ ip: { src, dst }, udp: { srcPort: sp, dstPort: dp }, payload: p });
        expect(parseFrame(f).udp!.checksum).toBe(target === 0 ? 0xffff : target);
        expect(verifyChecksums(f).udp).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describeTcpdump('cross-checked by tcpdump -vv', () => {
  it('agrees on every checksum and decodes every field', () => {
    const frames = [
      frame(),
      frame({ udp: { srcPort: 40001, dstPort: 40002, checksum: 0x1234 } }),
      frame({ ip: { src: '10.1.2.3', dst: '10.4.5.6', checksum: 0x1111 } }),
      frame({ payload: payloadForUdpChecksum(0, { srcIp: '10.1.2.3', dstIp: '10.4.5.6', srcPort: 40001, dstPort: 40002, payload: 'abc' }) }),
      frame({ ip: { src: '10.1.2.3', dst: '10.4.5.6', id: 0x1234, ttl: 17, options: ipv4Options(40) }, payload: 'opts', padding: 7 }),
      frame({ eth: { vlan: { id: 42, pcp: 3 } }, payload: 'vlan' }),
      buildIpv6UdpFrame({ ip: { src: 'fd00::1', dst: 'fd00::2' }, udp: { srcPort: 40001, dstPort: 40002 }, payload: 'six' }),
      frame({ udp: { srcPort: 40001, dstPort: 40002, checksum: 'none' } }),
      buildUdpFrame({ ip: { src: '192.168.0.31', dst: '192.168.0.30' }, udp: { srcPort: 40020, dstPort: 40010 }, payload: 'Hi' }),
      ...buildUdpFragments({ ...base, ip: { ...base.ip, df: false }, udp: { ...base.udp }, payload: 'x'.repeat(40), fragmentSize: 24 }),
    ];
    const out = tcpdump(frames);
    expect(out.length).toBe(frames.length);
    expect(out[0]).toMatch(/02:00:00:00:00:01 > 02:00:00:00:00:02, ethertype IPv4 \(0x0800\), length 47/);
    expect(out[0]).toMatch(/ttl 17, id 4660, offset 0, flags \[none\], proto UDP \(17\), length 33\)/);
    expect(out[0]).toMatch(/10\.1\.2\.3\.40001 > 10\.4\.5\.6\.40002: \[udp sum ok\] UDP, length 5/);
    expect(out[1]).toMatch(/\[bad udp cksum 0x1234 -> 0x[0-9a-f]{4}!\]/);
    expect(out[2]).toMatch(/bad cksum 1111 \(->[0-9a-f]+\)!/);
    expect(out[2]).toMatch(/\[udp sum ok\]/);
    expect(out[3]).toMatch(/\[udp sum ok\] UDP, length 5/);
    expect(out[4]).toMatch(/options \((NOP,){9}NOP/);
    expect(out[4]).toMatch(/length 93: .*proto UDP \(17\), length 72,/);
    expect(out[4]).toMatch(/\[udp sum ok\] UDP, length 4/);
    expect(out[5]).toMatch(/vlan 42, p 3, ethertype IPv4/);
    expect(out[5]).toMatch(/\[udp sum ok\]/);
    expect(out[6]).toMatch(/fd00::1\.40001 > fd00::2\.40002: \[udp sum ok\] UDP, length 3/);
    expect(out[7]).toMatch(/\[no cksum\]/);
    expect(out[8]).toMatch(/\[udp sum ok\] UDP, length 2/);
    expect(out[9]).toMatch(/offset 0, flags \[\+\]/);
    expect(out[10]).toMatch(/offset 24, flags \[none\]/);
  });
});
