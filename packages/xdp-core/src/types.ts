/** Flags of BPF_MAP_UPDATE_ELEM. */
export type UpdateFlag = 'any' | 'noexist' | 'exist';

/** How an XDP program is attached: in the driver (`native`), in the generic skb path, or let the kernel pick. */
export type XdpMode = 'native' | 'generic' | 'auto';

export interface BatchResult {
  /** Keys and values read in this call, as separate buffers. */
  entries: Array<[Buffer, Buffer]>;
  /** Pass back to continue; undefined when the map has been read to its end. */
  cursor: Buffer | undefined;
}

/**
 * What a table needs of a BPF map. xdp-core's `BpfMap` implements it; `@flowlb/flow-table` builds on it without
 * depending on xdp-core. Values of per-CPU maps hold one slot per possible CPU, each rounded up to 8 bytes.
 */
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
  lookupBatch?(count: number, cursor?: Buffer): BatchResult;
  updateBatch?(keys: readonly Uint8Array[], values: readonly Uint8Array[], flag?: UpdateFlag): number;
  deleteBatch?(keys: readonly Uint8Array[]): number;
}

export interface TestRunOptions {
  /** The frame handed to the program. */
  data: Uint8Array;
  /** `xdp_md.ingress_ifindex` for the run (its netns is the caller's); 0 or absent: none. */
  ingressIfindex?: number;
  /** Run the program this many times and report the mean duration; default 1. */
  repeat?: number;
  /** Room for the output frame; default data.length + 256. */
  dataSizeOut?: number;
}

export interface TestRunResult {
  /** The program's return code (XDP_ABORTED 0, XDP_DROP 1, XDP_PASS 2, XDP_TX 3, XDP_REDIRECT 4). */
  retval: number;
  /** The frame as the program left it. */
  data: Buffer;
  /** Mean nanoseconds per run as the kernel measured it. */
  durationNs: number;
}

export const XDP_ABORTED = 0;
export const XDP_DROP = 1;
export const XDP_PASS = 2;
export const XDP_TX = 3;
export const XDP_REDIRECT = 4;
