// Crafted first flights, built with the test-support builder (checked against the RFC samples): how a ClientHello
// can be carried, and every way the reader refuses one.
import { describe, expect, it } from 'vitest';
import { InitialFlightReader, readInitialFlight, type FlightResult } from './flight-reader.js';
import { deriveInitialKeys } from './keys.js';
import {
  ackFrame,
  buildClientInitial,
  cryptoFrame,
  paddingFrames,
  PING_FRAME,
  protectInitialPacket,
  RFC_DCID,
  type ClientInitialOptions,
} from './testing/initial-builder.js';
import { V1_CLIENT_INITIAL } from './testing/rfc-samples.js';
import { concat, hex, pattern, tlsClientHello } from './testing/tls-client-hello.js';
import { QUIC_V1, QUIC_V2 } from './versions.js';

const hello = tlsClientHello({ sni: 'crafted.example' });
/** A post-quantum-sized hello: more than one 1200-byte datagram holds. */
const large = tlsClientHello({ sni: 'pq.example', keyShareLength: 1200 });
const n = hello.length;
const RETRY_DCID = hex('f067a5502a4262b5');
const SERVER_CID = hex('aabbccddeeff0011');

function expectHello(result: FlightResult, message: Uint8Array, version = QUIC_V1): void {
  expect(result.kind, JSON.stringify(result)).toBe('client-hello');
  if (result.kind !== 'client-hello') return;
  expect(result.version).toBe(version);
  expect(Buffer.compare(result.body, message.subarray(4))).toBe(0);
}

/** Every strict prefix of the datagrams needs more; all of them hold the hello. */
function expectOnlyWhole(datagrams: Uint8Array[], message: Uint8Array, version = QUIC_V1): void {
  for (let i = 0; i < datagrams.length; i++) expect(readInitialFlight(datagrams.slice(0, i)).kind).toBe('need-more');
  expectHello(readInitialFlight(datagrams), message, version);
}

describe('InitialFlightReader: how a ClientHello can be carried', () => {
  it.each<[string, Uint8Array, ClientInitialOptions]>([
    ['one frame, v1', hello, {}],
    ['one frame, v2', hello, { version: QUIC_V2 }],
    ['three frames in one packet', hello, { pieces: [[0, 50], [50, 120], [120, n]] }],
    ['three packets coalesced in one datagram', hello, { pieces: [[0, 50], [50, 120], [120, n]], framesPerPacket: 1, packetsPerDatagram: 3 }],
    ['three packets in three datagrams', hello, { pieces: [[0, 50], [50, 120], [120, n]], framesPerPacket: 1 }],
    ['frames out of order in one packet', hello, { pieces: [[120, n], [0, 50], [50, 120]] }],
    ['datagrams out of order', hello, { pieces: [[120, n], [50, 120], [0, 50]], framesPerPacket: 1 }],
    ['overlapping and repeated frames', hello, { pieces: [[0, 80], [40, 160], [0, 10], [150, n], [100, 110]] }],
    ['one byte per frame', hello, { pieces: Array.from({ length: n }, (_, i) => [i, i + 1] as const) }],
    ['a token and a source connection ID', hello, { token: pattern(60, 3), scid: hex('0102030405') }],
    ['1-byte packet numbers from 200', hello, { pnLength: 1, firstPacketNumber: 200, pieces: [[0, 50], [50, n]], framesPerPacket: 1, packetsPerDatagram: 2 }],
    ['a 20-byte DCID', hello, { dcid: pattern(20, 9) }],
    ['an empty DCID (after a Retry that chose one)', hello, { dcid: new Uint8Array(0) }],
    ['PING and ACK before the CRYPTO frame', hello, { leadingFrames: concat(PING_FRAME, ackFrame(3, 1), ackFrame(9, 0, [[0, 1]], [1, 0, 0])) }],
    ['a Handshake packet coalesced after the Initial', hello, { trailer: hex('e000000001088394c8f03e51570800' + '14' + '00'.repeat(20)) }],
    ['junk after the Initial', hello, { trailer: pattern(40, 5) }],
    ['a post-quantum hello over two datagrams, v1', large, {}],
    ['a post-quantum hello over two datagrams, v2', large, { version: QUIC_V2 }],
  ])('%s', (_name, message, options) => {
    const datagrams = buildClientInitial(message, options);
    const version = options.version ?? QUIC_V1;
    if (options.pieces === undefined || datagrams.length === 1) {
      expectOnlyWhole(datagrams, message, version);
    } else {
      expectHello(readInitialFlight(datagrams), message, version);
    }
  });

  it('a post-quantum hello takes exactly two 1200-byte datagrams', () => {
    const datagrams = buildClientInitial(large);
    expect(datagrams.map((d) => d.length)).toEqual([1200, 1200]);
    expect(large.length).toBeGreaterThan(1200);
    expectOnlyWhole(datagrams, large);
  });

  it('reads Chrome-style shuffled CRYPTO frames between PINGs and PADDING', () => {
    const payload = concat(
      PING_FRAME,
      cryptoFrame(100, hello.subarray(100, 180)),
      paddingFrames(7),
      cryptoFrame(0, hello.subarray(0, 60)),
      PING_FRAME,
      PING_FRAME,
      cryptoFrame(180, hello.subarray(180)),
      paddingFrames(3),
      cryptoFrame(60, hello.subarray(60, 100)),
      paddingFrames(800),
    );
    expectHello(readInitialFlight([protectInitialPacket(payload)]), hello);
  });

  it('reads a retransmission after a Retry: a new DCID and a token, the same crypto stream from 0', () => {
    const first = buildClientInitial(large, { pieces: [[0, 900]] });
    const afterRetry = buildClientInitial(large, { dcid: RETRY_DCID, token: pattern(40, 8), firstPacketNumber: 1 });
    expectOnlyWhole([...first, ...afterRetry], large);
    // The reader derived keys for both DCIDs.
    const r = new InitialFlightReader();
    for (const d of [...first, ...afterRetry]) r.add(d);
    expect(r.packetsOpened).toBe(3);
  });

  it("opens a packet sent to the server's connection ID with the keys of the client's first DCID", () => {
    // After the server's first Initial, a client addresses the server's connection ID but keeps its Initial keys.
    const keys = deriveInitialKeys(QUIC_V1, RFC_DCID);
    const first = buildClientInitial(large, { pieces: [[0, 1000]] });
    const second = buildClientInitial(large, { pieces: [[1000, large.length]], dcid: SERVER_CID, keys, firstPacketNumber: 1, leadingFrames: ackFrame(0, 0) });
    expectOnlyWhole([...first, ...second], large);
  });

  it('skips a later datagram that does not start with an Initial of the same version, or does not open', () => {
    const [d0, d1] = buildClientInitial(large) as [Uint8Array, Uint8Array];
    const tampered = d1.slice();
    tampered[tampered.length - 1]! ^= 1;
    const otherVersion = buildClientInitial(large, { version: QUIC_V2 })[1]!;
    const zeroRtt = hex('d000000001088394c8f03e51570800' + '14' + '00'.repeat(20));
    for (const stray of [tampered, otherVersion, zeroRtt, pattern(300, 4), new Uint8Array(0), hex('40ff')]) {
      expect(readInitialFlight([d0, stray]).kind).toBe('need-more');
      expectHello(readInitialFlight([d0, stray, d1]), large);
    }
  });

  it('ignores datagrams once the hello is whole', () => {
    const r = new InitialFlightReader();
    for (const d of buildClientInitial(hello)) r.add(d);
    r.add(pattern(500, 1));
    expectHello(r.result(), hello);
    expect(r.datagramsRead).toBe(1);
  });
});

