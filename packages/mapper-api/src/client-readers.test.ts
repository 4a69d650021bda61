import { describe, expect, it } from 'vitest';
import { ClientReaders, type DatagramReader } from './client-readers.js';

/** Says how many datagrams it was fed and holds one byte per byte fed: enough to see what the cache does. */
class Tally implements DatagramReader<number> {
  count = 0;
  footprint = 0;
  add(d: Uint8Array): void {
    this.count++;
    this.footprint += d.length;
  }
  result(): number {
    return this.count;
  }
}

const dg = (n: number): Uint8Array => new Uint8Array(n);

describe('ClientReaders', () => {
  it('feeds each datagram once across calls, and starts over when the datagrams are not a continuation', () => {
    const readers = new ClientReaders(() => new Tally());
    const a = [dg(10), dg(20), dg(30)];
    expect(readers.read('c', a.slice(0, 1))).toBe(1);
    expect(readers.read('c', a.slice(0, 3))).toBe(3);
    expect(readers.datagramsRead).toBe(3);
    expect(readers.bytes).toBe(60);
    // Other objects: a client that started over.
    expect(readers.read('c', [dg(10)])).toBe(1);
    expect(readers.datagramsRead).toBe(4);
    expect(readers.bytes).toBe(10);
    readers.forget('c');
    readers.forget('nobody');
    expect([readers.size, readers.bytes]).toEqual([0, 0]);
  });

  it('stays within its bounds in clients and bytes, dropping the least recently used, which is then read afresh', () => {
    const readers = new ClientReaders(() => new Tally(), { maxClients: 3, maxBytes: 1 << 20 });
    const held = ['a', 'b', 'c', 'd'].map((key) => ({ key, packets: [dg(5)] }));
    for (const h of held) readers.read(h.key, h.packets);
    expect(readers.size).toBe(3);
    readers.read('d', held[3]!.packets);
    expect(readers.datagramsRead).toBe(4);
    readers.read('a', held[0]!.packets);
    expect(readers.datagramsRead).toBe(5);

    const byBytes = new ClientReaders(() => new Tally(), { maxClients: 100, maxBytes: 25 });
    byBytes.read('x', [dg(20)]);
    byBytes.read('y', [dg(20)]);
    expect(byBytes.size).toBe(1);
    expect(byBytes.bytes).toBe(20);
    byBytes.read('z', [dg(30)]);
    expect([byBytes.size, byBytes.bytes]).toEqual([0, 0]);
  });
});
