import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { inSlice, SnatPortPool, SnatPortPools } from './snat-pool.js';

type Op = { kind: 'alloc' } | { kind: 'free'; pick: number } | { kind: 'freeAny'; port: number } | { kind: 'take'; port: number };

const range = fc
  .tuple(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 0, max: 300 }))
  .map(([min, span]) => ({ min, max: Math.min(65535, min + span) }));

function opsFor(min: number, max: number): fc.Arbitrary<Op[]> {
  const near = fc.integer({ min: Math.max(0, min - 3), max: Math.min(65538, max + 3) });
  return fc.array(
    fc.oneof(
      { weight: 5, arbitrary: fc.constant<Op>({ kind: 'alloc' }) },
      { weight: 3, arbitrary: fc.nat().map<Op>((pick) => ({ kind: 'free', pick })) },
      { weight: 1, arbitrary: near.map<Op>((port) => ({ kind: 'freeAny', port })) },
      { weight: 1, arbitrary: near.map<Op>((port) => ({ kind: 'take', port })) },
    ),
    { maxLength: 600 },
  );
}

describe('SnatPortPool', () => {
  it('agrees with a set of held ports over any sequence of alloc, free and take', () => {
    fc.assert(
      fc.property(
        range.chain((r) => fc.tuple(fc.constant(r), opsFor(r.min, r.max))),
        ([r, ops]) => {
          const pool = new SnatPortPool(r);
          const size = r.max - r.min + 1;
          const held = new Set<number>();
          for (const op of ops) {
            switch (op.kind) {
              case 'alloc': {
                const port = pool.alloc();
                if (held.size === size) {
                  // Exhaustion is an answer, not an error.
                  expect(port).toBeUndefined();
                } else {
                  expect(port).toBeDefined();
                  expect(port).toBeGreaterThanOrEqual(r.min);
                  expect(port).toBeLessThanOrEqual(r.max);
                  // Never a port that is still held.
                  expect(held.has(port!)).toBe(false);
                  held.add(port!);
                }
                break;
              }
              case 'free': {
                if (held.size === 0) break;
                const port = [...held][op.pick % held.size]!;
                expect(pool.free(port)).toBe(true);
                held.delete(port);
                break;
              }
              case 'freeAny':
                expect(pool.free(op.port)).toBe(held.delete(op.port));
                break;
              case 'take': {
                const inRange = op.port >= r.min && op.port <= r.max;
                const ok = pool.take(op.port);
                expect(ok).toBe(inRange && !held.has(op.port));
                if (ok) held.add(op.port);
                break;
              }
            }
            expect(pool.inUse).toBe(held.size);
          }
          for (let p = r.min; p <= r.max; p++) expect(pool.has(p)).toBe(held.has(p));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('with a slice, agrees with a set of held ports of that slice only, over any sequence of operations', () => {
    const sliced = range.chain((r) =>
      fc.tuple(
        fc.constant(r),
        fc.integer({ min: 1, max: 5 }).chain((count) => fc.record({ index: fc.integer({ min: 0, max: count - 1 }), count: fc.constant(count) })),
        opsFor(r.min, r.max),
      ),
    );
    fc.assert(
      fc.property(sliced, ([r, slice, ops]) => {
        const pool = new SnatPortPool(r, { slice });
        const mine = (p: number): boolean => p >= r.min && p <= r.max && inSlice(p, r.min, slice);
        let size = 0;
        for (let p = r.min; p <= r.max; p++) if (mine(p)) size++;
        expect(pool.size).toBe(size);
        const held = new Set<number>();
        for (const op of ops) {
          if (op.kind === 'alloc') {
            const port = pool.alloc();
            if (held.size === size) expect(port).toBeUndefined();
            else {
              expect(mine(port!)).toBe(true);
              expect(held.has(port!)).toBe(false);
              held.add(port!);
            }
          } else if (op.kind === 'free') {
            if (held.size === 0) continue;
            const port = [...held][op.pick % held.size]!;
            expect(pool.free(port)).toBe(true);
            held.delete(port);
          } else if (op.kind === 'freeAny') {
            expect(pool.free(op.port)).toBe(held.delete(op.port));
          } else {
            const ok = pool.take(op.port);
            expect(ok).toBe(mine(op.port) && !held.has(op.port));
            if (ok) held.add(op.port);
          }
          expect(pool.inUse).toBe(held.size);
        }
        for (let p = r.min; p <= r.max; p++) {
          expect(pool.has(p)).toBe(held.has(p));
          expect(pool.owns(p)).toBe(mine(p));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('splits a range between workers: their slices are disjoint and cover it, exclusions apply within each', () => {
    const r = { min: 20000, max: 20010 };
    const vip = { address: '10.0.0.1', port: 20004 };
    const target = { address: '10.0.0.1', port: 20007 };
    const seen: number[] = [];
    for (let index = 0; index < 3; index++) {
      const pools = new SnatPortPools(r, { vip, slice: { index, count: 3 } });
      const own: number[] = [];
      for (let p = pools.alloc('10.0.0.1', target); p !== undefined; p = pools.alloc('10.0.0.1', target)) own.push(p);
      expect(own.every((p) => pools.owns(p) && (p - r.min) % 3 === index)).toBe(true);
      expect(pools.owns(r.min + ((index + 1) % 3))).toBe(false);
      seen.push(...own);
    }
    // Every port but the VIP's and the target's own, each handed out by exactly one worker.
    expect(seen.sort()).toEqual([20000, 20001, 20002, 20003, 20005, 20006, 20008, 20009, 20010]);
    expect(() => new SnatPortPools(r, { slice: { index: 3, count: 3 } })).toThrow(/is not a slice/);
  });

  it('hands out every port of the range exactly once before it is exhausted', () => {
    fc.assert(
      fc.property(range, (r) => {
        const pool = new SnatPortPool(r);
        const seen = new Set<number>();
        for (let i = 0; i < pool.size; i++) seen.add(pool.alloc()!);
        expect(seen.size).toBe(pool.size);
        expect(Math.min(...seen)).toBe(r.min);
        expect(Math.max(...seen)).toBe(r.max);
        expect(pool.alloc()).toBeUndefined();
        expect(pool.available).toBe(0);
      }),
    );
  });

  it('makes freed ports usable again, the one freed longest ago first', () => {
    fc.assert(
      fc.property(
        range.filter((r) => r.max > r.min),
        fc.array(fc.nat(), { minLength: 1, maxLength: 50 }),
        (r, picks) => {
          const pool = new SnatPortPool(r);
          const all: number[] = [];
          for (let p = pool.alloc(); p !== undefined; p = pool.alloc()) all.push(p);
          const freed: number[] = [];
          for (const pick of picks) {
            const candidates = all.filter((p) => !freed.includes(p));
            if (candidates.length === 0) break;
            const port = candidates[pick % candidates.length]!;
            expect(pool.free(port)).toBe(true);
            freed.push(port);
          }
          // Exhausted before the frees, so exactly the freed ports come back, in the order they were freed.
          expect(freed.map(() => pool.alloc())).toEqual(freed);
          expect(pool.alloc()).toBeUndefined();
        },
      ),
    );
  });

  it('hands out ports never used before freed ones, then the freed ones oldest first, skipping one taken meanwhile', () => {
    const pool = new SnatPortPool({ min: 100, max: 105 });
    expect([pool.alloc(), pool.alloc(), pool.alloc()]).toEqual([100, 101, 102]);
    expect(pool.free(101)).toBe(true);
    expect(pool.free(100)).toBe(true);
    // The port a client has just left rests while any other is free.
    expect([pool.alloc(), pool.alloc(), pool.alloc()]).toEqual([103, 104, 105]);
    expect(pool.take(101)).toBe(true);
    expect(pool.alloc()).toBe(100);
    expect(pool.alloc()).toBeUndefined();
    expect(pool.free(101)).toBe(true);
    expect(pool.free(101)).toBe(false);
    expect(pool.alloc()).toBe(101);
  });

  it('gives a freed port back only after every other port has been handed out since', () => {
    fc.assert(
      fc.property(range.filter((r) => r.max > r.min), fc.nat(), (r, n) => {
        const pool = new SnatPortPool(r);
        const last = new Map<number, number>();
        // One client at a time: each frees its port before the next arrives.
        const rounds = pool.size * 2 + (n % 50);
        for (let i = 0; i < rounds; i++) {
          const port = pool.alloc()!;
          const before = last.get(port);
          if (before !== undefined) expect(i - before).toBe(pool.size);
          last.set(port, i);
          expect(pool.free(port)).toBe(true);
        }
      }),
    );
  });

  it('takes a port beyond the cursor and the cursor steps over it', () => {
    const pool = new SnatPortPool({ min: 1, max: 3 });
    expect(pool.take(2)).toBe(true);
    expect([pool.alloc(), pool.alloc(), pool.alloc()]).toEqual([1, 3, undefined]);
    expect(pool.free(2)).toBe(true);
    expect(pool.alloc()).toBe(2);
  });

  it('stays small: bitmaps and a ring of freed ports, nothing per port in use', () => {
    const pool = new SnatPortPool({ min: 10000, max: 29999 });
    const start = pool.footprint;
    expect(start).toBeLessThanOrEqual(5 * 1024 + 128);
    for (let i = 0; i < 20000; i++) pool.alloc();
    expect(pool.footprint).toBe(start);
    for (let p = 10000; p <= 29999; p++) pool.free(p);
    // The ring grows to two bytes per freed port at most.
    expect(pool.footprint).toBeLessThanOrEqual(start + 2 * 20000);
  });

  it('never hands out, takes or frees an excluded port, and counts only the others', () => {
    fc.assert(
      fc.property(
        range.chain((r) =>
          fc.tuple(
            fc.constant(r),
            fc.uniqueArray(fc.integer({ min: Math.max(1, r.min - 2), max: Math.min(65535, r.max + 2) }), { maxLength: 4 }),
            opsFor(r.min, r.max),
          ),
        ),
        ([r, exclude, ops]) => {
          const pool = new SnatPortPool(r, { exclude });
          const excluded = new Set(exclude.filter((p) => p >= r.min && p <= r.max));
          expect(pool.excluded).toEqual([...excluded].sort((x, y) => x - y));
          expect(pool.size).toBe(r.max - r.min + 1 - excluded.size);
          const held = new Set<number>();
          for (const op of ops) {
            if (op.kind === 'alloc') {
              const port = pool.alloc();
              if (held.size === pool.size) expect(port).toBeUndefined();
              else {
                expect(excluded.has(port!)).toBe(false);
                expect(held.has(port!)).toBe(false);
                held.add(port!);
              }
            } else if (op.kind === 'take') {
              const ok = pool.take(op.port);
              expect(ok).toBe(op.port >= r.min && op.port <= r.max && !excluded.has(op.port) && !held.has(op.port));
              if (ok) held.add(op.port);
            } else {
              const port = op.kind === 'free' ? [...held][op.pick % Math.max(1, held.size)] : op.port;
              if (port === undefined) continue;
              expect(pool.free(port)).toBe(held.delete(port));
            }
            expect(pool.inUse).toBe(held.size);
            expect(pool.available).toBe(pool.size - held.size);
          }
          for (let p = r.min; p <= r.max; p++) expect(pool.has(p)).toBe(held.has(p));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('with every port excluded is empty from the start', () => {
    const pool = new SnatPortPool({ min: 7000, max: 7000 }, { exclude: [7000] });
    expect([pool.size, pool.available, pool.inUse]).toEqual([0, 0, 0]);
    expect(pool.alloc()).toBeUndefined();
    expect(pool.take(7000)).toBe(false);
    expect(pool.free(7000)).toBe(false);
    expect(pool.has(7000)).toBe(false);
  });

  it('rejects a bad range with a clear error', () => {
    expect(() => new SnatPortPool({ min: 0, max: 10 })).toThrow(/min: 0 is not a port number/);
    expect(() => new SnatPortPool({ min: 20, max: 10 })).toThrow(/min 20 is greater than max 10/);
    expect(() => new SnatPortPool({ min: 1, max: 70000 })).toThrow(/max: 70000/);
  });
});

describe('SnatPortPools', () => {
  const a = { address: '10.0.0.5', port: 7000 };
  const b = { address: '10.0.0.6', port: 7000 };

  it('keeps one pool per target, so the same port serves several targets', () => {
    const pools = new SnatPortPools({ min: 20000, max: 20001 });
    expect(pools.alloc('10.0.0.1', a)).toBe(20000);
    expect(pools.alloc('10.0.0.1', b)).toBe(20000);
    expect(pools.alloc('10.0.0.1', { ...a, port: 7001 })).toBe(20000);
    expect(pools.alloc('10.0.0.2', a)).toBe(20000);
    expect(pools.alloc('10.0.0.1', a)).toBe(20001);
    expect(pools.alloc('10.0.0.1', a)).toBeUndefined();
    expect(pools.inUse).toBe(5);
    expect(pools.poolCount).toBe(4);
    // Two SNAT addresses towards one target add up under that target.
    expect(pools.inUseByTarget().get('10.0.0.5:7000')).toBe(3);
    expect(pools.take('10.0.0.2', b, 20001)).toBe(true);
    expect(pools.inUseByTarget().get('10.0.0.6:7000')).toBe(2);
  });

  it("keeps an emptied pool, so a target's next client does not get the port the last one left", () => {
    const pools = new SnatPortPools({ min: 20000, max: 29999 });
    const p = pools.alloc('10.0.0.1', a)!;
    expect(pools.has('10.0.0.1', a, p)).toBe(true);
    expect(pools.free('10.0.0.1', b, p)).toBe(false);
    expect(pools.free('10.0.0.1', a, p)).toBe(true);
    expect(pools.free('10.0.0.1', a, p)).toBe(false);
    expect([pools.poolCount, pools.idlePoolCount, pools.inUse]).toEqual([0, 1, 0]);
    const next = pools.alloc('10.0.0.1', a)!;
    expect(next).not.toBe(p);
    expect([pools.poolCount, pools.idlePoolCount, pools.inUse]).toEqual([1, 0, 1]);
  });

  it('keeps at most maxIdlePools idle pools, dropping the one emptied longest ago', () => {
    const pools = new SnatPortPools({ min: 20000, max: 29999 }, { maxIdlePools: 2 });
    const targets = [1, 2, 3, 4].map((i) => ({ address: `10.0.1.${i}`, port: 7000 }));
    for (const t of targets) expect(pools.free('10.0.0.1', t, pools.alloc('10.0.0.1', t)!)).toBe(true);
    expect([pools.poolCount, pools.idlePoolCount]).toEqual([0, 2]);
    const onePool = pools.footprint / 2;
    expect(pools.footprint).toBe(2 * onePool);
    // The two kept are the last emptied: their next port moves on; the dropped ones start over.
    expect(pools.alloc('10.0.0.1', targets[3]!)).toBe(20001);
    expect(pools.alloc('10.0.0.1', targets[0]!)).toBe(20000);
    expect(() => new SnatPortPools({ min: 1, max: 2 }, { maxIdlePools: -1 })).toThrow(/maxIdlePools -1/);
  });

  it("never hands out a target's own port on its own address, nor the VIP's port on the VIP's address", () => {
    const vip = { address: '127.0.0.1', port: 17000 };
    const pools = new SnatPortPools({ min: 17000, max: 17003 }, { vip });
    const b1 = { address: '127.0.0.1', port: 17001 };
    const b2 = { address: '127.0.0.1', port: 17002 };
    const remote = { address: '10.0.0.9', port: 17001 };
    expect(pools.excluded('127.0.0.1', b1)).toEqual([17000, 17001]);
    expect(pools.available('127.0.0.1', b1)).toBe(2);
    const toB1 = [pools.alloc('127.0.0.1', b1), pools.alloc('127.0.0.1', b1), pools.alloc('127.0.0.1', b1)];
    expect(toB1).toEqual([17002, 17003, undefined]);
    expect(pools.take('127.0.0.1', b1, 17001)).toBe(false);
    expect(pools.take('127.0.0.1', b1, 17000)).toBe(false);
    expect(pools.free('127.0.0.1', b1, 17001)).toBe(false);
    expect(pools.available('127.0.0.1', b1)).toBe(0);
    // Another target on the same address may use b1's port: the kernel keeps the two sockets' peers apart.
    expect(pools.alloc('127.0.0.1', b2)).toBe(17001);
    // Towards a target elsewhere only the VIP's port is out, and only on the VIP's address.
    expect(pools.excluded('127.0.0.1', remote)).toEqual([17000]);
    expect(pools.alloc('127.0.0.1', remote)).toBe(17001);
    expect(pools.excluded('127.0.0.2', remote)).toEqual([]);
    expect(pools.alloc('127.0.0.2', remote)).toBe(17000);
    expect(pools.inUse).toBe(5);
    expect(pools.poolCount).toBe(4);
    for (const port of [17002, 17003]) expect(pools.free('127.0.0.1', b1, port)).toBe(true);
    expect(pools.available('127.0.0.1', b1)).toBe(2);
    expect(pools.inUse).toBe(3);
    expect(pools.poolCount).toBe(3);
  });

  it('a VIP on 0.0.0.0 holds its port on every SNAT address; exclusions outside the range change nothing', () => {
    const pools = new SnatPortPools({ min: 20000, max: 20009 }, { vip: { address: '0.0.0.0', port: 20005 } });
    expect(pools.excluded('10.0.0.1', { address: '10.0.0.1', port: 9 })).toEqual([20005]);
    expect(pools.available('10.0.0.1', { address: '10.0.0.1', port: 9 })).toBe(9);
    const without = new SnatPortPools({ min: 20000, max: 20009 });
    expect(without.excluded('10.0.0.1', a)).toEqual([]);
    expect(without.available('10.0.0.1', a)).toBe(10);
  });

  it('never holds a port twice across pools under random use', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 3 }), fc.nat()), { maxLength: 400 }),
        (ops) => {
          const targets = [a, b, { address: '10.0.0.7', port: 1 }, { address: '10.0.0.7', port: 2 }];
          const pools = new SnatPortPools({ min: 5, max: 12 });
          const held = targets.map(() => new Set<number>());
          for (const [isAlloc, t, pick] of ops) {
            const target = targets[t]!;
            if (isAlloc) {
              const port = pools.alloc('10.0.0.1', target);
              if (held[t]!.size === 8) expect(port).toBeUndefined();
              else {
                expect(held[t]!.has(port!)).toBe(false);
                held[t]!.add(port!);
              }
            } else if (held[t]!.size > 0) {
              const port = [...held[t]!][pick % held[t]!.size]!;
              expect(pools.free('10.0.0.1', target, port)).toBe(true);
              held[t]!.delete(port);
            }
            expect(pools.inUse).toBe(held.reduce((n, s) => n + s.size, 0));
            const expected = new Map(targets.flatMap((tg, i) => (held[i]!.size > 0 ? [[`${tg.address}:${tg.port}`, held[i]!.size] as const] : [])));
            expect(new Map(pools.inUseByTarget())).toEqual(expected);
          }
        },
      ),
    );
  });
});
