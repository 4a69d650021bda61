import { forwardEntry, isReverse, pairFromEntry, partnerKey, reverseEntry, sameRewrite } from './pair.js';
import { flowKeyId, sameKey } from './key-id.js';
import type { FlowPairRecord, FlowTable, IdleScanBatch, RemovedPair, ScanBatch, ScanCursor } from './table.js';
import type { FlowEntry, FlowKey, FlowPair, FlowValue, UpdateFlag } from './types.js';

/**
 * True when `partner`, the value found at the partner key of the entry at `key`, points back at `key`. One that
 * points elsewhere belongs to another flow (a reused SNAT port) and must not be taken for this flow's.
 */
export function isPartnerOf(key: FlowKey, partner: FlowValue | undefined): partner is FlowValue {
  return partner !== undefined && sameKey(partnerKey(partner), key);
}

export function assertBatchSize(batchSize: number): void {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`scan: batchSize ${String(batchSize)} is not a positive integer`);
  }
}

/** The pair-aware operations, written once over the five primitive ones. */
export abstract class BaseFlowTable implements FlowTable {
  abstract readonly maxEntries: number;
  abstract get(key: FlowKey): FlowValue | undefined;
  abstract set(key: FlowKey, value: FlowValue, flag?: UpdateFlag): void;
  abstract delete(key: FlowKey): boolean;
  abstract entries(): IterableIterator<FlowEntry>;
  abstract count(): number;
  abstract scan(batchSize: number, cursor?: ScanCursor): ScanBatch;

  /** Filters `scan`; tables that can test last_used before decoding an entry override it. */
  scanIdle(batchSize: number, idleBefore: bigint, cursor?: ScanCursor): IdleScanBatch {
    if (typeof idleBefore !== 'bigint') throw new TypeError(`scanIdle: idleBefore ${String(idleBefore)} is not a bigint`);
    const batch = this.scan(batchSize, cursor);
    return {
      entries: batch.entries.filter(([, value]) => value.lastUsed < idleBefore),
      scanned: batch.entries.length,
      cursor: batch.cursor,
    };
  }

  installPair(pair: FlowPair, now: bigint, targetSlot = 0): void {
    const [fwdKey, fwdValue] = forwardEntry(pair, now, targetSlot);
    const [revKey, revValue] = reverseEntry(pair, now, targetSlot);
    // Refuse a pair whose two keys coincide before touching the table: the second write would fail with EEXIST
    // and roll back the first, which is correct but would report a confusing error.
    if (flowKeyId(fwdKey) === flowKeyId(revKey)) {
      throw new RangeError('installPair: the forward and reverse keys of this pair are the same key');
    }
    this.set(revKey, revValue, 'noexist');
    try {
      this.set(fwdKey, fwdValue, 'noexist');
    } catch (error) {
      this.delete(revKey);
      throw error;
    }
  }

  removePair(pair: FlowPair): RemovedPair {
    const [fwdKey, fwdValue] = forwardEntry(pair);
    const [revKey, revValue] = reverseEntry(pair);
    const removeIfOurs = (key: FlowKey, expected: FlowValue): boolean => {
      const current = this.get(key);
      return current !== undefined && sameRewrite(current, expected) && this.delete(key);
    };
    const forward = removeIfOurs(fwdKey, fwdValue);
    const reverse = removeIfOurs(revKey, revValue);
    return { forward, reverse };
  }

  *pairs(): IterableIterator<FlowPairRecord> {
    for (const [key, value] of this.entries()) {
      const partner = this.get(partnerKey(value));
      if (!isPartnerOf(key, partner)) {
        yield halfRecord(key, value);
        continue;
      }
      // Report a whole flow once, from its forward entry. Two entries with the same direction flag (written by a
      // tool that leaves flags at 0) are reported from the one with the smaller key id.
      const reverse = isReverse(value);
      if (reverse !== isReverse(partner) ? reverse : flowKeyId(key) > flowKeyId(partnerKey(value))) continue;
      yield {
        pair: pairFromEntry(key, value),
        kind: 'pair',
        forwardLastUsed: value.lastUsed,
        reverseLastUsed: partner.lastUsed,
      };
    }
  }
}

function halfRecord(key: FlowKey, value: FlowValue): FlowPairRecord {
  const reverse = isReverse(value);
  return {
    pair: pairFromEntry(key, value),
    kind: reverse ? 'reverse-only' : 'forward-only',
    forwardLastUsed: reverse ? undefined : value.lastUsed,
    reverseLastUsed: reverse ? value.lastUsed : undefined,
  };
}
