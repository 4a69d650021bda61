import { describe, expect, it } from 'vitest';
import { endpointKey } from './decisions.js';
import { hashMapper } from './hash-mapper.js';
import { RendezvousSet } from './rendezvous.js';
import type { Decision } from './types.js';

const targets = [
  { address: '10.0.0.1', port: 4433 },
  { address: '10.0.0.2', port: 4433 },
  { address: '10.0.0.3', port: 4433 },
];
const clients = Array.from({ length: 30000 }, (_, i) => `192.0.2.${i % 250}:${1024 + i}`);

/** The scoring rule written out directly from its definition, over UTF-8 bytes. */
function referencePick(list: readonly { address: string; port: number }[], clientKey: string) {
  const fnv = (bytes: Uint8Array, state: number) => {
    let h = state;
    for (const b of bytes) h = Math.imul(h ^ b, 0x01000193);
    return h >>> 0;
  };
  const fmix = (v: number) => {
    let h = v;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    return (h ^ (h >>> 16)) >>> 0;
  };
  const enc = new TextEncoder();
  const state = fnv(enc.encode(clientKey), 0x811c9dc5);
  let best: { key: string; score: number; target: (typeof list)[number] } | undefined;
  for (const t of list) {
    const key = `\n${t.address}:${t.port}`;
    const score = fmix(fnv(enc.encode(key), state));
    if (best === undefined || score > best.score || (score === best.score && key < best.key)) best = { key, score, target: t };
  }
  return best!.target;
}

describe('RendezvousSet', () => {
  it('returns the only target without hashing', () => {
    const one = new RendezvousSet([targets[0]!]);
    expect(one.pick('anything')).toBe(targets[0]);
  });

  it('scores exactly as defined', () => {
    const set = new RendezvousSet(targets);
    for (const c of clients.slice(0, 3000)) expect(set.pick(c)).toBe(referencePick(targets, c));
    expect(new RendezvousSet(targets).pick('[2001:db8::1]:443')).toBe(referencePick(targets, '[2001:db8::1]:443'));
  });

  it('is what hashMapper picks', () => {
      const mapper = hashMapper(targets);
      const set = new RendezvousSet(targets);
      for (let port = 1000; port < 2000; port++) {
        const client = { address: '198.51.100.9', port };
        const decision = mapper.findFlow(client, []) as Decision;
        expect(decision.action === 'forward' && decision.flow.dstAddr).toEqual(set.pick(endpointKey(client)));
      }
  });

  it('gives a client the same target every time, whatever the order of the list', () => {
    const a = new RendezvousSet(targets);
    const b = new RendezvousSet([...targets].reverse());
    for (const c of clients.slice(0, 2000)) {
      expect(a.pick(c)).toBe(a.pick(c));
      expect(b.pick(c)).toBe(a.pick(c));
    }
  });

  it('spreads clients evenly', () => {
    const set = new RendezvousSet(targets);
    const counts = new Map<string, number>();
    for (const c of clients) {
      const t = set.pick(c);
      counts.set(t.address, (counts.get(t.address) ?? 0) + 1);
    }
    expect(counts.size).toBe(3);
    for (const n of counts.values()) expect(Math.abs(n / clients.length - 1 / 3)).toBeLessThan(0.02);
  });

  it('moves only the clients of a removed target, and about 1/n to an added one', () => {
    const full = new RendezvousSet(targets);
    const fewer = new RendezvousSet(targets.slice(0, 2));
    const more = new RendezvousSet([...targets, { address: '10.0.0.4', port: 4433 }]);
    let movedToNew = 0;
    let movedElsewhere = 0;
    let movedOffRemaining = 0;
    for (const c of clients) {
      const before = full.pick(c);
      if (before.address !== '10.0.0.3' && fewer.pick(c) !== before) movedOffRemaining++;
      const after = more.pick(c);
      if (after.address === '10.0.0.4') movedToNew++;
      else if (after !== before) movedElsewhere++;
    }
    expect(movedOffRemaining).toBe(0);
    expect(movedElsewhere).toBe(0);
    expect(Math.abs(movedToNew / clients.length - 1 / 4)).toBeLessThan(0.02);
  });

  it('gives weighted targets shares in proportion to their weights', () => {
    const set = new RendezvousSet(targets, [2, 1, 1]);
    const counts = [0, 0, 0];
    for (const c of clients) counts[set.pickIndex(c)]!++;
    expect(Math.abs(counts[0]! / clients.length - 0.5)).toBeLessThan(0.02);
    expect(Math.abs(counts[1]! / clients.length - 0.25)).toBeLessThan(0.02);
    expect(Math.abs(counts[2]! / clients.length - 0.25)).toBeLessThan(0.02);
  });

  it('with equal weights, picks what the unweighted rule picks', () => {
    const plain = new RendezvousSet(targets);
    const equal = new RendezvousSet(targets, [3, 3, 3]);
    for (const c of clients.slice(0, 5000)) expect(equal.pick(c)).toBe(plain.pick(c));
  });

  it('passes over targets that are not usable, moving only their own clients, weighted or not', () => {
    for (const weights of [undefined, [3, 1, 2]]) {
      const set = new RendezvousSet(targets, weights);
      let moved = 0;
      for (const c of clients) {
        const before = set.pickIndex(c);
        const after = set.pickIndex(c, (i) => i !== 1);
        if (before !== 1) expect(after).toBe(before);
        else {
          expect(after).not.toBe(1);
          moved++;
        }
      }
      expect(moved).toBeGreaterThan(0);
      expect(set.pickIndex(clients[0]!, () => false)).toBe(-1);
    }
  });

  it('refuses weights it cannot use', () => {
    expect(() => new RendezvousSet(targets, [1, 2])).toThrow(RangeError);
    for (const w of [0, -1, 1.5, Number.NaN, 10_001]) expect(() => new RendezvousSet(targets, [1, w, 1])).toThrow(RangeError);
  });
});
