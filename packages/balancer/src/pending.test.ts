import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PendingClient, PendingClients, type PendingLimits } from './pending.js';

const limits: PendingLimits = {
  maxPendingClients: 3,
  maxPendingPerSource: 100,
  maxDatagramsPerClient: 4,
  maxBytesPerClient: 100,
  maxTotalBytes: 250,
  classifyTimeoutMs: 1000,
};
const MS = 1_000_000n;
const ep = (port: number) => ({ address: '10.0.0.9', port });
const key = (port: number) => `10.0.0.9:${port}`;

describe('PendingClients', () => {
  it('finds a client again by its ip:port string, whatever object the endpoint arrives in', () => {
    const p = new PendingClients(limits);
    const a = p.add(key(1), ep(1), Buffer.from('a'), 0n);
    const b = p.add(`10.0.0.9:${1}`, { address: '10.0.0.9', port: 1 }, Buffer.from('b'), 0n);
    expect('client' in a && a.created).toBe(true);
    expect('client' in b && !b.created && b.client === (a as { client: unknown }).client).toBe(true);
    expect(p.get(key(1))!.datagrams.map(String)).toEqual(['a', 'b']);
  });

  it('says a client is gone once it is removed and no mapper call for it runs any more, once', () => {
    const gone: string[] = [];
    const p = new PendingClients(limits, (c) => gone.push(c.key));
    const idle = p.add(key(1), ep(1), Buffer.from('a'), 0n);
    const busy = p.add(key(2), ep(2), Buffer.from('b'), 0n);
    if (!('client' in idle) || !('client' in busy)) throw new Error('refused');
    busy.client.state = 'classifying';
    p.remove(idle.client);
    p.remove(busy.client);
    expect(gone).toEqual([key(1)]);
    p.remove(idle.client);
    p.settled(busy.client);
    p.settled(busy.client);
    expect(gone).toEqual([key(1), key(2)]);
  });

  it('keeps charging a client removed during a mapper call until the call answers, and gives its key no second call', () => {
    const p = new PendingClients(limits);
    const added = p.add(key(1), ep(1), Buffer.alloc(90), 0n);
    if (!('client' in added)) throw new Error('refused');
    const client = added.client;
    client.state = 'classifying';
    p.add(key(2), ep(2), Buffer.alloc(90), 0n);
    // Timed out while the mapper still holds its 90 bytes.
    expect(p.expire(1000n * MS)).toHaveLength(2);
    expect(p.remove(client)).toHaveLength(1);
    expect([p.size, p.orphans, p.bytes]).toEqual([1, 1, 180]);
    expect(p.add(key(1), ep(1), Buffer.alloc(1), 0n)).toEqual({ dropped: 'mapper-busy' });
    expect(p.add(key(3), ep(3), Buffer.alloc(90), 0n)).toEqual({ dropped: 'total-bytes-limit' });
    expect('client' in p.add(key(3), ep(3), Buffer.alloc(10), 0n)).toBe(true);
    expect(p.add(key(4), ep(4), Buffer.alloc(1), 0n)).toEqual({ dropped: 'pending-clients-limit' });
    // The call answers: the bytes and the key are free again.
    p.settled(client);
    p.settled(client);
    expect([p.orphans, p.bytes]).toEqual([0, 100]);
    expect('client' in p.add(key(1), ep(1), Buffer.alloc(1), 0n)).toBe(true);
  });

  it('refuses a source beyond maxPendingPerSource, and counts it down as its clients go', () => {
    const p = new PendingClients({ ...limits, maxPendingClients: 10, maxPendingPerSource: 2 });
    const other = { address: '10.0.0.10', port: 1 };
    const a = p.add(key(1), ep(1), Buffer.alloc(1), 0n);
    p.add(key(2), ep(2), Buffer.alloc(1), 0n);
    expect(p.add(key(3), ep(3), Buffer.alloc(1), 0n)).toEqual({ dropped: 'source-clients-limit' });
    // Another address is not held back, and a known client of the full source still buffers.
    expect('client' in p.add('10.0.0.10:1', other, Buffer.alloc(1), 0n)).toBe(true);
    expect('client' in p.add(key(1), ep(1), Buffer.alloc(1), 0n)).toBe(true);
    p.remove((a as { client: PendingClient }).client);
    expect('client' in p.add(key(3), ep(3), Buffer.alloc(1), 0n)).toBe(true);
  });

  it('names the client that has waited longest for more datagrams, passing over those being classified or installed', () => {
    const p = new PendingClients(limits);
    const clients = [1, 2, 3].map((i) => (p.add(key(i), ep(i), Buffer.alloc(1), BigInt(i)) as { client: PendingClient }).client);
    clients[0]!.state = 'classifying';
    clients[1]!.state = 'installing';
    expect(p.oldestWaiting()).toBe(clients[2]);
    clients[0]!.state = 'idle';
    expect(p.oldestWaiting()).toBe(clients[0]);
    for (const c of clients) c.state = 'installing';
    expect(p.oldestWaiting()).toBeUndefined();
  });

  it('keeps arrival order through removals from the front, the middle and the back, and a key that comes back', () => {
    const p = new PendingClients({ ...limits, maxPendingClients: 10 });
    const add = (i: number): PendingClient => (p.add(key(i), ep(i), Buffer.alloc(1), BigInt(i)) as { client: PendingClient }).client;
    const c = [1, 2, 3, 4, 5].map(add);
    p.remove(c[2]!);
    p.remove(c[0]!);
    expect(p.oldestWaiting()).toBe(c[1]);
    p.remove(c[4]!);
    p.remove(c[1]!);
    expect(p.oldestWaiting()).toBe(c[3]);
    // Back at the end of the order, behind the client that stayed.
    const again = add(1);
    c[3]!.state = 'classifying';
    expect(p.oldestWaiting()).toBe(again);
    p.remove(c[3]!);
    p.remove(again);
    expect(p.oldestWaiting()).toBeUndefined();
    expect(add(6)).toBe(p.oldestWaiting());
  });

  it('refuses the client beyond maxPendingClients', () => {
    const p = new PendingClients(limits);
    for (let i = 1; i <= 3; i++) expect('client' in p.add(key(i), ep(i), Buffer.alloc(1), 0n)).toBe(true);
    expect(p.add(key(4), ep(4), Buffer.alloc(1), 0n)).toEqual({ dropped: 'pending-clients-limit' });
    // Existing clients still buffer.
    expect('client' in p.add(key(2), ep(2), Buffer.alloc(1), 0n)).toBe(true);
  });

  it('refuses datagrams past the per-client count and byte limits', () => {
    const p = new PendingClients(limits);
    for (let i = 0; i < 4; i++) p.add(key(1), ep(1), Buffer.alloc(1), 0n);
    expect(p.add(key(1), ep(1), Buffer.alloc(1), 0n)).toEqual({ dropped: 'client-datagrams-limit' });
    p.add(key(2), ep(2), Buffer.alloc(90), 0n);
    expect(p.add(key(2), ep(2), Buffer.alloc(11), 0n)).toEqual({ dropped: 'client-bytes-limit' });
    expect('client' in p.add(key(2), ep(2), Buffer.alloc(10), 0n)).toBe(true);
    // A first datagram bigger than the per-client limit does not even create the client.
    expect(p.add(key(3), ep(3), Buffer.alloc(101), 0n)).toEqual({ dropped: 'client-bytes-limit' });
    expect(p.get(key(3))).toBeUndefined();
  });

  it('refuses datagrams past the total byte limit', () => {
    const p = new PendingClients(limits);
    p.add(key(1), ep(1), Buffer.alloc(100), 0n);
    p.add(key(2), ep(2), Buffer.alloc(100), 0n);
    expect(p.add(key(3), ep(3), Buffer.alloc(51), 0n)).toEqual({ dropped: 'total-bytes-limit' });
    expect(p.bytes).toBe(200);
  });

  it('expires a client a timeout after its first datagram; later datagrams do not extend it', () => {
    const p = new PendingClients(limits);
    p.add(key(1), ep(1), Buffer.alloc(1), 0n);
    p.add(key(1), ep(1), Buffer.alloc(1), 900n * MS);
    p.add(key(2), ep(2), Buffer.alloc(1), 500n * MS);
    expect(p.expire(999n * MS)).toEqual([]);
    const expired = p.expire(1000n * MS);
    expect(expired.map((c) => c.key)).toEqual([key(1)]);
    expect(p.remove(expired[0]!)).toHaveLength(2);
    expect(p.size).toBe(1);
    expect(p.nextDeadline()).toBe(1500n * MS);
  });

  it('gives a client whose flow is being installed another timeout instead of expiring it', () => {
    const p = new PendingClients(limits);
    const r = p.add(key(1), ep(1), Buffer.alloc(1), 0n);
    if (!('client' in r)) throw new Error('not added');
    r.client.state = 'installing';
    expect(p.expire(1000n * MS)).toEqual([]);
    expect(p.nextDeadline()).toBe(2000n * MS);
  });

  it('a removed client is no longer current, and removing it twice hands back nothing', () => {
    const p = new PendingClients(limits);
    const r = p.add(key(1), ep(1), Buffer.alloc(7), 0n);
    if (!('client' in r)) throw new Error('not added');
    expect(p.remove(r.client)).toHaveLength(1);
    expect(p.isCurrent(r.client)).toBe(false);
    expect(p.remove(r.client)).toEqual([]);
    expect(p.bytes).toBe(0);
    expect(p.datagrams).toBe(0);
  });

  it('never exceeds any limit, and its totals always match its clients, under any flood', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ add: fc.integer({ min: 0, max: 9 }), len: fc.integer({ min: 0, max: 120 }) }),
            fc.record({ remove: fc.integer({ min: 0, max: 9 }) }),
            fc.record({ expireAt: fc.integer({ min: 0, max: 3000 }) }),
          ),
          { maxLength: 300 },
        ),
        (ops) => {
          const p = new PendingClients(limits);
          let now = 0n;
          let accepted = 0;
          let refused = 0;
          let removed = 0;
          for (const op of ops) {
            now += MS;
            if ('add' in op) {
              const r = p.add(key(op.add), ep(op.add), Buffer.alloc(op.len), now);
              if ('client' in r) accepted++;
              else refused++;
            } else if ('remove' in op) {
              const c = p.get(key(op.remove));
              if (c) removed += p.remove(c).length;
            } else {
              for (const c of p.expire(BigInt(op.expireAt) * MS)) removed += p.remove(c).length;
            }
            expect(p.size).toBeLessThanOrEqual(limits.maxPendingClients);
            expect(p.bytes).toBeLessThanOrEqual(limits.maxTotalBytes);
            let bytes = 0;
            let datagrams = 0;
            for (const c of p.all()) {
              expect(c.datagrams.length).toBeLessThanOrEqual(limits.maxDatagramsPerClient);
              expect(c.bytes).toBeLessThanOrEqual(limits.maxBytesPerClient);
              bytes += c.bytes;
              datagrams += c.datagrams.length;
            }
            expect(p.bytes).toBe(bytes);
            expect(p.datagrams).toBe(datagrams);
            // Every datagram offered is either refused, waiting, or was handed back.
            expect(accepted).toBe(datagrams + removed);
          }
          expect(accepted + refused).toBe(ops.filter((o) => 'add' in o).length);
        },
      ),
    );
  });
});
