import type { UpdateFlag } from './types.js';

/*
 * The shape of a BPF map that BpfMapFlowTable needs. @flowlb/xdp-core's maps implement it; any other binding fits by
 * structure, so this package never depends on a native one.
 */

export interface BpfBatchResult {
  /** Keys and values read in this call, as separate buffers. */
  entries: Array<[Buffer, Buffer]>;
  /** Pass back to continue; undefined when the map has been read to its end. */
  cursor: Buffer | undefined;
}

/** A batch read with every key and every value packed back to back, in the same order. */
export interface BpfPackedBatchResult {
  /** Entries read: `keys` holds `count * keySize` bytes, `values` `count * valueSize`. */
  count: number;
  keys: Buffer;
  values: Buffer;
  cursor: Buffer | undefined;
}

export interface BpfMapLike {
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  lookup(key: Uint8Array): Buffer | undefined;
  update(key: Uint8Array, value: Uint8Array, flag?: UpdateFlag): void;
  /** False when the key was not there. */
  delete(key: Uint8Array): boolean;
  keys(): IterableIterator<Buffer>;
  entries(): IterableIterator<[Buffer, Buffer]>;
  /** Batch operations; absent or throwing ENOTSUP/EINVAL where the kernel or map type lacks them. */
  lookupBatch?(count: number, cursor?: Buffer): BpfBatchResult;
  /** `lookupBatch` without a Buffer per entry; its cursors are interchangeable with lookupBatch's. */
  lookupBatchPacked?(count: number, cursor?: Buffer): BpfPackedBatchResult;
  updateBatch?(keys: readonly Uint8Array[], values: readonly Uint8Array[], flag?: UpdateFlag): number;
  deleteBatch?(keys: readonly Uint8Array[]): number;
}
