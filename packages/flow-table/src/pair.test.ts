import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FLOW_F_REVERSE } from './layout.js';
import { forwardEntry, isReverse, pairFromEntry, partnerKey, reverseEntry, sameRewrite, snatPortOf } from './pair.js';
import { flowPair } from './testing/arbitraries.js';
import type { FlowPair } from './types.js';

const pair: FlowPair = {
  client: { address: '198.51.100.7', port: 51000 },
  vip: { address: '192.0.2.10', port: 443 },
  snat: { address: '192.0.2.11', port: 20001 },
  target: { address: '10.0.0.2', port: 8443 },
};

describe('forward and reverse entries', () => {
  it('follow the table in DESIGN.md', () => {
    expect(forwardEntry(pair, 5n)).toEqual([
      // key: VIP, C.ip, VIP.port, C.port
      { dstAddr: '192.0.2.10', srcAddr: '198.51.100.7', dstPort: 443, srcPort: 51000 },
      // value: T.ip, SNAT, T.port, P
      { dstAddr: '10.0.0.2', srcAddr: '192.0.2.11', dstPort: 8443, srcPort: 20001, flags: 0, lastUsed: 5n },
    ]);
    expect(reverseEntry(pair, 6n)).toEqual([
      // key: SNAT, T.ip, P, T.port
      { dstAddr: '192.0.2.11', srcAddr: '10.0.0.2', dstPort: 20001, srcPort: 8443 },
      // value: C.ip, VIP, C.port, VIP.port, REVERSE
      { dstAddr: '198.51.100.7', srcAddr: '192.0.2.10', dstPort: 51000, srcPort: 443, flags: FLOW_F_REVERSE, lastUsed: 6n },
    ]);
  });

  it('default last_used to 0', () => {
    expect(forwardEntry(pair)[1].lastUsed).toBe(0n);
    expect(reverseEntry(pair)[1].lastUsed).toBe(0n);
  });

  it('point at each other: each value, swapped, is the other key', () => {
    fc.assert(
      fc.property(flowPair, (p) => {
        const [fk, fv] = forwardEntry(p);
        const [rk, rv] = reverseEntry(p);
        expect(partnerKey(fv)).toEqual(rk);
        expect(partnerKey(rv)).toEqual(fk);
      }),
    );
  });

  it('each give back the pair', () => {
    fc.assert(
      fc.property(flowPair, (p) => {
        expect(pairFromEntry(...forwardEntry(p))).toEqual(p);
        expect(pairFromEntry(...reverseEntry(p))).toEqual(p);
      }),
    );
  });

  it('are told apart by the reverse flag alone', () => {
    expect(isReverse(forwardEntry(pair)[1])).toBe(false);
    expect(isReverse(reverseEntry(pair)[1])).toBe(true);
    expect(isReverse({ flags: 0xfffffffe })).toBe(false);
    expect(isReverse({ flags: 3 })).toBe(true);
  });
});

describe('snatPortOf', () => {
  it("gives the flow's SNAT port from either of its entries", () => {
    fc.assert(
      fc.property(flowPair, (pair) => {
        for (const [key, value] of [forwardEntry(pair), reverseEntry(pair)]) expect(snatPortOf(key, value)).toBe(pair.snat.port);
      }),
    );
  });
});

describe('sameRewrite', () => {
  it('compares the rewrite and ignores flags and last_used', () => {
    const [, v] = forwardEntry(pair, 1n);
    expect(sameRewrite({ ...v, flags: 9, lastUsed: 99n }, v)).toBe(true);
    expect(sameRewrite({ ...v, srcPort: v.srcPort + 1 }, v)).toBe(false);
    expect(sameRewrite({ ...v, dstAddr: '10.0.0.3' }, v)).toBe(false);
  });
});
