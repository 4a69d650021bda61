import { isConfirmed, isPartnerOf, isReverse, pairFromEntry, partnerKey } from '@flowlb/flow-table';
import type { FlowKey, FlowPair, FlowPairKind, FlowTable, FlowValue } from '@flowlb/flow-table';

/** What the cleaner needs of a table. With `scanIdle` a sweep skips active entries without decoding them. */
export type SweepableTable = Pick<FlowTable, 'get' | 'delete' | 'scan'> & Partial<Pick<FlowTable, 'scanIdle'>>;

export interface ExpiredFlow {
  pair: FlowPair;
  /** `pair`, or the half that was left of a flow whose other entry was already gone. */
  kind: FlowPairKind;
  /** The later last_used of the flow's entries. */
  lastUsed: bigint;
  /** How long the flow had been idle when it was removed, in nanoseconds. */
  idleNs: bigint;
  /** Removed because its client never spoke after the install, within the shorter TTL for such flows. */
  unconfirmed: boolean;
}

/**
 * Removes the flow that the entry at `key` belongs to if it is idle, that is if `now - last_used > ttlNs` holds for
 * every entry it has, or if its client never spoke after the install (the forward entry is not confirmed) and the
 * forward entry is older than `unconfirmedTtlNs`: a flow that one datagram made, possibly forged, goes early however
 * much the backend answers it. Both entries are read afresh here: a scan's copy may be older than the last packet,
 * and a flow must never be removed on a stale reading. The forward entry goes first, so that no new client datagram
 * is sent on while the backend's replies can still come back. Nothing is ever written, so a flow cannot come back.
 * Returns the removed flow, or undefined when it was active or already gone.
 */
export function expireIfIdle(
  table: SweepableTable,
  key: FlowKey,
  now: bigint,
  ttlNs: bigint,
  unconfirmedTtlNs: bigint = ttlNs,
): ExpiredFlow | undefined {
  const value = table.get(key);
  if (value === undefined) return undefined;
  // A fresh forward entry settles it at once; a fresh reverse entry does not, as its partner may be unconfirmed.
  if (!isReverse(value) && now - value.lastUsed <= (unconfirmedTtlNs < ttlNs ? unconfirmedTtlNs : ttlNs)) return undefined;
  const early = (forward: FlowValue): boolean =>
    unconfirmedTtlNs < ttlNs && !isConfirmed(forward) && now - forward.lastUsed > unconfirmedTtlNs;

  const otherKey = partnerKey(value);
  const other = table.get(otherKey);
  if (!isPartnerOf(key, other)) {
    // A half: its partner is missing or has been taken over by another flow, whose entry must stay.
    const unconfirmed = !isReverse(value) && early(value);
    if (!unconfirmed && now - value.lastUsed <= ttlNs) return undefined;
    if (!table.delete(key)) return undefined;
    return {
      pair: pairFromEntry(key, value),
      kind: isReverse(value) ? 'reverse-only' : 'forward-only',
      lastUsed: value.lastUsed,
      idleNs: now - value.lastUsed,
      unconfirmed,
    };
  }

  // Entries that carry the same direction flag are foreign-written; either may then serve as the forward one.
  const thisIsForward = !isReverse(value) || isReverse(other);
  const [fwdKey, fwdValue, revKey] = thisIsForward ? [key, value, otherKey] : [otherKey, other, key];
  const unconfirmed = early(fwdValue);
  if (!unconfirmed && (now - value.lastUsed <= ttlNs || now - other.lastUsed <= ttlNs)) return undefined;
  const removedForward = table.delete(fwdKey);
  const removedReverse = table.delete(revKey);
  if (!removedForward && !removedReverse) return undefined;
  const lastUsed = value.lastUsed > other.lastUsed ? value.lastUsed : other.lastUsed;
  return { pair: pairFromEntry(fwdKey, fwdValue), kind: 'pair', lastUsed, idleNs: now - lastUsed, unconfirmed };
}
