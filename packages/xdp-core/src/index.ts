export { BpfObject } from './object.js';
export { Program, type AttachXdpOptions } from './program.js';
export { Link, type LinkInfo } from './link.js';
export { BpfMap } from './map.js';
export {
  XdpForwarder,
  FLOWLB_BPF_OBJECT,
  FLOWLB_PROGRAM,
  XDP_PASS_BPF_OBJECT,
  XDP_PASS_PROGRAM,
  type XdpForwarderOptions,
  type AttachOptions,
  type Attachment,
  type PinnedLink,
  type RemovedPins,
  type HelloVerifyKeys,
  type TargetTraffic,
} from './forwarder.js';
export { STAT_NAMES, sumPerCpu, type StatName, type XdpStats } from './stats.js';
export { ifIndex, ifName, xdpAttachment, possibleCpus, libbpfVersion, withNetns, type XdpAttachment } from './system.js';
export {
  PROC_SYS_IPV4,
  applyInterfaceSysctls,
  effectiveRpFilter,
  neededSysctls,
  readSysctl,
  readSysctlState,
  restorePinnedSysctls,
  restoreSysctlChanges,
  sysctlStateDir,
  sysctlStateFile,
  type InterfaceSysctls,
  type NetnsRef,
  type RestoreReport,
  type SysctlChange,
  type SysctlState,
} from './sysctls.js';
export {
  VLAN_CONFIG,
  describeUppers,
  parseRxVlanOffload,
  parseVlanConfig,
  rxVlanOffload,
  vlanStripping,
  vlanUppers,
  vlanWarnings,
  type OffloadState,
  type VlanDevice,
  type VlanReaders,
  type VlanStripping,
} from './vlan.js';
export { UdpSocket, type UdpBindOptions, type UdpEndpointLike } from './udp.js';
export { watchRoutes, type RouteWatch, type RouteChangeKind, type RouteWatchOptions } from './route-watch.js';
export { ensureBpffsDir, BPFFS_DEFAULT_MOUNT, type EnsureBpffsOptions, type BpffsDir } from './bpffs.js';
export {
  XDP_ABORTED,
  XDP_DROP,
  XDP_PASS,
  XDP_TX,
  XDP_REDIRECT,
  type UpdateFlag,
  type XdpMode,
  type BatchResult,
  type PackedBatchResult,
  type BatchWriteError,
  type BatchDeleteError,
  type BpfMapLike,
  type TestRunOptions,
  type TestRunResult,
  type LiveRunOptions,
  type LiveRunResult,
} from './types.js';
export { NEW_CLIENT_RATE_MAX, type NewClientLimits, type RateLimit } from '@flowlb/flow-table';
