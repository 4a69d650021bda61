import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseClientHello } from './parser.js';
import type { InvalidReason, ParseResult } from './result.js';
import { dtlsCapture } from '@flowlb/testkit';
import { concat, fragmentDatagrams, handshakeFragment, helloBodyOf, record } from './test-support.js';

const REASONS: ReadonlySet<InvalidReason> = new Set<InvalidReason>([
  'empty-datagram',
  'not-dtls',
  'truncated-record',
  'no-handshake',
  'no-client-hello',
  'handshake-truncated',
  'message-too-large',
  'fragment-out-of-range',
  'length-mismatch',
  'fragment-conflict',
  'too-many-messages',
  'client-hello-truncated',
  'client-hello-malformed',
  'extensions-malformed',
  'duplicate-extension',
  'sni-malformed',
  'sni-empty',
  'sni-duplicate',
  'sni-too-long',
  'sni-bad-characters',
  'alpn-malformed',
  'supported-versions-malformed',
]);

/**
 * What every result must look like, whatever the input. Plain checks rather than expect(), which would dominate
 * the run time at these counts; fast-check reports the input that made one throw.
 */
function checkShape(result: ParseResult): void {
  if (result.kind === 'invalid') {
    if (!REASONS.has(result.reason)) throw new Error(`unknown reason ${result.reason}`);
  } else if (result.kind === 'hello') {
    if (result.sni !== undefined && !/^[A-Za-z0-9._-]{1,254}$/.test(result.sni)) throw new Error(`bad sni ${result.sni}`);
    if (result.random.length !== 32) throw new Error('random is not 32 bytes');
  } else if (result.kind !== 'need-more' || Object.keys(result).length !== 1) {
    throw new Error(`unexpected result ${JSON.stringify(result)}`);
  }
}

const CAPTURES: Uint8Array[][] = [
  dtlsCapture('ossl_foo'),
  dtlsCapture('gnutls_bar'),
  dtlsCapture('ossl_mtu'),
  dtlsCapture('ossl_cookie'),
  dtlsCapture('gnutls_mtu'),
  dtlsCapture('ossl_alpn'),
];

type Mutation =
  | { op: 'set'; datagram: number; at: number; value: number }
  | { op: 'truncate'; datagram: number; at: number }
  | { op: 'insert'; datagram: number; at: number; bytes: Uint8Array }
  | { op: 'delete'; datagram: number; at: number; count: number }
  | { op: 'duplicate'; datagram: number }
  | { op: 'swap'; datagram: number; other: number };

const interesting = fc.constantFrom(0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0x16, 0x10);
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), datagram: fc.nat(), at: fc.nat(), value: fc.oneof(interesting, fc.integer({ min: 0, max: 255 })) }),
  fc.record({ op: fc.constant('truncate' as const), datagram: fc.nat(), at: fc.nat() }),
  fc.record({ op: fc.constant('insert' as const), datagram: fc.nat(), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ op: fc.constant('delete' as const), datagram: fc.nat(), at: fc.nat(), count: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ op: fc.constant('duplicate' as const), datagram: fc.nat() }),
  fc.record({ op: fc.constant('swap' as const), datagram: fc.nat(), other: fc.nat() }),
);

function applyMutations(source: readonly Uint8Array[], mutations: readonly Mutation[]): Uint8Array[] {
  const packets: Uint8Array[] = source.map((p) => p.slice());
  for (const m of mutations) {
    if (packets.length === 0) break;
    const i = m.datagram % packets.length;
    const p = packets[i]!;
    switch (m.op) {
      case 'set':
        if (p.length > 0) p[m.at % p.length] = m.value;
        break;
      case 'truncate':
        packets[i] = p.slice(0, m.at % (p.length + 1));
        break;
      case 'insert': {
        const at = m.at % (p.length + 1);
        packets[i] = concat(p.subarray(0, at), m.bytes, p.subarray(at));
        break;
      }
      case 'delete': {
        const at = m.at % (p.length + 1);
        packets[i] = concat(p.subarray(0, at), p.subarray(at + m.count));
        break;
      }
      case 'duplicate':
        packets.push(p.slice());
        break;
      case 'swap': {
        const j = m.other % packets.length;
        packets[i] = packets[j]!;
        packets[j] = p;
        break;
      }
    }
  }
  return packets;
}

