import { CryptoReassembler, DEFAULT_MAX_CRYPTO_BYTES } from './crypto-reassembler.js';
import { parseInitialFrames } from './frames.js';
import { deriveInitialKeys, type InitialKeys } from './keys.js';
import { parseInitialPackets, type InitialHeader } from './long-header.js';
import { openInitial, type OpenedPacket } from './protection.js';
import type { QuicVersion } from './versions.js';

/** Handshake message type of a ClientHello (RFC 8446 §4). */
const CLIENT_HELLO = 1;
/** msg_type (1 byte) and length (3 bytes) of a TLS handshake message. */
export const HANDSHAKE_HEADER_LENGTH = 4;

/** A client's Initial packets come with its first DCID and, after a Retry, the one the server chose. */
export const DEFAULT_MAX_CONNECTION_IDS = 4;
/** Real QUIC ClientHellos take one or two datagrams, three with very large key shares. */
export const DEFAULT_MAX_DATAGRAMS = 16;

/** Why a client's datagrams cannot be read as the Initial packets of a QUIC ClientHello. */
export type FlightInvalidReason =
  /** The first datagram does not start with a long-header Initial packet (or is not QUIC at all). */
  | 'not-quic-initial'
  /** The first datagram starts with a long header of a version other than 1 and 2. */
  | 'unsupported-version'
  /** The first packet does not authenticate under the keys its DCID gives. */
  | 'decrypt-failed'
  /** A decrypted packet breaks QUIC's rules: a frame not allowed in an Initial, a frame cut off, reserved bits set. */
  | 'protocol-violation'
  /** Two CRYPTO frames give different bytes for the same stream offset. */
  | 'crypto-conflict'
  /** The crypto stream starts with a handshake message other than ClientHello. */
  | 'not-client-hello'
  /** CRYPTO data past the byte limit, a ClientHello longer than it, or more connection IDs than allowed. */
  | 'too-large';

export type FlightResult =
  /** No verdict yet: the ClientHello is not complete. */
  | { kind: 'need-more' }
  /** The crypto stream holds a whole ClientHello; `body` is the message after its 4-byte header. */
  | { kind: 'client-hello'; version: QuicVersion; body: Uint8Array }
  | { kind: 'invalid'; reason: FlightInvalidReason; detail: string; version?: number };

export interface FlightLimits {
  /** Highest crypto stream offset accepted, in bytes. Default 64 KiB. */
  maxCryptoBytes?: number;
  /** Datagrams read at most; later ones are ignored. Default 16. */
  maxDatagrams?: number;
  /** Distinct Destination Connection IDs whose keys are derived at most. Default 4. */
  maxConnectionIds?: number;
}

interface KeySet {
  dcid: Uint8Array;
  keys: InitialKeys;
  /** Whether these keys have opened a packet: only then are they tried on packets with another DCID. */
  opened: boolean;
}

const NEED_MORE: FlightResult = Object.freeze({ kind: 'need-more' });

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function limitOr(value: number | undefined, fallback: number): number {
  return value !== undefined && Number.isSafeInteger(value) && value > 0 ? value : fallback;
}

function invalid(reason: FlightInvalidReason, detail: string, version?: number): FlightResult {
  return version === undefined ? { kind: 'invalid', reason, detail } : { kind: 'invalid', reason, detail, version };
}

/**
 * Reads a client's datagrams one at a time, each once, into the ClientHello its Initial packets carry.
 *
 * - The first datagram must start with an Initial packet of QUIC v1 or v2 that opens; that fixes the version.
 *   Later datagrams that do not start with an Initial of that version are skipped (a 0-RTT datagram, a stray
 *   one), and so are packets that do not open: a receiver discards those (RFC 9001 §5.3), and one forged datagram
 *   from a spoofed address must not spoil a client that is otherwise fine.
 * - Keys follow the DCID of each packet: a client that got a Retry starts over with the DCID the server chose,
 *   and its keys come from that. After the server's first Initial, a client sends to the server's connection ID
 *   but keeps the keys of its first DCID, so a packet that its own DCID's keys do not open is tried with the
 *   keys that have opened packets before. At most `maxConnectionIds` key sets are derived.
 * - Once a packet has opened, what it holds counts: a bad frame, reserved bits or conflicting CRYPTO bytes make
 *   the whole invalid, for good.
 *
 * Never throws on any input; the work per datagram is bounded by its length and `maxConnectionIds`.
 */
