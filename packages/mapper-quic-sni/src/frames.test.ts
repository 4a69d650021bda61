import { describe, expect, it } from 'vitest';
import { parseInitialFrames } from './frames.js';
import { ackFrame, connectionCloseFrame, cryptoFrame, PING_FRAME } from './testing/initial-builder.js';
import { concat, hex } from './testing/tls-client-hello.js';

const data = hex('0102030405');

describe('parseInitialFrames', () => {
  it.each([
    ['one CRYPTO frame', cryptoFrame(0, data), [[0, 5]], false],
    ['PADDING only', new Uint8Array(30), [], false],
    ['PING', PING_FRAME, [], false],
    ['PADDING, CRYPTO, PING, PADDING, CRYPTO', concat(new Uint8Array(3), cryptoFrame(5, data), PING_FRAME, new Uint8Array(2), cryptoFrame(0, data)), [[5, 5], [0, 5]], false],
    ['ACK', concat(ackFrame(10, 2), cryptoFrame(0, data)), [[0, 5]], false],
    ['ACK with ranges', concat(ackFrame(100, 3, [[1, 4], [0, 0]]), cryptoFrame(0, data)), [[0, 5]], false],
    ['ACK with ECN counts', concat(ackFrame(10, 10, [], [1, 2, 3]), PING_FRAME), [], false],
    ['an empty CRYPTO frame', cryptoFrame(9, new Uint8Array(0)), [[9, 0]], false],
    ['CRYPTO at a large offset', cryptoFrame(2 ** 40, data), [[2 ** 40, 5]], false],
    ['CONNECTION_CLOSE', connectionCloseFrame(0x0a, 'bye'), [], true],
  ] as const)('%s', (_name, payload, crypto, close) => {
    const r = parseInitialFrames(payload);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.crypto.map((f) => [f.offset, f.data.length])).toEqual(crypto);
    expect(r.connectionClose).toBe(close);
  });

  it('gives CRYPTO data as views of the payload', () => {
    const payload = cryptoFrame(3, data);
    const r = parseInitialFrames(payload);
    if (!r.ok) throw new Error(r.detail);
    expect(r.crypto[0]!.data).toEqual(data);
    expect(r.crypto[0]!.data.buffer).toBe(payload.buffer);
  });

  it.each([
    ['no frames', ''],
    ['STREAM', '08' + '00' + '01' + 'aa'],
    ['NEW_TOKEN', '0701aa'],
    ['application CONNECTION_CLOSE (0x1d)', '1d000000'],
    ['HANDSHAKE_DONE', '1e'],
    ['a two-byte encoding of CRYPTO', '4006000105'],
    ['a two-byte encoding of PING', '4001'],
    ['a CRYPTO frame cut off in its length', '0600'],
    ['a CRYPTO frame longer than the payload', '060005aabb'],
    ['a CRYPTO frame ending past 2^62 - 1', '06' + 'ffffffffffffffff' + '01' + 'aa'],
    ['an ACK cut off', '020a00'],
    ['an ACK whose first range goes below 0', '0205000006'],
    ['an ACK whose ranges go below 0', '02050001000400'],
    ['an ACK with more ranges than bytes', '0205000100' + '4064' + '0000'],
    ['an ACK_ECN without its counts', '030500000001'],
    ['a CONNECTION_CLOSE whose reason is cut off', '1c0a0005616263'],
    ['a CRYPTO frame then STREAM', '0600010a' + '0800'],
  ])('refuses %s', (_name, bytes) => {
    const r = parseInitialFrames(hex(bytes));
    expect(r.ok).toBe(false);
  });
});
