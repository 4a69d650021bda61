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
  const datagrams: readonly Uint8Array[] = packets instanceof Uint8Array ? [packets] : packets;
  const maxMessageSize = messageLimit(options.maxMessageSize);
  const pending = new Map<number, PendingHello>();
  let sawHandshake = false;

  for (let d = 0; d < datagrams.length; d++) {
    const layer = parseRecords(datagrams[d]!);
    if (!layer.ok) {
      if (d === 0) return invalid(layer.reason, layer.detail);
      continue;
    }
    for (const record of layer.records) {
      if (record.contentType !== ContentType.Handshake || record.epoch !== 0) continue;
      sawHandshake = true;
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
  }

  let chosenSeq = -1;
  let chosen: PendingHello | undefined;
  for (const [seq, hello] of pending) {
    if (hello.reassembler.complete && seq > chosenSeq) {
      chosenSeq = seq;
      chosen = hello;
    }
  }
  if (chosen === undefined) {
    if (pending.size > 0) return NEED_MORE;
    if (datagrams.length === 0) return NEED_MORE;
    return sawHandshake ? invalid('no-client-hello') : invalid('no-handshake');
  }
  const body = parseClientHelloBody(chosen.reassembler.message()!);
  if ('kind' in body) return body;
  return {
    kind: 'hello',
    ...body,
    messageSeq: chosenSeq,
    recordVersion: chosen.recordVersion,
    recordSequence: chosen.recordSequence,
  };
}
