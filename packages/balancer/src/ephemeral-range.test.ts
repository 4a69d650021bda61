import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { describePrivileged, Topology } from '@flowlb/testkit';
import {
  ensureSnatPortsReserved,
  formatRanges,
  intersectRange,
  normalizeRanges,
  parseDashedPortRange,
  parseIpLocalPortRange,
  parseReservedPorts,
  planSnatReservation,
  SnatPortRangeError,
  subtractRanges,
  type PortRange,
} from './ephemeral-range.js';

const covers = (ranges: readonly PortRange[], port: number): boolean => ranges.some((r) => port >= r.min && port <= r.max);

describe('parsing the sysctls', () => {
  it('reads ip_local_port_range as the kernel prints it', () => {
    expect(parseIpLocalPortRange('32768\t60999\n')).toEqual({ min: 32768, max: 60999 });
    expect(parseIpLocalPortRange(' 1024 65535')).toEqual({ min: 1024, max: 65535 });
    expect(() => parseIpLocalPortRange('32768')).toThrow(/expected "<min> <max>"/);
    expect(() => parseIpLocalPortRange('32768-60999')).toThrow(/expected "<min> <max>"/);
    expect(() => parseIpLocalPortRange('60999 32768')).toThrow(/greater than max/);
  });

  it('reads the dashed form of config files and of the reserved list', () => {
    expect(parseDashedPortRange('10000-29999')).toEqual({ min: 10000, max: 29999 });
    expect(parseDashedPortRange(' 10000 - 29999 ')).toEqual({ min: 10000, max: 29999 });
    expect(parseDashedPortRange('8080')).toEqual({ min: 8080, max: 8080 });
    // Backwards is the caller's to report, with the key it came from.
    expect(parseDashedPortRange('20-10')).toEqual({ min: 20, max: 10 });
    for (const bad of ['', '10000\t29999', '1-2-3', '-5', '10000-', '70000', '1-65536', '123456', 'x']) {
      expect(parseDashedPortRange(bad)).toBeUndefined();
    }
    expect(parseDashedPortRange('0-10')).toBeUndefined();
    expect(parseDashedPortRange('0-10', 0)).toEqual({ min: 0, max: 10 });
  });

  it('reads ip_local_reserved_ports, merging what touches', () => {
    expect(parseReservedPorts('\n')).toEqual([]);
    expect(parseReservedPorts('8080,10000-10010\n')).toEqual([
      { min: 8080, max: 8080 },
      { min: 10000, max: 10010 },
    ]);
    expect(parseReservedPorts('10011-10020,10000-10010,9000')).toEqual([
      { min: 9000, max: 9000 },
      { min: 10000, max: 10020 },
    ]);
    expect(() => parseReservedPorts('80,x')).toThrow(/cannot read "x"/);
    expect(() => parseReservedPorts('80,70000')).toThrow(/cannot read "70000"/);
    expect(() => parseReservedPorts('90-80')).toThrow(/greater than max/);
  });

  it('formats ranges back in the kernel syntax', () => {
    expect(formatRanges([{ min: 80, max: 80 }, { min: 1000, max: 2000 }])).toBe('80,1000-2000');
  });
});

describe('range arithmetic', () => {
  const port = fc.integer({ min: 1, max: 400 });
  const arbRange = fc.tuple(port, port).map(([x, y]) => ({ min: Math.min(x, y), max: Math.max(x, y) }));

  it('normalizes to sorted, disjoint, non-adjacent ranges covering the same ports', () => {
    fc.assert(
      fc.property(fc.array(arbRange, { maxLength: 8 }), (ranges) => {
        const n = normalizeRanges(ranges);
        for (let i = 1; i < n.length; i++) expect(n[i]!.min).toBeGreaterThan(n[i - 1]!.max + 1);
        for (let p = 1; p <= 401; p++) expect(covers(n, p)).toBe(covers(ranges, p));
      }),
    );
  });

  it('subtracts and intersects exactly', () => {
    fc.assert(
      fc.property(arbRange, arbRange, fc.array(arbRange, { maxLength: 6 }), (a, b, minus) => {
        const diff = subtractRanges(a, minus);
        const inter = intersectRange(a, b);
        for (let p = 0; p <= 401; p++) {
          const inA = p >= a.min && p <= a.max;
          expect(covers(diff, p)).toBe(inA && !covers(minus, p));
          expect(inter !== undefined && p >= inter.min && p <= inter.max).toBe(inA && p >= b.min && p <= b.max);
        }
      }),
    );
  });

  it('plans a reservation that covers the overlap and keeps what was reserved', () => {
    fc.assert(
      fc.property(arbRange, arbRange, fc.array(arbRange, { maxLength: 5 }), (snat, eph, reserved) => {
        const plan = planSnatReservation(snat, eph, reserved);
        for (let p = 0; p <= 401; p++) {
          const overlapping = p >= snat.min && p <= snat.max && p >= eph.min && p <= eph.max;
          expect(covers(plan.missing, p)).toBe(overlapping && !covers(reserved, p));
          expect(covers(plan.merged, p)).toBe(covers(reserved, p) || overlapping);
        }
      }),
    );
  });

  it('finds no overlap for the default SNAT range and the usual ephemeral range', () => {
    expect(planSnatReservation({ min: 10000, max: 29999 }, { min: 32768, max: 60999 }, [])).toEqual({
      overlap: undefined,
      missing: [],
      merged: [],
    });
  });
});

