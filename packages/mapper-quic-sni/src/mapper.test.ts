import type { UdpEndpoint } from '@flowlb/mapper-api';
import { DEFAULT_LIMITS } from '@flowlb/balancer';
import { describe, expect, it } from 'vitest';
import { QuicSniMapper, DEFAULT_QUIC_SNI_LIMITS } from './mapper.js';
import { QUIC_DROP_REASONS } from './reasons.js';
import { staticRoutes, type QuicHello, type QuicRoutes } from './routes.js';
import { buildClientInitial, cryptoFrame, protectInitialPacket } from './testing/initial-builder.js';
import { V1_CLIENT_INITIAL, V2_CLIENT_INITIAL } from './testing/rfc-samples.js';
import { concat, extension, hex, pattern, tlsClientHello, u16, u8 } from './testing/tls-client-hello.js';
import { QUIC_V2 } from './versions.js';

const client: UdpEndpoint = { address: '192.0.2.10', port: 40000 };
const EXAMPLE = { address: '10.0.0.1', port: 443 };
const PQ = { address: '10.0.0.2', port: 443 };
const routes = staticRoutes({ 'example.com': EXAMPLE, 'pq.example': PQ, 'crafted.example': { address: '10.0.0.3', port: 4433 } });
const mapper = (limits = {}) => new QuicSniMapper({ routes, limits });

const forwardTo = (target: UdpEndpoint) => ({ action: 'forward', flow: { dstAddr: target } });
const dropFor = (reason: string) => ({ action: 'drop', reason });

const large = tlsClientHello({ sni: 'pq.example', keyShareLength: 1200 });
const [pq0, pq1] = buildClientInitial(large) as [Uint8Array, Uint8Array];

