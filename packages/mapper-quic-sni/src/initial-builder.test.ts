// The test-support builder is checked against the RFC samples byte for byte, so that vectors built with it mean
// what they claim.
import { parseClientHelloBody } from '@flowlb/tls-hello';
import { describe, expect, it } from 'vitest';
import { readInitialFlight } from './flight-reader.js';
import { parseInitialPackets } from './long-header.js';
import { buildClientInitial, paddingFrames, protectInitialPacket, RFC_DCID } from './testing/initial-builder.js';
import { CRYPTO_FRAME, V1_CLIENT_INITIAL, V2_CLIENT_INITIAL } from './testing/rfc-samples.js';
import { concat, tlsClientHello } from './testing/tls-client-hello.js';
import { QUIC_V1, QUIC_V2 } from './versions.js';

describe('protectInitialPacket', () => {
  it.each([
    ['RFC 9001', QUIC_V1, V1_CLIENT_INITIAL],
    ['RFC 9369', QUIC_V2, V2_CLIENT_INITIAL],
  ])('rebuilds the %s sample client Initial exactly', (_name, version, expected) => {
    const payload = concat(CRYPTO_FRAME, paddingFrames(1162 - CRYPTO_FRAME.length));
    const packet = protectInitialPacket(payload, { version, dcid: RFC_DCID, packetNumber: 2, pnLength: 4 });
    expect(Buffer.from(packet).toString('hex')).toBe(Buffer.from(expected).toString('hex'));
  });
});

describe('tlsClientHello', () => {
  it.each([
    [{}, 'example.com', ['h3']],
    [{ sni: 'A.Example.', alpn: ['h3', 'hq-interop'] }, 'A.Example.', ['h3', 'hq-interop']],
    [{ sni: null, alpn: null }, undefined, undefined],
    [{ keyShareLength: 1200 }, 'example.com', ['h3']],
  ] as const)('makes a ClientHello @flowlb/tls-hello reads: %j', (options, sni, alpn) => {
    const message = tlsClientHello(options);
    expect(message[0]).toBe(1);
    expect((message[1]! << 16) | (message[2]! << 8) | message[3]!).toBe(message.length - 4);
    const hello = parseClientHelloBody(message.subarray(4), 'tls');
    if ('kind' in hello) throw new Error(`${hello.reason}: ${hello.detail}`);
    expect(hello.sni).toBe(sni);
    expect(hello.alpn).toEqual(alpn);
    expect(hello.versions).toEqual([0x0304]);
  });
});

describe('buildClientInitial', () => {
  const small = tlsClientHello();
  const large = tlsClientHello({ keyShareLength: 1200 });

  it.each([
    ['a small hello', small, {}, [1200]],
    // Header 18 bytes (8-byte DCID, 2-byte Length), packet number 4, tag 16, CRYPTO frame header 4.
    ['a small hello, unpadded', small, { padTo: 0 }, [18 + 4 + small.length + 4 + 16]],
    ['a large hello', large, {}, [1200, 1200]],
    ['a large hello in 1350-byte datagrams', large, { maxDatagramSize: 1350, padTo: 1350 }, [1350, 1350]],
    ['three packets coalesced', small, { pieces: [[0, 100], [100, 200], [200, small.length]], framesPerPacket: 1, packetsPerDatagram: 3 }, [1200]],
    ['three packets, three datagrams', small, { pieces: [[0, 100], [100, 200], [200, small.length]], framesPerPacket: 1 }, [1200, 1200, 1200]],
  ] as const)('%s: datagrams of the requested sizes, whose packets all parse', (_name, message, options, sizes) => {
    const datagrams = buildClientInitial(message, options);
    expect(datagrams.map((d) => d.length)).toEqual(sizes);
    for (const d of datagrams) expect(parseInitialPackets(d)).toMatchObject({ ok: true, stoppedAt: d.length });
    const flight = readInitialFlight(datagrams);
    expect(flight.kind).toBe('client-hello');
    if (flight.kind === 'client-hello') expect(flight.body).toEqual(message.subarray(4));
  });
});
