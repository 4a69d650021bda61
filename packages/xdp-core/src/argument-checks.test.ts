import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describePrivileged } from '@flowlb/testkit';
import { BpfObject, UdpSocket, ifName, xdpAttachment, type BpfMap, type Program } from './index.js';
import { native } from './native.js';
import { FIXTURE_MAPS_SOURCE, compileBpf, type CompiledObjects } from './testing/bpf-fixtures.js';

const dist = join(import.meta.dirname, '..', 'dist', 'index.js');

const outOfRange = expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
const notANumber = expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });

function u32(i: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(i);
  return b;
}

/** Runs `body` (with `m`, the built package, and `path`, the fixture object) in a child; returns what it printed. */
function inChild(body: string, path = ''): { status: number | null; signal: string | null; out: Record<string, string>; stderr: string } {
  const script = `
    import(${JSON.stringify(dist)}).then(async (m) => {
      const path = ${JSON.stringify(path)};
      const out = {};
      const attempt = (name, fn) => { try { fn(); out[name] = 'returned'; } catch (e) { out[name] = e.name + ' ' + (e.code ?? ''); } };
      ${body}
      console.log(JSON.stringify(out));
    }).catch((e) => { console.error(e); process.exit(2); });`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
  let out: Record<string, string> = {};
  try {
    out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as Record<string, string>;
  } catch {
    // the child died before printing: status and signal tell
  }
  return { status: r.status, signal: r.signal, out, stderr: r.stderr };
}

describe('argument checks without privileges', () => {
  it('a sparse array of datagrams as long as an array can be is refused, not allocated for', () => {
    const r = inChild(`
      const s = m.UdpSocket.bind({ address: '127.0.0.1', port: 0 });
      attempt('sparse', () => s.send({ address: '127.0.0.1', port: 9 }, new Array(2 ** 32 - 1)));
      s.close();`);
    expect(r.signal, r.stderr).toBeNull();
    expect(r.out).toEqual({ sparse: 'TypeError ' });
  });

  it('ports and interface indexes must be integers in range', () => {
    expect(() => UdpSocket.bind({ address: '127.0.0.1', port: 1.5 })).toThrow(outOfRange);
    expect(() => UdpSocket.bind({ address: '127.0.0.1', port: 65536 })).toThrow(outOfRange);
    expect(() => ifName(-1)).toThrow(outOfRange);
    expect(() => ifName(2 ** 40)).toThrow(outOfRange);
    expect(() => ifName('lo' as unknown as number)).toThrow(notANumber);
    expect(() => xdpAttachment(0)).toThrow(outOfRange);
    expect(() => xdpAttachment(Number.NaN)).toThrow(/ifindex must be an integer from 1 to 2147483647, got NaN/);
  });
});

