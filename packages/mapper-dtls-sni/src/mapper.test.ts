import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Decision, UdpEndpoint } from '@flowlb/mapper-api';
import { afterAll, describe, expect, it } from 'vitest';
import { DtlsSniMapper } from './mapper.js';
import { mappingsFromObject, mappingsFromYaml, MappingsError } from './mappings.js';
import { DEFAULT_LIMITS } from '@flowlb/balancer';
import { dtlsCapture } from '@flowlb/testkit';
import { clientHelloBody, fragmentDatagrams, helloDatagram, sniExtension } from './test-support.js';

const client: UdpEndpoint = { address: '192.0.2.10', port: 40000 };

const MAPPINGS = `
sniMappings:
  - fqdn: foo.example
    ipv4: 10.0.0.1
    port: 4433
  - fqdn: BAR.example
    ipv4: 10.0.0.2
    port: 4433
  - fqdn: "*.example.org"
    targets:
      - { ipv4: 10.0.1.1, port: 5684 }
      - { ipv4: 10.0.1.2, port: 5684 }
  - fqdn: cookie.example
    ipv4: 10.0.0.4
    port: 4433
`;

function mapperWith(text: string, options: { affinity?: 'endpoint' | 'address'; maxDatagrams?: number; maxMessageSize?: number } = {}) {
  return new DtlsSniMapper({ mappings: mappingsFromYaml(text), ...options });
}

const tempDir = mkdtempSync(join(tmpdir(), 'flowlb-mapper-'));
afterAll(() => rmSync(tempDir, { recursive: true, force: true }));
let tempFiles = 0;

function tempFile(text: string): string {
  const file = join(tempDir, `mappings-${tempFiles++}.yaml`);
  writeFileSync(file, text);
  return file;
}

