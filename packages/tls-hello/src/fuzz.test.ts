import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseClientHelloBody, type ClientHello, type HelloFlavor } from './client-hello.js';
import type { HelloInvalid, HelloInvalidReason } from './result.js';
import { dtlsCapture } from '@flowlb/testkit';
import {
  alpnExtension,
  clientHelloBody,
  concat,
  extension,
  fromHex,
  helloBodyOf,
  keyShareExtension,
  sniExtension,
  supportedVersionsExtension,
  tlsHelloBodyOf,
} from './test-support.js';
import { GNUTLS_TLS13_RECORD, OPENSSL_TLS13_RECORD } from './tls-captures.js';

const REASONS: ReadonlySet<HelloInvalidReason> = new Set<HelloInvalidReason>([
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
function checkShape(result: ClientHello | HelloInvalid, flavor: HelloFlavor): void {
  if ('kind' in result) {
    if (result.kind !== 'invalid' || !REASONS.has(result.reason)) throw new Error(`unexpected result ${JSON.stringify(result)}`);
    return;
  }
  const v = result.clientVersion;
  if (flavor === 'tls' ? v < 0x0301 || v > 0x0303 : v >> 8 !== 0xfe) throw new Error(`version 0x${v.toString(16)}`);
  if (flavor === 'tls' && result.cookie.length !== 0) throw new Error('a TLS hello with a cookie');
  if (result.random.length !== 32) throw new Error('random is not 32 bytes');
  if (result.sessionId.length > 32) throw new Error('session_id over 32 bytes');
  if (result.cipherSuites.length === 0 || result.compressionMethods.length === 0) throw new Error('empty suites or compression');
  if (result.sni !== undefined && !/^[A-Za-z0-9._-]{1,254}$/.test(result.sni)) throw new Error(`bad sni ${result.sni}`);
}

const FLAVORS: HelloFlavor[] = ['tls', 'dtls'];
const flavor = fc.constantFrom(...FLAVORS);

/** Real and crafted bodies of both flavors, to mutate. */
const SEEDS: { body: Uint8Array; flavor: HelloFlavor }[] = [
  { body: tlsHelloBodyOf(fromHex(OPENSSL_TLS13_RECORD)), flavor: 'tls' },
  { body: tlsHelloBodyOf(fromHex(GNUTLS_TLS13_RECORD)), flavor: 'tls' },
  {
    body: clientHelloBody({
      flavor: 'tls',
      sessionId: new Uint8Array(32),
      extensions: [sniExtension('example.com'), alpnExtension('h3'), supportedVersionsExtension(0x0304), keyShareExtension([0x1d, new Uint8Array(32)])],
    }),
    flavor: 'tls',
  },
  { body: helloBodyOf(dtlsCapture('ossl_foo')[0]!), flavor: 'dtls' },
  { body: helloBodyOf(dtlsCapture('gnutls_bar')[0]!), flavor: 'dtls' },
  { body: helloBodyOf(dtlsCapture('ossl_cookie')[1]!), flavor: 'dtls' },
];

type Mutation =
  | { op: 'set'; at: number; value: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; count: number };

const interesting = fc.constantFrom(0x00, 0x01, 0x02, 0x03, 0x20, 0x7f, 0x80, 0xfe, 0xff);
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.oneof(interesting, fc.integer({ min: 0, max: 255 })) }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
);

function mutate(source: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let body: Uint8Array = source.slice();
  for (const m of mutations) {
    const at = m.at % (body.length + 1);
    if (m.op === 'set') {
      if (body.length > 0) body[at % body.length] = m.value;
    } else if (m.op === 'insert') {
      body = concat(body.subarray(0, at), m.bytes, body.subarray(at));
    } else {
      body = concat(body.subarray(0, at), body.subarray(at + m.count));
    }
  }
  return body;
}

describe('parseClientHelloBody never throws', () => {
  it('returns a value for random bytes, in either flavor', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), flavor, (body, f) => {
        checkShape(parseClientHelloBody(body, f), f);
      }),
      { numRuns: 10000 },
    );
  });

  it('returns a value for random bytes behind valid fixed fields', () => {
    // Pure noise almost never has a valid version and lengths; this sends it into the extensions.
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), flavor, fc.boolean(), (noise, f, withLength) => {
        const head = clientHelloBody({ flavor: f, extensions: null });
        const body = withLength ? concat(head, [noise.length >> 8, noise.length & 0xff], noise) : concat(head, noise);
        checkShape(parseClientHelloBody(body, f), f);
      }),
      { numRuns: 10000 },
    );
  });

  it('returns a value for mutated hellos, read as either flavor, and never writes to its input', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: SEEDS.length - 1 }),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        flavor,
        (which, mutations, f) => {
          const body = mutate(SEEDS[which]!.body, mutations);
          const before = body.slice();
          checkShape(parseClientHelloBody(body, f), f);
          if (Buffer.compare(body, before) !== 0) throw new Error('the body was modified');
        },
      ),
      { numRuns: 10000 },
    );
  });
});

describe('a hello built from random fields reads back', () => {
  const hostLabel = fc.stringMatching(/^[a-z0-9_-]{1,20}$/);
  const hostName = fc.array(hostLabel, { minLength: 1, maxLength: 4 }).map((labels) => labels.join('.'));
  const protocol = fc.stringMatching(/^[a-z0-9/.-]{1,12}$/);

  it('in both flavors', () => {
    fc.assert(
      fc.property(
        flavor,
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ maxLength: 32 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 1, maxLength: 20 }),
        fc.option(hostName, { nil: undefined }),
        fc.option(fc.array(protocol, { minLength: 1, maxLength: 3 }), { nil: undefined }),
        fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 1, maxLength: 6 }),
        (f, random, sessionId, cookie, suites, sni, alpn, versions) => {
          const extensions = [supportedVersionsExtension(...versions), extension(0xfe0d, random)];
          if (sni !== undefined) extensions.push(sniExtension(sni));
          if (alpn !== undefined) extensions.push(alpnExtension(...alpn));
          const version = f === 'tls' ? 0x0303 : 0xfefd;
          const body = clientHelloBody({ flavor: f, version, random, sessionId, cookie, suites, extensions });
          const h = parseClientHelloBody(body, f);
          expect(h).toEqual({
            clientVersion: version,
            random,
            sessionId,
            cookie: f === 'dtls' ? cookie : new Uint8Array(0),
            cipherSuites: suites,
            compressionMethods: new Uint8Array([0]),
            extensions: expect.any(Array),
            versions,
            ...(sni === undefined ? {} : { sni }),
            ...(alpn === undefined ? {} : { alpn }),
          });
        },
      ),
      { numRuns: 1000 },
    );
  });
});
