import { invalid, type HelloInvalid } from './result.js';

/** Extension code points this package reads (IANA "TLS ExtensionType Values"), the same in TLS, DTLS and QUIC. */
export const ExtensionType = {
  ServerName: 0,
  ApplicationLayerProtocolNegotiation: 16,
  SupportedVersions: 43,
} as const;

/** ServerName.name_type for a DNS host name (RFC 6066 §3); the only one ever defined. */
const NAME_TYPE_HOST_NAME = 0;

/**
 * RFC 1035 caps a name at 255 octets on the wire, which is 253 characters written out without the final dot.
 * Anything longer cannot be a host name, and refusing it keeps untrusted strings short.
 */
export const MAX_HOST_NAME_LENGTH = 253;

/** Letters, digits, '-', '.' and '_' (seen in real service names even though LDH rules leave it out). */
function isHostNameByte(b: number): boolean {
  return (
    (b >= 0x61 && b <= 0x7a) || // a-z
    (b >= 0x41 && b <= 0x5a) || // A-Z
    (b >= 0x30 && b <= 0x39) || // 0-9
    b === 0x2d || // -
    b === 0x2e || // .
    b === 0x5f // _
  );
}

function latin1(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

/**
 * Reads the host name from a ClientHello's server_name extension (RFC 6066 §3). The name is returned as sent
 * (case and any trailing dot kept); callers that match names normalise it.
 *
 * RFC 6066 allows one name per type; since host_name is the only type, two entries of it are refused rather than
 * choosing one, because a server and this balancer could otherwise choose differently. Entries of other types are
 * skipped, assuming the same length-prefixed layout.
 */
export function parseServerName(data: Uint8Array): { name: string | undefined } | HelloInvalid {
  if (data.length < 2) return invalid('sni-malformed', `extension of ${data.length} bytes`);
  const listLength = (data[0]! << 8) | data[1]!;
  if (listLength !== data.length - 2) {
    return invalid('sni-malformed', `server_name_list length ${listLength}, ${data.length - 2} bytes in the extension`);
  }
  if (listLength === 0) return invalid('sni-malformed', 'empty server_name_list');
  let pos = 2;
  let name: string | undefined;
  while (pos < data.length) {
    if (data.length - pos < 3) return invalid('sni-malformed', 'server_name entry header runs past the list');
    const type = data[pos]!;
    const len = (data[pos + 1]! << 8) | data[pos + 2]!;
    const start = pos + 3;
    if (len > data.length - start) {
      return invalid('sni-malformed', `server_name entry of ${len} bytes, ${data.length - start} left`);
    }
    if (type === NAME_TYPE_HOST_NAME) {
      if (name !== undefined) return invalid('sni-duplicate', 'more than one host_name entry');
      if (len === 0) return invalid('sni-empty', 'host_name of length zero');
      const bytes = data.subarray(start, start + len);
      const significant = bytes[len - 1] === 0x2e ? len - 1 : len;
      if (significant > MAX_HOST_NAME_LENGTH) return invalid('sni-too-long', `host_name of ${len} bytes`);
      for (let i = 0; i < len; i++) {
        if (!isHostNameByte(bytes[i]!)) {
          return invalid('sni-bad-characters', `byte 0x${bytes[i]!.toString(16).padStart(2, '0')} at position ${i}`);
        }
      }
      name = latin1(bytes);
    }
    pos = start + len;
  }
  // A list holding only entries of unknown types names no host, which is not an error.
  return { name };
}

/**
 * Reads the protocol names of an ALPN extension (RFC 7301 §3.1). Names are opaque bytes; they are returned one
 * character per byte so that no byte sequence is lost or merged.
 */
export function parseAlpn(data: Uint8Array): { protocols: string[] } | HelloInvalid {
  if (data.length < 2) return invalid('alpn-malformed', `extension of ${data.length} bytes`);
  const listLength = (data[0]! << 8) | data[1]!;
  if (listLength !== data.length - 2 || listLength < 2) {
    return invalid('alpn-malformed', `protocol_name_list length ${listLength}, ${data.length - 2} bytes in the extension`);
  }
  const protocols: string[] = [];
  let pos = 2;
  while (pos < data.length) {
    const len = data[pos]!;
    if (len === 0) return invalid('alpn-malformed', 'empty protocol name');
    if (len > data.length - pos - 1) return invalid('alpn-malformed', `protocol name of ${len} bytes runs past the list`);
    protocols.push(latin1(data.subarray(pos + 1, pos + 1 + len)));
    pos += 1 + len;
  }
  return { protocols };
}

/** Reads the versions a client offers in supported_versions (RFC 8446 §4.2.1), in the client's order. */
export function parseSupportedVersions(data: Uint8Array): { versions: number[] } | HelloInvalid {
  if (data.length < 1) return invalid('supported-versions-malformed', 'empty extension');
  const len = data[0]!;
  if (len !== data.length - 1 || len < 2 || len % 2 !== 0) {
    return invalid('supported-versions-malformed', `versions length ${len}, ${data.length - 1} bytes in the extension`);
  }
  const versions: number[] = [];
  for (let pos = 1; pos < data.length; pos += 2) versions.push((data[pos]! << 8) | data[pos + 1]!);
  return { versions };
}
