import { assertBatchSize, BaseFlowTable } from './base-table.js';
import type { BpfMapLike, BpfPackedBatchResult } from './bpf-map-like.js';
import { decodeKey, decodeValue, encodeKey, encodeValue, LastUsedBound } from './codec.js';
import { FLOW_KEY_SIZE, FLOW_VALUE_SIZE } from './layout.js';
import type { IdleScanBatch, ScanBatch, ScanCursor } from './table.js';
import type { FlowEntry, FlowKey, FlowValue, UpdateFlag } from './types.js';

/** Error codes (and errno numbers) by which a kernel or map type says it has no batch operations. */
const UNSUPPORTED_CODES = new Set(['ENOTSUP', 'ENOTSUPP', 'EOPNOTSUPP', 'EINVAL']);
const UNSUPPORTED_ERRNOS = new Set([22 /* EINVAL */, 95 /* EOPNOTSUPP */, 524 /* kernel-internal ENOTSUPP */]);

export function isBatchUnsupported(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, errno } = error as { code?: unknown; errno?: unknown };
  return (
    (typeof code === 'string' && UNSUPPORTED_CODES.has(code)) ||
    (typeof errno === 'number' && UNSUPPORTED_ERRNOS.has(Math.abs(errno)))
  );
}

class BatchScanState {
  constructor(
    readonly owner: BpfMapFlowTable,
    readonly position: Buffer,
  ) {}
}

class IteratorScanState {
  constructor(
    readonly owner: BpfMapFlowTable,
    readonly iterator: Iterator<[Buffer, Buffer]>,
    /** Read ahead so that the iterator never rests on a key the caller was given and may delete (see scan). */
    public lookahead: Buffer | undefined,
  ) {}
}

/**
 * A FlowTable over a BPF hash map of `struct flow_key` to `struct flow_val` (xdp-core's `BpfMap`, or anything of
 * the same shape). Scans use BPF_MAP_LOOKUP_BATCH when the map offers it and fall back to iteration when it is
 * absent or the kernel refuses it.
 */
export class BpfMapFlowTable extends BaseFlowTable {
  readonly map: BpfMapLike;
  #batchLookup: boolean | undefined;

  constructor(map: BpfMapLike) {
    super();
    if (map.keySize !== FLOW_KEY_SIZE) {
      throw new RangeError(`BpfMapFlowTable: the map's key size is ${map.keySize} bytes; struct flow_key has ${FLOW_KEY_SIZE}`);
    }
    if (map.valueSize !== FLOW_VALUE_SIZE) {
      throw new RangeError(
        `BpfMapFlowTable: the map's value size is ${map.valueSize} bytes; struct flow_val has ${FLOW_VALUE_SIZE}`,
      );
    }
    this.map = map;
    this.#batchLookup =
      typeof map.lookupBatch === 'function' || typeof map.lookupBatchPacked === 'function' ? undefined : false;
  }

  get maxEntries(): number {
    return this.map.maxEntries;
  }

  /** Whether scans read with BPF_MAP_LOOKUP_BATCH; undefined until the first scan has found out. */
  get usesBatchLookup(): boolean | undefined {
    return this.#batchLookup;
  }

  get(key: FlowKey): FlowValue | undefined {
    const value = this.map.lookup(encodeKey(key));
    return value && decodeValue(value);
  }

  set(key: FlowKey, value: FlowValue, flag: UpdateFlag = 'any'): void {
    this.map.update(encodeKey(key), encodeValue(value), flag);
  }

  delete(key: FlowKey): boolean {
    return this.map.delete(encodeKey(key));
  }

  *entries(): IterableIterator<FlowEntry> {
    for (const [key, value] of this.map.entries()) yield [decodeKey(key), decodeValue(value)];
  }

  count(): number {
    let n = 0;
    for (const _ of this.map.keys()) n++;
    return n;
  }

  scan(batchSize: number, cursor?: ScanCursor): ScanBatch {
    const { entries, cursor: next } = this.#scan(batchSize, cursor, undefined);
    return { entries, cursor: next };
  }

  /** Tests last_used on the bytes the map returned and decodes only the entries that pass. */
  override scanIdle(batchSize: number, idleBefore: bigint, cursor?: ScanCursor): IdleScanBatch {
    return this.#scan(batchSize, cursor, new LastUsedBound(idleBefore));
  }

