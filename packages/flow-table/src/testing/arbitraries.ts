import fc from 'fast-check';
import type { Endpoint, FlowKey, FlowPair, FlowValue } from '../types.js';

export const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
export const port = fc.integer({ min: 0, max: 65535 });
export const endpoint: fc.Arbitrary<Endpoint> = fc.record({ address: ipv4, port });

export const flowKey: fc.Arbitrary<FlowKey> = fc.record({ dstAddr: ipv4, srcAddr: ipv4, dstPort: port, srcPort: port });

export const flowValue: fc.Arbitrary<FlowValue> = fc.record({
  dstAddr: ipv4,
  srcAddr: ipv4,
  dstPort: port,
  srcPort: port,
  flags: fc.integer({ min: 0, max: 0xffffffff }),
  lastUsed: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
});

export const flowPair: fc.Arbitrary<FlowPair> = fc.record({ client: endpoint, vip: endpoint, snat: endpoint, target: endpoint });

/** A pair as the balancer builds them, for tests that need realistic, distinct flows. */
export function examplePair(i: number): FlowPair {
  return {
    client: { address: `198.51.${(i >> 8) & 255}.${i & 255}`, port: 40000 + (i % 20000) },
    vip: { address: '192.0.2.10', port: 443 },
    snat: { address: '192.0.2.10', port: 20000 + (i % 40000) },
    target: { address: `10.0.${(i >> 16) & 255}.${1 + (i % 200)}`, port: 8443 },
  };
}
