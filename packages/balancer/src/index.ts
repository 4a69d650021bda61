export { LoadBalancer, createLoadBalancer } from './balancer.js';
export type { BalancerState } from './balancer.js';
export {
  resolveOptions,
  DEFAULT_SNAT_PORTS,
  DEFAULT_LIMITS,
  DEFAULT_CONN_TTL_SEC,
  DEFAULT_DROP_HOLD_MS,
} from './options.js';
export type {
  LoadBalancerOptions,
  LimitsOptions,
  XdpOptions,
  DatapathMode,
  XdpAttachMode,
  ResolvedOptions,
  ResolvedLimits,
} from './options.js';
export type { BalancerEvent, EventListener, DatapathKind } from './events.js';
export type { Datapath, DatapathContext, DatapathChoice } from './datapath.js';
export { XdpDatapath, XdpCoreUnavailableError, importXdpCore } from './xdp-datapath.js';
export { KernelHelloVerifyKeeper } from './kernel-hello-verify.js';
export type { KernelHelloVerify, KernelHelloVerifySource, HelloVerifyTarget } from './kernel-hello-verify.js';
export type {
  SyncUdpSocket,
  SyncUdpSocketClass,
  XdpAttachmentInfo,
  XdpCoreModule,
  XdpDatapathOptions,
  XdpForwarderLike,
  XdpLoadOptions,
} from './xdp-datapath.js';
export { chooseDatapath, XdpUnavailableError } from './datapath-choice.js';
export type { DatapathDecision, DatapathRequest } from './datapath-choice.js';
export { UserspaceDatapath } from './userspace-datapath.js';
export { SnatPortPool, SnatPortPools } from './snat-pool.js';
export type { PortSlice, SnatPortPoolOptions, SnatPortPoolsOptions } from './snat-pool.js';
export {
  ensureSnatPortsReserved,
  planSnatReservation,
  parseDashedPortRange,
  parseIpLocalPortRange,
  parseReservedPorts,
  assertPortRange,
  formatRange,
  formatRanges,
  normalizeRanges,
  intersectRange,
  subtractRanges,
  SnatPortRangeError,
  PROC_IPV4_DIR,
} from './ephemeral-range.js';
export type { PortRange, SnatPortCheck, SnatPortCheckOptions, SnatReservationPlan } from './ephemeral-range.js';
export { PendingClients, PendingClient } from './pending.js';
export type { PendingLimits, PendingState, PendingAddResult } from './pending.js';
export { Counters, LatencyHistogram, DROP_REASONS, LATENCY_BUCKETS_MS } from './stats.js';
export { TargetFlowCounters, MAX_COUNTED_TARGETS } from './target-flows.js';
export type { TargetFlows } from './target-flows.js';
export type { BalancerStats, DropReason, HistogramBucket, HistogramSnapshot } from './stats.js';
export { effectiveCapabilities, xdpCapabilityCheck } from './capabilities.js';
export type { NewClientLimits, RateLimit } from '@flowlb/flow-table';