describePrivileged('argument checks of maps and programs', () => {
  let fixture: CompiledObjects;
  let map: BpfMap;
  let array: BpfMap;
  let prog: Program;

  beforeAll(async () => {
    fixture = compileBpf(FIXTURE_MAPS_SOURCE);
    const obj = BpfObject.open(fixture.objects[0]!);
    try {
      expect(() => obj.setMaxEntries('small_hash', 1.5)).toThrow(outOfRange);
      expect(() => obj.setMaxEntries('small_hash', 2 ** 32)).toThrow(outOfRange);
      await obj.load();
      map = obj.map('small_hash');
      array = obj.map('small_array');
      prog = obj.program('pass');
    } finally {
      obj.close();
    }
  });

  afterAll(() => {
    map?.close();
    array?.close();
    prog?.close();
    fixture?.remove();
  });

  it('absurd counts and sizes never abort the process', () => {
    const r = inChild(
      `
      const obj = m.BpfObject.open(path);
      await obj.load();
      const map = obj.map('small_array');
      const prog = obj.program('pass');
      attempt('lookupBatch(2^32-1)', () => { if (map.lookupBatch(2 ** 32 - 1).entries.length !== 16) throw new Error('not all 16'); });
      attempt('lookupBatchPacked(2^31)', () => map.lookupBatchPacked(2 ** 31));
      attempt('testRun dataSizeOut 2^32-1', () => prog.testRun({ data: Buffer.alloc(64), dataSizeOut: 2 ** 32 - 1 }));
      attempt('testRun repeat 2^32', () => prog.testRun({ data: Buffer.alloc(64), repeat: 2 ** 32 }));`,
      fixture.objects[0],
    );
    expect(r.signal, r.stderr).toBeNull();
    expect(r.out).toEqual({
      'lookupBatch(2^32-1)': 'returned',
      'lookupBatchPacked(2^31)': 'returned',
      'testRun dataSizeOut 2^32-1': 'RangeError ERR_OUT_OF_RANGE',
      'testRun repeat 2^32': 'RangeError ERR_OUT_OF_RANGE',
    });
  });

  it('batch counts must be integers, and a cursor is the 8 bytes a batch returned', () => {
    for (const count of [0, -1, 1.5, Number.NaN, Infinity, 2 ** 32]) expect(() => map.lookupBatch(count), String(count)).toThrow(outOfRange);
    expect(() => map.lookupBatch('4' as unknown as number)).toThrow(notANumber);
    const { cursor } = array.lookupBatch(4);
    expect(cursor?.length).toBe(8);
    expect(array.lookupBatch(4, cursor).entries.length).toBe(4);
    expect(() => array.lookupBatch(4, Buffer.alloc(3))).toThrow(/cursor must be 8 bytes, got 3/);
  });

  it('packed batch buffers must match the count exactly', async () => {
    // BpfMap packs them itself: the native layer is checked straight, as a caller of the addon reaches it.
    const obj = new (native().BpfObject)(fixture.objects[0]!);
    await obj.load();
    const m = obj.map('small_hash');
    try {
      expect(() => m.updateBatch(Buffer.alloc(8), Buffer.alloc(16), 3, 0)).toThrow(/keys must be 12 bytes, got 8/);
      expect(() => m.updateBatch(Buffer.alloc(4), Buffer.alloc(4), 1, 0)).toThrow(/values must be 8 bytes, got 4/);
      expect(() => m.updateBatch(Buffer.alloc(0), Buffer.alloc(0), -1, 0)).toThrow(outOfRange);
      expect(() => m.updateBatch(Buffer.alloc(0), Buffer.alloc(0), undefined as unknown as number, 0)).toThrow(notANumber);
      expect(() => m.updateBatch(Buffer.alloc(4), Buffer.alloc(8), 1, -1)).toThrow(outOfRange);
      expect(() => m.deleteBatch(Buffer.alloc(4), 2)).toThrow(/keys must be 8 bytes, got 4/);
      expect(() => m.update(u32(1), Buffer.alloc(8), 2 ** 40)).toThrow(outOfRange);
    } finally {
      m.close();
      obj.close();
    }
  });

  it('update flags must be one of the three names', () => {
    expect(() => map.update(u32(1), Buffer.alloc(8), 'bogus' as 'any')).toThrow(/flag must be 'any', 'noexist' or 'exist', got bogus/);
    expect(() => map.updateBatch([u32(1)], [Buffer.alloc(8)], 'toString' as 'any')).toThrow(TypeError);
    expect(map.lookup(u32(1))).toBeUndefined();
  });

  it('testRun and runLive refuse negative, fractional and oversized numbers', () => {
    const data = Buffer.alloc(64);
    expect(prog.testRun({ data }).retval).toBe(2);
    expect(prog.testRun({ data, repeat: 0 }).retval).toBe(2);
    expect(() => prog.testRun({ data, repeat: -1 })).toThrow(outOfRange);
    expect(() => prog.testRun({ data, repeat: 1.5 })).toThrow(outOfRange);
    expect(() => prog.testRun({ data, ingressIfindex: -1 })).toThrow(outOfRange);
    expect(() => prog.testRun({ data, dataSizeOut: -1 })).toThrow(outOfRange);
    expect(() => prog.testRun({ data, dataSizeOut: (16 << 20) + 1 })).toThrow(outOfRange);
    expect(() => prog.testRun({ data: Buffer.alloc((16 << 20) + 1) })).toThrow(/data must be at most 16777216 bytes/);
    expect(() => prog.testRun({ data: 'frame' as unknown as Buffer })).toThrow(TypeError);
    expect(() => prog.runLive({ data, ingressIfindex: 1, repeat: -5 })).toThrow(outOfRange);
    expect(() => prog.attachXdp(-1)).toThrow(outOfRange);
  });
});
