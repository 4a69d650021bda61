import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Topology, describePrivileged } from '@flowlb/testkit';
import { Worker } from 'node:worker_threads';
import { BpfMap, BpfObject, FLOWLB_BPF_OBJECT, Link, Program, XdpForwarder, ensureBpffsDir, withNetns, xdpAttachment } from './index.js';

function key(i: number): Buffer {
  const k = Buffer.alloc(16);
  k.writeUInt32BE(i, 0);
  return k;
}
function value(i: number): Buffer {
  const v = Buffer.alloc(24);
  v.writeUInt32BE(i, 0);
  v.writeBigUInt64LE(BigInt(i) * 1000n, 16);
  return v;
}

describe('errors without privileges', () => {
  it('opening a missing object fails like a Node system error', () => {
    let err: NodeJS.ErrnoException | undefined;
    try {
      BpfObject.open('/nonexistent/flowlb.bpf.o');
    } catch (e) {
      err = e as NodeJS.ErrnoException;
    }
    expect(err).toBeInstanceOf(Error);
    expect(err?.code).toBe('ENOENT');
    expect(err?.errno).toBe(-2);
    expect(err?.syscall).toBe('bpf_object__open_file');
    expect(err?.message).toMatch(/^ENOENT: no such file or directory, bpf_object__open_file '\/nonexistent\/flowlb.bpf.o'/);
  });

  it('the shipped object lists the flowlb program and maps', () => {
    const obj = BpfObject.open(FLOWLB_BPF_OBJECT);
    try {
      expect(obj.programNames()).toEqual(['flowlb_xdp']);
      expect(obj.mapNames().sort()).toEqual(['buckets', 'clock', 'flows', 'frags', 'hello_verify', 'icmp_budget', 'limits', 'nexthop_ctl', 'nexthops', 'stats', 'target_slots', 'target_stats', 'tx_ports', 'vips']);
      expect(obj.loaded).toBe(false);
      expect(() => obj.map('flows')).toThrow(/not loaded: call load\(\) first/);
      expect(() => obj.setMaxEntries('nope', 10)).toThrow(/ENOENT.*no map of that name/);
      expect(() => obj.setMaxEntries('flows', 0)).toThrow(RangeError);
    } finally {
      obj.close();
      obj.close();
    }
  });
});

