import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_MESSAGE_SIZE, parseClientHello } from './parser.js';
import type { HelloResult, ParseResult } from './result.js';
import { dtlsCapture } from '@flowlb/testkit';
import { alpnExtension, clientHelloBody, concat, fragmentDatagrams, handshakeFragment, helloBodyOf, helloDatagram, record, sniExtension, supportedVersionsExtension } from './test-support.js';

function expectHello(result: ParseResult): HelloResult {
  if (result.kind !== 'hello') {
    throw new Error(`expected a hello, got ${result.kind}${result.kind === 'invalid' ? `: ${result.reason} (${result.detail})` : ''}`);
  }
  return result;
}

const reason = (r: ParseResult): string => (r.kind === 'invalid' ? r.reason : r.kind);

describe('real captures', () => {
  it('OpenSSL plain: the name from the first datagram, and again with the retransmission', () => {
    const packets = dtlsCapture('ossl_foo');
    expect(packets).toHaveLength(2);
    const first = expectHello(parseClientHello(packets.slice(0, 1)));
    expect(first).toMatchObject({ sni: 'foo.example', messageSeq: 0, recordVersion: 0xfeff, clientVersion: 0xfefd });
    expect(expectHello(parseClientHello(packets)).sni).toBe('foo.example');
    expect(expectHello(parseClientHello(packets[0]!)).sni).toBe('foo.example');
  });

  it('GnuTLS: another extension order', () => {
    const packets = dtlsCapture('gnutls_bar');
    expect(expectHello(parseClientHello(packets.slice(0, 1))).sni).toBe('bar.example');
    expect(expectHello(parseClientHello(packets)).sni).toBe('bar.example');
  });

  it('OpenSSL at MTU 256: waits after the first fragment and completes with the second', () => {
    const packets = dtlsCapture('ossl_mtu');
    expect(packets.map((p) => p.length)).toEqual([228, 44, 228, 44]);
    expect(parseClientHello(packets.slice(0, 1))).toEqual({ kind: 'need-more' });
    expect(parseClientHello(packets.slice(1, 2))).toEqual({ kind: 'need-more' });
    for (const set of [packets.slice(0, 2), [packets[1]!, packets[0]!], packets.slice(1, 3), packets]) {
      expect(expectHello(parseClientHello(set)).sni).toBe('long-name.backend-two.example.org');
    }
  });

  it('cookie exchange: the first hello, the retry with the cookie, and the whole client side', () => {
    const packets = dtlsCapture('ossl_cookie');
    const first = expectHello(parseClientHello(packets.slice(0, 1)));
    expect(first).toMatchObject({ sni: 'cookie.example', messageSeq: 0 });
    expect(first.cookie.length).toBe(0);
    for (let n = 2; n <= packets.length; n++) {
      const latest = expectHello(parseClientHello(packets.slice(0, n)));
      expect(latest).toMatchObject({ sni: 'cookie.example', messageSeq: 1, recordVersion: 0xfeff });
      expect(latest.cookie.length).toBe(20);
    }
  });

  it('gives the highest record sequence number of the records that carried the chosen hello', () => {
    expect(expectHello(parseClientHello(dtlsCapture('ossl_foo').slice(0, 1))).recordSequence).toBe(0);
    expect(expectHello(parseClientHello(dtlsCapture('ossl_foo'))).recordSequence).toBe(1);
    const mtu = dtlsCapture('ossl_mtu');
    expect(expectHello(parseClientHello(mtu.slice(0, 2))).recordSequence).toBe(1);
    expect(expectHello(parseClientHello([mtu[1]!, mtu[0]!])).recordSequence).toBe(1);
    expect(expectHello(parseClientHello(mtu)).recordSequence).toBe(3);
    // The retry's records, not the first hello's, once the retry is the one parsed; later records do not count.
    const cookie = dtlsCapture('ossl_cookie');
    expect(expectHello(parseClientHello(cookie)).recordSequence).toBe(1);
    const far = helloDatagram(clientHelloBody(), 0, { sequence: 2 ** 40 + 5 });
    expect(expectHello(parseClientHello([far])).recordSequence).toBe(2 ** 40 + 5);
  });

  it('cookie exchange: a flow that begins with the retry (message_seq 1) is classified', () => {
    const retry = dtlsCapture('ossl_cookie')[1]!;
    const hello = expectHello(parseClientHello([retry]));
    expect(hello).toMatchObject({ sni: 'cookie.example', messageSeq: 1 });
    expect(hello.cookie.length).toBe(20);
  });

  it('a flow whose first datagram is the second flight has no ClientHello', () => {
    const packets = dtlsCapture('ossl_cookie');
    expect(reason(parseClientHello(packets.slice(2)))).toBe('no-client-hello');
    expect(reason(parseClientHello(packets.slice(3)))).toBe('no-handshake');
  });

  it('extra captures: ALPN, GnuTLS fragmentation, no SNI, DTLS 1.0', () => {
    expect(expectHello(parseClientHello(dtlsCapture('ossl_alpn')))).toMatchObject({
      sni: 'alpn.example',
      alpn: ['h2', 'coap'],
    });
    expect(expectHello(parseClientHello(dtlsCapture('gnutls_alpn')))).toMatchObject({
      sni: 'gnu.alpn.example',
      alpn: ['coap', 'h2'],
    });
    const mtu = dtlsCapture('gnutls_mtu');
    expect(parseClientHello(mtu.slice(0, 1)).kind).toBe('need-more');
    expect(expectHello(parseClientHello(mtu.slice(0, 2))).sni).toBe('Mixed.Case.Example');
    const noSni = expectHello(parseClientHello(dtlsCapture('ossl_nosni')));
    expect(noSni.sni).toBeUndefined();
    expect(noSni.extensions.length).toBeGreaterThan(0);
    expect(expectHello(parseClientHello(dtlsCapture('ossl_dtls1')))).toMatchObject({
      sni: 'old.example',
      clientVersion: 0xfeff,
    });
  });
});