  #scan(batchSize: number, cursor: ScanCursor | undefined, bound: LastUsedBound | undefined): IdleScanBatch {
    assertBatchSize(batchSize);
    if (cursor === undefined) {
      return this.#batchLookup === false
        ? this.#iteratorScan(batchSize, undefined, bound)
        : this.#batchScan(batchSize, undefined, bound);
    }
    if (cursor instanceof BatchScanState && cursor.owner === this) return this.#batchScan(batchSize, cursor.position, bound);
    if (cursor instanceof IteratorScanState && cursor.owner === this) return this.#iteratorScan(batchSize, cursor, bound);
    throw new TypeError('scan: the cursor was not returned by this table');
  }

  #batchScan(batchSize: number, position: Buffer | undefined, bound: LastUsedBound | undefined): IdleScanBatch {
    let result;
    try {
      result = this.#lookupBatch(batchSize, position);
    } catch (error) {
      if (!isBatchUnsupported(error)) throw error;
      // Restarting from the top may return entries twice, which scan callers accept.
      this.#batchLookup = false;
      return this.#iteratorScan(batchSize, undefined, bound);
    }
    this.#batchLookup = true;
    const { count, keys, values } = result;
    if (keys.length < count * FLOW_KEY_SIZE || values.length < count * FLOW_VALUE_SIZE) {
      throw new RangeError(
        `scan: a batch of ${count} entries came with ${keys.length} bytes of keys and ${values.length} bytes of values`,
      );
    }
    const entries: FlowEntry[] = [];
    for (let i = 0; i < count; i++) {
      const at = i * FLOW_VALUE_SIZE;
      if (bound !== undefined && !bound.isBefore(values, at)) continue;
      entries.push([decodeKey(keys, i * FLOW_KEY_SIZE), decodeValue(values, at)]);
    }
    return {
      entries,
      scanned: count,
      cursor: result.cursor === undefined ? undefined : (new BatchScanState(this, result.cursor) as unknown as ScanCursor),
    };
  }

  /** One batch read, packed, from whichever batch lookup the map offers. */
  #lookupBatch(batchSize: number, position: Buffer | undefined): BpfPackedBatchResult {
    const map = this.map;
    if (typeof map.lookupBatchPacked === 'function') return map.lookupBatchPacked(batchSize, position);
    // Checked in the constructor: #batchLookup is false, and this is not reached, when neither method is there.
    const { entries, cursor } = map.lookupBatch!(batchSize, position);
    return {
      count: entries.length,
      keys: Buffer.concat(entries.map(([key]) => key)),
      values: Buffer.concat(entries.map(([, value]) => value)),
      cursor,
    };
  }

  /*
   * Map iteration walks with BPF_MAP_GET_NEXT_KEY from the last key it returned; if that key has been deleted,
   * the kernel starts again from the first key. Callers of scan delete the entries they were given, so the
   * iterator is kept one entry ahead of what it hands out.
   */
  #iteratorScan(batchSize: number, state: IteratorScanState | undefined, bound: LastUsedBound | undefined): IdleScanBatch {
    const s = state ?? new IteratorScanState(this, this.map.entries(), undefined);
    const entries: FlowEntry[] = [];
    let scanned = 0;
    const take = (key: Buffer, value: Buffer) => {
      scanned++;
      // A value of the wrong size is decoded anyway, for decodeValue's error.
      if (bound === undefined || value.length < FLOW_VALUE_SIZE || bound.isBefore(value, 0)) {
        entries.push([decodeKey(key), decodeValue(value)]);
      }
    };
    if (s.lookahead) {
      // Read again: the value may have changed, or the entry gone, since it was read ahead.
      const value = this.map.lookup(s.lookahead);
      if (value) take(s.lookahead, value);
      s.lookahead = undefined;
    }
    for (;;) {
      const next = s.iterator.next();
      if (next.done) return { entries, scanned, cursor: undefined };
      if (scanned === batchSize) {
        s.lookahead = Buffer.from(next.value[0]);
        return { entries, scanned, cursor: s as unknown as ScanCursor };
      }
      take(next.value[0], next.value[1]);
    }
  }
}
