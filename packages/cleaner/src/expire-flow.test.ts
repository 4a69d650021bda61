import { MemoryFlowTable, flowKeyId, forwardEntry, reverseEntry } from '@flowlb/flow-table';
import type { FlowKey, FlowPair } from '@flowlb/flow-table';
import { describe, expect, it } from 'vitest';
import { expireIfIdle } from './expire-flow.js';

const TTL = 1_000n;

function pair(i: number): FlowPair {
  return {
    client: { address: `198.51.100.${i}`, port: 40000 + i },
    vip: { address: '192.0.2.10', port: 443 },
    snat: { address: '192.0.2.10', port: 20000 + i },
    target: { address: '10.0.0.2', port: 8443 },
  };
}

/** A table that records deletions and refuses every write once armed. */
class WatchedTable extends MemoryFlowTable {
  readonly deleted: string[] = [];
  frozen = false;

  override set(...args: Parameters<MemoryFlowTable['set']>): void {
    if (this.frozen) throw new Error('the cleaner wrote to the table');
    super.set(...args);
  }

  override delete(key: FlowKey): boolean {
    this.deleted.push(flowKeyId(key));
    return super.delete(key);
  }
}

function setup(...pairs: FlowPair[]): WatchedTable {
  const t = new WatchedTable();
  for (const p of pairs) t.installPair(p, 0n);
  t.frozen = true;
  return t;
}

const fwdKey = (p: FlowPair) => forwardEntry(p)[0];
const revKey = (p: FlowPair) => reverseEntry(p)[0];

describe('expireIfIdle', () => {
  it('removes a flow whose client never spoke again once its forward entry is older than the shorter TTL', () => {
    const p = pair(1);
    const t = setup(p);
    // The backend keeps answering (a server's retransmissions to a forged source).
    t.touch(revKey(p), 350n);
    expect(expireIfIdle(t, revKey(p), 200n, TTL, 300n)).toBeUndefined();
    expect(expireIfIdle(t, fwdKey(p), 200n, TTL, 300n)).toBeUndefined();
    const gone = expireIfIdle(t, revKey(p), 400n, TTL, 300n);
    expect(gone).toMatchObject({ kind: 'pair', unconfirmed: true, pair: p });
    expect(t.count()).toBe(0);
  });

  it('keeps a confirmed flow to the full TTL however old its forward entry, and marks nothing else unconfirmed', () => {
    const p = pair(1);
    const t = setup(p);
    // The client spoke once, long ago (touch confirms the forward entry); the backend is still talking.
    t.touch(fwdKey(p), 100n);
    t.touch(revKey(p), 1_400n);
    for (const key of [fwdKey(p), revKey(p)]) expect(expireIfIdle(t, key, 1_500n, TTL, 300n)).toBeUndefined();
    expect(expireIfIdle(t, fwdKey(p), 2_500n, TTL, 300n)).toMatchObject({ kind: 'pair', unconfirmed: false });
  });

  it('removes an unconfirmed forward half early too, but a reverse half only at the full TTL', () => {
    const a = pair(1);
    const b = pair(2);
    const t = new WatchedTable();
    t.set(...forwardEntry(a, 0n));
    t.set(...reverseEntry(b, 0n));
    expect(expireIfIdle(t, revKey(b), 400n, TTL, 300n)).toBeUndefined();
    expect(expireIfIdle(t, fwdKey(a), 400n, TTL, 300n)).toMatchObject({ kind: 'forward-only', unconfirmed: true });
    expect(expireIfIdle(t, revKey(b), 1_001n, TTL, 300n)).toMatchObject({ kind: 'reverse-only', unconfirmed: false });
  });

  it('keeps a flow whose reverse entry is fresh (server-to-client traffic only)', () => {
    const p = pair(1);
    const t = setup(p);
    t.touch(revKey(p), 500n);
    for (const key of [fwdKey(p), revKey(p)]) expect(expireIfIdle(t, key, 1_200n, TTL)).toBeUndefined();
    expect(t.count()).toBe(2);
    expect(t.deleted).toEqual([]);
  });

  it('keeps a flow whose forward entry is fresh', () => {
    const p = pair(1);
    const t = setup(p);
    t.touch(fwdKey(p), 500n);
    for (const key of [fwdKey(p), revKey(p)]) expect(expireIfIdle(t, key, 1_200n, TTL)).toBeUndefined();
    expect(t.count()).toBe(2);
  });

  it('keeps a flow idle for exactly the TTL', () => {
    const t = setup(pair(1));
    expect(expireIfIdle(t, fwdKey(pair(1)), 1_000n, TTL)).toBeUndefined();
  });

  it.each([
    ['forward', fwdKey],
    ['reverse', revKey],
  ])('removes an idle flow found from its %s entry, forward entry first', (_, keyOf) => {
    const p = pair(2);
    const t = setup(p);
    t.touch(revKey(p), 300n);
    expect(expireIfIdle(t, keyOf(p), 1_500n, TTL)).toEqual({ pair: p, kind: 'pair', lastUsed: 300n, idleNs: 1_200n, unconfirmed: false });
    expect(t.deleted).toEqual([flowKeyId(fwdKey(p)), flowKeyId(revKey(p))]);
    expect(t.count()).toBe(0);
    expect(expireIfIdle(t, keyOf(p), 1_500n, TTL)).toBeUndefined();
  });

  it('removes an idle half by its own last_used and says which half', () => {
    const a = pair(3);
    const b = pair(4);
    const t = setup(a, b);
    t.delete(revKey(a));
    t.delete(fwdKey(b));
    t.deleted.length = 0;
    expect(expireIfIdle(t, fwdKey(a), 2_000n, TTL)).toMatchObject({ pair: a, kind: 'forward-only', lastUsed: 0n });
    expect(expireIfIdle(t, revKey(b), 2_000n, TTL)).toMatchObject({ pair: b, kind: 'reverse-only', lastUsed: 0n });
    expect(t.count()).toBe(0);
  });

  it('leaves the entry of another flow that took over the partner key', () => {
    const old = pair(5);
    const t = new WatchedTable();
    t.set(...forwardEntry(old, 0n));
    // A newer flow from another client reuses the SNAT port towards the same target: same reverse key.
    const newer = { ...pair(6), snat: old.snat, target: old.target };
    t.installPair(newer, 0n);
    t.touch(fwdKey(newer), 1_900n);
    t.frozen = true;
    expect(expireIfIdle(t, fwdKey(old), 2_000n, TTL)).toMatchObject({ kind: 'forward-only', pair: old });
    expect(t.get(revKey(newer))).toBeDefined();
    // The newer flow's reverse entry is idle but its forward entry is not.
    expect(expireIfIdle(t, revKey(newer), 2_000n, TTL)).toBeUndefined();
    expect(t.count()).toBe(2);
  });

  it('does nothing for a key that is not in the table', () => {
    const t = setup();
    expect(expireIfIdle(t, fwdKey(pair(7)), 10_000n, TTL)).toBeUndefined();
    expect(t.deleted).toEqual([]);
  });
});