describe('QuicSniMapper.findFlow', () => {
  it('forwards the RFC 9001 and RFC 9369 sample Initials by their name, example.com', () => {
    const m = mapper();
    expect(m.findFlow(client, [V1_CLIENT_INITIAL])).toEqual(forwardTo(EXAMPLE));
    expect(m.findFlow(client, [V2_CLIENT_INITIAL])).toEqual(forwardTo(EXAMPLE));
    expect(m.stats()).toMatchObject({ calls: 2, forwarded: 2, hellos: 2, hellosV1: 1, hellosV2: 1 });
  });

  it("leaves every byte of the client's datagrams as it came, Buffers included: they go on to the backend", () => {
    // The balancer hands over Node Buffers, whose slice() is a view where a Uint8Array's is a copy.
    const flights = [[V1_CLIENT_INITIAL], [V2_CLIENT_INITIAL], [pq0, pq1]].map((f) => f.map((d) => Buffer.from(d)));
    const copies = flights.map((f) => f.map((d) => Buffer.from(d)));
    const m = mapper();
    flights.forEach((f, i) => {
      const c = { ...client, port: 41000 + i };
      for (let n = 1; n <= f.length; n++) m.findFlow(c, f.slice(0, n));
    });
    expect(flights).toEqual(copies);
    // And the same datagrams, read again by a fresh mapper, still forward: the keys were not touched either.
    expect(mapper().findFlow(client, flights[0]!)).toEqual(forwardTo(EXAMPLE));
  });

  it('waits for the second datagram of a post-quantum ClientHello, then forwards, reading each datagram once', () => {
    const m = mapper();
    expect(m.findFlow(client, [pq0])).toEqual({ action: 'wait' });
    expect(m.pending.clients).toBe(1);
    expect(m.findFlow(client, [pq0, pq1])).toEqual(forwardTo(PQ));
    expect(m.pending).toEqual({ clients: 0, bytes: 0 });
    expect(m.stats()).toMatchObject({ calls: 2, waited: 1, forwarded: 1, datagramsRead: 2, packetsOpened: 2 });
  });

  it('gives the same answer when its state is gone or the datagrams are other objects', () => {
    const m = mapper();
    expect(m.findFlow(client, [pq0])).toEqual({ action: 'wait' });
    m.release(client);
    expect(m.pending.clients).toBe(0);
    expect(m.findFlow(client, [pq0.slice(), pq1.slice()])).toEqual(forwardTo(PQ));
    expect(m.findFlow(client, [pq0])).toEqual({ action: 'wait' });
    // Not a continuation of the last call (another first datagram): read again from the start.
    expect(m.findFlow(client, [pq0.slice(), pq1])).toEqual(forwardTo(PQ));
    expect(m.stats().datagramsRead).toBe(1 + 2 + 1 + 2);
  });

  it('keeps clients apart', () => {
    const m = mapper();
    const other = { address: '192.0.2.11', port: 40000 };
    expect(m.findFlow(client, [pq0])).toEqual({ action: 'wait' });
    expect(m.findFlow(other, [V1_CLIENT_INITIAL])).toEqual(forwardTo(EXAMPLE));
    expect(m.findFlow(client, [pq0, pq1])).toEqual(forwardTo(PQ));
  });

  const valid = buildClientInitial(tlsClientHello({ sni: 'crafted.example' }))[0]!;
  const badSni = tlsClientHello({ sni: 'bad name.example' });
  const twoAlpn = tlsClientHello({ extraExtensions: [extension(16, concat(u16(3), u8(2), hex('6833')))] });

  it.each<[string, Uint8Array[], string]>([
    ['a short header', [concat(hex('40'), valid.subarray(1))], 'not-quic-initial'],
    ['plain text', [new Uint8Array(Buffer.from('hello'))], 'not-quic-initial'],
    ['an unknown version', [concat(valid.subarray(0, 1), hex('ff00001d'), valid.subarray(5))], 'unsupported-version'],
    ['a tampered tag', [concat(valid.subarray(0, -1), hex('00'))], 'decrypt-failed'],
    ['a STREAM frame', [protectInitialPacket(hex('08000101'))], 'protocol-violation'],
    ['conflicting CRYPTO', [protectInitialPacket(concat(cryptoFrame(0, pattern(20, 1)), cryptoFrame(10, pattern(20, 2))))], 'crypto-conflict'],
    ['a ServerHello', [protectInitialPacket(cryptoFrame(0, hex('0200000400000000')))], 'not-client-hello'],
    ['a ClientHello with a bad host_name', buildClientInitial(badSni), 'client-hello-invalid'],
    ['a ClientHello with two ALPN extensions', buildClientInitial(twoAlpn), 'client-hello-invalid'],
    ['a ClientHello cut short inside', [protectInitialPacket(cryptoFrame(0, hex('0100000403030000')))], 'client-hello-invalid'],
    ['CRYPTO past the limit', [protectInitialPacket(cryptoFrame(70_000, hex('00')))], 'too-large'],
    ['a hello with no name', buildClientInitial(tlsClientHello({ sni: null })), 'no-sni'],
    ['a hello with a name not routed', buildClientInitial(tlsClientHello({ sni: 'other.example' })), 'unknown-name'],
  ])('drops %s as %s', (_name, datagrams, reason) => {
    const m = mapper();
    expect(m.findFlow(client, datagrams)).toEqual(dropFor(reason));
    expect(m.stats().drops[reason]).toBe(1);
    expect(m.stats().dropped).toBe(1);
    expect(m.pending.clients).toBe(0);
  });

  it('never answers an unknown version itself: no Version Negotiation', () => {
    const m = mapper();
    const d = m.findFlow(client, [concat(valid.subarray(0, 1), hex('1a2a3a4a'), valid.subarray(5))]);
    expect(d.action).toBe('drop');
  });

  it('gives up on a ClientHello still incomplete after maxDatagrams', () => {
    const m = mapper({ maxDatagrams: 3 });
    const partial = [1, 2, 3].map((i) => buildClientInitial(large, { pieces: [[0, 100]], firstPacketNumber: i })[0]!);
    expect(m.findFlow(client, partial.slice(0, 2))).toEqual({ action: 'wait' });
    expect(m.findFlow(client, partial)).toEqual(dropFor('too-large'));
    expect(m.classify(client, partial).detail).toMatch(/3 datagrams/);
  });

  it("by default gives up before the balancer's per-client datagram limit would drop the client's datagrams", () => {
    expect(DEFAULT_QUIC_SNI_LIMITS.maxDatagrams).toBeLessThan(DEFAULT_LIMITS.maxDatagramsPerClient);
    expect(DEFAULT_QUIC_SNI_LIMITS.maxCryptoBytes).toBeLessThanOrEqual(DEFAULT_LIMITS.maxBytesPerClient);
  });

  it('never throws and never forwards on any truncation of a valid datagram', () => {
    for (const datagram of [V1_CLIENT_INITIAL, V2_CLIENT_INITIAL, pq0, pq1, valid]) {
      const m = mapper();
      for (let length = 0; length < datagram.length; length++) {
        const decision = m.findFlow(client, [datagram.subarray(0, length)]);
        expect(decision.action === 'drop' || decision.action === 'wait', `length ${length}`).toBe(true);
      }
      // After a first datagram that is whole, no truncated second one completes the hello either.
      for (let length = 0; length < pq1.length; length += 7) {
        expect(m.findFlow(client, [pq0, pq1.subarray(0, length)]).action).toBe('wait');
      }
    }
  });
});

