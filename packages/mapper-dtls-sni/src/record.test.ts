import { describe, expect, it } from 'vitest';
import { ContentType, MAX_RECORD_LENGTH, parseRecords } from './record.js';
import { dtlsCapture } from '@flowlb/testkit';
import { concat, record } from './test-support.js';

describe('parseRecords', () => {
  it('reads the header fields of a real ClientHello record', () => {
    const [first] = dtlsCapture('ossl_foo');
    const result = parseRecords(first!);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.records).toHaveLength(1);
    const r = result.records[0]!;
    expect(r.contentType).toBe(ContentType.Handshake);
    expect(r.version).toBe(0xfeff);
    expect(r.epoch).toBe(0);
    expect(r.sequence).toBe(0);
    expect(r.fragment.length).toBe(first!.length - 13);
    expect(result.stop).toBe('end');
    expect(result.trailingBytes).toBe(0);
  });

  it('reads the record sequence number of a retransmission', () => {
    const [, second] = dtlsCapture('ossl_foo');
    const result = parseRecords(second!);
    expect(result.ok && result.records[0]!.sequence).toBe(1);
  });

  it('reads all 48 bits of the sequence number', () => {
    const seq = 0xabcd_1234_5678;
    const result = parseRecords(record([1, 2, 3], { sequence: seq, epoch: 0x0102 }));
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.records[0]!.sequence).toBe(seq);
    expect(result.records[0]!.epoch).toBe(0x0102);
    expect(Array.from(result.records[0]!.fragment)).toEqual([1, 2, 3]);
  });

  it('splits several records in one datagram (the client second flight of the cookie capture)', () => {
    const flight = dtlsCapture('ossl_cookie')[2]!;
    const result = parseRecords(flight);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.records.map((r) => [r.contentType, r.epoch, r.version])).toEqual([
      [ContentType.Handshake, 0, 0xfefd],
      [ContentType.ChangeCipherSpec, 0, 0xfefd],
      [ContentType.Handshake, 1, 0xfefd],
    ]);
    expect(result.trailingBytes).toBe(0);
  });

  it('accepts DTLS 1.0 and 1.2 record versions, including fe fd for a DTLS 1.3 ClientHello', () => {
    for (const version of [0xfeff, 0xfefd]) {
      const result = parseRecords(record([0], { version }));
      expect(result.ok && result.records[0]!.version).toBe(version);
    }
  });

  it('refuses a TLS record and a record with an unknown content type as the first record', () => {
    expect(parseRecords(record([0], { version: 0x0303 }))).toMatchObject({ ok: false, reason: 'not-dtls' });
    expect(parseRecords(record([0], { type: 0x99 }))).toMatchObject({ ok: false, reason: 'not-dtls' });
    expect(parseRecords(record([0], { version: 0xfefc }))).toMatchObject({ ok: false, reason: 'not-dtls' });
    expect(parseRecords(new Uint8Array(Buffer.from('GET / HTTP/1.1\r\n\r\n')))).toMatchObject({ ok: false, reason: 'not-dtls' });
  });

  it('refuses an empty datagram, a short header and a body shorter than its length', () => {
    expect(parseRecords(new Uint8Array(0))).toMatchObject({ ok: false, reason: 'empty-datagram' });
    expect(parseRecords(record([1, 2]).subarray(0, 12))).toMatchObject({ ok: false, reason: 'truncated-record' });
    expect(parseRecords(record([1, 2, 3], { length: 4 }))).toMatchObject({ ok: false, reason: 'truncated-record' });
  });

  it('refuses a first record longer than any DTLS record can be', () => {
    const body = new Uint8Array(MAX_RECORD_LENGTH + 1);
    expect(parseRecords(record(body))).toMatchObject({ ok: false, reason: 'truncated-record' });
    expect(parseRecords(record(body.subarray(1))).ok).toBe(true);
  });

  it('keeps the records before trailing garbage and reports how many bytes were left', () => {
    const good = record([9, 9]);
    const short = parseRecords(concat(good, [0x16, 0xfe]));
    expect(short).toMatchObject({ ok: true, stop: 'truncated', trailingBytes: 2 });
    const overrun = parseRecords(concat(good, record([1, 2, 3], { length: 10 })));
    expect(overrun).toMatchObject({ ok: true, stop: 'truncated', trailingBytes: 16 });
    const junk = parseRecords(concat(good, new Uint8Array(20).fill(0x41)));
    expect(junk).toMatchObject({ ok: true, stop: 'unrecognised', trailingBytes: 20 });
    if (junk.ok) expect(junk.records).toHaveLength(1);
  });

  it('stops at a DTLS 1.3 unified header or a connection-ID record, whose length it cannot know', () => {
    const good = record([9]);
    const unified = parseRecords(concat(good, [0x2c, 0x01, 0x02, 0x00, 0x03, 1, 2, 3]));
    expect(unified).toMatchObject({ ok: true, stop: 'protected', trailingBytes: 8 });
    const cid = parseRecords(concat(good, record([1, 2], { type: ContentType.Tls12Cid, version: 0xfefd })));
    expect(cid).toMatchObject({ ok: true, stop: 'protected' });
    expect(parseRecords(new Uint8Array([0x2c, 0, 0]))).toMatchObject({ ok: true, records: [], stop: 'protected' });
  });

  it('returns views into the datagram rather than copies', () => {
    const datagram = record([7, 8, 9]);
    const result = parseRecords(datagram);
    expect(result.ok && result.records[0]!.fragment.buffer).toBe(datagram.buffer);
  });
});
