import { randomBytes } from 'node:crypto';
import { ExtensionType } from './extensions.js';
import { HANDSHAKE_HEADER_LENGTH, HandshakeType } from './handshake.js';
import { MAX_COOKIE_LENGTH } from './hello-verify.js';
import { parseNamePattern } from './names.js';
import { ContentType, DtlsVersion } from './record.js';

export interface ClientHelloOptions {
  /** Sent as the server_name extension's host_name; without it the hello names no server. */
  serverName?: string;
  /** The 32-byte client random; fresh random bytes by default. */
  random?: Uint8Array;
  /** At most 32 bytes; empty by default. */
  sessionId?: Uint8Array;
  /** The cookie of a HelloVerifyRequest being answered, at most 255 bytes; empty by default. */
  cookie?: Uint8Array;
  /** Handshake message_seq: 0 for a first hello (the default), one more for each retry. */
  messageSeq?: number;
  /** Record sequence number (48 bits); 0 by default. */
  recordSequence?: number;
}

const RANDOM_LENGTH = 32;
const MAX_SESSION_ID_LENGTH = 32;
const MAX_RECORD_SEQUENCE = 2 ** 48 - 1;
const NAME_TYPE_HOST_NAME = 0;
const COMPRESSION_NULL = 0;
const EC_POINT_FORMAT_UNCOMPRESSED = 0;

/** Extension code points only the builder needs (IANA "TLS ExtensionType Values"). */
const MoreExtensionType = {
  SupportedGroups: 10,
  EcPointFormats: 11,
  SignatureAlgorithms: 13,
  ExtendedMasterSecret: 23,
  RenegotiationInfo: 0xff01,
} as const;

/**
 * AEAD suites first, then CBC and plain-RSA ones, for ECDSA and RSA certificates alike: a server must find one it
 * can use, or it answers the retry with a handshake_failure alert instead of a ServerHello. Everything here is
 * enabled by default in OpenSSL 3 and GnuTLS builds.
 */
export const CLIENT_HELLO_CIPHER_SUITES: readonly number[] = [
  0xc02b, // ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
  0xc02f, // ECDHE_RSA_WITH_AES_128_GCM_SHA256
  0xc02c, // ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
  0xc030, // ECDHE_RSA_WITH_AES_256_GCM_SHA384
  0xcca9, // ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
  0xcca8, // ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
  0xc009, // ECDHE_ECDSA_WITH_AES_128_CBC_SHA
  0xc013, // ECDHE_RSA_WITH_AES_128_CBC_SHA
  0xc00a, // ECDHE_ECDSA_WITH_AES_256_CBC_SHA
  0xc014, // ECDHE_RSA_WITH_AES_256_CBC_SHA
  0x009c, // RSA_WITH_AES_128_GCM_SHA256
  0x002f, // RSA_WITH_AES_128_CBC_SHA
  0x0035, // RSA_WITH_AES_256_CBC_SHA
];

/** x25519, secp256r1, secp384r1: ECDHE suites are only chosen over a group both sides have. */
const SUPPORTED_GROUPS = [0x001d, 0x0017, 0x0018];

/** ECDSA P-256/384/521, RSA-PSS with rsaEncryption keys, RSA PKCS#1: covers both kinds of certificate. */
const SIGNATURE_ALGORITHMS = [0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601];

function checkBytes(what: string, value: Uint8Array, min: number, max: number): void {
  if (value.length < min || value.length > max) {
    const range = min === max ? `${min}` : `${min} to ${max}`;
    throw new RangeError(`${what} must have ${range} bytes, got ${value.length}`);
  }
}

/**
 * The host name as it goes on the wire, checked with the rules mapping files follow, so that a probe can send
 * any name a mapping can route and nothing the parser would refuse.
 */
function hostNameBytes(serverName: string): Buffer {
  const pattern = parseNamePattern(serverName);
  if ('error' in pattern) throw new RangeError(`serverName ${pattern.error}`);
  if (pattern.wildcard) throw new RangeError(`serverName "${serverName}" is a wildcard, not a host name`);
  return Buffer.from(pattern.name, 'latin1');
}

class Writer {
  readonly #parts: Uint8Array[] = [];
  #length = 0;

  get length(): number {
    return this.#length;
  }

  bytes(b: Uint8Array | readonly number[]): this {
    const u = b instanceof Uint8Array ? b : Uint8Array.from(b);
    this.#parts.push(u);
    this.#length += u.length;
    return this;
  }

