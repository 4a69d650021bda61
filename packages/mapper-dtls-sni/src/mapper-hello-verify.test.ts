import type { Decision, UdpEndpoint } from '@flowlb/mapper-api';
import { dtlsCapture, dtlsCaptureNames } from '@flowlb/testkit';
import { describe, expect, it } from 'vitest';
import { DtlsSniMapper, type DtlsSniMapperOptions } from './mapper.js';
import { mappingsFromYaml } from './mappings.js';
import { parseClientHello } from './parser.js';
import { encodeCookieInput } from './cookie.js';
import { sipHash24 } from './siphash.js';
import { fragmentDatagrams, helloBodyFromFragments, helloDatagram, withCookie } from './test-support.js';

const client: UdpEndpoint = { address: '192.0.2.10', port: 40000 };

const MAPPINGS = `
sniMappings:
  - fqdn: foo.example
    ipv4: 10.0.0.1
    port: 4433
    helloVerify: true
  - fqdn: bar.example
    ipv4: 10.0.0.2
    port: 4433
  - fqdn: cookie.example
    ipv4: 10.0.0.4
    port: 4433
    helloVerify: true
  - fqdn: "*.example.org"
    ipv4: 10.0.1.1
    port: 5684
    helloVerify: true
`;

function mapperWith(text = MAPPINGS, options: Omit<DtlsSniMapperOptions, 'mappings'> = {}) {
  return new DtlsSniMapper({ mappings: mappingsFromYaml(text), ...options });
}

interface Hvr {
  recordVersion: number;
  epoch: number;
  recordSequence: number;
  messageSeq: number;
  serverVersion: number;
  cookie: Uint8Array;
}

/** The one HelloVerifyRequest of a `reply` decision, read field by field. */
function hvrOf(decision: Decision): Hvr {
  expect(decision).toMatchObject({ action: 'reply', reason: 'hello-verify' });
  if (decision.action !== 'reply') throw new Error('not a reply');
  expect(decision.datagrams).toHaveLength(1);
  const d = Buffer.from(decision.datagrams[0]!);
  expect(d[0]).toBe(22);
  expect(d[13]).toBe(3);
  const cookieLength = d[27]!;
  expect(d.length).toBe(28 + cookieLength);
  return {
    recordVersion: d.readUInt16BE(1),
    epoch: d.readUInt16BE(3),
    recordSequence: d.readUIntBE(5, 6),
    messageSeq: d.readUInt16BE(17),
    serverVersion: d.readUInt16BE(25),
    cookie: new Uint8Array(d.subarray(28)),
  };
}

/**
 * A real client's first ClientHello sent again as the retry that carries `cookie`: message_seq 1, in the records
 * after the capture's, whole or split into two fragments at `split`.
 */
function retry(capture: Uint8Array[], cookie: Uint8Array, split?: number): Uint8Array[] {
  const body = withCookie(helloBodyFromFragments(capture), cookie);
  const next = capture.length;
  if (split === undefined) return [helloDatagram(body, 1, { sequence: next })];
  return fragmentDatagrams(
    body,
    [
      [0, split],
      [split, body.length],
    ],
    1,
    next,
  );
}

