import fc from 'fast-check';
import { dtlsCapture, dtlsCaptureNames } from '@flowlb/testkit';
import { describe, expect, it } from 'vitest';
import { ClientReaders, type ClientReadersLimits } from '@flowlb/mapper-api';
import { ClientHelloReader, parseClientHello } from './parser.js';
import type { ParseResult } from './result.js';

/** The mapper's readers: the DTLS ClientHello parser, kept per client. */
const dtlsReaders = (limits?: ClientReadersLimits) => new ClientReaders<ParseResult, ClientHelloReader>(() => new ClientHelloReader(), limits);

describe('ClientReaders of DTLS ClientHello parsers', () => {
  it('reading a client one call at a time gives what parsing all its datagrams at once gives', () => {
    const datagram = fc.oneof(
      fc.constantFrom(...dtlsCaptureNames().flatMap((n) => dtlsCapture(n))),
      fc.uint8Array({ minLength: 0, maxLength: 64 }),
    );
    fc.assert(
      fc.property(fc.array(datagram, { minLength: 1, maxLength: 12 }), (datagrams) => {
        const readers = dtlsReaders();
        for (let n = 1; n <= datagrams.length; n++) {
          expect(readers.read('c', datagrams.slice(0, n))).toEqual(parseClientHello(datagrams.slice(0, n)));
        }
        expect(readers.datagramsRead).toBe(datagrams.length);
      }),
      { numRuns: 300 },
    );
  });

  it('stays within its bounds, dropping the least recently used client, which is then read afresh', () => {
    const [first] = dtlsCapture('ossl_mtu');
    const readers = dtlsReaders({ maxClients: 3, maxBytes: 1 << 20 });
    const held = ['a', 'b', 'c', 'd'].map((key) => ({ key, packets: [first!] }));
    for (const h of held) readers.read(h.key, h.packets);
    expect(readers.size).toBe(3);
    // 'a' went: reading it again reads its datagram again; 'd' is still there and reads nothing new.
    readers.read('d', held[3]!.packets);
    expect(readers.datagramsRead).toBe(4);
    readers.read('a', held[0]!.packets);
    expect(readers.datagramsRead).toBe(5);

    // Bytes: each incomplete hello counts its declared length, whatever arrived of it.
    const byBytes = dtlsReaders({ maxClients: 100, maxBytes: 1 });
    byBytes.read('x', [first!]);
    expect(byBytes.size).toBe(0);
    expect(byBytes.bytes).toBe(0);
    readers.forget('a');
    readers.forget('nobody');
    expect(readers.size).toBe(2);
  });
});