describe('DtlsSniMapper.findFlow', () => {
  it('forwards the real captures to their targets', () => {
    const m = mapperWith(MAPPINGS);
    expect(m.findFlow(client, dtlsCapture('ossl_foo').slice(0, 1))).toEqual({
      action: 'forward',
      flow: { dstAddr: { address: '10.0.0.1', port: 4433 } },
    });
    expect(m.findFlow(client, dtlsCapture('gnutls_bar'))).toMatchObject({ flow: { dstAddr: { address: '10.0.0.2' } } });
    const mtu = m.findFlow(client, dtlsCapture('ossl_mtu').slice(0, 2));
    expect(mtu).toMatchObject({ action: 'forward', flow: { dstAddr: { port: 5684 } } });
    expect(m.findFlow(client, [dtlsCapture('ossl_cookie')[1]!])).toMatchObject({ flow: { dstAddr: { address: '10.0.0.4' } } });
  });

  it('waits for the rest of a fragmented hello', () => {
    const m = mapperWith(MAPPINGS);
    expect(m.findFlow(client, dtlsCapture('ossl_mtu').slice(0, 1))).toEqual({ action: 'wait' });
  });

  it('drops datagrams that are not DTLS, with the reason', () => {
    const m = mapperWith(MAPPINGS);
    expect(m.findFlow(client, [new Uint8Array(Buffer.from('PING'))])).toEqual({ action: 'drop', reason: 'not-dtls' });
    expect(m.findFlow(client, [new Uint8Array(0)])).toEqual({ action: 'drop', reason: 'empty-datagram' });
  });

  it('drops hellos with no name or an unknown name when there is no default', () => {
    const m = mapperWith(MAPPINGS);
    expect(m.findFlow(client, dtlsCapture('ossl_nosni'))).toEqual({ action: 'drop', reason: 'no-name' });
    expect(m.findFlow(client, dtlsCapture('ossl_alpn'))).toEqual({ action: 'drop', reason: 'unknown-name' });
  });

  it('routes those to the default when there is one', () => {
    const m = mapperWith(`${MAPPINGS}default: { ipv4: 10.9.9.9, port: 4433 }\n`);
    expect(m.findFlow(client, dtlsCapture('ossl_nosni'))).toMatchObject({ flow: { dstAddr: { address: '10.9.9.9' } } });
    expect(m.findFlow(client, dtlsCapture('ossl_alpn'))).toMatchObject({ flow: { dstAddr: { address: '10.9.9.9' } } });
  });

  it('matches the name case-insensitively', () => {
    const m = mapperWith(`sniMappings:\n  - fqdn: mixed.case.example\n    ipv4: 10.0.0.7\n    port: 1\n`);
    expect(m.findFlow(client, dtlsCapture('gnutls_mtu').slice(0, 2))).toMatchObject({
      flow: { dstAddr: { address: '10.0.0.7' } },
    });
  });

  it('keeps each client on one of several targets, by ip:port or by ip', () => {
    const hello = [helloDatagram(clientHelloBody({ extensions: [sniExtension('a.example.org')] }))];
    const byEndpoint = mapperWith(MAPPINGS);
    const byAddress = mapperWith(MAPPINGS, { affinity: 'address' });
    const endpointTargets = new Set<string>();
    const addressTargets = new Set<string>();
    for (let port = 20000; port < 20200; port++) {
      const c = { address: '192.0.2.77', port };
      const first = byEndpoint.findFlow(c, hello);
      expect(byEndpoint.findFlow(c, hello)).toEqual(first);
      if (first.action === 'forward') endpointTargets.add(first.flow.dstAddr.address);
      const viaAddress = byAddress.findFlow(c, hello);
      if (viaAddress.action === 'forward') addressTargets.add(viaAddress.flow.dstAddr.address);
    }
    expect(endpointTargets).toEqual(new Set(['10.0.1.1', '10.0.1.2']));
    expect(addressTargets.size).toBe(1);
  });

  it('gives up on a hello that is still incomplete after maxDatagrams', () => {
    const body = clientHelloBody({ extensions: [sniExtension('foo.example')] });
    const partial = fragmentDatagrams(body, [
      [0, 10],
      [0, 10],
      [0, 10],
    ]);
    const m = mapperWith(MAPPINGS, { maxDatagrams: 3 });
    expect(m.findFlow(client, partial.slice(0, 2))).toEqual({ action: 'wait' });
    expect(m.findFlow(client, partial)).toEqual({ action: 'drop', reason: 'too-many-datagrams' });
    expect(m.stats().invalid).toEqual({ 'too-many-datagrams': 1 });
  });

  it("by default gives up before the balancer's per-client datagram limit would drop the client's datagrams", () => {
    const body = clientHelloBody({ extensions: [sniExtension('foo.example')] });
    const partial = fragmentDatagrams(body, Array.from({ length: DEFAULT_LIMITS.maxDatagramsPerClient }, () => [0, 10] as [number, number]));
    const m = mapperWith(MAPPINGS);
    let given = 0;
    let decision: Decision = { action: 'wait' };
    while (decision.action === 'wait' && given < partial.length) decision = m.findFlow(client, partial.slice(0, ++given)) as Decision;
    expect(decision).toEqual({ action: 'drop', reason: 'too-many-datagrams' });
    expect(given).toBeLessThan(DEFAULT_LIMITS.maxDatagramsPerClient);
  });

  it('refuses limits that are not positive integers', () => {
    const mappings = mappingsFromYaml(MAPPINGS);
    expect(() => new DtlsSniMapper({ mappings, maxMessageSize: Number.NaN })).toThrow(RangeError);
    expect(() => new DtlsSniMapper({ mappings, maxDatagrams: 0 })).toThrow(/maxDatagrams/);
    expect(() => new DtlsSniMapper({ mappings, maxDatagrams: 1.5 })).toThrow(RangeError);
  });

  it('applies maxMessageSize', () => {
    const m = mapperWith(MAPPINGS, { maxMessageSize: 100 });
    expect(m.findFlow(client, dtlsCapture('ossl_foo'))).toEqual({ action: 'drop', reason: 'message-too-large' });
  });
});