describePrivileged('native binding on a real kernel', () => {
  let fwd: XdpForwarder;
  beforeAll(async () => {
    fwd = await XdpForwarder.load({ flowsMaxEntries: 4096 });
  });
  afterAll(() => fwd?.close());

  it('sizes maps at load time and reports their layout', () => {
    expect(fwd.flows.name).toBe('flows');
    expect(fwd.flows.keySize).toBe(16);
    expect(fwd.flows.valueSize).toBe(24);
    expect(fwd.flows.maxEntries).toBe(4096);
    expect(fwd.statsMap.perCpu).toBe(true);
    expect(fwd.statsMap.elementSize).toBe(8);
    expect(fwd.statsMap.valueSize).toBe(8 * fwd.statsMap.possibleCpus);
    expect(fwd.program.name).toBe('flowlb_xdp');
    expect(fwd.program.id).toBeGreaterThan(0);
  });

  it('looks up, updates with flags, deletes and iterates', () => {
    const m = fwd.flows;
    expect(m.lookup(key(1))).toBeUndefined();
    m.update(key(1), value(1), 'noexist');
    expect(m.lookup(key(1))).toEqual(value(1));
    expect(() => m.update(key(1), value(2), 'noexist')).toThrow(expect.objectContaining({ code: 'EEXIST' }));
    expect(() => m.update(key(2), value(2), 'exist')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    m.update(key(1), value(3), 'exist');
    expect(m.lookup(key(1))).toEqual(value(3));
    m.update(key(2), value(2));
    expect([...m.keys()].map((k) => k.readUInt32BE(0)).sort()).toEqual([1, 2]);
    expect(new Map([...m.entries()].map(([k, v]) => [k.readUInt32BE(0), v.readUInt32BE(0)]))).toEqual(
      new Map([
        [1, 3],
        [2, 2],
      ]),
    );
    expect(m.delete(key(1))).toBe(true);
    expect(m.delete(key(1))).toBe(false);
    expect(m.delete(key(2))).toBe(true);
    expect([...m.keys()]).toEqual([]);
  });

  it('rejects keys and values of the wrong size before the kernel sees them', () => {
    expect(() => fwd.flows.lookup(Buffer.alloc(15))).toThrow(/key must be 16 bytes, got 15/);
    expect(() => fwd.flows.update(key(1), Buffer.alloc(8))).toThrow(/value must be 24 bytes, got 8/);
    expect(() => fwd.flows.lookup('abc' as unknown as Buffer)).toThrow(TypeError);
  });

  it('batch-updates, batch-reads across cursors and batch-deletes', () => {
    const m = fwd.flows;
    const keys = Array.from({ length: 1000 }, (_, i) => key(i + 10));
    const values = keys.map((_, i) => value(i + 10));
    expect(m.updateBatch(keys, values)).toBe(1000);
    const seen = new Map<number, number>();
    let cursor: Buffer | undefined;
    let calls = 0;
    do {
      const r = m.lookupBatch(97, cursor);
      for (const [k, v] of r.entries) seen.set(k.readUInt32BE(0), v.readUInt32BE(0));
      cursor = r.cursor;
      calls++;
    } while (cursor && calls < 100);
    expect(seen.size).toBe(1000);
    for (const [k, v] of seen) expect(v).toBe(k);
    expect(calls).toBeGreaterThan(5);
    expect(m.deleteBatch(keys.slice(0, 600))).toBe(600);
    expect([...m.keys()].length).toBe(400);
    // The kernel stops at the first missing key and says how many went before it.
    expect(m.deleteBatch([key(700), key(5), key(701)])).toBe(1);
    expect(m.deleteBatch(keys.slice(600).filter((k) => k.readUInt32BE(0) !== 700))).toBe(399);
    expect([...m.keys()]).toEqual([]);
    expect(() => m.updateBatch([key(1)], [])).toThrow(RangeError);
  });

  it('batch-reads packed: one keys and one values Buffer per call, entries in step, cursors shared with lookupBatch', () => {
    const m = fwd.flows;
    const keys = Array.from({ length: 1000 }, (_, i) => key(i + 10));
    expect(m.updateBatch(keys, keys.map((_, i) => value(i + 10)))).toBe(1000);
    try {
      const seen = new Map<number, bigint>();
      let cursor: Buffer | undefined;
      let calls = 0;
      do {
        // Alternate the two methods: a cursor from either continues the other.
        if (calls % 2 === 1) {
          const r = m.lookupBatch(97, cursor);
          for (const [k, v] of r.entries) seen.set(k.readUInt32BE(0), v.readBigUInt64LE(16));
          cursor = r.cursor;
        } else {
          const r = m.lookupBatchPacked(97, cursor);
          expect(r.keys).toBeInstanceOf(Buffer);
          expect(r.keys.length).toBe(r.count * 16);
          expect(r.values.length).toBe(r.count * 24);
          for (let i = 0; i < r.count; i++) {
            const k = r.keys.readUInt32BE(i * 16);
            expect(r.values.readUInt32BE(i * 24), `entry ${i}`).toBe(k);
            seen.set(k, r.values.readBigUInt64LE(i * 24 + 16));
          }
          cursor = r.cursor;
        }
        calls++;
      } while (cursor && calls < 100);
      expect(seen.size).toBe(1000);
      for (const [k, lastUsed] of seen) expect(lastUsed).toBe(BigInt(k) * 1000n);
      expect(calls).toBeGreaterThan(5);
    } finally {
      expect(m.deleteBatch(keys)).toBe(1000);
    }
    const empty = m.lookupBatchPacked(16);
    expect(empty).toMatchObject({ count: 0, cursor: undefined });
    expect(empty.keys.length + empty.values.length).toBe(0);
  });

  it('a full map refuses new entries with E2BIG', async () => {
    const small = await XdpForwarder.load({ flowsMaxEntries: 4 });
    try {
      for (let i = 0; i < 4; i++) small.flows.update(key(i), value(i));
      expect(() => small.flows.update(key(99), value(99))).toThrow(expect.objectContaining({ code: 'E2BIG' }));
    } finally {
      small.close();
    }
  });

  it('handles outlive the object they came from, and closing twice is harmless', async () => {
    const obj = BpfObject.open(FLOWLB_BPF_OBJECT);
    await obj.load();
    expect(obj.loaded).toBe(true);
    const map = obj.map('flows');
    const prog = obj.program('flowlb_xdp');
    obj.close();
    map.update(key(5), value(5));
    expect(map.lookup(key(5))).toEqual(value(5));
    expect(prog.testRun({ data: Buffer.alloc(64) }).retval).toBe(2);
    map.close();
    map.close();
    prog.close();
    expect(() => map.lookup(key(5))).toThrow(/closed/);
    expect(() => prog.testRun({ data: Buffer.alloc(64) })).toThrow(/closed/);
    await expect(obj.load()).rejects.toThrow(/closed/);
  });

  it('rejects a program the verifier refuses, with the verifier log', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flowlb-bad-'));
    try {
      // Reads past the end of the packet without a bounds check.
      writeFileSync(
        join(dir, 'bad.bpf.c'),
        `#include <linux/bpf.h>
         __attribute__((section("xdp"), used)) int bad(struct xdp_md *ctx) {
           unsigned char *p = (unsigned char *)(long)ctx->data;
           return p[100];
         }
         char _license[] __attribute__((section("license"), used)) = "GPL";`,
      );
      execFileSync('clang', ['-O2', '-target', 'bpf', '-c', join(dir, 'bad.bpf.c'), '-o', join(dir, 'bad.o'), ...archIncludes()]);
      const obj = BpfObject.open(join(dir, 'bad.o'));
      try {
        const err = await obj.load().then(
          () => undefined,
          (e: NodeJS.ErrnoException & { log?: string }) => e,
        );
        expect(err?.code).toBe('EACCES');
        expect(err?.syscall).toBe('bpf_object__load');
        expect(err?.message).toMatch(/verifier log/);
        expect(err?.log).toMatch(/invalid access to packet/);
      } finally {
        obj.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a missing privilege says what is missing and what to do', () => {
    const script = `
      import('${join(import.meta.dirname, '..', 'dist', 'index.js')}').then(async (m) => {
        try { await m.XdpForwarder.load(); console.log('loaded'); }
        catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }
      });`;
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', process.execPath, '-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { code?: string; message?: string };
    expect(out.code).toBe('EPERM');
    expect(out.message).toMatch(/CAP_BPF and CAP_NET_ADMIN/);
  });

  it('pins and reopens maps and programs on bpffs, and refuses a path that is not bpffs', () => {
    const mnt = mkdtempSync(join(tmpdir(), 'flowlb-bpffs-'));
    execFileSync('mount', ['-t', 'bpf', 'bpf', mnt]);
    try {
      const dir = join(mnt, 'inst');
      ensureBpffsDir(dir);
      fwd.flows.update(key(42), value(42));
      fwd.flows.pin(join(dir, 'flows'));
      fwd.program.pin(join(dir, 'prog'));
      const again = BpfMap.openPinned(join(dir, 'flows'));
      expect(again.lookup(key(42))).toEqual(value(42));
      expect(again.id).toBe(fwd.flows.id);
      again.close();
      const prog = Program.openPinned(join(dir, 'prog'));
      expect(prog.name).toBe('flowlb_xdp');
      expect(prog.id).toBe(fwd.program.id);
      prog.close();
      expect(() => BpfMap.openPinned(join(dir, 'nothing'))).toThrow(
        expect.objectContaining({ code: 'ENOENT', syscall: 'bpf_obj_get' }),
      );
      expect(() => Link.openPinned(join(dir, 'nothing'))).toThrow(/nothing is pinned at that path/);
      expect(() => ensureBpffsDir(join(dir, '192.0.2.1:4433', 'x'))).toThrow(
        expect.objectContaining({ code: 'ERR_FLOWLB_BPFFS_NAME', message: expect.stringMatching(/does not allow '\.'/) }),
      );
      expect(() => ensureBpffsDir(join(tmpdir(), 'flowlb-not-bpffs'))).toThrow(
        expect.objectContaining({ code: 'ERR_FLOWLB_NOT_BPFFS', message: expect.stringMatching(/mount -t bpf bpf/) }),
      );
      fwd.flows.delete(key(42));
    } finally {
      execFileSync('umount', [mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
  });

  it('closes what a worker thread left open when the worker ends', async () => {
    const topo = new Topology();
    try {
      const ns = await topo.addNamespace('wk');
      const peer = await topo.addNamespace('wp');
      await topo.addVethPair(ns, 'wk0', peer, 'wp0');
      const worker = new Worker(
        `import('${join(import.meta.dirname, '..', 'dist', 'index.js')}').then(async (m) => {
           const fwd = await m.XdpForwarder.load({ netns: '${ns}', flowsMaxEntries: 64 });
           fwd.attach(['wk0'], { mode: 'generic', sysctls: false });
           const port = require('node:worker_threads').parentPort;
           // Listening keeps the worker alive until it is terminated.
           port.on('message', () => {});
           port.postMessage(fwd.program.id);
         });`,
        { eval: true },
      );
      const progId = await new Promise<number>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      expect(withNetns(ns, () => xdpAttachment('wk0').progId)).toBe(progId);
      await worker.terminate();
      // The worker never closed its link: the environment's cleanup hook did, and the kernel detached it.
      expect(withNetns(ns, () => xdpAttachment('wk0').progId)).toBe(0);
    } finally {
      await topo.destroy();
    }
  });

  it('handles dropped without close are released by the garbage collector', async () => {
    const { spawnSync: run } = await import('node:child_process');
    const script = `
      import('${join(import.meta.dirname, '..', 'dist', 'index.js')}').then(async (m) => {
        // Each forwarder lives in a frame of its own: a suspended async frame can keep the last value it held.
        const loadOne = async () => { const f = await m.XdpForwarder.load({ flowsMaxEntries: 16 }); f.flows.lookup(Buffer.alloc(16)); };
        for (let i = 0; i < 20; i++) await loadOne();
        for (let i = 0; i < 5; i++) { global.gc(); await new Promise((r) => setTimeout(r, 10)); }
        const fs = require('node:fs');
        console.log(fs.readdirSync('/proc/self/fd').filter((f) => { try { return fs.readlinkSync('/proc/self/fd/' + f).startsWith('anon_inode:bpf'); } catch { return false; } }).length);
      });`;
    const r = run(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(0);
    // 20 forwarders hold 200 descriptors (the program and its maps) until they are collected.
    expect(Number(r.stdout.trim())).toBeLessThan(10);
  });

  it('maps pinned through pinDir are reused by the next load, entries and all', async () => {
    const mnt = mkdtempSync(join(tmpdir(), 'flowlb-bpffs-'));
    execFileSync('mount', ['-t', 'bpf', 'bpf', mnt]);
    try {
      const a = await XdpForwarder.load({ pinDir: join(mnt, 'lb'), flowsMaxEntries: 1024 });
      a.flows.update(key(7), value(7));
      a.close();
      const b = await XdpForwarder.load({ pinDir: join(mnt, 'lb'), flowsMaxEntries: 1024 });
      try {
        expect(b.flows.lookup(key(7))).toEqual(value(7));
      } finally {
        b.close();
      }
    } finally {
      execFileSync('umount', [mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
  });
});

function archIncludes(): string[] {
  const multiarch = spawnSync('gcc', ['-print-multiarch'], { encoding: 'utf8' }).stdout.trim();
  return multiarch ? [`-I/usr/include/${multiarch}`] : [];
}

// Keep the header and the TypeScript counter names in step.
describe('stats names', () => {
  it('follow enum flowlb_stat in flowlb.h', async () => {
    const { STAT_NAMES } = await import('./stats.js');
    const header = readFileSync(join(import.meta.dirname, '..', '..', '..', 'bpf', 'include', 'flowlb.h'), 'utf8');
    const body = /enum flowlb_stat \{([\s\S]*?)\};/.exec(header)?.[1] ?? '';
    const entries = [...body.matchAll(/FLOWLB_STAT_(\w+)\s*=\s*(\d+)/g)].map((m) => [m[1], Number(m[2])] as const);
    expect(entries.length).toBe(STAT_NAMES.length);
    entries.forEach(([name, index]) => {
      const camel = name!.toLowerCase().replace(/_(\w)/g, (_, c: string) => c.toUpperCase()).replace('ipv4Udp', 'Ipv4Udp');
      expect(STAT_NAMES[index]).toBe(camel);
    });
  });
});
