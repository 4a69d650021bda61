/**
 * XdpForwarder.targetSlot and targetStats over pinned maps: the slot claims every process sharing the pins must
 * agree on, probing and collisions, a full table, and the sums of the per-CPU counters.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { endianness, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { describePrivileged, parseIpv4 } from '@flowlb/testkit';
import { BpfMap, XdpForwarder, type TargetTraffic } from './index.js';

const TARGETS_MAX = 4095;
const LE = endianness() === 'LE';

function slotKey(slot: number): Buffer {
  const k = Buffer.alloc(4);
  if (LE) k.writeUInt32LE(slot);
  else k.writeUInt32BE(slot);
  return k;
}

/** `struct flowlb_target`: addr and port in network byte order, pad 0. */
function targetValue(address: string, port: number): Buffer {
  const v = Buffer.alloc(8);
  parseIpv4(address).copy(v, 0);
  v.writeUInt16BE(port, 4);
  return v;
}

/**
 * The documented start of a target's probe (bpf/include/flowlb.h), written again here so that the format is checked
 * rather than the forwarder against itself: FNV-1a-32 over addr and port as stored, mod FLOWLB_TARGETS_MAX, plus 1.
 */
function probeStart(address: string, port: number): number {
  let h = 0x811c9dc5n;
  for (const b of targetValue(address, port).subarray(0, 6)) h = ((h ^ BigInt(b)) * 0x01000193n) & 0xffffffffn;
  return Number(h % BigInt(TARGETS_MAX)) + 1;
}

const next = (slot: number, n = 1): number => ((slot - 1 + n) % TARGETS_MAX) + 1;

