import { parseClientHelloBody } from './client-hello.js';
import { HandshakeType, parseHandshakeFragments } from './handshake.js';
import { MessageReassembler } from './reassembly.js';
import { ContentType, parseRecords } from './record.js';
import { invalid, NEED_MORE, type ParseResult } from './result.js';

/** 16 KiB: several times the largest ClientHello real DTLS clients send, post-quantum key shares included. */
export const DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024;

/** The handshake length field is 24 bits wide. */
const HANDSHAKE_LENGTH_LIMIT = 0xff_ffff;

/**
 * A client sends message_seq 0, then 1 after a HelloVerifyRequest or HelloRetryRequest, and more only if a server
 * keeps asking; beyond this many distinct values the datagrams are not a real client's, and each one would
 * otherwise cost a reassembly buffer.
 */
const MAX_CLIENT_HELLO_MESSAGES = 4;

export interface ParseOptions {
  /**
   * Largest ClientHello accepted, in bytes (the handshake message body). Default 16 KiB; NaN or a negative value
   * means the default.
   */
  maxMessageSize?: number;
}

/** A limit that is not a number (NaN would disable every comparison) falls back to the default. */
function messageLimit(requested: number | undefined): number {
  if (requested === undefined || !(requested >= 0)) return DEFAULT_MAX_MESSAGE_SIZE;
  return Math.min(Math.floor(requested), HANDSHAKE_LENGTH_LIMIT);
}

interface PendingHello {
  reassembler: MessageReassembler;
  recordVersion: number;
  recordSequence: number;
}

/**
 * Finds and parses the ClientHello in the datagrams a client has sent so far, oldest first.
 *
 * - Records may be several to a datagram and fragments several to a record; fragments of one message may be
 *   spread over datagrams in any order, repeated or overlapping (see {@link MessageReassembler}).
 * - The first datagram must open with a DTLS record. Later datagrams that are not DTLS are skipped, so that a
 *   stray datagram cannot spoil a flow that is otherwise fine.
 * - Records of epochs other than 0 are protected and skipped, as are handshake messages other than ClientHello
 *   (they show up when the balancer holds a whole first flight); malformed ones still make the result invalid.
 * - When ClientHellos with different message_seq are present (the first and the retry carrying a cookie), the
 *   complete one with the highest message_seq is parsed: it is the client's latest word.
 *
 * Never throws on any input; every outcome is a value.
 */
export function parseClientHello(packets: readonly Uint8Array[] | Uint8Array, options: ParseOptions = {}): ParseResult {
  const reader = new ClientHelloReader(options);
  for (const datagram of packets instanceof Uint8Array ? [packets] : packets) reader.add(datagram);
  return reader.result();
}

/**
 * {@link parseClientHello} one datagram at a time, for a client whose datagrams arrive one by one: each is read
 * once, however many calls it takes for the hello to be whole. Once the datagrams are found invalid, they stay so.
 */
export class ClientHelloReader {
  readonly #maxMessageSize: number;
  readonly #pending = new Map<number, PendingHello>();
  #sawHandshake = false;
  #count = 0;
  #invalid: ParseResult | undefined;

  constructor(options: ParseOptions = {}) {
    this.#maxMessageSize = messageLimit(options.maxMessageSize);
  }

  /** Datagrams read so far. */
  get count(): number {
    return this.#count;
  }

  /** The most bytes the messages being reassembled can come to hold: their declared lengths together. */
  get footprint(): number {
    let n = 0;
    for (const hello of this.#pending.values()) n += hello.reassembler.length;
    return n;
  }

  /** Reads the client's next datagram. */
  add(datagram: Uint8Array): void {
    const d = this.#count++;
    if (this.#invalid) return;
    this.#invalid = this.#read(datagram, d);
  }

  /** What the datagrams read so far hold. */
  result(): ParseResult {
    if (this.#invalid) return this.#invalid;
    let chosenSeq = -1;
    let chosen: PendingHello | undefined;
    for (const [seq, hello] of this.#pending) {
      if (hello.reassembler.complete && seq > chosenSeq) {
        chosenSeq = seq;
        chosen = hello;
      }
    }
    if (chosen === undefined) {
      if (this.#pending.size > 0 || this.#count === 0) return NEED_MORE;
      return this.#sawHandshake ? invalid('no-client-hello') : invalid('no-handshake');
    }
    const body = parseClientHelloBody(chosen.reassembler.message()!, 'dtls');
    if ('kind' in body) return body;
    return {
      kind: 'hello',
      ...body,
      messageSeq: chosenSeq,
      recordVersion: chosen.recordVersion,
      recordSequence: chosen.recordSequence,
    };
  }

  /** Adds the ClientHello fragments of datagram `d`; a result when they make the whole invalid. */
  #read(datagram: Uint8Array, d: number): ParseResult | undefined {
    const layer = parseRecords(datagram);
    if (!layer.ok) return d === 0 ? invalid(layer.reason, layer.detail) : undefined;
    const maxMessageSize = this.#maxMessageSize;
    const pending = this.#pending;
    for (const record of layer.records) {
      if (record.contentType !== ContentType.Handshake || record.epoch !== 0) continue;
      this.#sawHandshake = true;
      const handshake = parseHandshakeFragments(record.fragment);
      if (!handshake.ok) return invalid(handshake.reason, `datagram ${d}: ${handshake.detail}`);
      for (const fragment of handshake.fragments) {
        if (fragment.msgType !== HandshakeType.ClientHello) continue;
        if (fragment.length > maxMessageSize) {
          return invalid('message-too-large', `ClientHello of ${fragment.length} bytes, limit ${maxMessageSize}`);
        }
        let hello = pending.get(fragment.messageSeq);
        if (hello === undefined) {
          if (pending.size >= MAX_CLIENT_HELLO_MESSAGES) {
            return invalid('too-many-messages', `more than ${MAX_CLIENT_HELLO_MESSAGES} ClientHello message_seq values`);
          }
          hello = {
            reassembler: new MessageReassembler(fragment.length),
            recordVersion: record.version,
            recordSequence: record.sequence,
          };
          pending.set(fragment.messageSeq, hello);
        } else if (hello.reassembler.length !== fragment.length) {
          return invalid(
            'length-mismatch',
            `message_seq ${fragment.messageSeq}: length ${fragment.length}, ` +
              `earlier fragments said ${hello.reassembler.length}`,
          );
        }
        if (record.sequence > hello.recordSequence) hello.recordSequence = record.sequence;
        const added = hello.reassembler.add(fragment.fragmentOffset, fragment.body);
        if (added === 'out-of-range') {
          return invalid(
            'fragment-out-of-range',
            `offset ${fragment.fragmentOffset} + length ${fragment.body.length} > message length ${fragment.length}`,
          );
        }
        if (added === 'conflict') {
          return invalid('fragment-conflict', `message_seq ${fragment.messageSeq}: overlapping fragments disagree`);
        }
      }
    }
    return undefined;
  }
}
