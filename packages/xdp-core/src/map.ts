import { OWN, assertOwn } from './internal.js';
import { native, type NativeMap, type NativeMapInfo } from './native.js';
import type { BatchResult, BpfMapLike, PackedBatchResult, UpdateFlag } from './types.js';

const UPDATE_FLAGS: Record<UpdateFlag, number> = { any: 0, noexist: 1, exist: 2 };

function updateFlag(flag: UpdateFlag): number {
  const value = Object.hasOwn(UPDATE_FLAGS, flag) ? UPDATE_FLAGS[flag] : undefined;
  if (value === undefined) throw new TypeError(`flag must be 'any', 'noexist' or 'exist', got ${String(flag)}`);
  return value;
}

/** A BPF map. Operations are synchronous system calls; keys and values are raw bytes in the map's layout. */
export class BpfMap implements BpfMapLike {
  readonly #raw: NativeMap;
  readonly #info: NativeMapInfo;

  /** @internal Maps come from `BpfObject.map` and `BpfMap.openPinned`. */
  constructor(token: typeof OWN, raw: NativeMap) {
    assertOwn(token, 'BpfMap', 'use BpfObject.map or BpfMap.openPinned');
    this.#raw = raw;
    this.#info = raw.info;
  }

  /** Opens a map pinned on bpffs, e.g. by another process. */
  static openPinned(path: string): BpfMap {
    return new BpfMap(OWN, native().openPinnedMap(path));
  }

  get name(): string {
    return this.#info.name;
  }
  get id(): number {
    return this.#info.id;
  }
  get type(): number {
    return this.#info.type;
  }
  get keySize(): number {
    return this.#info.keySize;
  }
  /** Bytes of a value as userspace sees it: for per-CPU maps, one 8-byte aligned slot per possible CPU. */
  get valueSize(): number {
    return this.#info.valueBufferSize;
  }
  /** Bytes of one value inside the kernel (one CPU's slot for per-CPU maps). */
  get elementSize(): number {
    return this.#info.valueSize;
  }
  get maxEntries(): number {
    return this.#info.maxEntries;
  }
  get perCpu(): boolean {
    return this.#info.perCpu;
  }
  get possibleCpus(): number {
    return this.#info.possibleCpus;
  }
  get fd(): number {
    return this.#raw.fd;
  }

  lookup(key: Uint8Array): Buffer | undefined {
    return this.#raw.lookup(key);
  }

  update(key: Uint8Array, value: Uint8Array, flag: UpdateFlag = 'any'): void {
    this.#raw.update(key, value, updateFlag(flag));
  }

  delete(key: Uint8Array): boolean {
    return this.#raw.delete(key);
  }

  /**
   * Keys in the kernel's order. A key deleted while iterating makes the kernel restart from the first key, so
   * a caller that deletes as it goes should collect keys first (or use the batch operations).
   */
  *keys(): IterableIterator<Buffer> {
    let key = this.#raw.nextKey(undefined);
    while (key) {
      yield key;
      key = this.#raw.nextKey(key);
    }
  }

  *entries(): IterableIterator<[Buffer, Buffer]> {
    for (const key of this.keys()) {
      const value = this.#raw.lookup(key);
      if (value) yield [key, value];
    }
  }

  /** Per-CPU values split into one Buffer per possible CPU, each `elementSize` bytes. */
  perCpuValues(value: Buffer): Buffer[] {
    const stride = Math.ceil(this.#info.valueSize / 8) * 8;
    const out: Buffer[] = [];
    for (let off = 0; off + stride <= value.length; off += stride) {
      out.push(value.subarray(off, off + this.#info.valueSize));
    }
    return out;
  }

  /**
   * Reads up to `count` entries per call with BPF_MAP_LOOKUP_BATCH; pass the returned cursor to go on. `count` is an
   * integer from 1 to 2^32-1; a call returns at most the map's max entries, and at most what fits in 64 MiB.
   */
  lookupBatch(count: number, cursor?: Buffer): BatchResult {
    const r = this.#raw.lookupBatch(count, cursor);
    const entries: Array<[Buffer, Buffer]> = [];
    const ks = this.keySize;
    const vs = this.valueSize;
    for (let i = 0; i < r.count; i++) {
      entries.push([r.keys.subarray(i * ks, (i + 1) * ks), r.values.subarray(i * vs, (i + 1) * vs)]);
    }
    return { entries, cursor: r.cursor };
  }

  /**
   * `lookupBatch` as the kernel returns it: all keys in one Buffer and all values in another, entry `i` at
   * `i * keySize` and `i * valueSize`, with no Buffer per entry. Cursors work with either method.
   */
  lookupBatchPacked(count: number, cursor?: Buffer): PackedBatchResult {
    const r = this.#raw.lookupBatch(count, cursor);
    return { count: r.count, keys: r.keys, values: r.values, cursor: r.cursor };
  }

  /**
   * Writes many entries in one system call; returns how many were written. The kernel writes them in order and
   * stops at the first one it cannot write (a full map: E2BIG): the error it throws then is a
   * {@link BatchWriteError} whose `written` says how many of the first entries went in. The kernel takes no
   * `noexist` or `exist` for a batch (EINVAL): use `update` for those.
   */
  updateBatch(keys: readonly Uint8Array[], values: readonly Uint8Array[], flag: UpdateFlag = 'any'): number {
    if (keys.length !== values.length) {
      throw new RangeError(`updateBatch needs as many values as keys (${keys.length} keys, ${values.length} values)`);
    }
    return this.#raw.updateBatch(pack(keys, this.keySize, 'key'), pack(values, this.valueSize, 'value'), keys.length, updateFlag(flag));
  }

  /**
   * Deletes many keys in one system call; the kernel stops at the first missing key. Returns how many went. Any
   * other error is a {@link BatchDeleteError} with `deleted`, the number of the first keys that went.
   */
  deleteBatch(keys: readonly Uint8Array[]): number {
    return this.#raw.deleteBatch(pack(keys, this.keySize, 'key'), keys.length);
  }

  pin(path: string): void {
    this.#raw.pin(path);
  }

  /** Releases this handle; the map lives on while a program, a pin or another handle holds it. */
  close(): void {
    this.#raw.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function pack(items: readonly Uint8Array[], size: number, what: string): Buffer {
  const out = Buffer.alloc(items.length * size);
  items.forEach((item, i) => {
    if (item.length !== size) throw new RangeError(`${what} ${i} must be ${size} bytes, got ${item.length}`);
    out.set(item, i * size);
  });
  return out;
}
