import { FLOW_F_CONFIRMED, FLOW_F_REVERSE, withTargetSlot } from './layout.js';
import type { Endpoint, FlowEntry, FlowKey, FlowPair, FlowValue } from './types.js';

/*
 * A flow is stored as two entries (DESIGN.md, "Packet path"):
 *
 *   forward  key (VIP, C.ip, VIP.port, C.port)  ->  value (T.ip, SNAT, T.port, P)
 *   reverse  key (SNAT, T.ip, P, T.port)        ->  value (C.ip, VIP, C.port, VIP.port), flags REVERSE
 *
 * Each entry's value, read with destination and source swapped, is its partner's key. So either entry alone
 * names all four endpoints, and a table can find one entry's partner without any other index.
 */

/**
 * The forward entry of `pair`: client to VIP becomes SNAT to target. `targetSlot` is the target's slot in the XDP
 * program's per-target counters (see `FLOW_F_TARGET_MASK`); 0, the default, leaves the flow out of them.
 */
export function forwardEntry(pair: FlowPair, lastUsed = 0n, targetSlot = 0): FlowEntry {
  const { client, vip, snat, target } = pair;
  const flags = withTargetSlot(0, targetSlot);
  return [
    { dstAddr: vip.address, srcAddr: client.address, dstPort: vip.port, srcPort: client.port },
    { dstAddr: target.address, srcAddr: snat.address, dstPort: target.port, srcPort: snat.port, flags, lastUsed },
  ];
}

/** The reverse entry of `pair`: target to SNAT becomes VIP to client. `targetSlot` as for `forwardEntry`. */
export function reverseEntry(pair: FlowPair, lastUsed = 0n, targetSlot = 0): FlowEntry {
  const { client, vip, snat, target } = pair;
  return [
    { dstAddr: snat.address, srcAddr: target.address, dstPort: snat.port, srcPort: target.port },
    {
      dstAddr: client.address,
      srcAddr: vip.address,
      dstPort: client.port,
      srcPort: vip.port,
      flags: withTargetSlot(FLOW_F_REVERSE, targetSlot),
      lastUsed,
    },
  ];
}

/** Whether the client of this forward entry has spoken since the flow was installed (see `FLOW_F_CONFIRMED`). */
export function isConfirmed(value: Pick<FlowValue, 'flags'>): boolean {
  return (value.flags & FLOW_F_CONFIRMED) !== 0;
}

export function isReverse(value: Pick<FlowValue, 'flags'>): boolean {
  return (value.flags & FLOW_F_REVERSE) !== 0;
}

/** The SNAT port of the flow an entry belongs to: the forward entry rewrites the source to it, the reverse one is keyed by it. */
export function snatPortOf(key: FlowKey, value: FlowValue): number {
  return isReverse(value) ? key.dstPort : value.srcPort;
}

/**
 * The key of the entry that carries the other direction of the same flow: for a forward entry the reverse key,
 * for a reverse entry the forward key.
 */
export function partnerKey(value: FlowValue): FlowKey {
  return { dstAddr: value.srcAddr, srcAddr: value.dstAddr, dstPort: value.srcPort, srcPort: value.dstPort };
}

/** Recovers the flow from either of its entries; which one it is comes from `FLOW_F_REVERSE`. */
export function pairFromEntry(key: FlowKey, value: FlowValue): FlowPair {
  const keyDst: Endpoint = { address: key.dstAddr, port: key.dstPort };
  const keySrc: Endpoint = { address: key.srcAddr, port: key.srcPort };
  const valDst: Endpoint = { address: value.dstAddr, port: value.dstPort };
  const valSrc: Endpoint = { address: value.srcAddr, port: value.srcPort };
  return isReverse(value)
    ? { client: valDst, vip: valSrc, snat: keyDst, target: keySrc }
    : { client: keySrc, vip: keyDst, snat: valSrc, target: valDst };
}

/** True when `value` rewrites exactly as `expected` does; flags and last_used are bookkeeping and not compared. */
export function sameRewrite(value: FlowValue, expected: FlowValue): boolean {
  return (
    value.dstAddr === expected.dstAddr &&
    value.srcAddr === expected.srcAddr &&
    value.dstPort === expected.dstPort &&
    value.srcPort === expected.srcPort
  );
}