describe('InitialFlightReader: what it refuses', () => {
  const [valid] = buildClientInitial(hello) as [Uint8Array];
  const tamper = (at: number): Uint8Array => {
    const d = valid.slice();
    d[at < 0 ? d.length + at : at]! ^= 0x40;
    return d;
  };

  it.each<[string, Uint8Array[], string]>([
    ['an empty datagram', [new Uint8Array(0)], 'not-quic-initial'],
    ['a short header', [concat(hex('40'), valid.subarray(1))], 'not-quic-initial'],
    ['Version Negotiation', [hex('c00000000008' + '00'.repeat(30))], 'not-quic-initial'],
    ['a Handshake packet first', [hex('e000000001088394c8f03e51570800' + '14' + '00'.repeat(20))], 'not-quic-initial'],
    ['a 0-RTT packet first', [hex('d000000001088394c8f03e51570800' + '14' + '00'.repeat(20))], 'not-quic-initial'],
    ['a version-1 header cut short', [valid.subarray(0, 30)], 'not-quic-initial'],
    ['plain text', [new Uint8Array(Buffer.from('GET / HTTP/1.1\r\n\r\n'))], 'not-quic-initial'],
    ['an unknown version', [concat(valid.subarray(0, 1), hex('ff00001d'), valid.subarray(5))], 'unsupported-version'],
    ['the v2 draft version 0x709a50c4', [concat(valid.subarray(0, 1), hex('709a50c4'), valid.subarray(5))], 'unsupported-version'],
    ['a flipped ciphertext byte', [tamper(100)], 'decrypt-failed'],
    ['a flipped tag byte', [tamper(-1)], 'decrypt-failed'],
    ['a flipped DCID byte', [tamper(8)], 'decrypt-failed'],
    ['a flipped packet number byte', [tamper(20)], 'decrypt-failed'],
    ['a flipped SCID length (the header moves)', [tamper(14)], 'not-quic-initial'],
    ['v1 bytes labelled v2', [concat(hex('d0'), hex('6b3343cf'), valid.subarray(5))], 'decrypt-failed'],
    ['reserved bits set', [protectInitialPacket(cryptoFrame(0, hello), { reservedBits: 1 })], 'protocol-violation'],
    ['a STREAM frame', [protectInitialPacket(concat(cryptoFrame(0, hello), hex('080000')))], 'protocol-violation'],
    ['a HANDSHAKE_DONE frame', [protectInitialPacket(hex('1e'))], 'protocol-violation'],
    ['no frames at all', [protectInitialPacket(new Uint8Array(0), { pnLength: 4 })], 'protocol-violation'],
    ['a CRYPTO frame cut off', [protectInitialPacket(hex('0600ff'))], 'protocol-violation'],
    ['CRYPTO frames that disagree in one packet', [protectInitialPacket(concat(cryptoFrame(0, hello), cryptoFrame(10, pattern(5, 1))))], 'crypto-conflict'],
    ['a ServerHello', [protectInitialPacket(cryptoFrame(0, concat(hex('02'), hello.subarray(1))))], 'not-client-hello'],
    ['CRYPTO data past 64 KiB', [protectInitialPacket(cryptoFrame(65_530, pattern(10, 1)))], 'too-large'],
    ['a ClientHello that says it is over 64 KiB', [protectInitialPacket(cryptoFrame(0, hex('01010000')))], 'too-large'],
  ])('%s: %s', (_name, datagrams, reason) => {
    const result = readInitialFlight(datagrams);
    expect(result).toMatchObject({ kind: 'invalid', reason });
    if (result.kind === 'invalid') expect(result.detail.length).toBeGreaterThan(0);
  });

  it('says which version it does not know', () => {
    expect(readInitialFlight([concat(valid.subarray(0, 1), hex('ff00001d'), valid.subarray(5))])).toMatchObject({ version: 0xff00001d });
  });

  it('refuses CRYPTO bytes that disagree across datagrams, and keeps refusing', () => {
    const good = buildClientInitial(large);
    const forged = buildClientInitial(concat(large.subarray(0, 500), pattern(large.length - 500, 2)), { firstPacketNumber: 2 });
    const r = new InitialFlightReader();
    for (const d of [good[0]!, forged[0]!, forged[1]!, good[1]!]) r.add(d);
    expect(r.result()).toMatchObject({ kind: 'invalid', reason: 'crypto-conflict' });
  });

  it('a conflict may also come from the second copy of a retransmitted packet', () => {
    const a = buildClientInitial(hello, { pieces: [[0, 100]] });
    const b = buildClientInitial(concat(hello.subarray(0, 50), pattern(50, 6), hello.subarray(100)), { pieces: [[0, 100]], firstPacketNumber: 1 });
    expect(readInitialFlight([...a, ...b])).toMatchObject({ kind: 'invalid', reason: 'crypto-conflict' });
  });

  it.each([
    [{ maxCryptoBytes: 300 }, large, 'too-large'],
    [{ maxCryptoBytes: hello.length }, hello, 'client-hello'],
    [{ maxCryptoBytes: hello.length - 1 }, hello, 'too-large'],
  ] as const)('applies %j', (limits, message, outcome) => {
    const result = readInitialFlight(buildClientInitial(message), limits);
    expect(result.kind === 'invalid' ? result.reason : result.kind).toBe(outcome);
  });

  it('takes a limit that is not a positive integer as the default', () => {
    const datagrams = buildClientInitial(large, { pieces: [[0, 100]] });
    for (const bad of [Number.NaN, -1, 0, 1.5, Infinity]) {
      expect(readInitialFlight([...datagrams, ...datagrams], { maxDatagrams: bad, maxCryptoBytes: bad, maxConnectionIds: bad }).kind).toBe('need-more');
    }
  });

  it('derives keys for at most maxConnectionIds DCIDs', () => {
    const datagrams = [1, 2, 3, 4, 5].map((i) =>
      buildClientInitial(hello, { dcid: pattern(8, i), pieces: [[0, 10 * i]], firstPacketNumber: i })[0]!,
    );
    expect(readInitialFlight(datagrams.slice(0, 4)).kind).toBe('need-more');
    expect(readInitialFlight(datagrams)).toMatchObject({ kind: 'invalid', reason: 'too-large' });
    expect(readInitialFlight(datagrams.slice(0, 3), { maxConnectionIds: 2 })).toMatchObject({ kind: 'invalid', reason: 'too-large' });
  });

  it('reads at most maxDatagrams datagrams', () => {
    const size = Math.ceil(n / 6);
    const pieces = Array.from({ length: 6 }, (_, i) => [i * size, Math.min(n, i * size + size)] as const);
    const datagrams = buildClientInitial(hello, { pieces, framesPerPacket: 1 });
    expect(datagrams.length).toBe(6);
    expect(readInitialFlight(datagrams, { maxDatagrams: 5 }).kind).toBe('need-more');
    expect(readInitialFlight(datagrams, { maxDatagrams: 6 }).kind).toBe('client-hello');
  });

  it('never writes to the datagrams it reads', () => {
    const datagrams = [V1_CLIENT_INITIAL, ...buildClientInitial(large)];
    const copies = datagrams.map((d) => d.slice());
    readInitialFlight(datagrams);
    datagrams.forEach((d, i) => expect(Buffer.compare(d, copies[i]!)).toBe(0));
  });
});