describe('reassembly across records and datagrams', () => {
  const body = helloBodyOf(dtlsCapture('ossl_foo')[0]!);

  it('completes from a split at every offset, in both orders', () => {
    for (let cut = 1; cut < body.length; cut++) {
      const [a, b] = fragmentDatagrams(body, [
        [0, cut],
        [cut, body.length],
      ]);
      expect(parseClientHello([a!]).kind).toBe('need-more');
      expect(parseClientHello([b!]).kind).toBe('need-more');
      expect(expectHello(parseClientHello([a!, b!])).sni, `cut ${cut}`).toBe('foo.example');
      expect(expectHello(parseClientHello([b!, a!])).sni, `cut ${cut}`).toBe('foo.example');
    }
  });

  it('reads fragments from several records in one datagram', () => {
    const pieces = fragmentDatagrams(body, [
      [0, 50],
      [50, 120],
      [120, body.length],
    ]);
    expect(expectHello(parseClientHello([concat(...pieces)])).sni).toBe('foo.example');
  });

  it('reads several fragments inside one record', () => {
    const fragments = [
      handshakeFragment(body.subarray(100), { offset: 100, length: body.length }),
      handshakeFragment(body.subarray(0, 100), { offset: 0, length: body.length }),
    ];
    expect(expectHello(parseClientHello([record(concat(...fragments))])).sni).toBe('foo.example');
  });

  it('accepts duplicates and agreeing overlaps', () => {
    const packets = fragmentDatagrams(body, [
      [0, 80],
      [40, 120],
      [0, 80],
      [100, body.length],
      [60, 70],
    ]);
    expect(expectHello(parseClientHello(packets)).sni).toBe('foo.example');
  });

  it('refuses overlapping fragments that disagree', () => {
    const altered = body.slice();
    altered[70] = altered[70]! ^ 0x01;
    const packets = [
      ...fragmentDatagrams(body, [[0, 100]]),
      ...fragmentDatagrams(altered, [[60, body.length]]),
    ];
    expect(reason(parseClientHello(packets))).toBe('fragment-conflict');
  });

  it('refuses a retransmission that differs from the first copy', () => {
    const altered = body.slice();
    altered[body.length - 1] = altered[body.length - 1]! ^ 0x01;
    expect(reason(parseClientHello([helloDatagram(body), helloDatagram(altered)]))).toBe('fragment-conflict');
  });

  it('refuses fragments that disagree on the message length', () => {
    const a = record(handshakeFragment(body.subarray(0, 50), { length: body.length }));
    const b = record(handshakeFragment(body.subarray(50), { offset: 50, length: body.length + 1 }));
    expect(reason(parseClientHello([a, b]))).toBe('length-mismatch');
  });

  it('waits on a gap', () => {
    const packets = fragmentDatagrams(body, [
      [0, 50],
      [51, body.length],
    ]);
    expect(parseClientHello(packets)).toEqual({ kind: 'need-more' });
  });

  it('waits for every prefix fragment of a real hello, and completes once the rest arrives', () => {
    for (let cut = 0; cut < body.length; cut++) {
      const [prefix] = fragmentDatagrams(body, [[0, cut]]);
      expect(parseClientHello([prefix!]).kind, `prefix ${cut}`).toBe('need-more');
    }
  });

  it('treats a zero-length fragment as nothing received yet', () => {
    const empty = record(handshakeFragment([], { length: body.length, offset: 10 }));
    expect(parseClientHello([empty])).toEqual({ kind: 'need-more' });
    expect(expectHello(parseClientHello([empty, helloDatagram(body)])).sni).toBe('foo.example');
    const emptyAtEnd = record(handshakeFragment([], { length: body.length, offset: body.length }));
    expect(parseClientHello([emptyAtEnd]).kind).toBe('need-more');
  });

  it('refuses a zero-length ClientHello', () => {
    expect(reason(parseClientHello([record(handshakeFragment([], { length: 0 }))]))).toBe('client-hello-truncated');
  });

  it('refuses a fragment beyond the message length', () => {
    const beyond = record(handshakeFragment(body.subarray(0, 20), { offset: body.length - 10, length: body.length }));
    expect(reason(parseClientHello([beyond]))).toBe('fragment-out-of-range');
    const emptyBeyond = record(handshakeFragment([], { offset: body.length + 1, length: body.length }));
    expect(reason(parseClientHello([emptyBeyond]))).toBe('fragment-out-of-range');
  });

  it('refuses a message over the size limit before waiting for it', () => {
    const big = record(handshakeFragment([1, 2, 3], { length: DEFAULT_MAX_MESSAGE_SIZE + 1 }));
    expect(reason(parseClientHello([big]))).toBe('message-too-large');
    const atLimit = record(handshakeFragment([1, 2, 3], { length: DEFAULT_MAX_MESSAGE_SIZE }));
    expect(parseClientHello([atLimit]).kind).toBe('need-more');
    expect(reason(parseClientHello([helloDatagram(body)], { maxMessageSize: body.length - 1 }))).toBe('message-too-large');
    expect(parseClientHello([helloDatagram(body)], { maxMessageSize: body.length }).kind).toBe('hello');
    expect(reason(parseClientHello([big], { maxMessageSize: Number.NaN }))).toBe('message-too-large');
    expect(reason(parseClientHello([big], { maxMessageSize: -1 }))).toBe('message-too-large');
  });

  it('reassembles a large hello of 30 KiB at MTU 200 when the limit allows it', () => {
    const padding = new Uint8Array(30 * 1024);
    const padded = clientHelloBody({
      extensions: [sniExtension('big.example'), concat([0, 21], [padding.length >> 8, padding.length & 0xff], padding)],
    });
    const pieces: [number, number][] = [];
    for (let at = 0; at < padded.length; at += 175) pieces.push([at, Math.min(at + 175, padded.length)]);
    const packets = fragmentDatagrams(padded, pieces).reverse();
    expect(reason(parseClientHello(packets))).toBe('message-too-large');
    expect(expectHello(parseClientHello(packets, { maxMessageSize: 32 * 1024 })).sni).toBe('big.example');
    expect(parseClientHello(packets.slice(1), { maxMessageSize: 32 * 1024 }).kind).toBe('need-more');
  });

  it('chooses the complete hello with the highest message_seq', () => {
    const first = clientHelloBody({ extensions: [sniExtension('first.example')] });
    const retry = clientHelloBody({ cookie: [1, 2, 3], extensions: [sniExtension('retry.example')] });
    expect(expectHello(parseClientHello([helloDatagram(first, 0), helloDatagram(retry, 1)]))).toMatchObject({
      sni: 'retry.example',
      messageSeq: 1,
    });
    expect(expectHello(parseClientHello([helloDatagram(retry, 1), helloDatagram(first, 0)])).messageSeq).toBe(1);
    const partialRetry = fragmentDatagrams(retry, [[0, 40]], 1);
    expect(expectHello(parseClientHello([helloDatagram(first, 0), ...partialRetry]))).toMatchObject({
      sni: 'first.example',
      messageSeq: 0,
    });
  });

  it('refuses more distinct message_seq values than a client uses', () => {
    const partial = (seq: number) => fragmentDatagrams(clientHelloBody(), [[0, 10]], seq)[0]!;
    expect(parseClientHello([0, 1, 2, 3].map(partial)).kind).toBe('need-more');
    expect(reason(parseClientHello([0, 1, 2, 3, 4].map(partial)))).toBe('too-many-messages');
  });
});

