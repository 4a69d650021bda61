export { QuicSniMapper, DEFAULT_QUIC_SNI_LIMITS } from './mapper.js';
export type { QuicSniMapperOptions, QuicSniLimits, QuicSniMapperStats, QuicClassification } from './mapper.js';
export { staticRoutes, normalizeServerName } from './routes.js';
export type { QuicRoutes, QuicRoute, QuicHello } from './routes.js';
export { QUIC_DROP_REASONS } from './reasons.js';
export type { QuicDropReason } from './reasons.js';
export { QUIC_V1, QUIC_V2, SUPPORTED_VERSIONS, versionParams } from './versions.js';
export type { QuicVersion, VersionParams } from './versions.js';
export { deriveInitialKeys, hkdfExpandLabel, headerProtectionMask } from './keys.js';
export type { InitialKeys } from './keys.js';
export { parseInitialHeader, parseInitialPackets, MAX_CONNECTION_ID_LENGTH } from './long-header.js';
export type { InitialHeader, InitialPacketsResult, LongHeaderResult, NotInitial } from './long-header.js';
export { removeHeaderProtection, decodePacketNumber, packetNonce, decryptInitial, openInitial, AEAD_TAG_LENGTH } from './protection.js';
export type { UnprotectedHeader, OpenedPacket } from './protection.js';
export { parseInitialFrames, FrameType } from './frames.js';
export type { CryptoFrame, InitialFramesResult } from './frames.js';
export { CryptoReassembler, DEFAULT_MAX_CRYPTO_BYTES } from './crypto-reassembler.js';
export type { CryptoAddResult } from './crypto-reassembler.js';
export {
  InitialFlightReader,
  readInitialFlight,
  DEFAULT_MAX_DATAGRAMS,
  DEFAULT_MAX_CONNECTION_IDS,
} from './flight-reader.js';
export type { FlightResult, FlightInvalidReason, FlightLimits, ReadTally } from './flight-reader.js';
export { Cursor, encodeVarint, MAX_VARINT } from './varint.js';
export { versionNegotiationProbe, isVersionNegotiation, VERSION_NEGOTIATION_REPLY } from './version-probe.js';