describePrivileged('XdpForwarder target slots', () => {
  let bpffs: string;
  let dirs = 0;
  const loaded: XdpForwarder[] = [];
  const opened: BpfMap[] = [];

  beforeAll(() => {
    bpffs = mkdtempSync(join(tmpdir(), 'flowlb-slots-'));
    execFileSync('mount', ['-t', 'bpf', 'bpf', bpffs]);
  });

  afterEach(() => {
    vi.restoreAllMocks();
  });

  afterAll(() => {
    for (const m of opened) m.close();
    for (const f of loaded) {
      try {
        f.close();
      } catch {
        // already closed
      }
    }
    if (bpffs) {
      execFileSync('umount', [bpffs]);
      rmSync(bpffs, { recursive: true, force: true });
    }
  });

  const freshDir = (): string => join(bpffs, `d${++dirs}`);
  const load = async (pinDir: string): Promise<XdpForwarder> => {
    const f = await XdpForwarder.load({ pinDir, flowsMaxEntries: 64 });
    loaded.push(f);
    return f;
  };
  const pinned = (pinDir: string, name: 'target_slots' | 'target_stats'): BpfMap => {
    const m = BpfMap.openPinned(join(pinDir, name));
    opened.push(m);
    return m;
  };

  it('pins target_slots and target_stats beside flows and stats, and removePins removes them', async () => {
    const dir = freshDir();
    const f = await load(dir);
    expect(readdirSync(dir).sort()).toEqual(['flows', 'nexthop_ctl', 'stats', 'target_slots', 'target_stats']);
    const slots = pinned(dir, 'target_slots');
    expect([slots.keySize, slots.elementSize, slots.maxEntries, slots.perCpu]).toEqual([4, 8, TARGETS_MAX, false]);
    f.close();
    const removed = XdpForwarder.removePins(dir);
    expect(removed.removed.map((p) => p.slice(dir.length + 1)).sort()).toEqual(['flows', 'nexthop_ctl', 'stats', 'target_slots', 'target_stats']);
    expect(removed.folderRemoved).toBe(true);
    expect(existsSync(dir)).toBe(false);
  });

  it('another process turns the next-hop cache off and on through the pinned nexthop_ctl, dropping what was cached', async () => {
    const dir = freshDir();
    const f = await load(dir);
    const ctl = BpfMap.openPinned(join(dir, 'nexthop_ctl'));
    opened.push(ctl);
    const flags = (): number => ctl.lookup(Buffer.alloc(4))!.readUInt32LE(4);
    const gen = f.nextHopGeneration;
    XdpForwarder.setPinnedNextHopCache(dir, false);
    expect([f.nextHopGeneration, flags()]).toEqual([gen + 1, 1]);
    XdpForwarder.setPinnedNextHopCache(dir, true);
    expect([f.nextHopGeneration, flags()]).toEqual([gen + 2, 0]);
  });

  it('gives the same target the same slot, at the start of its probe, and records it in target_slots', async () => {
    const dir = freshDir();
    const f = await load(dir);
    const slot = f.targetSlot({ address: '10.1.0.20', port: 6000 });
    expect(slot).toBe(probeStart('10.1.0.20', 6000));
    expect(f.targetSlot({ address: '10.1.0.20', port: 6000 })).toBe(slot);
    expect(pinned(dir, 'target_slots').lookup(slotKey(slot))).toEqual(targetValue('10.1.0.20', 6000));
  });

  it('gives different targets different slots, the port alone making a target different', async () => {
    const f = await load(freshDir());
    const targets = Array.from({ length: 64 }, (_, i) => ({ address: `10.2.${i >> 3}.${1 + (i & 7)}`, port: 7000 + (i % 3) }));
    targets.push({ address: '10.2.0.1', port: 7001 }, { address: '10.2.0.1', port: 7002 });
    const slots = targets.map((t) => f.targetSlot(t));
    expect(new Set(slots).size).toBe(targets.length);
    for (const s of slots) {
      expect(s).toBeGreaterThanOrEqual(1);
      expect(s).toBeLessThanOrEqual(TARGETS_MAX);
    }
    // And again, from the cache, the same answers.
    expect(targets.map((t) => f.targetSlot(t))).toEqual(slots);
  });

  it('a second forwarder over the same pinned maps finds the slots of the first, and the first those of the second', async () => {
    const dir = freshDir();
    const first = await load(dir);
    const a = first.targetSlot({ address: '10.3.0.1', port: 443 });
    const b = first.targetSlot({ address: '10.3.0.2', port: 443 });
    const second = await load(dir);
    expect(second.targetStats().map((r) => [r.target, r.slot])).toEqual(
      [
        [{ address: '10.3.0.1', port: 443 }, a],
        [{ address: '10.3.0.2', port: 443 }, b],
      ].sort((x, y) => (x[1] as number) - (y[1] as number)),
    );
    expect(second.targetSlot({ address: '10.3.0.2', port: 443 })).toBe(b);
    expect(second.targetSlot({ address: '10.3.0.1', port: 443 })).toBe(a);
    // Claimed by the second after the first has cached what it knew.
    const c = second.targetSlot({ address: '10.3.0.3', port: 443 });
    expect(first.targetSlot({ address: '10.3.0.3', port: 443 })).toBe(c);
    expect(new Set([a, b, c]).size).toBe(3);
    // Once the first process is gone, a third still agrees.
    first.close();
    const third = await load(dir);
    expect(third.targetSlot({ address: '10.3.0.1', port: 443 })).toBe(a);
  });

  it('probes on past slots that hold other endpoints, wrapping from the last slot to slot 1', async () => {
    const dir = freshDir();
    const f = await load(dir);
    const slots = pinned(dir, 'target_slots');
    const start = probeStart('10.4.0.1', 8000);
    slots.update(slotKey(start), targetValue('10.4.9.9', 1));
    expect(f.targetSlot({ address: '10.4.0.1', port: 8000 })).toBe(next(start));

    const start2 = probeStart('10.4.0.2', 8000);
    for (const n of [0, 1]) if (!slots.lookup(slotKey(next(start2, n)))) slots.update(slotKey(next(start2, n)), targetValue('10.4.9.9', 2 + n));
    const taken = (s: number): boolean => slots.lookup(slotKey(s)) !== undefined;
    let expected = start2;
    while (taken(expected)) expected = next(expected);
    expect(expected).not.toBe(start2);
    expect(f.targetSlot({ address: '10.4.0.2', port: 8000 })).toBe(expected);

    // A target whose probe starts at the last slot.
    let port = 1;
    while (probeStart('10.4.0.3', port) !== TARGETS_MAX) port++;
    slots.update(slotKey(TARGETS_MAX), targetValue('10.4.9.9', 9));
    expect(taken(1)).toBe(false);
    expect(f.targetSlot({ address: '10.4.0.3', port })).toBe(1);
  });

  it('a slot another process takes between the lookup and the insert (EEXIST) is used when it holds the target, passed over when not', async () => {
    const dir = freshDir();
    const f = await load(dir);
    const slots = pinned(dir, 'target_slots');
    const lookup = BpfMap.prototype.lookup;
    // The forwarder's lookup of the start slot sees it empty; the insert then finds it taken.
    const raceOnce = (): void => {
      let raced = false;
      vi.spyOn(BpfMap.prototype, 'lookup').mockImplementation(function (this: BpfMap, key: Uint8Array) {
        if (!raced && this.name === 'target_slots') {
          raced = true;
          return undefined;
        }
        return lookup.call(this, key);
      });
    };

    const mine = { address: '10.5.0.1', port: 9000 };
    const start = probeStart(mine.address, mine.port);
    slots.update(slotKey(start), targetValue(mine.address, mine.port));
    raceOnce();
    expect(f.targetSlot(mine)).toBe(start);
    vi.restoreAllMocks();

    const other = { address: '10.5.0.2', port: 9000 };
    const start2 = probeStart(other.address, other.port);
    slots.update(slotKey(start2), targetValue('10.5.9.9', 1));
    raceOnce();
    let expected = next(start2);
    while (slots.lookup(slotKey(expected))) expected = next(expected);
    expect(f.targetSlot(other)).toBe(expected);
    expect(slots.lookup(slotKey(expected))).toEqual(targetValue(other.address, other.port));
  });

  it('returns 0 once every slot is taken, and still finds the slots already held', async () => {
    const dir = freshDir();
    const f = await load(dir);
    const slots = pinned(dir, 'target_slots');
    const held = { address: '10.6.0.1', port: 53 };
    const heldSlot = f.targetSlot(held);
    const keys: Buffer[] = [];
    const values: Buffer[] = [];
    for (let s = 1; s <= TARGETS_MAX; s++) {
      if (s === heldSlot) continue;
      keys.push(slotKey(s));
      values.push(targetValue(`10.7.${s >> 8}.${s & 255}`, 1000));
    }
    slots.updateBatch(keys, values);
    const again = await load(dir);
    expect(again.targetSlot(held)).toBe(heldSlot);
    expect(again.targetSlot({ address: '10.7.1.2', port: 1000 })).toBe(258);
    expect(again.targetSlot({ address: '10.6.0.2', port: 53 })).toBe(0);
    expect(again.targetSlot({ address: '10.6.0.3', port: 53 })).toBe(0);
    expect(f.targetSlot({ address: '10.6.0.2', port: 53 })).toBe(0);
    expect(again.targetStats()).toHaveLength(TARGETS_MAX);
  });

  it('refuses what is not an endpoint, and a closed forwarder', async () => {
    const f = await load(freshDir());
    for (const port of [0, 65536, 1.5, Number.NaN]) {
      expect(() => f.targetSlot({ address: '10.0.0.1', port })).toThrow(RangeError);
    }
    expect(() => f.targetSlot({ address: '10.0.0.256', port: 1 })).toThrow(/targetSlot: address/);
    expect(() => f.targetSlot({ address: 'fd00::1', port: 1 })).toThrow(/targetSlot: address/);
    f.close();
    expect(() => f.targetSlot({ address: '10.0.0.1', port: 1 })).toThrow(/closed/);
    expect(() => f.targetStats()).toThrow(/closed/);
  });

  it('targetStats sums every CPU of each claimed slot, one row per slot in slot order, zeros for a new slot', async () => {
    const dir = freshDir();
    const f = await load(dir);
    const stats = pinned(dir, 'target_stats');
    const targets = [
      { address: '10.8.0.1', port: 1 },
      { address: '10.8.0.2', port: 2 },
      { address: '10.8.0.3', port: 3 },
    ];
    const slots = targets.map((t) => f.targetSlot(t));
    // Each CPU's struct flowlb_target_stats: CPU c holds (c + 1) * (field + 1) * slot.
    const cpus = stats.possibleCpus;
    const write = (slot: number): void => {
      const v = Buffer.alloc(stats.valueSize);
      for (let c = 0; c < cpus; c++) {
        for (let i = 0; i < 5; i++) {
          const n = BigInt((c + 1) * (i + 1) * slot);
          if (LE) v.writeBigUInt64LE(n, c * 40 + i * 8);
          else v.writeBigUInt64BE(n, c * 40 + i * 8);
        }
      }
      stats.update(slotKey(slot), v);
    };
    write(slots[0]!);
    write(slots[2]!);
    const tri = (cpus * (cpus + 1)) / 2;
    const sums = (slot: number, on: boolean): Omit<TargetTraffic, 'target' | 'slot'> => ({
      fwdPackets: on ? tri * slot : 0,
      fwdBytes: on ? 2 * tri * slot : 0,
      revPackets: on ? 3 * tri * slot : 0,
      revBytes: on ? 4 * tri * slot : 0,
      icmpUnreachable: on ? 5 * tri * slot : 0,
    });
    const expected: TargetTraffic[] = targets
      .map((target, i) => ({ target, slot: slots[i]!, ...sums(slots[i]!, i !== 1) }))
      .sort((a, b) => a.slot - b.slot);
    expect(f.targetStats()).toEqual(expected);
    for (const row of f.targetStats()) for (const k of ['fwdPackets', 'fwdBytes', 'revPackets', 'revBytes', 'icmpUnreachable'] as const) expect(typeof row[k]).toBe('number');
  });
});
