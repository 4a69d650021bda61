import type { FlowPair } from '@flowlb/flow-table';
import { describe, expect, it } from 'vitest';
import { ReplyWatch } from './reply-watch.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function pair(clientPort: number, target = { address: '10.0.0.2', port: 4433 }): FlowPair {
  return {
    client: { address: '192.0.2.9', port: clientPort },
    vip: { address: '192.0.2.1', port: 4433 },
    snat: { address: '192.0.2.1', port: 10000 + clientPort },
    target,
  };
}

describe('ReplyWatch', () => {
  it('reports a watched flow left unanswered, and watches one flow per target at a time', async () => {
    const unanswered: Array<[number, number]> = [];
    const asked: number[] = [];
    const watch = new ReplyWatch({
      timeoutMs: (t) => (t.address === '10.0.0.2' ? 30 : undefined),
      replied: (p) => (asked.push(p.client.port), p.client.port === 2 ? true : p.client.port === 3 ? undefined : false),
      onUnanswered: (p, ms) => unanswered.push([p.client.port, ms]),
      onError: (e) => {
        throw e;
      },
    });
    try {
      watch.flowCreated(pair(1));
      // Same target while 1 is watched: not watched. Another target without a timeout: not watched.
      watch.flowCreated(pair(9));
      watch.flowCreated(pair(8, { address: '10.0.0.3', port: 4433 }));
      expect(watch.size).toBe(1);
      for (let i = 0; i < 200 && watch.size > 0; i++) await sleep(5);
      // Answered (2) and gone (3) say nothing.
      for (const port of [2, 3, 4]) {
        watch.flowCreated(pair(port));
        for (let i = 0; i < 200 && watch.size > 0; i++) await sleep(5);
      }
    } finally {
      watch.stop();
    }
    expect(asked).toEqual([1, 2, 3, 4]);
    expect(unanswered).toEqual([
      [1, 30],
      [4, 30],
    ]);
  });

  it('reports a throwing timeout function as an error and watches nothing after stop', async () => {
    const errors: unknown[] = [];
    const watch = new ReplyWatch({
      timeoutMs: () => {
        throw new Error('boom');
      },
      replied: () => false,
      onUnanswered: () => {
        throw new Error('not expected');
      },
      onError: (e) => errors.push(e),
    });
    watch.flowCreated(pair(1));
    expect(errors).toHaveLength(1);
    watch.stop();
    watch.flowCreated(pair(2));
    expect(watch.size).toBe(0);
  });
});
