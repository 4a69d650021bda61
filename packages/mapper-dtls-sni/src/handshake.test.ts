import { describe, expect, it } from 'vitest';
import { HandshakeType, parseHandshakeFragments } from './handshake.js';
import { parseRecords } from './record.js';
import { dtlsCapture } from '@flowlb/testkit';
import { concat, handshakeFragment } from './test-support.js';

describe('parseHandshakeFragments', () => {
  it('reads the header of the first fragment of the MTU-256 capture', () => {
    const layer = parseRecords(dtlsCapture('ossl_mtu')[0]!);
    if (!layer.ok) throw new Error('capture should parse');
    const result = parseHandshakeFragments(layer.records[0]!.fragment);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.fragments).toHaveLength(1);
    expect(result.fragments[0]).toMatchObject({ msgType: HandshakeType.ClientHello, length: 0xde, messageSeq: 0, fragmentOffset: 0 });
    expect(result.fragments[0]!.body.length).toBe(0xcb);
  });

  it('reads the second fragment, which starts where the first ended', () => {
    const layer = parseRecords(dtlsCapture('ossl_mtu')[1]!);
    if (!layer.ok) throw new Error('capture should parse');
    const result = parseHandshakeFragments(layer.records[0]!.fragment);
    expect(result.ok && result.fragments[0]).toMatchObject({ length: 0xde, fragmentOffset: 0xcb });
    expect(result.ok && result.fragments[0]!.body.length).toBe(0x13);
  });

  it('splits several messages in one record', () => {
    const body = concat(
      handshakeFragment([1, 2, 3], { msgType: 16, messageSeq: 2 }),
      handshakeFragment([], { msgType: 20, messageSeq: 3 }),
      handshakeFragment([4], { msgType: 1, messageSeq: 1, offset: 5, length: 10 }),
    );
    const result = parseHandshakeFragments(body);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.fragments.map((f) => [f.msgType, f.messageSeq, f.fragmentOffset, f.length, f.body.length])).toEqual([
      [16, 2, 0, 3, 3],
      [20, 3, 0, 0, 0],
      [1, 1, 5, 10, 1],
    ]);
  });

  it('accepts a zero-length fragment', () => {
    const result = parseHandshakeFragments(handshakeFragment([], { length: 100, offset: 40 }));
    expect(result.ok && result.fragments[0]).toMatchObject({ length: 100, fragmentOffset: 40 });
    expect(result.ok && result.fragments[0]!.body.length).toBe(0);
  });

  it('refuses a header cut short and a fragment that runs past its record', () => {
    const full = handshakeFragment([1, 2, 3, 4]);
    for (let cut = 1; cut < 12; cut++) {
      expect(parseHandshakeFragments(full.subarray(0, cut))).toMatchObject({ ok: false, reason: 'handshake-truncated' });
    }
    for (let cut = 12; cut < full.length; cut++) {
      expect(parseHandshakeFragments(full.subarray(0, cut))).toMatchObject({ ok: false, reason: 'handshake-truncated' });
    }
    expect(parseHandshakeFragments(handshakeFragment([1, 2], { fragmentLength: 3 }))).toMatchObject({ ok: false });
    expect(parseHandshakeFragments(concat(full, [1]))).toMatchObject({ ok: false, reason: 'handshake-truncated' });
  });

  it('treats an empty record as holding no fragments', () => {
    expect(parseHandshakeFragments(new Uint8Array(0))).toEqual({ ok: true, fragments: [] });
  });
});
