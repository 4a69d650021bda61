import { assertBatchSize, BaseFlowTable } from './base-table.js';
import { assertLastUsed, checkValue } from './codec.js';
import { FlowTableError } from './errors.js';
import { describeKey, flowKeyId } from './key-id.js';
import { FLOW_F_CONFIRMED, FLOWS_MAX_DEFAULT } from './layout.js';
import { isReverse } from './pair.js';
import type { ScanBatch, ScanCursor } from './table.js';
import type { FlowEntry, FlowKey, FlowValue, UpdateFlag } from './types.js';

export interface MemoryFlowTableOptions {
  /** Like the BPF map's max_entries: a write that would add an entry beyond it fails with E2BIG. */
  maxEntries?: number;
}

interface Slot {
  key: FlowKey;
  value: FlowValue;
}

class MemoryScanState {
  constructor(
    readonly owner: MemoryFlowTable,
    readonly iterator: IterableIterator<Slot>,
  ) {}
}

/**
 * A flow table in a Map, for the userspace datapath and for tests. Keys are indexed by `flowKeyId`, so equal
 * keys match whatever object they arrive in. Keys and values are validated as the kernel codec would, and copied
 * in and out: no caller can change a stored entry except through the table.
 */
export class MemoryFlowTable extends BaseFlowTable {
  readonly maxEntries: number;
  readonly #slots = new Map<string, Slot>();

  constructor(options: MemoryFlowTableOptions = {}) {
    super();
    const max = options.maxEntries ?? FLOWS_MAX_DEFAULT;
    if (!Number.isInteger(max) || max < 1) {
      throw new RangeError(`maxEntries: ${String(max)} is not a positive integer`);
    }
    this.maxEntries = max;
  }

  get(key: FlowKey): FlowValue | undefined {
    const slot = this.#slots.get(flowKeyId(key));
    return slot && copyValue(slot.value);
  }

  set(key: FlowKey, value: FlowValue, flag: UpdateFlag = 'any'): void {
    // Validated exactly as encoding for the kernel map would, so both tables accept the same entries.
    checkValue(value);
    const id = flowKeyId(key);
    const existing = this.#slots.get(id);
    if (flag === 'noexist' && existing) {
      throw new FlowTableError('EEXIST', `flow table: ${describeKey(key)} is already present`);
    }
    if (flag === 'exist' && !existing) {
      throw new FlowTableError('ENOENT', `flow table: ${describeKey(key)} is not present`);
    }
    if (!existing && this.#slots.size >= this.maxEntries) {
      throw new FlowTableError('E2BIG', `flow table is full (maxEntries ${this.maxEntries})`);
    }
    const slot = { key: copyKey(key), value: copyValue(value) };
    if (existing) {
      // Keep the slot's place in iteration order, as an in-place update of a kernel map does.
      existing.value = slot.value;
    } else {
      this.#slots.set(id, slot);
    }
  }

  delete(key: FlowKey): boolean {
    return this.#slots.delete(flowKeyId(key));
  }

  /**
   * Records a hit at `now`, as the XDP program does for a kernel map: only an entry that exists is updated,
   * so touching a flow that the cleaner has just deleted cannot bring it back. A forward entry is marked confirmed
   * (`FLOW_F_CONFIRMED`), as the program marks it. Returns whether it existed.
   */
  touch(key: FlowKey, now: bigint): boolean {
    const slot = this.#slots.get(flowKeyId(key));
    if (!slot) return false;
    assertLastUsed(now);
    slot.value.lastUsed = now;
    if (!isReverse(slot.value)) slot.value.flags |= FLOW_F_CONFIRMED;
    return true;
  }

  count(): number {
    return this.#slots.size;
  }

  get size(): number {
    return this.#slots.size;
  }

  clear(): void {
    this.#slots.clear();
  }

  *entries(): IterableIterator<FlowEntry> {
    for (const slot of this.#slots.values()) yield [copyKey(slot.key), copyValue(slot.value)];
  }

  scan(batchSize: number, cursor?: ScanCursor): ScanBatch {
    assertBatchSize(batchSize);
    let state: MemoryScanState;
    if (cursor === undefined) {
      state = new MemoryScanState(this, this.#slots.values());
    } else if (cursor instanceof MemoryScanState && cursor.owner === this) {
      state = cursor;
    } else {
      throw new TypeError('scan: the cursor was not returned by this table');
    }
    // A Map iterator stays valid while entries are deleted and added, which gives exactly the scan guarantees
    // the FlowTable contract promises.
    const entries: FlowEntry[] = [];
    while (entries.length < batchSize) {
      const next = state.iterator.next();
      if (next.done) return { entries, cursor: undefined };
      entries.push([copyKey(next.value.key), copyValue(next.value.value)]);
    }
    return { entries, cursor: state as unknown as ScanCursor };
  }
}

function copyKey(key: FlowKey): FlowKey {
  return { dstAddr: key.dstAddr, srcAddr: key.srcAddr, dstPort: key.dstPort, srcPort: key.srcPort };
}

function copyValue(value: FlowValue): FlowValue {
  const { dstAddr, srcAddr, dstPort, srcPort, flags, lastUsed } = value;
  return { dstAddr, srcAddr, dstPort, srcPort, flags, lastUsed };
}
