import { ExtensionType, parseAlpn, parseServerName, parseSupportedVersions } from './extensions.js';
import { invalid, type InvalidResult } from './result.js';

export interface Extension {
  type: number;
  /** The extension's body, a view into the message. */
  data: Uint8Array;
}

/** The fields of a DTLS ClientHello (RFC 6347 §4.2.1; RFC 9147 §5.3 keeps the same layout with legacy_ names). */
export interface ClientHello {
  /** client_version (legacy_version in DTLS 1.3), e.g. 0xfefd. */
  clientVersion: number;
  random: Uint8Array;
  sessionId: Uint8Array;
  /** Empty in a first ClientHello; the server's cookie in the retry after a HelloVerifyRequest. */
  cookie: Uint8Array;
  cipherSuites: number[];
  compressionMethods: Uint8Array;
  /** Every extension in the order sent. */
  extensions: Extension[];
  /** The host_name of the server_name extension exactly as sent; absent when the client named no server. */
  sni?: string;
  /** Protocol names offered with ALPN, in the client's order. */
  alpn?: string[];
  /** Versions offered with supported_versions (e.g. 0xfefc for DTLS 1.3), in the client's order. */
  versions?: number[];
}

const RANDOM_LENGTH = 32;
const SCAN_LIMIT = 32;

function isDuplicate(extensions: readonly Extension[], type: number, seen: Set<number> | undefined): boolean {
  if (seen !== undefined) return seen.has(type);
  for (let i = 0; i < extensions.length; i++) if (extensions[i]!.type === type) return true;
  return false;
}
const MAX_SESSION_ID_LENGTH = 32;

/**
 * Parses the body of a ClientHello handshake message (everything after the 12-byte handshake header, once
 * reassembled). Every length is checked against the bytes that remain before it is used.
 */
export function parseClientHelloBody(body: Uint8Array): ClientHello | InvalidResult {
  const end = body.length;
  if (end < 2 + RANDOM_LENGTH + 1) {
    return invalid('client-hello-truncated', `${end} bytes, version, random and session_id need ${2 + RANDOM_LENGTH + 1}`);
  }
  const clientVersion = (body[0]! << 8) | body[1]!;
  if (body[0] !== 0xfe) {
    return invalid('client-hello-malformed', `client_version 0x${clientVersion.toString(16).padStart(4, '0')} is not DTLS`);
  }
  let pos = 2;
  const random = body.subarray(pos, pos + RANDOM_LENGTH);
  pos += RANDOM_LENGTH;

  const sessionIdLength = body[pos]!;
  if (sessionIdLength > MAX_SESSION_ID_LENGTH) {
    return invalid('client-hello-malformed', `session_id of ${sessionIdLength} bytes`);
  }
  pos += 1;
  if (end - pos < sessionIdLength + 1) return invalid('client-hello-truncated', 'ends inside session_id or before cookie');
  const sessionId = body.subarray(pos, pos + sessionIdLength);
  pos += sessionIdLength;

  const cookieLength = body[pos]!;
  pos += 1;
  if (end - pos < cookieLength + 2) return invalid('client-hello-truncated', 'ends inside cookie or before cipher_suites');
  const cookie = body.subarray(pos, pos + cookieLength);
  pos += cookieLength;

  const suitesLength = (body[pos]! << 8) | body[pos + 1]!;
  pos += 2;
  if (suitesLength < 2 || suitesLength % 2 !== 0) {
    return invalid('client-hello-malformed', `cipher_suites length ${suitesLength}`);
  }
  if (end - pos < suitesLength + 1) {
    return invalid('client-hello-truncated', 'ends inside cipher_suites or before compression_methods');
  }
  const cipherSuites: number[] = [];
  for (let i = 0; i < suitesLength; i += 2) cipherSuites.push((body[pos + i]! << 8) | body[pos + i + 1]!);
  pos += suitesLength;

  const compressionLength = body[pos]!;
  pos += 1;
  if (compressionLength < 1) return invalid('client-hello-malformed', 'no compression methods');
  if (end - pos < compressionLength) return invalid('client-hello-truncated', 'ends inside compression_methods');
  const compressionMethods = body.subarray(pos, pos + compressionLength);
  pos += compressionLength;

  const hello: ClientHello = { clientVersion, random, sessionId, cookie, cipherSuites, compressionMethods, extensions: [] };
  // A DTLS 1.0/1.2 ClientHello may end here: the extensions block is optional there.
  if (pos === end) return hello;

  if (end - pos < 2) return invalid('extensions-malformed', 'one byte where the extensions length belongs');
  const extensionsLength = (body[pos]! << 8) | body[pos + 1]!;
  pos += 2;
  if (extensionsLength !== end - pos) {
    return invalid('extensions-malformed', `extensions length ${extensionsLength}, ${end - pos} bytes follow`);
  }
  // A linear scan is cheapest for the dozen or so extensions real clients send; a hello made of thousands of
  // empty extensions switches to a Set so that it stays linear.
  let seen: Set<number> | undefined;
  while (pos < end) {
    if (end - pos < 4) return invalid('extensions-malformed', `${end - pos} bytes left, an extension header needs 4`);
    const type = (body[pos]! << 8) | body[pos + 1]!;
    const length = (body[pos + 2]! << 8) | body[pos + 3]!;
    pos += 4;
    if (length > end - pos) {
      return invalid('extensions-malformed', `extension ${type} of ${length} bytes, ${end - pos} left`);
    }
    if (isDuplicate(hello.extensions, type, seen)) return invalid('duplicate-extension', `extension ${type} appears twice`);
    if (seen !== undefined) seen.add(type);
    else if (hello.extensions.length === SCAN_LIMIT) seen = new Set(hello.extensions.map((e) => e.type)).add(type);
    const data = body.subarray(pos, pos + length);
    pos += length;
    hello.extensions.push({ type, data });

    if (type === ExtensionType.ServerName) {
      const sni = parseServerName(data);
      if ('kind' in sni) return sni;
      if (sni.name !== undefined) hello.sni = sni.name;
    } else if (type === ExtensionType.ApplicationLayerProtocolNegotiation) {
      const alpn = parseAlpn(data);
      if ('kind' in alpn) return alpn;
      hello.alpn = alpn.protocols;
    } else if (type === ExtensionType.SupportedVersions) {
      const sv = parseSupportedVersions(data);
      if ('kind' in sv) return sv;
      hello.versions = sv.versions;
    }
  }
  return hello;
}