describe('datagrams that are not a usable ClientHello', () => {
  const real = dtlsCapture('ossl_foo')[0]!;

  it('refuses a real hello datagram truncated at every byte offset', () => {
    for (let cut = 0; cut < real.length; cut++) {
      const r = parseClientHello([real.subarray(0, cut)]);
      expect(r.kind, `cut ${cut}`).toBe('invalid');
      expect(reason(r), `cut ${cut}`).toBe(cut === 0 ? 'empty-datagram' : 'truncated-record');
    }
  });

  it('refuses a datagram that is not DTLS, or not a record at all', () => {
    expect(reason(parseClientHello([new Uint8Array(Buffer.from('hello world, this is not dtls'))]))).toBe('not-dtls');
    const tls = real.slice();
    tls[1] = 0x03;
    tls[2] = 0x03;
    expect(reason(parseClientHello([tls]))).toBe('not-dtls');
  });

  it('refuses a first datagram of the wrong content type', () => {
    for (const type of [20, 21, 23, 24, 26]) {
      const wrong = real.slice();
      wrong[0] = type;
      expect(reason(parseClientHello([wrong])), `type ${type}`).toBe('no-handshake');
    }
    const unknown = real.slice();
    unknown[0] = 0x30 + 0x70;
    expect(reason(parseClientHello([unknown]))).toBe('not-dtls');
  });

  it('ignores handshake records of a later epoch (they are encrypted)', () => {
    const encrypted = real.slice();
    encrypted[4] = 1; // epoch 1
    expect(reason(parseClientHello([encrypted]))).toBe('no-handshake');
  });

  it('refuses handshakes that hold no ClientHello', () => {
    for (const msgType of [0, 2, 3, 11, 12, 14, 16, 20]) {
      const other = real.slice();
      other[13] = msgType;
      expect(reason(parseClientHello([other])), `msg_type ${msgType}`).toBe('no-client-hello');
    }
  });

  it('skips non-ClientHello messages next to a ClientHello', () => {
    const body = helloBodyOf(real);
    const datagram = record(
      concat(handshakeFragment([1, 2, 3], { msgType: 16, messageSeq: 2 }), handshakeFragment(body)),
    );
    expect(expectHello(parseClientHello([datagram])).sni).toBe('foo.example');
  });

  it('refuses a handshake fragment that runs past its record', () => {
    const inner = handshakeFragment([1, 2, 3, 4], { fragmentLength: 10 });
    expect(reason(parseClientHello([record(inner)]))).toBe('handshake-truncated');
  });

  it('keeps the records before trailing garbage', () => {
    expect(expectHello(parseClientHello([concat(real, [0xde, 0xad, 0xbe, 0xef])])).sni).toBe('foo.example');
    expect(expectHello(parseClientHello([concat(real, new Uint8Array(40))])).sni).toBe('foo.example');
  });

  it('skips a later datagram that is not DTLS, but not a first one', () => {
    const junk = new Uint8Array(Buffer.from('junk'));
    const [a, b] = dtlsCapture('ossl_mtu');
    expect(expectHello(parseClientHello([a!, junk, b!])).sni).toBe('long-name.backend-two.example.org');
    expect(expectHello(parseClientHello([a!, new Uint8Array(0), b!])).sni).toBe('long-name.backend-two.example.org');
    expect(reason(parseClientHello([junk, a!, b!]))).toBe('not-dtls');
  });

  it('answers need-more for no datagrams at all', () => {
    expect(parseClientHello([])).toEqual({ kind: 'need-more' });
  });

  it('passes on the reason from the ClientHello body', () => {
    const twoNames = clientHelloBody({ extensions: [sniExtension('a.example', 'b.example')] });
    expect(reason(parseClientHello([helloDatagram(twoNames)]))).toBe('sni-duplicate');
    const r = parseClientHello([helloDatagram(clientHelloBody().subarray(0, 34))]);
    expect(r).toMatchObject({ kind: 'invalid', reason: 'client-hello-truncated' });
    expect(r.kind === 'invalid' && typeof r.detail).toBe('string');
  });
});

