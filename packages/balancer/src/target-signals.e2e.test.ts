import dgram from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoadBalancer } from './balancer.js';
import type { BalancerEvent } from './events.js';
import { scenarioMapper } from './test-support/scenario-mapper.js';
import { EchoBackend, TestClient, waitUntil } from './test-support/udp-peers.js';

// Loopback addresses of its own (127.77.8.0/24), in this process, without privileges.
const VIP = { address: '127.77.8.10', port: 5000 };
const SNAT = '127.77.8.11';
const ECHO = { address: '127.77.8.20', port: 7000 };
/** Bound, reads everything, answers nothing. */
const SILENT = { address: '127.77.8.21', port: 7000 };
/** Nothing bound: the kernel answers with ICMP port unreachable. */
const CLOSED = { address: '127.77.8.22', port: 7000 };
const REPLY_TIMEOUT_MS = 150;

describe('passive signals and flow reset, userspace datapath on loopback', () => {
  const mapper = scenarioMapper([ECHO, SILENT, CLOSED]);
  const events: BalancerEvent[] = [];
  const clients: TestClient[] = [];
  let lb: LoadBalancer;
  let echo: EchoBackend;
  let silent: dgram.Socket;

  const client = async (): Promise<TestClient> => {
    const c = await TestClient.open('127.77.8.1');
    clients.push(c);
    return c;
  };
  const ofType = <T extends BalancerEvent['type']>(type: T) => events.filter((e): e is Extract<BalancerEvent, { type: T }> => e.type === type);

  beforeAll(async () => {
    echo = await EchoBackend.start('echo', ECHO.address, ECHO.port);
    silent = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => silent.bind(SILENT.port, SILENT.address, resolve));
    lb = new LoadBalancer({
      vip: VIP,
      snatAddress: SNAT,
      snatPorts: { min: 22000, max: 22999 },
      mapper,
      datapath: 'userspace',
      connTtlSec: 60,
      replyTimeoutMs: (t) => (t.address === CLOSED.address ? undefined : REPLY_TIMEOUT_MS),
      onEvent: (e) => events.push(e),
    });
    await lb.start();
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await lb?.stop();
    echo?.close();
    silent?.close();
  });

  it('says when a new flow gets no reply from its target, and not when it does', async () => {
    const answered = await client();
    await answered.request('to:0:hello', VIP);
    const ignored = await client();
    await ignored.send('to:1:hello', VIP);
    await waitUntil(() => ofType('flow-unanswered').length > 0, 10_000, 'a flow-unanswered event');
    // The answered flow's wait is over as well by the time the silent one's is.
    await waitUntil(() => ofType('flow-created').length === 2, 5000, 'both flows');
    await new Promise((r) => setTimeout(r, 2 * REPLY_TIMEOUT_MS));
    const unanswered = ofType('flow-unanswered');
    expect(unanswered).toHaveLength(1);
    expect(unanswered[0]!.pair.target).toEqual(SILENT);
    expect(unanswered[0]!.pair.client).toEqual({ address: '127.77.8.1', port: ignored.port });
    expect(unanswered[0]!.waitedMs).toBe(REPLY_TIMEOUT_MS);
  });

  it('says when the target answers with ICMP port unreachable', async () => {
    const c = await client();
    await c.send('to:2:hello', VIP);
    await waitUntil(() => ofType('target-unreachable').length > 0, 10_000, 'a target-unreachable event');
    expect(ofType('target-unreachable')[0]).toMatchObject({ target: CLOSED, count: 1, detail: expect.stringContaining('ECONNREFUSED') });
    expect(ofType('error')).toEqual([]);
  });

  it("removes a target's established flows on resetFlowsTo, freeing their ports, and leaves the others", async () => {
    const toEcho = await Promise.all([client(), client(), client()]);
    for (const c of toEcho) await c.request('to:0:again', VIP);
    const activeBefore = lb.stats().targets[`${ECHO.address}:${ECHO.port}`]!.active;
    expect(activeBefore).toBeGreaterThanOrEqual(3);
    const silentBefore = lb.stats().targets[`${SILENT.address}:${SILENT.port}`]!.active;
    expect(silentBefore).toBe(1);

    const removed = await lb.resetFlowsTo(ECHO);
    expect(removed).toBe(activeBefore);
    const s = lb.stats();
    expect(s.targets[`${ECHO.address}:${ECHO.port}`]!.active).toBe(0);
    expect(s.targets[`${SILENT.address}:${SILENT.port}`]!.active).toBe(silentBefore);
    expect(s.flows.reset).toBe(removed);
    expect(ofType('flows-reset')).toEqual([{ type: 'flows-reset', target: ECHO, count: removed }]);
    const left = [...lb.table!.pairs()].map((r) => `${r.pair.target.address}:${r.pair.target.port}`);
    expect(left).not.toContain(`${ECHO.address}:${ECHO.port}`);

    // The client starts over: its next datagram goes to the mapper again and makes a new flow.
    const calls = mapper.calls.length;
    expect((await toEcho[0]!.request('to:0:after', VIP))?.data).toContain('to:0:after');
    expect(mapper.calls.length).toBe(calls + 1);
  });
});
