export type { UdpEndpoint, Flow, Decision, FlowMapper } from './types.js';
export { forward, wait, drop, endpointKey } from './decisions.js';