describe('ensureSnatPortsReserved against files', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });
  const fakeProc = (range: string, reserved: string): string => {
    dir = mkdtempSync(join(tmpdir(), 'flowlb-proc-'));
    writeFileSync(join(dir, 'ip_local_port_range'), range);
    writeFileSync(join(dir, 'ip_local_reserved_ports'), reserved);
    return dir;
  };

  it('passes when the ranges do not meet', () => {
    const procDir = fakeProc('32768\t60999\n', '\n');
    expect(ensureSnatPortsReserved({ snatPorts: { min: 10000, max: 29999 }, reserve: false, procDir })).toEqual({
      checked: true,
      ephemeral: { min: 32768, max: 60999 },
      reservedAdded: [],
    });
  });

  it('passes when the overlap is already reserved', () => {
    const procDir = fakeProc('32768\t60999\n', '30000-35000\n');
    const r = ensureSnatPortsReserved({ snatPorts: { min: 30000, max: 34000 }, reserve: false, procDir });
    expect(r.overlap).toEqual({ min: 32768, max: 34000 });
    expect(r.reservedAdded).toEqual([]);
  });

  it('refuses an overlap, naming both ranges and the fixes', () => {
    const procDir = fakeProc('32768\t60999\n', '8080\n');
    let error: unknown;
    try {
      ensureSnatPortsReserved({ snatPorts: { min: 30000, max: 40000 }, reserve: false, procDir });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SnatPortRangeError);
    const e = error as SnatPortRangeError;
    expect(e.message).toContain('SNAT ports 30000-40000 overlap');
    expect(e.message).toContain('ephemeral port range 32768-60999');
    expect(e.message).toContain('at 32768-40000');
    expect(e.message).toContain('sysctl -w net.ipv4.ip_local_reserved_ports=8080,32768-40000');
    expect(e.message).toContain('reserveSnatPorts: true');
    expect(e.missing).toEqual([{ min: 32768, max: 40000 }]);
    // Nothing was written.
    expect(readFileSync(join(procDir, 'ip_local_reserved_ports'), 'utf8')).toBe('8080\n');
  });

  it('with reserve, adds only the missing part and keeps the existing list', () => {
    const procDir = fakeProc('32768 60999', '8080,33000-33999');
    const r = ensureSnatPortsReserved({ snatPorts: { min: 30000, max: 40000 }, reserve: true, procDir });
    expect(r.reservedAdded).toEqual([
      { min: 32768, max: 32999 },
      { min: 34000, max: 40000 },
    ]);
    expect(readFileSync(join(procDir, 'ip_local_reserved_ports'), 'utf8')).toBe('8080,32768-40000');
  });

  it('says nothing can be checked where the files do not exist', () => {
    dir = mkdtempSync(join(tmpdir(), 'flowlb-proc-'));
    expect(ensureSnatPortsReserved({ snatPorts: { min: 1, max: 65535 }, reserve: false, procDir: dir })).toEqual({
      checked: false,
      reservedAdded: [],
    });
  });
});

// Both sysctls are per network namespace on this kernel: the real files are exercised inside a fresh namespace,
// where writing them cannot disturb the machine.
describePrivileged('ensureSnatPortsReserved in a network namespace', () => {
  let topo: Topology | undefined;
  afterEach(async () => {
    await topo?.destroy();
    topo = undefined;
  });

  it('reads the namespace ephemeral range, then reserves the overlap there and only there', async () => {
    topo = new Topology({ prefix: 'lbeph' });
    const ns = await topo.addNamespace('eph');
    await topo.sysctl(ns, { 'net.ipv4.ip_local_port_range': '20000 40000', 'net.ipv4.ip_local_reserved_ports': '8080' });
    const hostReserved = readFileSync('/proc/sys/net/ipv4/ip_local_reserved_ports', 'utf8');
    const { withNetns } = await import('@flowlb/xdp-core');

    const refused = withNetns(ns, () => {
      try {
        ensureSnatPortsReserved({ snatPorts: { min: 10000, max: 29999 }, reserve: false });
        return undefined;
      } catch (e) {
        return e;
      }
    });
    expect(refused).toBeInstanceOf(SnatPortRangeError);
    expect((refused as Error).message).toContain('ephemeral port range 20000-40000');

    const result = withNetns(ns, () => ensureSnatPortsReserved({ snatPorts: { min: 10000, max: 29999 }, reserve: true }));
    expect(result.reservedAdded).toEqual([{ min: 20000, max: 29999 }]);
    expect(await topo.readSysctl(ns, 'net.ipv4.ip_local_reserved_ports')).toBe('8080,20000-29999');
    // A second start finds the ports reserved and writes nothing.
    expect(withNetns(ns, () => ensureSnatPortsReserved({ snatPorts: { min: 10000, max: 29999 }, reserve: false })).reservedAdded).toEqual(
      [],
    );
    // The host's own list is untouched.
    expect(readFileSync('/proc/sys/net/ipv4/ip_local_reserved_ports', 'utf8')).toBe(hostReserved);
  });
});
