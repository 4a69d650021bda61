import { ExtensionType, parseAlpn, parseServerName, parseSupportedVersions } from './extensions.js';
import { invalid, type HelloInvalid } from './result.js';

/**
 * Which layout a ClientHello body has. DTLS (RFC 6347 §4.2.1; RFC 9147 §5.3 keeps it with legacy_ names) puts a
 * cookie after session_id and counts versions down from 0xfeff. TLS (RFC 8446 §4.1.2), which QUIC also carries
 * in its CRYPTO frames (RFC 9001 §4), has no cookie and counts up from 0x0301.
 */
export type HelloFlavor = 'tls' | 'dtls';

export interface Extension {
  type: number;
  /** The extension's body, a view into the message. */
  data: Uint8Array;
}

/** The fields of a TLS or DTLS ClientHello. */
export interface ClientHello {
  /** legacy_version / client_version: 0x0303 for TLS 1.2/1.3, 0xfefd/0xfeff for DTLS. */
  clientVersion: number;
  random: Uint8Array;
  sessionId: Uint8Array;
  /**
   * DTLS only: empty in a first ClientHello, the server's cookie in the retry after a HelloVerifyRequest. Always
   * empty for TLS, so that code reading both flavors needs no special case.
   */
  cookie: Uint8Array;
  cipherSuites: number[];
  compressionMethods: Uint8Array;
  /** Every extension in the order sent. */
  extensions: Extension[];
  /** The host_name of the server_name extension exactly as sent; absent when the client named no server. */
  sni?: string;
  /** Protocol names offered with ALPN, in the client's order. */
  alpn?: string[];
  /** Versions offered with supported_versions (e.g. 0x0304 for TLS 1.3, 0xfefc for DTLS 1.3), in the client's order. */
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
 * Why `version` cannot open a body of this flavor, or undefined if it can. DTLS has only ever been checked by its
 * major byte, which keeps future minor versions readable. TLS 1.3 freezes legacy_version at 0x0303 (RFC 8446
 * §4.1.2) and SSL 3.0 (0x0300) has no extensions to route by, so TLS takes exactly 0x0301 to 0x0303.
 */
function versionProblem(version: number, flavor: HelloFlavor): string | undefined {
  const ok = flavor === 'dtls' ? version >> 8 === 0xfe : version >= 0x0301 && version <= 0x0303;
  if (ok) return undefined;
  const hex = `0x${version.toString(16).padStart(4, '0')}`;
  return flavor === 'dtls' ? `client_version ${hex} is not DTLS` : `client_version ${hex} is not TLS 1.0 to 1.2`;
}

/**
 * Parses the body of a ClientHello handshake message: everything after the handshake header (12 bytes in DTLS, 4
 * in TLS and QUIC), once reassembled. Every length is checked against the bytes that remain before it is used.
 * The flavor defaults to DTLS, which is what this code read before TLS was added.
 */
export function parseClientHelloBody(body: Uint8Array, flavor: HelloFlavor = 'dtls'): ClientHello | HelloInvalid {
  // Untyped callers could pass anything; misreading every hello as the wrong flavor would be silent, so say so.
  if (flavor !== 'dtls' && flavor !== 'tls') throw new TypeError(`unknown ClientHello flavor ${String(flavor)}`);
  const dtls = flavor === 'dtls';
  const end = body.length;
  if (end < 2 + RANDOM_LENGTH + 1) {
    return invalid('client-hello-truncated', `${end} bytes, version, random and session_id need ${2 + RANDOM_LENGTH + 1}`);
  }
  const clientVersion = (body[0]! << 8) | body[1]!;
  const problem = versionProblem(clientVersion, flavor);
  if (problem !== undefined) return invalid('client-hello-malformed', problem);
  let pos = 2;
  const random = body.subarray(pos, pos + RANDOM_LENGTH);
  pos += RANDOM_LENGTH;

  const sessionIdLength = body[pos]!;
  if (sessionIdLength > MAX_SESSION_ID_LENGTH) {
    return invalid('client-hello-malformed', `session_id of ${sessionIdLength} bytes`);
  }
  pos += 1;
  // What follows session_id must be there too: DTLS's one-byte cookie length, TLS's two-byte cipher_suites length.
  if (dtls) {
    if (end - pos < sessionIdLength + 1) return invalid('client-hello-truncated', 'ends inside session_id or before cookie');
  } else if (end - pos < sessionIdLength + 2) {
    return invalid('client-hello-truncated', 'ends inside session_id or before cipher_suites');
  }
  const sessionId = body.subarray(pos, pos + sessionIdLength);
  pos += sessionIdLength;

  let cookie = body.subarray(pos, pos);
  if (dtls) {
    const cookieLength = body[pos]!;
    pos += 1;
    if (end - pos < cookieLength + 2) return invalid('client-hello-truncated', 'ends inside cookie or before cipher_suites');
    cookie = body.subarray(pos, pos + cookieLength);
    pos += cookieLength;
  }

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
  // Before (D)TLS 1.3 the extensions block is optional, so a hello may end here.
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