  uint(value: number, width: number): this {
    const b = Buffer.alloc(width);
    b.writeUIntBE(value, 0, width);
    return this.bytes(b);
  }

  /** `body` with a length prefix of `width` bytes. */
  vector(width: number, body: Writer | Uint8Array | readonly number[]): this {
    const inner = body instanceof Writer ? body.finish() : body;
    return this.uint(inner.length, width).bytes(inner);
  }

  uint16s(values: readonly number[]): this {
    for (const v of values) this.uint(v, 2);
    return this;
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.#length);
    let pos = 0;
    for (const p of this.#parts) {
      out.set(p, pos);
      pos += p.length;
    }
    return out;
  }
}

function extensions(serverName: string | undefined): Writer {
  const w = new Writer();
  const ext = (type: number, body: Writer | readonly number[]): void => {
    w.uint(type, 2).vector(2, body);
  };
  if (serverName !== undefined) {
    const entry = new Writer().uint(NAME_TYPE_HOST_NAME, 1).vector(2, hostNameBytes(serverName));
    ext(ExtensionType.ServerName, new Writer().vector(2, entry));
  }
  ext(MoreExtensionType.SupportedGroups, new Writer().vector(2, new Writer().uint16s(SUPPORTED_GROUPS)));
  ext(MoreExtensionType.EcPointFormats, new Writer().vector(1, [EC_POINT_FORMAT_UNCOMPRESSED]));
  ext(MoreExtensionType.SignatureAlgorithms, new Writer().vector(2, new Writer().uint16s(SIGNATURE_ALGORITHMS)));
  ext(MoreExtensionType.ExtendedMasterSecret, []);
  // An empty renegotiated_connection: servers that insist on secure renegotiation then accept the hello.
  ext(MoreExtensionType.RenegotiationInfo, [0]);
  return w;
}

/**
 * One datagram holding a DTLS 1.2 ClientHello that stock OpenSSL 3 and GnuTLS servers answer: a record of content
 * type handshake, version `fe ff` (what clients put on a first flight, before any version is agreed), epoch 0,
 * carrying the whole message unfragmented. Throws a RangeError for options no ClientHello can carry.
 */
export function buildClientHello(options: ClientHelloOptions = {}): Uint8Array {
  const random = options.random ?? randomBytes(RANDOM_LENGTH);
  const sessionId = options.sessionId ?? new Uint8Array(0);
  const cookie = options.cookie ?? new Uint8Array(0);
  const messageSeq = options.messageSeq ?? 0;
  const recordSequence = options.recordSequence ?? 0;
  checkBytes('random', random, RANDOM_LENGTH, RANDOM_LENGTH);
  checkBytes('sessionId', sessionId, 0, MAX_SESSION_ID_LENGTH);
  checkBytes('cookie', cookie, 0, MAX_COOKIE_LENGTH);
  if (!(Number.isInteger(messageSeq) && messageSeq >= 0 && messageSeq <= 0xffff)) {
    throw new RangeError(`messageSeq must be an integer from 0 to 65535, got ${String(messageSeq)}`);
  }
  if (!(Number.isSafeInteger(recordSequence) && recordSequence >= 0 && recordSequence <= MAX_RECORD_SEQUENCE)) {
    throw new RangeError(`recordSequence must be an integer from 0 to 2^48 - 1, got ${String(recordSequence)}`);
  }

  const body = new Writer()
    .uint(DtlsVersion.Dtls1_2, 2)
    .bytes(random)
    .vector(1, sessionId)
    .vector(1, cookie)
    .vector(2, new Writer().uint16s(CLIENT_HELLO_CIPHER_SUITES))
    .vector(1, [COMPRESSION_NULL])
    .vector(2, extensions(options.serverName))
    .finish();

  return new Writer()
    .uint(ContentType.Handshake, 1)
    .uint(DtlsVersion.Dtls1_0, 2)
    .uint(0, 2)
    .uint(recordSequence, 6)
    .uint(HANDSHAKE_HEADER_LENGTH + body.length, 2)
    .uint(HandshakeType.ClientHello, 1)
    .uint(body.length, 3)
    .uint(messageSeq, 2)
    .uint(0, 3)
    .uint(body.length, 3)
    .bytes(body)
    .finish();
}
