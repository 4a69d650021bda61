import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { endpointKey } from './decisions.js';
import { hashMapper } from './hash-mapper.js';
import type { FlowMapper, UdpEndpoint } from './types.js';

function targetOf(m: FlowMapper, client: UdpEndpoint): string {
  const d = m.findFlow(client, []);
  if (d instanceof Promise || d.action !== 'forward') throw new Error('expected a synchronous forward');
  return endpointKey(d.flow.dstAddr);
}

const targets = [1, 2, 3, 4, 5].map((i) => ({ address: `10.0.0.${i}`, port: 9000 }));

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
const client = fc.record({ address: ipv4, port: fc.integer({ min: 1, max: 65535 }) });
const targetList = fc.uniqueArray(fc.record({ address: ipv4, port: fc.integer({ min: 1, max: 65535 }) }), {
  minLength: 2,
  maxLength: 8,
  selector: (t) => endpointKey(t),
});

describe('hashMapper', () => {
  it('sends the same client to the same target, also from a fresh mapper', () => {
    fc.assert(
      fc.property(client, (c) => {
        expect(targetOf(hashMapper(targets), c)).toBe(targetOf(hashMapper(targets), { ...c }));
      }),
    );
  });

  it('does not depend on the order of the targets', () => {
    fc.assert(
      fc.property(targetList, client, (list, c) => {
        expect(targetOf(hashMapper([...list].reverse()), c)).toBe(targetOf(hashMapper(list), c));
      }),
    );
  });

  it('moves only the clients of a removed target', () => {
    fc.assert(
      fc.property(targetList, fc.nat(), fc.array(client, { minLength: 1, maxLength: 50 }), (list, pick, clients) => {
        const removed = list[pick % list.length]!;
        const before = hashMapper(list);
        const after = hashMapper(list.filter((t) => t !== removed));
        for (const c of clients) {
          const was = targetOf(before, c);
          const now = targetOf(after, c);
          if (was !== endpointKey(removed)) expect(now).toBe(was);
          else expect(now).not.toBe(was);
        }
      }),
    );
  });

  it('spreads clients evenly, including sequential ports behind one address', () => {
    const m = hashMapper(targets);
    const share = (clients: UdpEndpoint[]) => {
      const counts = new Map<string, number>();
      for (const c of clients) counts.set(targetOf(m, c), (counts.get(targetOf(m, c)) ?? 0) + 1);
      return [...counts.values()].map((n) => n / clients.length);
    };
    const natted = Array.from({ length: 20000 }, (_, i) => ({ address: '198.51.100.7', port: 10000 + i }));
    const spread = Array.from({ length: 20000 }, (_, i) => ({
      address: `172.16.${(i >> 8) & 255}.${i & 255}`,
      port: 5000,
    }));
    for (const shares of [share(natted), share(spread)]) {
      expect(shares).toHaveLength(5);
      for (const s of shares) {
        expect(s).toBeGreaterThan(0.18);
        expect(s).toBeLessThan(0.22);
      }
    }
  });

  it('keys by address alone when asked, so all ports of a host share a target', () => {
    const m = hashMapper(targets, { by: 'address' });
    const ports = Array.from({ length: 200 }, (_, i) => targetOf(m, { address: '203.0.113.9', port: 1000 + i }));
    expect(new Set(ports).size).toBe(1);
    const byEndpoint = hashMapper(targets);
    const spread = Array.from({ length: 200 }, (_, i) => targetOf(byEndpoint, { address: '203.0.113.9', port: 1000 + i }));
    expect(new Set(spread).size).toBe(5);
  });

  it('returns a copy of the target each time', () => {
    const m = hashMapper(targets);
    const c = { address: '192.0.2.1', port: 1 };
    const d = m.findFlow(c, []);
    if (d instanceof Promise || d.action !== 'forward') throw new Error('expected a forward');
    const chosen = endpointKey(d.flow.dstAddr);
    d.flow.dstAddr.port = 1;
    expect(targetOf(m, c)).toBe(chosen);
  });

  it('keeps its own copy of the target list', () => {
    const list = [...targets];
    const m = hashMapper(list);
    const c = { address: '192.0.2.77', port: 7 };
    const chosen = targetOf(m, c);
    list.length = 0;
    expect(targetOf(m, c)).toBe(chosen);
  });

  it('rejects bad input when built', () => {
    expect(() => hashMapper([])).toThrow(/at least one target/);
    expect(() => hashMapper([{ address: '10.0.0.1', port: 1 }, { address: '10.0.0.1', port: 1 }])).toThrow(
      /10\.0\.0\.1:1 is listed more than once/,
    );
    expect(() => hashMapper([{ address: '10.0.0.1', port: 1 }, { address: 'x', port: 1 }])).toThrow(/target 1/);
    expect(() => hashMapper(targets, { by: 'port' as never })).toThrow(/option "by"/);
  });

  it('forwards everything to a lone target', () => {
    const m = hashMapper([{ address: '2001:db8::5', port: 53 }]);
    fc.assert(
      fc.property(client, (c) => {
        expect(targetOf(m, c)).toBe('[2001:db8::5]:53');
      }),
    );
  });
});