describe('DTLS 1.3 ClientHello (RFC 9147)', () => {
  it('reads a hello in an fe fd record offering DTLS 1.3 and 1.2', () => {
    const body = clientHelloBody({
      version: 0xfefd,
      sessionId: [],
      suites: [0x1301, 0x1302, 0xc02b],
      extensions: [
        supportedVersionsExtension(0xfefc, 0xfefd),
        sniExtension('v13.example'),
        alpnExtension('coap'),
        concat([0, 51], [0, 4], [0, 2, 0, 0]), // a stand-in key_share
      ],
    });
    const hello = expectHello(parseClientHello([helloDatagram(body, 0, { version: 0xfefd })]));
    expect(hello).toMatchObject({
      sni: 'v13.example',
      versions: [0xfefc, 0xfefd],
      alpn: ['coap'],
      recordVersion: 0xfefd,
      clientVersion: 0xfefd,
    });
  });

  it('reads the second hello after a HelloRetryRequest (message_seq 1, cookie extension)', () => {
    const body = clientHelloBody({
      extensions: [supportedVersionsExtension(0xfefc), sniExtension('v13.example'), concat([0, 44], [0, 4], [0, 2, 7, 7])],
    });
    expect(expectHello(parseClientHello([helloDatagram(body, 1, { version: 0xfefd })]))).toMatchObject({
      sni: 'v13.example',
      messageSeq: 1,
    });
  });
});
