import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { KernelHelloVerifyKeeper, type KernelHelloVerify } from './kernel-hello-verify.js';

const VIP = { address: '192.0.2.1', port: 4433 };
const key = (n: number): Uint8Array => new Uint8Array(16).fill(n);

/** What the keeper wrote, in order: the current key's first byte, or null for a removal. */
function recorder() {
  const writes: (number | null)[] = [];
  return {
    writes,
    target: {
      setHelloVerify: (_vip: typeof VIP, k: { keys: readonly [Uint8Array, Uint8Array]; current: 0 | 1 } | undefined) => {
        writes.push(k === undefined ? null : k.keys[k.current][0]!);
      },
    },
  };
}

describe('KernelHelloVerifyKeeper', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('writes the keys, asks again when they rotate, and removes them on stop', () => {
    const r = recorder();
    let period = 1;
    const source = (): KernelHelloVerify => ({ keys: [key(period), key(period - 1)], current: 0, refreshInMs: 1000 });
    const k = new KernelHelloVerifyKeeper(r.target, VIP, source, (e) => {
      throw e;
    });
    k.refresh();
    expect(r.writes).toEqual([1]);
    period = 2;
    vi.advanceTimersByTime(999);
    expect(r.writes).toEqual([1]);
    vi.advanceTimersByTime(1);
    expect(r.writes).toEqual([1, 2]);
    k.stop();
    expect(r.writes).toEqual([1, 2, null]);
    vi.advanceTimersByTime(10_000);
    expect(r.writes).toEqual([1, 2, null]);
    expect(k.active).toBe(false);
  });

  it('removes the keys once the source has none, and writes them again when it has', () => {
    const r = recorder();
    let on = true;
    const k = new KernelHelloVerifyKeeper(r.target, VIP, () => (on ? { keys: [key(7), key(6)], current: 0, refreshInMs: 60_000 } : undefined), () => {});
    k.refresh();
    on = false;
    k.refresh();
    k.refresh();
    on = true;
    k.refresh();
    // Nothing was in the program to remove the second time.
    expect(r.writes).toEqual([7, null, 7]);
  });

  it('asks again within a minute whatever the source says, and tries again a second after a failed write', () => {
    const r = recorder();
    const errors: string[] = [];
    let fail = false;
    const target = {
      setHelloVerify: (vip: typeof VIP, keys: Parameters<typeof r.target.setHelloVerify>[1]) => {
        if (fail) throw new Error('map gone');
        r.target.setHelloVerify(vip, keys);
      },
    };
    const k = new KernelHelloVerifyKeeper(target, VIP, () => ({ keys: [key(1), key(2)], current: 1, refreshInMs: Number.POSITIVE_INFINITY }), (e) =>
      errors.push(e.message),
    );
    k.refresh();
    expect(r.writes).toEqual([2]);
    fail = true;
    vi.advanceTimersByTime(60_000);
    expect(errors).toEqual(['map gone']);
    fail = false;
    vi.advanceTimersByTime(1000);
    expect(r.writes).toEqual([2, 2]);
    k.stop();
  });
});