/** Work done by flight readers, added up over the readers that share it. */
export interface ReadTally {
  datagramsRead: number;
  packetsOpened: number;
}

export class InitialFlightReader {
  readonly #maxDatagrams: number;
  readonly #maxConnectionIds: number;
  readonly #crypto: CryptoReassembler;
  readonly #keySets: KeySet[] = [];
  #version: QuicVersion | undefined;
  /** Largest packet number opened so far in the client's Initial space, -1 before the first. */
  #largestPn = -1;
  #count = 0;
  #datagramsRead = 0;
  #packetsOpened = 0;
  #result: FlightResult = NEED_MORE;
  readonly #tally: ReadTally | undefined;

  /**
   * A limit that is not a positive integer means the default: NaN would disable every comparison. `tally`, shared
   * by the readers of many clients, adds up what they all read.
   */
  constructor(limits: FlightLimits = {}, tally?: ReadTally) {
    this.#tally = tally;
    this.#maxDatagrams = limitOr(limits.maxDatagrams, DEFAULT_MAX_DATAGRAMS);
    this.#maxConnectionIds = limitOr(limits.maxConnectionIds, DEFAULT_MAX_CONNECTION_IDS);
    this.#crypto = new CryptoReassembler(limitOr(limits.maxCryptoBytes, DEFAULT_MAX_CRYPTO_BYTES));
  }

  /** Datagrams given so far (read or, past the limit or a verdict, ignored). */
  get count(): number {
    return this.#count;
  }

  /** Datagrams actually read: those before the verdict and within the limit. */
  get datagramsRead(): number {
    return this.#datagramsRead;
  }

  /** Packets decrypted so far. */
  get packetsOpened(): number {
    return this.#packetsOpened;
  }

  /** Bytes of memory the reader holds beyond its fixed size. */
  get footprint(): number {
    return this.#crypto.footprint + this.#keySets.length * 64;
  }

  /** The current verdict: need-more until the ClientHello is whole or the datagrams are found invalid. */
  result(): FlightResult {
    return this.#result;
  }

