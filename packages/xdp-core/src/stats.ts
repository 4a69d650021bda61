/**
 * Names of the XDP program's counters, in the order of `enum flowlb_stat` in bpf/include/flowlb.h (a test holds
 * the two together).
 */
export const STAT_NAMES = [
  'fwdHit',
  'revHit',
  'miss',
  'fragment',
  'ttl',
  'fibNoNeigh',
  'fibUnreachable',
  'fibNotFwded',
  'fibFragNeeded',
  'fibOther',
  'malformed',
  'notIpv4Udp',
  'rateLimited',
  'helloVerify',
  'fragmentFwd',
  'egressNoXdp',
] as const;

export type StatName = (typeof STAT_NAMES)[number];
export type XdpStats = Record<StatName, number>;

/** Sums the per-CPU u64 slots of each counter. */
export function sumPerCpu(values: ReadonlyArray<Buffer | undefined>, slot = 8): number {
  let total = 0n;
  for (const v of values) {
    if (!v) continue;
    for (let off = 0; off + 8 <= v.length; off += slot) total += v.readBigUInt64LE(off);
  }
  return Number(total);
}