describe('DtlsSniMapper.stats', () => {
  it('counts every call once, by outcome and reason', () => {
    const m = mapperWith(`${MAPPINGS}`);
    m.findFlow(client, dtlsCapture('ossl_foo'));
    m.findFlow(client, dtlsCapture('ossl_mtu').slice(0, 1));
    m.findFlow(client, dtlsCapture('ossl_mtu').slice(0, 2));
    m.findFlow(client, [new Uint8Array([1, 2, 3])]);
    m.findFlow(client, [new Uint8Array([4, 5, 6])]);
    m.findFlow(client, [dtlsCapture('ossl_cookie')[2]!]);
    m.findFlow(client, dtlsCapture('ossl_nosni'));
    m.findFlow(client, dtlsCapture('ossl_alpn'));
    expect(m.stats()).toEqual({
      calls: 8,
      hellos: 4,
      needMore: 1,
      invalid: { 'not-dtls': 2, 'no-client-hello': 1 },
      noName: 1,
      unknownName: 1,
      allTargetsDown: 0,
      routed: 2,
      routedExact: 1,
      routedWildcard: 1,
      routedDefault: 0,
      dropped: 5,
      helloVerifySent: 0,
      cookiesAccepted: 0,
      cookiesRejected: 0,
      datagramsRead: expect.any(Number),
      reloads: 0,
      reloadFailures: 0,
    });
  });

  it('reads each datagram once while a fragmented hello completes over many calls', () => {
    const m = mapperWith(MAPPINGS);
    const [first, second] = dtlsCapture('ossl_mtu');
    // The first fragment retransmitted seven times before the second arrives, as the balancer buffers them.
    const packets: Uint8Array[] = [];
    for (let i = 0; i < 8; i++) {
      packets.push(Buffer.from(first!));
      expect(m.findFlow(client, packets.slice())).toEqual({ action: 'wait' });
    }
    packets.push(second!);
    expect(m.findFlow(client, packets.slice())).toMatchObject({ action: 'forward' });
    // Nine calls over one to nine datagrams: nine reads, not the 45 of reading every buffered datagram each time.
    expect(m.stats().datagramsRead).toBe(9);

    // Other datagram objects than the last call's: a client that starts over, read from its first datagram.
    const other = { address: '192.0.2.77', port: 4444 };
    m.findFlow(other, [Buffer.from(first!)]);
    m.findFlow(other, [Buffer.from(first!), second!]);
    expect(m.stats().datagramsRead).toBe(9 + 1 + 2);

    // Released by the balancer: the next call for the endpoint starts over too.
    const third = { address: '192.0.2.78', port: 4444 };
    const held = [Buffer.from(first!)];
    m.findFlow(third, held);
    m.release(third);
    m.findFlow(third, [...held, second!]);
    expect(m.stats().datagramsRead).toBe(12 + 1 + 2);
  });

  it('counts routes to the default, and classify() counts nothing', () => {
    const m = mapperWith(`${MAPPINGS}default: { ipv4: 10.9.9.9, port: 1 }\n`);
    m.findFlow(client, dtlsCapture('ossl_nosni'));
    m.findFlow(client, dtlsCapture('ossl_alpn'));
    const c = m.classify(client, dtlsCapture('ossl_alpn'));
    expect(c.resolution).toMatchObject({ kind: 'target', match: 'default' });
    expect(c.parse).toMatchObject({ kind: 'hello', sni: 'alpn.example', alpn: ['h2', 'coap'] });
    expect(m.stats()).toMatchObject({ calls: 2, hellos: 2, noName: 1, unknownName: 1, routed: 2, routedDefault: 2, dropped: 0 });
  });

  it('returns snapshots, and resetStats() starts again', () => {
    const m = mapperWith(MAPPINGS);
    m.findFlow(client, [new Uint8Array([1])]);
    const snapshot = m.stats();
    m.findFlow(client, [new Uint8Array([1])]);
    expect(snapshot.invalid).toEqual({ 'not-dtls': 1 });
    expect(m.stats().invalid).toEqual({ 'not-dtls': 2 });
    m.resetStats();
    expect(m.stats()).toMatchObject({ calls: 0, invalid: {} });
  });

  it('explains drops in classify()', () => {
    const m = mapperWith(MAPPINGS);
    expect(m.classify(client, [new Uint8Array([1])])).toMatchObject({ dropReason: 'not-dtls', parse: { kind: 'invalid' } });
    expect(m.classify(client, dtlsCapture('ossl_nosni'))).toMatchObject({
      dropReason: 'no-name',
      resolution: { kind: 'none', why: 'no-name' },
    });
  });
});

