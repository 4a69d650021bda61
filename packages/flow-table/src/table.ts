import type { FlowEntry, FlowKey, FlowPair, FlowValue, UpdateFlag } from './types.js';

declare const scanCursorBrand: unique symbol;

/**
 * Where a scan stopped. Opaque; valid only for the table that returned it, and only once: passing it back
 * continues the scan from there.
 */
export interface ScanCursor {
  readonly [scanCursorBrand]: true;
}

export interface ScanBatch {
  /** Up to the requested number of entries; may be empty while `cursor` is still set. */
  entries: FlowEntry[];
  /** Pass back to `scan` for the next batch; undefined when the scan has reached the end of the table. */
  cursor: ScanCursor | undefined;
}

export interface IdleScanBatch extends ScanBatch {
  /** Entries read in this call, idle or not; `entries` holds the idle ones only. */
  scanned: number;
}

/** `forward-only` and `reverse-only`: half of a flow whose partner entry is missing or belongs to another flow. */
export type FlowPairKind = 'pair' | 'forward-only' | 'reverse-only';

export interface FlowPairRecord {
  pair: FlowPair;
  kind: FlowPairKind;
  /** last_used of the forward entry; undefined when the flow has none. */
  forwardLastUsed: bigint | undefined;
  /** last_used of the reverse entry; undefined when the flow has none. */
  reverseLastUsed: bigint | undefined;
}

export interface RemovedPair {
  forward: boolean;
  reverse: boolean;
}

/**
 * The flow map, whether it lives in the kernel or in memory. Writes that the table refuses throw an error with
 * a `code`: E2BIG when full, EEXIST for `noexist` on a present key, ENOENT for `exist` on a missing one.
 */
export interface FlowTable {
  readonly maxEntries: number;
  get(key: FlowKey): FlowValue | undefined;
  set(key: FlowKey, value: FlowValue, flag?: UpdateFlag): void;
  /** False when the key was not there. */
  delete(key: FlowKey): boolean;
  entries(): IterableIterator<FlowEntry>;
  /** Counts the entries; on a kernel map this walks the whole map. */
  count(): number;
  /**
   * Reads up to `batchSize` entries, starting where `cursor` left off (from the start without one). Deleting or
   * adding entries between calls is allowed: entries present for the whole scan are returned at least once,
   * entries added or removed meanwhile may or may not be. Callers must tolerate an entry seen twice.
   */
  scan(batchSize: number, cursor?: ScanCursor): ScanBatch;
  /**
   * `scan`, returning only the entries with `lastUsed < idleBefore` (and how many it read in all). Same batches,
   * same guarantees, and cursors of either method continue the other. A table may compare last_used before
   * decoding, which makes this much cheaper than `scan` when few entries are idle.
   */
  scanIdle(batchSize: number, idleBefore: bigint, cursor?: ScanCursor): IdleScanBatch;
  /**
   * Writes both entries of a flow with last_used `now`: the reverse entry first, so the backend's reply to the
   * first packet already finds it, then the forward entry. Neither key may be present (a flow must never take
   * over another flow's entry and orphan its partner): EEXIST otherwise. If the forward write fails, the reverse
   * entry is removed again before the error is thrown. `targetSlot` goes into both entries' flags (see
   * `forwardEntry`); 0, the default, leaves the flow out of the per-target counters.
   */
  installPair(pair: FlowPair, now: bigint, targetSlot?: number): void;
  /**
   * Deletes the forward entry, then the reverse entry, each only if it still rewrites as `pair` says (a
   * reused SNAT port may already belong to a newer flow). Reports which of the two it deleted.
   */
  removePair(pair: FlowPair): RemovedPair;
  /** Every flow once, including halves of flows whose partner is gone. */
  pairs(): IterableIterator<FlowPairRecord>;
}