  /** Reads the client's next datagram. */
  add(datagram: Uint8Array): void {
    const d = this.#count++;
    if (this.#result.kind !== 'need-more' || d >= this.#maxDatagrams) return;
    this.#datagramsRead++;
    if (this.#tally) this.#tally.datagramsRead++;
    const verdict = this.#read(datagram, d) ?? this.#message();
    if (verdict !== undefined) this.#result = verdict;
  }

  #read(datagram: Uint8Array, d: number): FlightResult | undefined {
    const parsed = parseInitialPackets(datagram);
    if (!parsed.ok) {
      if (d > 0) return undefined;
      const reason = parsed.why === 'unsupported-version' ? 'unsupported-version' : 'not-quic-initial';
      return invalid(reason, parsed.detail, parsed.version);
    }
    const version = parsed.packets[0]!.version;
    if (this.#version === undefined) this.#version = version;
    else if (version !== this.#version) return undefined;
    for (let i = 0; i < parsed.packets.length; i++) {
      const header = parsed.packets[i]!;
      const keySet = this.#keySetFor(header.dcid, version);
      if (keySet === undefined) {
        return invalid('too-large', `datagram ${d}: more than ${this.#maxConnectionIds} Destination Connection IDs`);
      }
      const opened = this.#open(datagram, header, keySet);
      if (opened === undefined) {
        if (d === 0 && i === 0) return invalid('decrypt-failed', 'the first packet does not authenticate', version);
        // The rest of the datagram shares this packet's DCID, so its keys: stop here.
        return undefined;
      }
      const verdict = this.#take(opened, d);
      if (verdict !== undefined) return verdict;
    }
    return undefined;
  }

  /** The keys of `dcid`, derived on first sight; undefined when that would pass the connection ID limit. */
  #keySetFor(dcid: Uint8Array, version: QuicVersion): KeySet | undefined {
    const sets = this.#keySets;
    for (let i = 0; i < sets.length; i++) if (sameBytes(sets[i]!.dcid, dcid)) return sets[i];
    if (sets.length >= this.#maxConnectionIds) return undefined;
    // A copy: the datagram it came from may be let go of.
    const set: KeySet = { dcid: new Uint8Array(dcid), keys: deriveInitialKeys(version, dcid), opened: false };
    sets.push(set);
    return set;
  }

  #open(datagram: Uint8Array, header: InitialHeader, own: KeySet): OpenedPacket | undefined {
    let opened = openInitial(datagram, header, own.keys, this.#largestPn);
    if (opened !== undefined) {
      own.opened = true;
      return opened;
    }
    for (const other of this.#keySets) {
      if (other === own || !other.opened) continue;
      opened = openInitial(datagram, header, other.keys, this.#largestPn);
      if (opened !== undefined) return opened;
    }
    return undefined;
  }

  /** Takes in the frames of an opened packet. */
  #take(packet: OpenedPacket, d: number): FlightResult | undefined {
    this.#packetsOpened++;
    if (this.#tally) this.#tally.packetsOpened++;
    if (packet.pn > this.#largestPn) this.#largestPn = packet.pn;
    // RFC 9000 §17.2: non-zero reserved bits, once protection is off, are a PROTOCOL_VIOLATION.
    if ((packet.firstByte & 0x0c) !== 0) {
      return invalid('protocol-violation', `datagram ${d}, packet ${packet.pn}: reserved bits set`);
    }
    const frames = parseInitialFrames(packet.payload);
    if (!frames.ok) return invalid('protocol-violation', `datagram ${d}, packet ${packet.pn}: ${frames.detail}`);
    for (const frame of frames.crypto) {
      const added = this.#crypto.add(frame.offset, frame.data);
      if (added === 'too-large') {
        return invalid(
          'too-large',
          `datagram ${d}: CRYPTO data at offset ${frame.offset} of ${frame.data.length} bytes, limit ${this.#crypto.limit}`,
        );
      }
      if (added === 'conflict') {
        return invalid('crypto-conflict', `datagram ${d}: CRYPTO data at offset ${frame.offset} differs from earlier bytes`);
      }
    }
    return undefined;
  }

  /** A verdict once the crypto stream starts with a whole handshake message, or one that cannot be a ClientHello. */
  #message(): FlightResult | undefined {
    const crypto = this.#crypto;
    const header = crypto.prefix(HANDSHAKE_HEADER_LENGTH);
    if (header === undefined) return undefined;
    if (header[0] !== CLIENT_HELLO) {
      return invalid('not-client-hello', `the crypto stream starts with handshake message type ${header[0]}`);
    }
    const length = (header[1]! << 16) | (header[2]! << 8) | header[3]!;
    const total = HANDSHAKE_HEADER_LENGTH + length;
    if (total > crypto.limit) return invalid('too-large', `ClientHello of ${length} bytes, limit ${crypto.limit}`);
    const message = crypto.prefix(total);
    if (message === undefined) return undefined;
    return { kind: 'client-hello', version: this.#version!, body: message.subarray(HANDSHAKE_HEADER_LENGTH) };
  }
}

/** Reads `datagrams` with a fresh {@link InitialFlightReader}: what they hold, read from scratch. */
export function readInitialFlight(datagrams: readonly Uint8Array[] | Uint8Array, limits: FlightLimits = {}): FlightResult {
  const reader = new InitialFlightReader(limits);
  for (const datagram of datagrams instanceof Uint8Array ? [datagrams] : datagrams) reader.add(datagram);
  return reader.result();
}
