import type { BpfBatchResult, BpfMapLike, BpfPackedBatchResult } from '../bpf-map-like.js';
import type { UpdateFlag } from '../types.js';

export interface FakeBpfMapOptions {
  keySize?: number;
  valueSize?: number;
  maxEntries?: number;
  /** `supported`, `absent` (no lookupBatch method), or an error code that lookupBatch throws. */
  batch?: 'supported' | 'absent' | string;
  /** lookupBatch succeeds this many times before throwing `batch`'s code (to fail in the middle of a scan). */
  batchFailsAfter?: number;
  /** Also offer lookupBatchPacked (recorded as `lookupBatchPacked`), as xdp-core's maps do. */
  packed?: boolean;
}

function errnoError(code: string, message: string): Error {
  return Object.assign(new Error(`${code}: ${message}`), { code });
}

/**
 * A BPF hash map in memory, with the kernel's rules where the table depends on them: fixed key and value sizes,
 * update flags, E2BIG when full, GET_NEXT_KEY iteration that restarts from the first key when the current one was
 * deleted, and batch lookups whose cursor survives deletions. Keys are ordered by their hex form.
 */
export class FakeBpfMap implements BpfMapLike {
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly store = new Map<string, Buffer>();
  /** Every call by name, in order. */
  readonly calls: string[] = [];
  lookupBatch?: (count: number, cursor?: Buffer) => BpfBatchResult;
  lookupBatchPacked?: (count: number, cursor?: Buffer) => BpfPackedBatchResult;
  #sorted: string[] | undefined;

  constructor(options: FakeBpfMapOptions = {}) {
    this.keySize = options.keySize ?? 16;
    this.valueSize = options.valueSize ?? 24;
    this.maxEntries = options.maxEntries ?? 1024;
    const batch = options.batch ?? 'supported';
    if (batch !== 'absent') {
      let successes = 0;
      const attempt = (name: string) => {
        this.calls.push(name);
        if (batch !== 'supported' && successes >= (options.batchFailsAfter ?? 0)) {
          throw errnoError(batch, 'lookup batch');
        }
        successes++;
      };
      this.lookupBatch = (count, cursor) => {
        attempt('lookupBatch');
        return this.#lookupBatch(count, cursor);
      };
      if (options.packed) {
        this.lookupBatchPacked = (count, cursor) => {
          attempt('lookupBatchPacked');
          const { entries, cursor: next } = this.#lookupBatch(count, cursor);
          return {
            count: entries.length,
            keys: Buffer.concat(entries.map(([k]) => k)),
            values: Buffer.concat(entries.map(([, v]) => v)),
            cursor: next,
          };
        };
      }
    }
  }

  lookup(key: Uint8Array): Buffer | undefined {
    this.calls.push('lookup');
    const value = this.store.get(this.#hex(key, this.keySize));
    return value && Buffer.from(value);
  }

  update(key: Uint8Array, value: Uint8Array, flag: UpdateFlag = 'any'): void {
    this.calls.push(`update:${flag}`);
    const id = this.#hex(key, this.keySize);
    if (value.length !== this.valueSize) throw errnoError('EINVAL', 'value size');
    const exists = this.store.has(id);
    if (flag === 'noexist' && exists) throw errnoError('EEXIST', 'key exists');
    if (flag === 'exist' && !exists) throw errnoError('ENOENT', 'no such key');
    if (!exists && this.store.size >= this.maxEntries) throw errnoError('E2BIG', 'map full');
    if (!exists) this.#sorted = undefined;
    this.store.set(id, Buffer.from(value));
  }

  delete(key: Uint8Array): boolean {
    this.calls.push('delete');
    const deleted = this.store.delete(this.#hex(key, this.keySize));
    if (deleted) this.#sorted = undefined;
    return deleted;
  }

  *keys(): IterableIterator<Buffer> {
    for (const [key] of this.entries()) yield key;
  }

  *entries(): IterableIterator<[Buffer, Buffer]> {
    let current: string | undefined;
    for (;;) {
      current = this.#nextKey(current);
      if (current === undefined) return;
      yield [Buffer.from(current, 'hex'), Buffer.from(this.store.get(current)!)];
    }
  }

  #nextKey(after: string | undefined): string | undefined {
    const sorted = this.#order();
    if (after === undefined || !this.store.has(after)) return sorted[0];
    return sorted[sorted.indexOf(after) + 1];
  }

  #lookupBatch(count: number, cursor?: Buffer): BpfBatchResult {
    const from = cursor?.toString('hex');
    const keys = this.#order().filter((k) => from === undefined || k > from);
    const taken = keys.slice(0, count);
    const last = taken[taken.length - 1];
    return {
      entries: taken.map((k) => [Buffer.from(k, 'hex'), Buffer.from(this.store.get(k)!)]),
      cursor: keys.length > count && last !== undefined ? Buffer.from(last, 'hex') : undefined,
    };
  }

  #order(): string[] {
    this.#sorted ??= [...this.store.keys()].sort();
    return this.#sorted;
  }

  #hex(key: Uint8Array, size: number): string {
    if (key.length !== size) throw errnoError('EINVAL', `key of ${key.length} bytes`);
    return Buffer.from(key).toString('hex');
  }
}