describe('parseClientHello never throws', () => {
  it('returns a value for random datagrams', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 400 }), { maxLength: 5 }), (packets) => {
        checkShape(parseClientHello(packets));
      }),
      { numRuns: 10000 },
    );
  });

  it('returns a value for random bytes behind a valid record and handshake header', () => {
    // Pure noise almost never gets past the record header; this sends it into the deeper layers.
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.integer({ min: 0, max: 400 }),
        fc.integer({ min: 0, max: 2 }),
        (noise, length, seq) => {
          const fragment = handshakeFragment(noise, { length, messageSeq: seq });
          checkShape(parseClientHello([record(fragment)]));
        },
      ),
      { numRuns: 10000 },
    );
  });

  it('returns a value for mutated real captures, and never writes to its input', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: CAPTURES.length - 1 }),
        fc.array(mutation, { minLength: 1, maxLength: 6 }),
        (which, mutations) => {
          const packets = applyMutations(CAPTURES[which]!, mutations);
          const before = packets.map((p) => p.slice());
          checkShape(parseClientHello(packets));
          packets.forEach((p, i) => {
            if (Buffer.compare(p, before[i]!) !== 0) throw new Error(`datagram ${i} was modified`);
          });
        },
      ),
      { numRuns: 20000 },
    );
  });
});

describe('fragmentation never changes the answer', () => {
  const hellos = [
    { body: helloBodyOf(dtlsCapture('ossl_foo')[0]!), sni: 'foo.example' },
    { body: helloBodyOf(dtlsCapture('gnutls_bar')[0]!), sni: 'bar.example' },
    { body: helloBodyOf(dtlsCapture('ossl_cookie')[1]!), sni: 'cookie.example' },
  ];

  it('any cover of a real hello by fragments, in any order and grouping, gives the same name', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: hellos.length - 1 }),
        fc.array(fc.tuple(fc.nat(), fc.nat()), { minLength: 1, maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.integer({ min: 1, max: 4 }),
        (which, ranges, order, perDatagram) => {
          const { body, sni } = hellos[which]!;
          const n = body.length;
          // Random, possibly overlapping ranges, plus the pieces needed so that together they cover every byte.
          const pieces: [number, number][] = ranges.map(([a, b]) => {
            const start = a % n;
            return [start, start + (b % (n - start + 1))];
          });
          const covered = new Uint8Array(n);
          for (const [s, e] of pieces) covered.fill(1, s, e);
          for (let i = 0; i < n; ) {
            if (covered[i]) {
              i++;
              continue;
            }
            let j = i;
            while (j < n && !covered[j]) j++;
            pieces.push([i, j]);
            i = j;
          }
          const records = fragmentDatagrams(body, pieces);
          for (let k = 0; k < order.length && records.length > 1; k++) {
            const a = order[k]! % records.length;
            const b = (k * 7 + 3) % records.length;
            [records[a], records[b]] = [records[b]!, records[a]!];
          }
          const datagrams: Uint8Array[] = [];
          for (let i = 0; i < records.length; i += perDatagram) datagrams.push(concat(...records.slice(i, i + perDatagram)));
          const result = parseClientHello(datagrams);
          expect(result.kind).toBe('hello');
          expect(result.kind === 'hello' && result.sni).toBe(sni);
          if (datagrams.length > 1) {
            // Without the last datagram it may or may not be complete, but it is never invalid.
            expect(parseClientHello(datagrams.slice(0, -1)).kind).not.toBe('invalid');
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
