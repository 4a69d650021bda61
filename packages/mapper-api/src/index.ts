export type { UdpEndpoint, Flow, Decision, FlowMapper } from './types.js';
export { forward, wait, drop, reply, endpointKey } from './decisions.js';
export { staticMapper } from './static-mapper.js';
export { hashMapper } from './hash-mapper.js';
export type { HashMapperOptions } from './hash-mapper.js';
export { firstOf } from './first-of.js';

export { RendezvousSet, MAX_TARGET_WEIGHT } from './rendezvous.js';
export { byProtocol, detectProtocol } from './by-protocol.js';
export type { ByProtocolMappers, DetectedProtocol } from './by-protocol.js';
export { ClientReaders, DEFAULT_CLIENT_READERS_LIMITS } from './client-readers.js';
export type { ClientReadersLimits, DatagramReader } from './client-readers.js';
