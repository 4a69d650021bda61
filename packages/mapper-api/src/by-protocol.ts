import { drop } from './decisions.js';
import type { FlowMapper } from './types.js';

/** The protocols a client's first datagram is told apart by. */
export type DetectedProtocol = 'dtls' | 'quic';

/** Content type of a TLS/DTLS handshake record (RFC 6347 §4.1). */
const CONTENT_TYPE_HANDSHAKE = 22;
/** Every DTLS version has 0xfe as its first byte (DTLS 1.0 0xfeff, 1.2 0xfefd, 1.3 0xfefc). */
const DTLS_VERSION_MAJOR = 0xfe;
/** DTLS record header: type, version, epoch, sequence number, length. */
const DTLS_RECORD_HEADER = 13;
/** QUIC long header: the header form bit (RFC 8999 §5.1, every version). */
const QUIC_LONG_HEADER = 0x80;
/** Header byte and version: what a long header has before anything version-specific. */
const QUIC_VERSION_END = 5;

/**
 * What a client's first datagram is: a DTLS handshake record, or a QUIC packet with a long header (of any version:
 * which versions it can read is the QUIC mapper's to say, and to count). Undefined for anything else. The two cannot
 * be confused: a DTLS record starts with a content type below 0x80, which is a short header's first byte in QUIC.
 */
export function detectProtocol(datagram: Uint8Array): DetectedProtocol | undefined {
  const b0 = datagram[0];
  if (b0 === undefined) return undefined;
  if (b0 === CONTENT_TYPE_HANDSHAKE && datagram.length >= DTLS_RECORD_HEADER && datagram[1] === DTLS_VERSION_MAJOR) return 'dtls';
  if ((b0 & QUIC_LONG_HEADER) !== 0 && datagram.length >= QUIC_VERSION_END) return 'quic';
  return undefined;
}

export interface ByProtocolMappers {
  dtls?: FlowMapper;
  quic?: FlowMapper;
  /** Clients whose first datagram is neither; default: dropped (`not-dtls-or-quic`). */
  other?: FlowMapper;
}

/**
 * One mapper for DTLS and QUIC clients together: each client goes to the mapper of the protocol its first datagram
 * shows, for every call, so a client never changes mapper half-way. A protocol without a mapper is dropped with a
 * reason that says so. `release` goes to every mapper (it is cheap, and a client's protocol is not remembered).
 */
export function byProtocol(mappers: ByProtocolMappers): FlowMapper {
  for (const [name, m] of Object.entries(mappers)) {
    if (m !== undefined && typeof (m as Partial<FlowMapper> | null)?.findFlow !== 'function') {
      throw new TypeError(`byProtocol: ${name} is not a FlowMapper (no findFlow method)`);
    }
  }
  const { dtls, quic, other } = mappers;
  const all = [dtls, quic, other].filter((m): m is FlowMapper => m !== undefined);
  return {
    findFlow(client, packets) {
      const first = packets[0];
      const protocol = first === undefined ? undefined : detectProtocol(first);
      const mapper = protocol === 'dtls' ? dtls : protocol === 'quic' ? quic : other;
      if (mapper) return mapper.findFlow(client, packets);
      return drop(protocol ? `no mapper for ${protocol}` : 'not-dtls-or-quic');
    },
    release(client) {
      for (const m of all) m.release?.(client);
    },
  };
}
