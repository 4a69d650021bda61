export type { Endpoint, FlowKey, FlowValue, FlowEntry, FlowPair, UpdateFlag } from './types.js';
export {
  FLOW_KEY_SIZE,
  FLOW_VALUE_SIZE,
  FLOW_KEY_OFFSETS,
  FLOW_VALUE_OFFSETS,
  FLOW_F_CONFIRMED,
  FLOW_F_REPLIED,
  FLOW_F_REVERSE,
  FLOW_F_TARGET_SHIFT,
  FLOW_F_TARGET_MASK,
  MAX_TARGET_SLOT,
  targetSlotOf,
  withTargetSlot,
  FLOWS_MAX_DEFAULT,
  NEW_CLIENT_RATE_MAX,
} from './layout.js';
export type { NewClientLimits, RateLimit } from './layout.js';
export { parseIPv4, formatIPv4 } from './ipv4.js';
export { encodeKey, decodeKey, encodeValue, decodeValue, LastUsedBound } from './codec.js';
export { flowKeyId, sameKey, describeKey } from './key-id.js';
export {
  forwardEntry,
  reverseEntry,
  partnerKey,
  pairFromEntry,
  isConfirmed,
  isReverse,
  snatPortOf,
  sameRewrite,
} from './pair.js';
export type {
  FlowTable,
  ScanCursor,
  ScanBatch,
  IdleScanBatch,
  FlowPairKind,
  FlowPairRecord,
  RemovedPair,
} from './table.js';
export { BaseFlowTable, isPartnerOf } from './base-table.js';
export { FlowTableError } from './errors.js';
export type { FlowTableErrorCode } from './errors.js';
export { MemoryFlowTable } from './memory-table.js';
export type { MemoryFlowTableOptions } from './memory-table.js';
export { BpfMapFlowTable, isBatchUnsupported } from './bpf-map-table.js';
export type { BpfMapLike, BpfBatchResult, BpfPackedBatchResult } from './bpf-map-like.js';