describe('changing the mappings while running', () => {
  const foo = dtlsCapture('ossl_foo');
  const destination = (m: DtlsSniMapper) => {
    const d = m.findFlow(client, foo);
    return d.action === 'forward' ? d.flow.dstAddr.address : d.action;
  };

  it('setMappings() decides new flows with the new table', () => {
    const m = mapperWith(MAPPINGS);
    expect(destination(m)).toBe('10.0.0.1');
    const next = mappingsFromObject({ sniMappings: [{ fqdn: 'foo.example', ipv4: '10.5.5.5', port: 1 }] });
    m.setMappings(next);
    expect(m.mappings).toBe(next);
    expect(destination(m)).toBe('10.5.5.5');
  });

  it('reload() re-reads the file; a failed reload keeps the old table and reports why', async () => {
    const file = tempFile(MAPPINGS);
    const m = await DtlsSniMapper.fromFile(file);
    expect(destination(m)).toBe('10.0.0.1');

    writeFileSync(file, MAPPINGS.replace('10.0.0.1', '10.0.0.99'));
    const ok = await m.reload();
    expect(ok).toMatchObject({ ok: true, applied: true });
    expect(destination(m)).toBe('10.0.0.99');

    writeFileSync(file, `${MAPPINGS}  - fqdn: foo.example\n    ipv4: 10.0.0.50\n    port: 1\n`);
    const bad = await m.reload();
    expect(bad.ok).toBe(false);
    if (!bad.ok) {
      expect(bad.error).toBeInstanceOf(MappingsError);
      expect(bad.error).toMatchObject({ file, entry: { index: 4, fqdn: 'foo.example' }, key: 'fqdn' });
      expect(bad.error.reason).toContain('duplicate');
    }
    expect(destination(m)).toBe('10.0.0.99');
    expect(m.stats()).toMatchObject({ reloads: 1, reloadFailures: 1 });
  });

  it('reloadSync() behaves the same, also for a file that has gone', () => {
    const file = tempFile(MAPPINGS);
    const m = DtlsSniMapper.fromFileSync(file);
    writeFileSync(file, MAPPINGS.replace('10.0.0.1', '10.0.0.98'));
    expect(m.reloadSync()).toMatchObject({ ok: true, applied: true });
    expect(destination(m)).toBe('10.0.0.98');
    writeFileSync(file, 'sniMappings: [');
    const broken = m.reloadSync();
    expect(broken.ok).toBe(false);
    expect(destination(m)).toBe('10.0.0.98');
  });

  it('reload() without a file fails and keeps the table', async () => {
    const m = mapperWith(MAPPINGS);
    const r = await m.reload();
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.reason).toContain('no mappings file');
    expect(destination(m)).toBe('10.0.0.1');
  });

  it('a slow reload does not undo a change made after it started', async () => {
    const file = tempFile(MAPPINGS.replace('10.0.0.1', '10.0.0.77'));
    const m = new DtlsSniMapper({ mappings: mappingsFromYaml(MAPPINGS), file });
    const pending = m.reload();
    const newer = mappingsFromObject({ sniMappings: [{ fqdn: 'foo.example', ipv4: '10.6.6.6', port: 1 }] });
    m.setMappings(newer);
    const result = await pending;
    expect(result).toMatchObject({ ok: true, applied: false });
    expect(m.mappings).toBe(newer);
    expect(destination(m)).toBe('10.6.6.6');
  });

  it('fromFile() rejects a bad file with a MappingsError', async () => {
    const file = tempFile('sniMappings:\n  - fqdn: x.example\n');
    await expect(DtlsSniMapper.fromFile(file)).rejects.toMatchObject({ file, entry: { index: 0 } });
    expect(() => DtlsSniMapper.fromFileSync(file)).toThrow(MappingsError);
  });
});
