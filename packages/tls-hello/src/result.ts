/**
 * Why a ClientHello body cannot be read. The set is closed on purpose: callers count refusals per reason, so a
 * reason must never carry data from the packet (that goes into `detail`). The mappers that use this package add
 * reasons of their own for the layers around the body (records, fragments, frames).
 */
export type HelloInvalidReason =
  /** The ClientHello ends before one of its mandatory fields. */
  | 'client-hello-truncated'
  /** A ClientHello field has an impossible value (version, lengths, trailing bytes). */
  | 'client-hello-malformed'
  /** The extensions block or one extension overruns, or bytes are left over. */
  | 'extensions-malformed'
  /** The same extension type appears twice. */
  | 'duplicate-extension'
  /** The server_name extension's inner lengths are inconsistent. */
  | 'sni-malformed'
  /** A host_name entry of length zero. */
  | 'sni-empty'
  /** More than one host_name entry. */
  | 'sni-duplicate'
  /** A host_name longer than a DNS name can be. */
  | 'sni-too-long'
  /** A host_name with bytes other than letters, digits, '-', '_' and '.'. */
  | 'sni-bad-characters'
  /** The ALPN extension's inner lengths are inconsistent or a protocol name is empty. */
  | 'alpn-malformed'
  /** The supported_versions extension's inner lengths are inconsistent. */
  | 'supported-versions-malformed';

export interface HelloInvalid {
  kind: 'invalid';
  reason: HelloInvalidReason;
  /** Human-readable specifics for logs; may quote lengths and offsets from the packet. */
  detail?: string;
}

export function invalid(reason: HelloInvalidReason, detail?: string): HelloInvalid {
  return detail === undefined ? { kind: 'invalid', reason } : { kind: 'invalid', reason, detail };
}
