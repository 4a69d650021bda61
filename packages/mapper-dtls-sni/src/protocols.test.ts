/**
 * `protocols` and `alpn` in the mappings: one file routes DTLS and QUIC hellos, by name and by the ALPN protocols a
 * client offers, and the entries of one name are tried in file order.
 */
import { dtlsCapture } from '@flowlb/testkit';
import { describe, expect, it } from 'vitest';
import { DtlsSniMapper } from './mapper.js';
import { mappingsFromYaml } from './mappings.js';
import { issuesOf } from './test-support.js';

const A = { address: '10.0.0.2', port: 4433 };
const B = { address: '10.0.0.3', port: 4433 };
const C = { address: '10.0.0.4', port: 4433 };
const client = '192.0.2.1:40000';

describe('protocols and alpn in the mappings', () => {
  it('routes the hellos of one name by protocol', () => {
    const t = mappingsFromYaml(`sniMappings:
  - { fqdn: api.example, ipv4: 10.0.0.2, port: 4433, protocols: [dtls] }
  - { fqdn: api.example, ipv4: 10.0.0.3, port: 4433, protocols: [quic] }
`);
    expect(t.rules.map((r) => r.protocols)).toEqual([['dtls'], ['quic']]);
    expect(t.resolve('api.example', client, undefined, { protocol: 'dtls' })).toMatchObject({ kind: 'target', target: A });
    expect(t.resolve('api.example', client, undefined, { protocol: 'quic' })).toMatchObject({ kind: 'target', target: B });
  });

  it('takes the first entry of a name whose alpn the client offers, and an entry without alpn takes the rest', () => {
    const t = mappingsFromYaml(`sniMappings:
  - { fqdn: api.example, ipv4: 10.0.0.2, port: 4433, protocols: [quic], alpn: [h3, h3-29] }
  - { fqdn: api.example, ipv4: 10.0.0.3, port: 4433, alpn: [doq] }
  - { fqdn: api.example, ipv4: 10.0.0.4, port: 4433 }
`);
    const quic = (alpn?: string[]) => t.resolve('api.example', client, undefined, { protocol: 'quic', ...(alpn ? { alpn } : {}) });
    expect(quic(['h3'])).toMatchObject({ target: A });
    expect(quic(['hq-interop', 'h3-29'])).toMatchObject({ target: A });
    expect(quic(['doq'])).toMatchObject({ target: B });
    expect(quic(['hq-interop'])).toMatchObject({ target: C });
    expect(quic()).toMatchObject({ target: C });
    // A DTLS client offering h3 does not get the QUIC entry.
    expect(t.resolve('api.example', client, undefined, { protocol: 'dtls', alpn: ['h3'] })).toMatchObject({ target: C });
  });

  it('goes on to a wildcard, then the default, when no entry of the exact name takes the hello', () => {
    const t = mappingsFromYaml(`sniMappings:
  - { fqdn: api.example, ipv4: 10.0.0.2, port: 4433, protocols: [quic] }
  - { fqdn: "*.example", ipv4: 10.0.0.3, port: 4433, protocols: [dtls] }
default: { ipv4: 10.0.0.4, port: 4433 }
`);
    expect(t.resolve('api.example', client, undefined, { protocol: 'quic' })).toMatchObject({ target: A, match: 'exact' });
    expect(t.resolve('api.example', client, undefined, { protocol: 'dtls' })).toMatchObject({ target: B, match: 'wildcard' });
    expect(t.resolve('x.example', client, undefined, { protocol: 'quic' })).toMatchObject({ target: C, match: 'default' });
    const noDefault = mappingsFromYaml(`sniMappings:\n  - { fqdn: api.example, ipv4: 10.0.0.2, port: 4433, protocols: [quic] }\n`);
    expect(noDefault.resolve('api.example', client, undefined, { protocol: 'dtls' })).toEqual({ kind: 'none', why: 'unknown-name' });
  });

  it('probes QUIC targets with probe: quic, passive by default, without a name to ask for', () => {
    const t = mappingsFromYaml(`sniMappings:
  - { fqdn: api.example, ipv4: 10.0.0.2, port: 443, protocols: [quic], health: { probe: quic } }
`);
    expect(t.rules[0]!.health).toEqual({ probe: 'quic', intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 2, onDown: 'keep', passive: true });
    expect(issuesOf('health: { probe: http }\nsniMappings: []\n')).toEqual([{ key: 'health.probe', reason: 'must be dtls, quic, udp or none, got "http"' }]);
  });

  it('refuses an entry that an earlier one of the same name covers whole, and bad values, saying which', () => {
    expect(
      issuesOf(`sniMappings:
  - { fqdn: api.example, ipv4: 10.0.0.2, port: 4433, protocols: [quic] }
  - { fqdn: api.example, ipv4: 10.0.0.3, port: 4433, protocols: [quic], alpn: [h3] }
`),
    ).toEqual([{ key: 'fqdn', reason: 'duplicate of sniMappings[0]: both name api.example, which takes every hello this entry would' }]);
    expect(
      issuesOf(`sniMappings:
  - { fqdn: api.example, ipv4: 10.0.0.2, port: 4433 }
  - { fqdn: API.example., ipv4: 10.0.0.3, port: 4433 }
`),
    ).toEqual([{ key: 'fqdn', reason: 'duplicate of sniMappings[0]: both name api.example' }]);
    expect(issuesOf('sniMappings:\n  - { fqdn: a.example, ipv4: 10.0.0.2, port: 4433, protocols: [tcp] }\n')).toEqual([
      { key: 'protocols[0]', reason: 'must be dtls or quic, got "tcp"' },
    ]);
    expect(issuesOf('sniMappings:\n  - { fqdn: a.example, ipv4: 10.0.0.2, port: 4433, protocols: [quic, quic] }\n')).toEqual([
      { key: 'protocols', reason: 'lists a protocol twice' },
    ]);
    expect(issuesOf('sniMappings:\n  - { fqdn: a.example, ipv4: 10.0.0.2, port: 4433, alpn: [] }\n')[0]?.key).toBe('alpn');
    expect(issuesOf('sniMappings:\n  - { fqdn: a.example, ipv4: 10.0.0.2, port: 4433, alpn: [h3, ""] }\n')).toEqual([
      { key: 'alpn[1]', reason: 'must be a protocol name of 1 to 255 bytes, got ""' },
    ]);
    expect(issuesOf('sniMappings:\n  - { fqdn: a.example, ipv4: 10.0.0.2, port: 4433, protocols: [quic], helloVerify: true }\n')).toEqual([
      { key: 'helloVerify', reason: 'applies to DTLS hellos, and this entry routes QUIC alone' },
    ]);
  });

  it('keeps QUIC entries out of the DTLS mapper: its hellos, and whether the XDP program may answer them', () => {
    const m = new DtlsSniMapper({
      helloVerify: 'per-name',
      mappings: mappingsFromYaml(`sniMappings:
  - { fqdn: foo.example, ipv4: 10.0.0.2, port: 4433, protocols: [dtls], helloVerify: true }
  - { fqdn: foo.example, ipv4: 10.0.0.3, port: 4433, protocols: [quic] }
`),
    });
    // Only the QUIC entry lacks a cookie: every DTLS route still asks for one.
    expect(m.kernelHelloVerify()).toBeDefined();
    const quicOnly = new DtlsSniMapper({ mappings: mappingsFromYaml('sniMappings:\n  - { fqdn: foo.example, ipv4: 10.0.0.3, port: 4433, protocols: [quic] }\n') });
    expect(quicOnly.findFlow({ address: '192.0.2.1', port: 40000 }, [dtlsCapture('ossl_foo')[0]!])).toEqual({ action: 'drop', reason: 'unknown-name' });
  });
});
