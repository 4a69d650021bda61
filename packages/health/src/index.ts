export { HealthChecker } from './checker.js';
export type { HealthCheckerOptions } from './checker.js';
export { udpProbe } from './udp-probe.js';
export type { UdpProbeOptions } from './udp-probe.js';
export { systemClock } from './clock.js';
export type { Clock, HealthSettings, HealthState, Probe, ProbeOutcome, TargetHealth } from './types.js';
