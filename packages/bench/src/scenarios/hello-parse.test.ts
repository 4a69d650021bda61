import { describe, expect, it } from 'vitest';
import { arrivals, decideAsArrived, describeDecision, dtlsMapper, helloCases, quicMapper } from './hello-parse.js';

const client = { address: '192.0.2.7', port: 41000 };

describe('helloCases', () => {
  it('has a one- and a two-datagram hello per protocol, each forwarded by its mapper', async () => {
    const cases = await helloCases();
    expect(cases.map((c) => [c.protocol, c.datagrams.length])).toEqual([
      ['dtls', 1],
      ['dtls', 2],
      ['quic', 1],
      ['quic', 2],
    ]);
    const mappers = { dtls: dtlsMapper(), quic: quicMapper() };
    expect(cases.map((c) => describeDecision(decideAsArrived(mappers[c.protocol], client, arrivals(c.datagrams))))).toEqual([
      'forward 10.0.0.1:4433',
      'forward 10.0.0.2:4433',
      'forward 10.0.0.3:443',
      'forward 10.0.0.4:443',
    ]);
  });

  it('decides the same way every time the same client comes again', async () => {
    const quic = (await helloCases()).find((c) => c.protocol === 'quic' && c.datagrams.length === 2)!;
    const mapper = quicMapper();
    const prefixes = arrivals(quic.datagrams);
    for (let i = 0; i < 3; i++) expect(describeDecision(decideAsArrived(mapper, client, prefixes))).toBe('forward 10.0.0.4:443');
    expect(mapper.pending.clients).toBe(0);
  });
});

describe('arrivals', () => {
  it('lists what the balancer holds after each datagram', () => {
    const a = new Uint8Array([1]);
    const b = new Uint8Array([2]);
    expect(arrivals([a, b])).toEqual([[a], [a, b]]);
    expect(arrivals([])).toEqual([]);
  });
});

describe('decideAsArrived', () => {
  it('stops at the first decision that is not wait', () => {
    const seen: number[] = [];
    const mapper = {
      findFlow: (_c: unknown, packets: readonly Uint8Array[]) => {
        seen.push(packets.length);
        return packets.length < 2 ? ({ action: 'wait' } as const) : ({ action: 'drop', reason: 'unknown-name' } as const);
      },
    };
    const d = new Uint8Array(1);
    expect(describeDecision(decideAsArrived(mapper, client, arrivals([d, d, d])))).toBe('drop (unknown-name)');
    expect(seen).toEqual([1, 2]);
    expect(describeDecision(decideAsArrived(mapper, client, []))).toBe('none');
  });
});
