export { parseClientHello, DEFAULT_MAX_MESSAGE_SIZE } from './parser.js';
export type { ParseOptions } from './parser.js';
export type { ParseResult, HelloResult, NeedMoreResult, InvalidResult, InvalidReason } from './result.js';
export { parseClientHelloBody } from '@flowlb/tls-hello';
export type { ClientHello, Extension } from '@flowlb/tls-hello';
export { ExtensionType, MAX_HOST_NAME_LENGTH, parseServerName, parseAlpn, parseSupportedVersions } from '@flowlb/tls-hello';
export { parseRecords, ContentType, DtlsVersion, RECORD_HEADER_LENGTH, MAX_RECORD_LENGTH } from './record.js';
export type { DtlsRecord, RecordLayerResult, RecordStop } from './record.js';
export { parseHandshakeFragments, HandshakeType, HANDSHAKE_HEADER_LENGTH } from './handshake.js';
export type { HandshakeFragment, HandshakeLayerResult } from './handshake.js';
export { MessageReassembler } from './reassembly.js';
export type { FragmentAddResult } from './reassembly.js';
export { normalizeHostName, parseNamePattern } from './names.js';
export type { NamePattern } from './names.js';
export type {
  MappingTable,
  MappingRule,
  MappingTableOptions,
  MatchKind,
  Resolution,
  HealthSpec,
  WhenAllDown,
  DefaultRoute,
  CheckedTarget,
  TargetUsable,
  HelloProtocol,
  HelloSelector,
  HelloTraits,
} from './table.js';
export { loadMappings, loadMappingsSync, mappingsFromYaml, mappingsFromObject, MappingsError } from './mappings.js';
export type { MappingsIssue, MappingsEntryRef, MappingsSourceOptions } from './mappings.js';
export {
  HelloCookies,
  encodeCookieInput,
  COOKIE_LENGTH,
  COOKIE_INPUT_LENGTH,
  DEFAULT_COOKIE_ROTATION_MS,
  MIN_COOKIE_SECRET_LENGTH,
} from './cookie.js';
export type { CookieInput, CookiePeriodKeys, HelloCookiesOptions } from './cookie.js';
export { sipHash24, sipHash24Into, SIPHASH_KEY_LENGTH, SIPHASH_OUTPUT_LENGTH } from './siphash.js';
export { helloVerifyRequest, MAX_COOKIE_LENGTH } from './hello-verify.js';
export type { HelloVerifyRequestOptions } from './hello-verify.js';
export { DtlsSniMapper } from './mapper.js';
export { buildClientHello, CLIENT_HELLO_CIPHER_SUITES } from './client-hello-builder.js';
export type { ClientHelloOptions } from './client-hello-builder.js';
export { dtlsProbe, readDtlsReply, MAX_IGNORED_DATAGRAMS } from './probe.js';
export type { DtlsProbe, DtlsProbeOptions, DtlsProbeTarget, DtlsProbeCallOptions, DtlsProbeOutcome, DtlsReply } from './probe.js';
export type {
  DtlsSniMapperOptions,
  MapperStats,
  ReloadResult,
  Classification,
  DtlsDropReason,
  Affinity,
  FileMapperOptions,
  HelloVerifyMode,
  CookieOutcome,
} from './mapper.js';
