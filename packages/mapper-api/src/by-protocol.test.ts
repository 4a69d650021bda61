import { describe, expect, it } from 'vitest';
import { byProtocol, detectProtocol } from './by-protocol.js';
import { drop, forward, wait } from './decisions.js';
import type { FlowMapper, UdpEndpoint } from './types.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

/** The first 13 bytes of a DTLS 1.2 ClientHello record and of a DTLS 1.0 one. */
const DTLS12 = hex('16 fefd 0000 000000000000 0100');
const DTLS10 = hex('16 feff 0000 000000000000 0100');
/** Long headers: a QUIC v1 Initial, a v2 Initial, a version nobody knows. */
const QUIC_V1 = hex('c3 00000001 08 8394c8f03e515708');
const QUIC_V2 = hex('d3 6b3343cf 08 8394c8f03e515708');
const QUIC_UNKNOWN = hex('c0 1a2a3a4a 00');

describe('detectProtocol', () => {
  it('tells DTLS records from QUIC long headers, and neither from anything else', () => {
    expect(detectProtocol(DTLS12)).toBe('dtls');
    expect(detectProtocol(DTLS10)).toBe('dtls');
    expect(detectProtocol(QUIC_V1)).toBe('quic');
    expect(detectProtocol(QUIC_V2)).toBe('quic');
    expect(detectProtocol(QUIC_UNKNOWN)).toBe('quic');
    // A TLS (not DTLS) record, a DTLS alert, a QUIC short header, too short, empty.
    expect(detectProtocol(hex('16 0303 0000 000000000000 0100'))).toBeUndefined();
    expect(detectProtocol(hex('15 fefd 0000 000000000000 0002'))).toBeUndefined();
    expect(detectProtocol(hex('43 0102030405060708'))).toBeUndefined();
    expect(detectProtocol(DTLS12.subarray(0, 12))).toBeUndefined();
    expect(detectProtocol(QUIC_V1.subarray(0, 4))).toBeUndefined();
    expect(detectProtocol(new Uint8Array(0))).toBeUndefined();
  });

  it('never throws on any first byte, and never calls anything both', () => {
    for (let b = 0; b < 256; b++) {
      const d = new Uint8Array(16).fill(0xfe);
      d[0] = b;
      const p = detectProtocol(d);
      if (p === 'dtls') expect(b).toBe(22);
      if (p === 'quic') expect(b & 0x80).toBe(0x80);
    }
  });
});

describe('byProtocol', () => {
  const target = (port: number): UdpEndpoint => ({ address: '10.0.0.1', port });
  const recording = (name: string, calls: string[], released: string[]): FlowMapper => ({
    findFlow: (client, packets) => {
      calls.push(`${name}:${client.port}:${packets.length}`);
      return packets.length < 2 ? wait() : forward(target(name === 'dtls' ? 1 : 2));
    },
    release: (client) => released.push(`${name}:${client.port}`),
  });

  it("hands every call of a client to the mapper of its first datagram's protocol", () => {
    const calls: string[] = [];
    const released: string[] = [];
    const m = byProtocol({ dtls: recording('dtls', calls, released), quic: recording('quic', calls, released) });
    const c = { address: '192.0.2.1', port: 5 };
    expect(m.findFlow(c, [DTLS12])).toEqual(wait());
    // A later datagram that looks like QUIC does not move the client.
    expect(m.findFlow(c, [DTLS12, QUIC_V1])).toEqual(forward(target(1)));
    const q = { address: '192.0.2.1', port: 6 };
    expect(m.findFlow(q, [QUIC_V2, DTLS12])).toEqual(forward(target(2)));
    expect(calls).toEqual(['dtls:5:1', 'dtls:5:2', 'quic:6:2']);
    m.release?.(c);
    expect(released).toEqual(['dtls:5', 'quic:5']);
  });

  it('drops what no mapper takes, saying why, or hands it to `other`', () => {
    const c = { address: '192.0.2.1', port: 7 };
    const onlyDtls = byProtocol({ dtls: { findFlow: () => forward(target(1)) } });
    expect(onlyDtls.findFlow(c, [QUIC_V1])).toEqual(drop('no mapper for quic'));
    expect(onlyDtls.findFlow(c, [hex('00')])).toEqual(drop('not-dtls-or-quic'));
    expect(onlyDtls.findFlow(c, [])).toEqual(drop('not-dtls-or-quic'));
    const withOther = byProtocol({ other: { findFlow: () => forward(target(9)) } });
    expect(withOther.findFlow(c, [hex('00')])).toEqual(forward(target(9)));
    expect(() => byProtocol({ quic: {} as FlowMapper })).toThrow(/quic is not a FlowMapper/);
  });
});
