import { drop, forward, wait, type Decision, type FlowMapper, type UdpEndpoint } from '@flowlb/mapper-api';

export interface MapperCall {
  client: string;
  packets: string[];
  answer: string;
}

/**
 * A mapper for end-to-end tests whose behaviour the client picks with the start of its first datagram:
 *
 * - `to:<i>:…`        forward to target i
 * - `wait:…`          wait until two datagrams are buffered, then forward to target 0
 * - `slowwait:…`      answer after 50 ms: wait while fewer than three datagrams are buffered, then forward to target 0
 * - `slow:…`          answer after 100 ms: forward to target 0
 * - `throw:…`         throw
 * - `reject:…`        return a rejected promise
 * - `hang:…`          return a promise that never settles
 * - `garbage:…`       return something that is not a decision
 * - `drop:…`          drop
 * - anything else     wait (junk never gets anywhere)
 *
 * Every call is logged with the datagrams it saw.
 */
export function scenarioMapper(targets: readonly UdpEndpoint[]): FlowMapper & { calls: MapperCall[] } {
  const calls: MapperCall[] = [];
  const target = (i: number): UdpEndpoint => {
    const t = targets[i];
    if (!t) throw new Error(`no target ${i}`);
    return { ...t };
  };
  const log = (client: UdpEndpoint, packets: readonly Uint8Array[], answer: string): void => {
    calls.push({ client: `${client.address}:${client.port}`, packets: packets.map((p) => Buffer.from(p).toString()), answer });
    // Bounded: a flood must not turn the test's own log into the leak it looks for.
    if (calls.length > 10_000) calls.splice(0, calls.length - 10_000);
  };
  const later = (ms: number, d: () => Decision): Promise<Decision> => new Promise((resolve) => setTimeout(() => resolve(d()), ms));

  return {
    calls,
    findFlow(client, packets) {
      const first = Buffer.from(packets[0] ?? new Uint8Array()).toString();
      const kind = first.split(':')[0];
      switch (kind) {
        case 'to': {
          const i = Number(first.split(':')[1]);
          log(client, packets, `to ${i}`);
          return forward(target(i));
        }
        case 'wait':
          log(client, packets, packets.length < 2 ? 'wait' : 'to 0');
          return packets.length < 2 ? wait() : forward(target(0));
        case 'slowwait':
          log(client, packets, packets.length < 3 ? 'wait' : 'to 0');
          return later(50, () => (packets.length < 3 ? wait() : forward(target(0))));
        case 'slow':
          log(client, packets, 'to 0');
          return later(100, () => forward(target(0)));
        case 'throw':
          log(client, packets, 'throw');
          throw new Error(`mapper failure for ${client.address}:${client.port}`);
        case 'reject':
          log(client, packets, 'reject');
          return Promise.reject(new Error('mapper rejected'));
        case 'hang':
          log(client, packets, 'hang');
          return new Promise<Decision>(() => {});
        case 'garbage':
          log(client, packets, 'garbage');
          return 42 as unknown as Decision;
        case 'drop':
          log(client, packets, 'drop');
          return drop('asked to');
        default:
          log(client, packets, 'wait');
          return wait();
      }
    },
  };
}