describe('DtlsSniMapper with helloVerify', () => {
  it('answers a first hello for a helloVerify name with a HelloVerifyRequest, and forwards the retry with its cookie', () => {
    const m = mapperWith();
    const first = [dtlsCapture('ossl_foo')[0]!];
    const hvr = hvrOf(m.findFlow(client, first));
    expect(hvr).toMatchObject({ recordVersion: 0xfeff, epoch: 0, recordSequence: 0, messageSeq: 0, serverVersion: 0xfeff });
    expect(hvr.cookie).toHaveLength(8);

    const second = retry(first, hvr.cookie);
    expect(parseClientHello(second)).toMatchObject({ kind: 'hello', messageSeq: 1, sni: 'foo.example' });
    expect(m.findFlow(client, second)).toEqual({ action: 'forward', flow: { dstAddr: { address: '10.0.0.1', port: 4433 } } });
    expect(m.stats()).toMatchObject({
      calls: 2,
      hellos: 2,
      helloVerifySent: 1,
      cookiesAccepted: 1,
      cookiesRejected: 0,
      routed: 1,
      routedExact: 1,
      dropped: 0,
    });
  });

  it('repeats the record number of the last record the hello came in, e.g. a retransmission', () => {
    const m = mapperWith();
    // The capture holds the hello and its retransmission, in records 0 and 1.
    expect(hvrOf(m.findFlow(client, dtlsCapture('ossl_foo'))).recordSequence).toBe(1);
    expect(hvrOf(m.findFlow(client, dtlsCapture('ossl_foo').slice(0, 1))).recordSequence).toBe(0);
    // A DTLS 1.0 client (client_version fe ff) is answered alike.
    const dtls1 = mapperWith(`${MAPPINGS}default: { ipv4: 10.0.9.9, port: 4433, helloVerify: true }\n`);
    expect(hvrOf(dtls1.findFlow(client, dtlsCapture('ossl_dtls1').slice(0, 1)))).toMatchObject({ recordSequence: 0, messageSeq: 0 });
  });

  it('gives every client a cookie of its own: another port or address is sent a new HelloVerifyRequest', () => {
    const m = mapperWith();
    const first = [dtlsCapture('ossl_foo')[0]!];
    const cookie = hvrOf(m.findFlow(client, first)).cookie;
    const second = retry(first, cookie);
    for (const other of [{ ...client, port: client.port + 1 }, { ...client, address: '192.0.2.11' }]) {
      const again = hvrOf(m.findFlow(other, second));
      // The client has read one HelloVerifyRequest, so it only reads one with message_seq 1 now.
      expect(again).toMatchObject({ messageSeq: 1, recordSequence: 1 });
      expect(again.cookie).not.toEqual(cookie);
    }
    expect(m.stats()).toMatchObject({ helloVerifySent: 3, cookiesRejected: 2, cookiesAccepted: 0, routed: 0, dropped: 0 });
  });

  it("refuses a real server's cookie (ossl_cookie: s_client's retry for s_server -listen) with a HelloVerifyRequest of message_seq 1", () => {
    const m = mapperWith();
    const serversRetry = [dtlsCapture('ossl_cookie')[1]!];
    const parsed = parseClientHello(serversRetry);
    expect(parsed).toMatchObject({ kind: 'hello', messageSeq: 1, recordSequence: 1, sni: 'cookie.example' });
    if (parsed.kind === 'hello') expect(parsed.cookie.length).toBeGreaterThan(0);
    const hvr = hvrOf(m.findFlow(client, serversRetry));
    expect(hvr).toMatchObject({ messageSeq: 1, recordSequence: 1 });
    expect(m.stats()).toMatchObject({ cookiesRejected: 1, helloVerifySent: 1 });

    // Rebuilt with the mapper's cookie instead, the same retry is forwarded.
    const ours = [helloDatagram(withCookie(helloBodyFromFragments(serversRetry), hvr.cookie), 2, { sequence: 2 })];
    expect(m.findFlow(client, ours)).toMatchObject({ action: 'forward', flow: { dstAddr: { address: '10.0.0.4' } } });
  });

  it('answers a hello fragmented over two datagrams (ossl_mtu) once it is whole, and waits for the whole retry too', () => {
    const m = mapperWith();
    const capture = dtlsCapture('ossl_mtu');
    expect(m.findFlow(client, capture.slice(0, 1))).toEqual({ action: 'wait' });
    const hvr = hvrOf(m.findFlow(client, capture.slice(0, 2)));
    expect(hvr).toMatchObject({ recordSequence: 1, messageSeq: 0 });

    // Split where the client split its first hello; the cookie makes the second fragment longer.
    const second = retry(capture.slice(0, 2), hvr.cookie, 203);
    expect(second).toHaveLength(2);
    expect(m.findFlow(client, second.slice(0, 1))).toEqual({ action: 'wait' });
    expect(m.findFlow(client, second)).toMatchObject({ action: 'forward', flow: { dstAddr: { address: '10.0.1.1', port: 5684 } } });
    expect(m.stats()).toMatchObject({ needMore: 2, helloVerifySent: 1, cookiesAccepted: 1, routedWildcard: 1 });
  });

  it('leaves names without the setting exactly as before, cookie or not', () => {
    const m = mapperWith();
    expect(m.findFlow(client, dtlsCapture('gnutls_bar'))).toEqual({
      action: 'forward',
      flow: { dstAddr: { address: '10.0.0.2', port: 4433 } },
    });
    const plain = mapperWith(MAPPINGS.replaceAll('    helloVerify: true\n', ''));
    expect(plain.findFlow(client, [dtlsCapture('ossl_cookie')[1]!])).toMatchObject({ flow: { dstAddr: { address: '10.0.0.4' } } });
    expect(plain.findFlow(client, dtlsCapture('ossl_foo'))).toMatchObject({ action: 'forward' });
    expect(plain.stats()).toMatchObject({ helloVerifySent: 0, cookiesAccepted: 0, cookiesRejected: 0, routed: 2 });
  });

  it("helloVerify: 'all' asks every hello that has a target, the default's too; 'off' asks none", () => {
    const withDefault = `${MAPPINGS}default: { ipv4: 10.0.9.9, port: 4433 }\n`;
    const all = mapperWith(withDefault, { helloVerify: 'all' });
    hvrOf(all.findFlow(client, dtlsCapture('gnutls_bar')));
    hvrOf(all.findFlow(client, dtlsCapture('ossl_alpn')));
    hvrOf(all.findFlow(client, dtlsCapture('ossl_nosni')));
    expect(all.stats()).toMatchObject({ hellos: 3, helloVerifySent: 3, unknownName: 1, noName: 1, routed: 0, dropped: 0 });

    const off = mapperWith(withDefault, { helloVerify: 'off' });
    expect(off.findFlow(client, dtlsCapture('ossl_foo'))).toMatchObject({ action: 'forward', flow: { dstAddr: { address: '10.0.0.1' } } });
    expect(off.stats()).toMatchObject({ helloVerifySent: 0, routed: 1 });
  });

  it("asks the default's hellos when the default has helloVerify, and still drops hellos with no route", () => {
    const m = mapperWith(`${MAPPINGS}default: { ipv4: 10.0.9.9, port: 4433, helloVerify: true }\n`);
    const alpn = dtlsCapture('ossl_alpn');
    const hvr = hvrOf(m.findFlow(client, alpn));
    expect(m.findFlow(client, retry(alpn, hvr.cookie))).toMatchObject({ flow: { dstAddr: { address: '10.0.9.9' } } });
    expect(m.stats()).toMatchObject({ helloVerifySent: 1, cookiesAccepted: 1, routedDefault: 1, unknownName: 2 });

    const noDefault = mapperWith(MAPPINGS, { helloVerify: 'all' });
    expect(noDefault.findFlow(client, dtlsCapture('ossl_alpn'))).toEqual({ action: 'drop', reason: 'unknown-name' });
    expect(noDefault.findFlow(client, dtlsCapture('ossl_nosni'))).toEqual({ action: 'drop', reason: 'no-name' });
    expect(noDefault.stats()).toMatchObject({ helloVerifySent: 0, dropped: 2 });
  });

  it('never answers with more bytes than the client sent, for every capture', () => {
    const m = mapperWith('sniMappings: []\ndefault: { ipv4: 10.0.9.9, port: 4433, helloVerify: true }\n');
    for (const name of dtlsCaptureNames()) {
      const capture = dtlsCapture(name);
      for (let n = 1; n <= capture.length; n++) {
        const sent = capture.slice(0, n);
        const d = m.findFlow(client, sent);
        if (d.action !== 'reply') continue;
        const replyBytes = d.datagrams.reduce((sum, x) => sum + x.length, 0);
        expect(replyBytes, `${name}, ${n} datagrams`).toBeLessThan(sent.reduce((sum, x) => sum + x.length, 0));
        expect(replyBytes).toBe(36);
      }
    }
  });

  it('accepts the cookies of another mapper that shares cookieSecret, and no other', () => {
    const cookieSecret = 'one secret for every balancer process';
    const first = [dtlsCapture('ossl_foo')[0]!];
    const cookie = hvrOf(mapperWith(MAPPINGS, { cookieSecret }).findFlow(client, first)).cookie;
    expect(mapperWith(MAPPINGS, { cookieSecret }).findFlow(client, retry(first, cookie))).toMatchObject({ action: 'forward' });
    expect(mapperWith(MAPPINGS).findFlow(client, retry(first, cookie))).toMatchObject({ action: 'reply' });
  });

  it('says in classify() what the cookie check made of the hello, without counting', () => {
    const m = mapperWith();
    const first = [dtlsCapture('ossl_foo')[0]!];
    const missing = m.classify(client, first);
    expect(missing).toMatchObject({ cookie: 'missing', resolution: { helloVerify: true }, decision: { action: 'reply' } });
    const cookie = hvrOf(missing.decision).cookie;
    expect(m.classify(client, retry(first, cookie))).toMatchObject({ cookie: 'accepted', decision: { action: 'forward' } });
    expect(m.classify({ ...client, port: 1 }, retry(first, cookie))).toMatchObject({ cookie: 'rejected' });
    expect(m.classify(client, dtlsCapture('gnutls_bar'))).not.toHaveProperty('cookie');
    expect(m.stats()).toMatchObject({ calls: 0, helloVerifySent: 0 });
  });

  it('hands the XDP program its keys only while every route asks for a cookie', () => {
    const all = (extra = ''): string =>
      `sniMappings:\n  - fqdn: foo.example\n    ipv4: 10.0.0.1\n    port: 4433\n    helloVerify: true\n${extra}`;
    expect(mapperWith(all()).kernelHelloVerify()).toBeDefined();
    expect(mapperWith(all('default:\n  ipv4: 10.0.0.9\n  port: 4433\n  helloVerify: true\n')).kernelHelloVerify()).toBeDefined();
    // A name or a default without the setting: the program cannot tell their hellos apart.
    expect(mapperWith(MAPPINGS).kernelHelloVerify()).toBeUndefined();
    expect(mapperWith(all('default:\n  ipv4: 10.0.0.9\n  port: 4433\n')).kernelHelloVerify()).toBeUndefined();
    expect(mapperWith(MAPPINGS, { helloVerify: 'all' }).kernelHelloVerify()).toBeDefined();
    expect(mapperWith(all(), { helloVerify: 'off' }).kernelHelloVerify()).toBeUndefined();
    // After a change of the table, the answer follows it.
    const m = mapperWith(all());
    m.setMappings(mappingsFromYaml(MAPPINGS));
    expect(m.kernelHelloVerify()).toBeUndefined();
  });

  it("gives keys that make the mapper's own cookies, and a refresh no later than the next rotation", () => {
    const m = mapperWith(MAPPINGS, { helloVerify: 'all', cookieRotationMs: 3_600_000 });
    const k = m.kernelHelloVerify()!;
    expect(k.keys.map((x) => x.length)).toEqual([16, 16]);
    expect(Buffer.from(k.keys[0]).equals(Buffer.from(k.keys[1]))).toBe(false);
    expect(k.refreshInMs).toBeGreaterThan(0);
    expect(k.refreshInMs).toBeLessThanOrEqual(3_600_000);
    const first = dtlsCapture('ossl_foo')[0]!;
    const hvr = hvrOf(m.findFlow(client, [first]));
    const hello = parseClientHello([first]);
    if (hello.kind !== 'hello') throw new Error('not a hello');
    const input = encodeCookieInput({ ...client, clientVersion: hello.clientVersion, random: hello.random, sessionId: hello.sessionId });
    expect(Buffer.from(sipHash24(k.keys[k.current], input)).toString('hex')).toBe(Buffer.from(hvr.cookie).toString('hex'));
    // The other key is the previous period's: its cookies are still accepted.
    const older = retry([first], sipHash24(k.keys[1 - k.current]!, input));
    expect(m.findFlow(client, older)).toMatchObject({ action: 'forward' });
  });

  it('refuses options that make no sense', () => {
    const mappings = mappingsFromYaml(MAPPINGS);
    expect(() => new DtlsSniMapper({ mappings, helloVerify: 'some' as 'all' })).toThrow(/helloVerify/);
    expect(() => new DtlsSniMapper({ mappings, cookieSecret: 'too short' })).toThrow(/cookieSecret/);
    expect(() => new DtlsSniMapper({ mappings, cookieRotationMs: 0 })).toThrow(/cookieRotationMs/);
  });
});
