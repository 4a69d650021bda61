import { describe, expect, it } from 'vitest';
import { drop, forward, reply, wait } from './decisions.js';
import { firstOf } from './first-of.js';
import type { Decision, FlowMapper } from './types.js';

const client = { address: '192.0.2.1', port: 5000 };
const packets = [new Uint8Array([1, 2, 3])];
const T1 = { address: '10.0.0.1', port: 1 };
const T2 = { address: '10.0.0.2', port: 2 };

/** A mapper that answers `decision` and records that it was asked. */
function answering(decision: Decision | (() => Decision), calls: string[], name: string): FlowMapper {
  return {
    findFlow(c, p) {
      expect(c).toBe(client);
      expect(p).toBe(packets);
      calls.push(name);
      return typeof decision === 'function' ? decision() : decision;
    },
  };
}

function asyncly(m: FlowMapper): FlowMapper {
  return { findFlow: async (c, p) => m.findFlow(c, p) };
}

describe('firstOf', () => {
  it('answers with the first forward and asks no further', () => {
    const calls: string[] = [];
    const m = firstOf(
      answering(drop('not mine'), calls, 'a'),
      answering(forward(T1), calls, 'b'),
      answering(forward(T2), calls, 'c'),
    );
    expect(m.findFlow(client, packets)).toEqual(forward(T1));
    expect(calls).toEqual(['a', 'b']);
  });

  it('passes release on to every mapper that has it', () => {
    const released: string[] = [];
    const keeper = (name: string): FlowMapper => ({ findFlow: () => drop(name), release: (c) => released.push(`${name} ${c.port}`) });
    const m = firstOf(keeper('a'), answering(wait(), [], 'b'), keeper('c'));
    m.release!(client);
    expect(released).toEqual([`a ${client.port}`, `c ${client.port}`]);
  });

  it('answers with a reply and asks no further', () => {
    const calls: string[] = [];
    const challenge = reply([Uint8Array.of(1, 2, 3)], 'prove your address');
    const m = firstOf(answering(drop('not mine'), calls, 'a'), answering(challenge, calls, 'b'), answering(forward(T2), calls, 'c'));
    expect(m.findFlow(client, packets)).toEqual(challenge);
    expect(calls).toEqual(['a', 'b']);
  });

  it('answers wait when an earlier mapper waits, even if a later one would forward', () => {
    const calls: string[] = [];
    const m = firstOf(answering(wait(), calls, 'a'), answering(forward(T2), calls, 'b'));
    expect(m.findFlow(client, packets)).toEqual(wait());
    expect(calls).toEqual(['a']);
  });

  it('lets a later mapper wait after earlier drops', () => {
    const calls: string[] = [];
    const m = firstOf(answering(drop('x'), calls, 'a'), answering(wait(), calls, 'b'));
    expect(m.findFlow(client, packets)).toEqual(wait());
  });

  it('drops with every reason, in order, when all drop', () => {
    const calls: string[] = [];
    const m = firstOf(
      answering(drop('no SNI'), calls, 'a'),
      answering(() => {
        throw new Error('mapping file unreadable');
      }, calls, 'b'),
      answering(undefined as unknown as Decision, calls, 'c'),
      answering(drop('blocked'), calls, 'd'),
    );
    expect(m.findFlow(client, packets)).toEqual(
      drop('no SNI; mapping file unreadable; mapper returned something that is not a decision; blocked'),
    );
    expect(calls).toEqual(['a', 'b', 'c', 'd']);
  });

  it('stays synchronous while every mapper is', () => {
    const m = firstOf(answering(drop('a'), [], 'a'), answering(forward(T1), [], 'b'));
    expect(m.findFlow(client, packets)).not.toBeInstanceOf(Promise);
  });

  it('follows the same rule through asynchronous mappers and rejections', async () => {
    const calls: string[] = [];
    const m = firstOf(
      asyncly(answering(drop('first'), calls, 'a')),
      { findFlow: () => Promise.reject(new Error('second failed')) },
      answering(drop('third'), calls, 'c'),
      asyncly(answering(forward(T2), calls, 'd')),
      answering(forward(T1), calls, 'e'),
    );
    const result = m.findFlow(client, packets);
    expect(result).toBeInstanceOf(Promise);
    expect(await result).toEqual(forward(T2));
    expect(calls).toEqual(['a', 'c', 'd']);

    const allDrop = firstOf(asyncly(answering(drop('x'), [], 'x')), { findFlow: () => Promise.reject('y') });
    expect(await allDrop.findFlow(client, packets)).toEqual(drop('x; y'));

    const waits = firstOf(asyncly(answering(wait(), [], 'w')), answering(forward(T1), [], 'f'));
    expect(await waits.findFlow(client, packets)).toEqual(wait());
  });

  it('does not share reasons between calls', () => {
    const m = firstOf(answering(drop('a'), [], 'a'), answering(drop('b'), [], 'b'));
    m.findFlow(client, packets);
    expect(m.findFlow(client, packets)).toEqual(drop('a; b'));
  });

  it('rejects an empty list and non-mappers when built', () => {
    expect(() => firstOf()).toThrow(/at least one mapper/);
    expect(() => firstOf(answering(wait(), [], 'a'), {} as FlowMapper)).toThrow(/argument 1 is not a FlowMapper/);
  });
});
