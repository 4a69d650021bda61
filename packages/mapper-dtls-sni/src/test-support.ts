// Builders for crafted DTLS inputs, shared by the tests (not part of the package). Real captures come from
// `dtlsCapture` in @flowlb/testkit.
import { mappingsFromYaml, MappingsError } from './mappings.js';

import { alpnExtension, ascii, clientHelloBody, concat, extension, helloBodyOf, sniExtension, supportedVersionsExtension, u16, u24, u8, type Bytes } from '@flowlb/testkit';

export { alpnExtension, ascii, clientHelloBody, concat, extension, helloBodyOf, sniExtension, supportedVersionsExtension, u16, u24, u8 };

export interface RecordSpec {
  type?: number;
  version?: number;
  epoch?: number;
  sequence?: number;
  /** Overrides the length field. */
  length?: number;
}

export function record(body: Bytes, spec: RecordSpec = {}): Uint8Array {
  const seq = spec.sequence ?? 0;
  return concat(
    u8(spec.type ?? 22),
    u16(spec.version ?? 0xfeff),
    u16(spec.epoch ?? 0),
    u16(Math.floor(seq / 0x1_0000_0000)),
    u16((seq >>> 16) & 0xffff),
    u16(seq & 0xffff),
    u16(spec.length ?? body.length),
    body,
  );
}

export interface FragmentSpec {
  msgType?: number;
  /** Message length; defaults to offset + body length. */
  length?: number;
  messageSeq?: number;
  offset?: number;
  /** Overrides fragment_length. */
  fragmentLength?: number;
}

export function handshakeFragment(body: Bytes, spec: FragmentSpec = {}): Uint8Array {
  const offset = spec.offset ?? 0;
  return concat(
    u8(spec.msgType ?? 1),
    u24(spec.length ?? offset + body.length),
    u16(spec.messageSeq ?? 0),
    u24(offset),
    u24(spec.fragmentLength ?? body.length),
    body,
  );
}

export function helloDatagram(body: Uint8Array, messageSeq = 0, recordSpec: RecordSpec = {}): Uint8Array {
  return record(handshakeFragment(body, { messageSeq }), recordSpec);
}

/** Fragment `body` at [offset, end) pairs, each in its own record and datagram, numbered from `firstSequence`. */
export function fragmentDatagrams(
  body: Uint8Array,
  pieces: readonly (readonly [number, number])[],
  messageSeq = 0,
  firstSequence = 0,
): Uint8Array[] {
  return pieces.map(([start, end], i) =>
    record(handshakeFragment(body.subarray(start, end), { offset: start, length: body.length, messageSeq }), {
      sequence: firstSequence + i,
    }),
  );
}

/**
 * The ClientHello body that the first record of each datagram carries a fragment of, put together by offset: what
 * a real client sent, whether in one datagram or several.
 */
export function helloBodyFromFragments(datagrams: readonly Uint8Array[]): Uint8Array {
  let body: Uint8Array | undefined;
  for (const d of datagrams) {
    const length = (d[14]! << 16) | (d[15]! << 8) | d[16]!;
    const offset = (d[19]! << 16) | (d[20]! << 8) | d[21]!;
    const fragmentLength = (d[22]! << 16) | (d[23]! << 8) | d[24]!;
    body ??= new Uint8Array(length);
    body.set(d.subarray(25, 25 + fragmentLength), offset);
  }
  if (body === undefined) throw new Error('no datagrams');
  return body;
}

/** `body` with its cookie replaced: what a client sends back after a HelloVerifyRequest. */
export function withCookie(body: Uint8Array, cookie: Uint8Array): Uint8Array {
  const sessionIdEnd = 2 + 32 + 1 + body[34]!;
  const cookieEnd = sessionIdEnd + 1 + body[sessionIdEnd]!;
  return concat(body.subarray(0, sessionIdEnd), u8(cookie.length), cookie, body.subarray(cookieEnd));
}

/** What a mappings text is refused for, as key and reason; none when it loads. */
export function issuesOf(text: string): { key?: string; reason: string }[] {
  try {
    mappingsFromYaml(text);
  } catch (error) {
    if (error instanceof MappingsError) return error.issues.map((i) => ({ ...(i.key ? { key: i.key } : {}), reason: i.reason }));
    throw error;
  }
  return [];
}
