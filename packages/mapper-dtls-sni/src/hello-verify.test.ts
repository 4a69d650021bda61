import { describe, expect, it } from 'vitest';
import { parseHandshakeFragments } from './handshake.js';
import { helloVerifyRequest } from './hello-verify.js';
import { parseRecords } from './record.js';

const COOKIE = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);

describe('helloVerifyRequest', () => {
  it.each([
    ['a first hello (record 0, message_seq 0)', COOKIE, 0, 0],
    ['a retransmitted first hello (record 1)', COOKIE, 1, 0],
    ['a retry whose cookie was refused (message_seq 1)', COOKIE, 2, 1],
    ['a record number that needs all 48 bits', COOKIE, 2 ** 48 - 1, 0],
    ['a record number above 32 bits', COOKIE, 0x0102_0304_0506, 0x0708],
    ['an empty cookie', new Uint8Array(0), 0, 0],
    ['the longest cookie', new Uint8Array(255).fill(7), 5, 0xffff],
  ])('lays out every byte as RFC 6347 §4.1, §4.2.1 and §4.2.2 say, for %s', (_what, cookie, recordSequence, messageSeq) => {
    const bytes = helloVerifyRequest(cookie, { recordSequence, messageSeq });
    const body = 2 + 1 + cookie.length;
    const seq48 = [0, 0, 0, 0, 0, 0].map((_, i) => Math.floor(recordSequence / 2 ** (8 * (5 - i))) % 256);
    const expected = [
      // DTLSPlaintext
      22, // type: handshake
      0xfe, 0xff, // version: DTLS 1.0, as servers should use for a HelloVerifyRequest
      0, 0, // epoch
      ...seq48, // sequence_number: the ClientHello's
      (12 + body) >> 8, (12 + body) & 0xff, // length
      // Handshake
      3, // msg_type: hello_verify_request
      0, body >> 8, body & 0xff, // length
      messageSeq >> 8, messageSeq & 0xff, // message_seq
      0, 0, 0, // fragment_offset
      0, body >> 8, body & 0xff, // fragment_length: the whole message
      // HelloVerifyRequest
      0xfe, 0xff, // server_version: DTLS 1.0
      cookie.length, // cookie<0..2^8-1>
      ...cookie,
    ];
    expect([...bytes]).toEqual(expected);
    expect(bytes.length).toBe(13 + 12 + 3 + cookie.length);
  });

  it('matches a HelloVerifyRequest written out by hand', () => {
    const bytes = helloVerifyRequest(COOKIE, { recordSequence: 1, messageSeq: 0 });
    expect(Buffer.from(bytes).toString('hex')).toBe(
      '16feff0000000000000001001f' + '030000130000000000000013' + 'feff10' + 'a0a1a2a3a4a5a6a7a8a9aaabacadaeaf',
    );
  });

  it("reads back through the package's own record and handshake parsers", () => {
    const bytes = helloVerifyRequest(COOKIE, { recordSequence: 0x1234_5678_9a, messageSeq: 2 });
    const layer = parseRecords(bytes);
    expect(layer).toMatchObject({ ok: true, stop: 'end', trailingBytes: 0 });
    if (!layer.ok) return;
    expect(layer.records).toHaveLength(1);
    expect(layer.records[0]).toMatchObject({ contentType: 22, version: 0xfeff, epoch: 0, sequence: 0x1234_5678_9a });
    const handshake = parseHandshakeFragments(layer.records[0]!.fragment);
    expect(handshake).toMatchObject({ ok: true, fragments: [{ msgType: 3, length: 19, messageSeq: 2, fragmentOffset: 0 }] });
  });

  it('is smaller than any ClientHello, which the balancer requires of a reply', () => {
    // A ClientHello has at least a record header, a handshake header, version, random, three length bytes, one
    // cipher suite and one compression method.
    const smallestHello = 13 + 12 + 2 + 32 + 1 + 1 + 2 + 2 + 1 + 1;
    expect(helloVerifyRequest(COOKIE, { recordSequence: 0, messageSeq: 0 }).length).toBeLessThan(smallestHello);
  });

  it('refuses what does not fit its field', () => {
    expect(() => helloVerifyRequest(new Uint8Array(256), { recordSequence: 0, messageSeq: 0 })).toThrow(/at most 255/);
    expect(() => helloVerifyRequest(COOKIE, { recordSequence: 2 ** 48, messageSeq: 0 })).toThrow(/recordSequence/);
    expect(() => helloVerifyRequest(COOKIE, { recordSequence: -1, messageSeq: 0 })).toThrow(RangeError);
    expect(() => helloVerifyRequest(COOKIE, { recordSequence: 0.5, messageSeq: 0 })).toThrow(RangeError);
    expect(() => helloVerifyRequest(COOKIE, { recordSequence: 0, messageSeq: 0x1_0000 })).toThrow(/messageSeq/);
    expect(() => helloVerifyRequest(COOKIE, { recordSequence: 0, messageSeq: -1 })).toThrow(RangeError);
  });
});