describe('QuicSniMapper routes', () => {
  it('gives the routes the name as sent, the ALPN offered and the client', () => {
    const seen: [QuicHello, UdpEndpoint][] = [];
    const m = new QuicSniMapper({
      routes: {
        resolve(hello, c) {
          seen.push([hello, c]);
          return { kind: 'target', target: EXAMPLE };
        },
      },
    });
    m.findFlow(client, buildClientInitial(tlsClientHello({ sni: 'Mixed.Case.', alpn: ['h3', 'doq'] })));
    m.findFlow(client, buildClientInitial(tlsClientHello({ sni: null, alpn: null })));
    expect(seen).toEqual([
      [{ serverName: 'Mixed.Case.', alpn: ['h3', 'doq'] }, client],
      [{ serverName: undefined, alpn: [] }, client],
    ]);
  });

  it('passes the reasons of its routes on, and counts them', () => {
    const byAlpn: QuicRoutes = {
      resolve: (hello) => (hello.alpn.includes('h3') ? { kind: 'target', target: EXAMPLE } : { kind: 'none', reason: 'wrong-alpn' }),
    };
    const m = new QuicSniMapper({ routes: byAlpn });
    expect(m.findFlow(client, buildClientInitial(tlsClientHello({ alpn: ['doq'] })))).toEqual(dropFor('wrong-alpn'));
    expect(m.findFlow(client, buildClientInitial(tlsClientHello({ alpn: ['h3'] })))).toEqual(forwardTo(EXAMPLE));
    expect(m.stats()).toMatchObject({ hellos: 2, forwarded: 1, dropped: 1, drops: { 'wrong-alpn': 1 } });
  });

  it('counts at most 32 distinct reasons of its routes one by one', () => {
    let i = 0;
    const m = new QuicSniMapper({ routes: { resolve: () => ({ kind: 'none', reason: `reason-${i++}` }) } });
    const datagrams = buildClientInitial(tlsClientHello());
    for (let k = 0; k < 40; k++) m.findFlow(client, datagrams);
    const drops = m.stats().drops;
    expect(Object.keys(drops)).toHaveLength(QUIC_DROP_REASONS.length + 32 + 1);
    expect(drops['other-route-reason']).toBe(8);
  });

  it('throws a TypeError for an answer from the routes that is not a route', () => {
    const m = new QuicSniMapper({ routes: { resolve: () => ({ kind: 'maybe' }) as never } });
    expect(() => m.findFlow(client, [V1_CLIENT_INITIAL])).toThrow(TypeError);
  });
});

describe('QuicSniMapper.classify and stats', () => {
  it('says why, with the tls-hello reason in the detail', () => {
    const m = mapper();
    const c = m.classify(client, buildClientInitial(tlsClientHello({ sni: 'bad name.example' })));
    expect(c).toMatchObject({ dropReason: 'client-hello-invalid', helloInvalid: 'sni-bad-characters', version: 1 });
    expect(c.detail).toMatch(/^sni-bad-characters/);
    expect(m.stats().calls).toBe(0);
    expect(m.classify(client, [V2_CLIENT_INITIAL])).toMatchObject({ version: QUIC_V2, hello: { sni: 'example.com' }, route: { kind: 'target' } });
  });

  it('keeps plain counters: every reason, zero included, and tls-hello reasons', () => {
    const m = mapper();
    m.findFlow(client, buildClientInitial(tlsClientHello({ sni: 'bad name.example' })));
    m.findFlow(client, buildClientInitial(tlsClientHello({ sni: null })));
    m.findFlow(client, [V1_CLIENT_INITIAL]);
    m.findFlow(client, [pq0]);
    const stats = m.stats();
    expect(JSON.parse(JSON.stringify(stats))).toEqual(stats);
    expect(Object.keys(stats.drops).sort()).toEqual([...QUIC_DROP_REASONS].sort());
    expect(stats).toMatchObject({
      calls: 4,
      forwarded: 1,
      waited: 1,
      dropped: 2,
      hellos: 2,
      noSni: 1,
      clientHelloInvalid: { 'sni-bad-characters': 1 },
      drops: { 'client-hello-invalid': 1, 'no-sni': 1, 'decrypt-failed': 0 },
    });
    m.resetStats();
    expect(m.stats()).toMatchObject({ calls: 0, dropped: 0, datagramsRead: 0, clientHelloInvalid: {}, drops: { 'no-sni': 0 } });
  });
});

describe('QuicSniMapper bounds', () => {
  it('refuses limits that are not positive integers', () => {
    for (const limits of [{ maxCryptoBytes: 0 }, { maxDatagrams: -1 }, { maxConnectionIds: 1.5 }, { maxDatagrams: Number.NaN }]) {
      expect(() => mapper(limits)).toThrow(RangeError);
    }
    expect(() => new QuicSniMapper({ routes: {} as never })).toThrow(TypeError);
  });

  it('keeps read state for at most clientState.maxClients clients and maxBytes bytes', () => {
    const m = new QuicSniMapper({ routes, clientState: { maxClients: 50, maxBytes: 40_000 } });
    for (let port = 1; port <= 200; port++) expect(m.findFlow({ address: '192.0.2.20', port }, [pq0])).toEqual({ action: 'wait' });
    expect(m.pending.clients).toBeLessThanOrEqual(50);
    // A client whose state went is read again from its first datagram.
    expect(m.findFlow({ address: '192.0.2.20', port: 1 }, [pq0, pq1])).toEqual(forwardTo(PQ));
    const chrome = buildClientInitial(large, { pieces: [[100, 900], [0, 100]] })[0]!;
    for (let port = 1; port <= 200; port++) m.findFlow({ address: '192.0.2.21', port }, [chrome]);
    expect(m.pending.bytes).toBeLessThanOrEqual(40_000);
  });
});
