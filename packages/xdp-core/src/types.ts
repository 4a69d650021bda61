/** The map contract and flags are @flowlb/flow-table's, so that its tables take xdp-core's maps as they are. */
export type {
  UpdateFlag,
  BpfMapLike,
  BpfBatchResult as BatchResult,
  BpfPackedBatchResult as PackedBatchResult,
} from '@flowlb/flow-table';

/** How an XDP program is attached: in the driver (`native`), in the generic skb path, or let the kernel pick. */
export type XdpMode = 'native' | 'generic' | 'auto';

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

export interface LiveRunOptions {
  /** The frame every run starts from. Pages are recycled without being rewritten, so a program that edits the
   * frame sees either this or its own earlier edit. */
  data: Uint8Array;
  /** The device the frames arrive on (in the caller's netns): XDP_TX sends them out of it, XDP_PASS hands them to
   * its stack. Required. */
  ingressIfindex: number;
  /** How many frames to run; default 1. */
  repeat?: number;
  /** Frames per batch, flushed together (1–256; kernel default 64). */
  batchSize?: number;
}

export interface LiveRunResult {
  /** Mean nanoseconds per frame as the kernel measured it, transmission included. */
  durationNs: number;
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

/** What `BpfMap.updateBatch` throws when the kernel stopped part-way: a system error (`code`, `errno`, `syscall`). */
export interface BatchWriteError extends NodeJS.ErrnoException {
  syscall: 'bpf_map_update_batch';
  /** How many of the first entries were written before the one that failed; the rest were not. */
  written: number;
}

/** What `BpfMap.deleteBatch` throws for an error other than a missing key. */
export interface BatchDeleteError extends NodeJS.ErrnoException {
  syscall: 'bpf_map_delete_batch';
  /** How many of the first keys were deleted before the one that failed. */
  deleted: number;
}
