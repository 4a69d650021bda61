import { STAT_NAMES, type StatName } from '@flowlb/xdp-core';

export interface PerCpuMap {
  lookup(key: Uint8Array): Buffer | undefined;
  readonly possibleCpus: number;
}

/** The XDP counters summed over CPUs: each value holds one u64 per possible CPU. */
export function readXdpStats(map: PerCpuMap): Record<StatName, number> {
  const key = Buffer.alloc(4);
  const out = {} as Record<StatName, number>;
  STAT_NAMES.forEach((name, i) => {
    key.writeUInt32LE(i);
    const value = map.lookup(key);
    let total = 0n;
    if (value) for (let off = 0; off + 8 <= value.length; off += 8) total += value.readBigUInt64LE(off);
    out[name] = Number(total);
  });
  return out;
}
