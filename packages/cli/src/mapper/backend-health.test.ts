import dgram from 'node:dgram';
import type { BalancerEvent } from '@flowlb/balancer';
import { mappingsFromYaml } from '@flowlb/mapper-dtls-sni';
import type { UdpEndpoint } from '@flowlb/mapper-api';
import { afterEach, describe, expect, it } from 'vitest';
import type { Logger } from '../run/logger.js';
import { BackendHealth, type PassiveFailure, type SharedHealth } from './backend-health.js';

const quiet = { info() {}, warn() {}, error() {}, debug() {}, child: () => quiet } as unknown as Logger;

/** A target on loopback that counts the datagrams it gets and, while `answer`, echoes them. */
async function target(address: string): Promise<{ endpoint: UdpEndpoint; received: () => number; answer: boolean; close: () => void }> {
  const socket = dgram.createSocket('udp4');
  let n = 0;
  const t = {
    endpoint: { address, port: 0 },
    received: () => n,
    answer: true,
    close: () => socket.close(),
  };
  socket.on('message', (msg, rinfo) => {
    n++;
    if (t.answer) socket.send(msg, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, address, resolve));
  t.endpoint.port = socket.address().port;
  return t;
}

function mappings(t: UdpEndpoint, health: string): ReturnType<typeof mappingsFromYaml> {
  return mappingsFromYaml(`
health: { probe: udp, udp_payload: ping, interval_ms: 60000, timeout_ms: 200, rise: 1, fall: 2, ${health} }
sniMappings:
  - { fqdn: a.example, ipv4: ${t.address}, port: ${t.port} }
`);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await sleep(10);
  if (!check()) throw new Error(`${what} did not happen`);
}

const unreachable = (t: UdpEndpoint, count: number): BalancerEvent => ({ type: 'target-unreachable', target: t, count, detail: 'ICMP destination unreachable (2 in the last 1 s)' });
const unanswered = (t: UdpEndpoint): BalancerEvent => ({
  type: 'flow-unanswered',
  pair: { client: { address: '10.9.9.9', port: 1 }, vip: { address: '10.9.9.1', port: 4433 }, snat: { address: '10.9.9.1', port: 20000 }, target: t },
  waitedMs: 200,
});

describe('BackendHealth', () => {
  const closers: Array<() => void> = [];
  afterEach(() => {
    for (const c of closers.splice(0)) c();
  });

  it('as leader, takes a burst of ICMP unreachables as that many failures, shares each change, and resets flows when asked', async () => {
    const t = await target('127.0.0.1');
    const shared: SharedHealth[] = [];
    const resets: UdpEndpoint[] = [];
    const h = new BackendHealth({ bindAddress: '127.0.0.1', log: quiet, onShared: (s) => shared.push(s) });
    closers.push(t.close, () => h.stop());
    h.resetFlows = async (target) => (resets.push(target), 3);
    h.sync(mappings(t.endpoint, 'on_down: reset, passive: false'));
    const key = `${t.endpoint.address}:${t.endpoint.port}`;
    await until(() => h.report()[0]?.state === 'healthy', 'the first probe');
    expect(shared.at(-1)).toEqual([[key, 'healthy']]);
    // passive: false: an unanswered flow says nothing.
    h.observe(unanswered(t.endpoint));
    expect(h.report()[0]!.failures).toBe(0);
    h.observe(unreachable(t.endpoint, 2));
    expect(h.report()[0]).toMatchObject({ state: 'unhealthy', failures: 2, lastFailure: 'ICMP destination unreachable (2 in the last 1 s)' });
    expect(h.isUsable(t.endpoint)).toBe(false);
    expect(shared.at(-1)).toEqual([[key, 'unhealthy']]);
    expect(resets).toEqual([t.endpoint]);
    // A target nobody probes is nobody's business.
    h.observe(unreachable({ address: '127.0.0.1', port: 9 }, 5));
    expect(h.report()).toHaveLength(1);
  });

  it('as leader, counts unanswered flows with passive on (the dtls default), one failure each', async () => {
    const t = await target('127.0.0.1');
    const h = new BackendHealth({ bindAddress: '127.0.0.1', log: quiet });
    closers.push(t.close, () => h.stop());
    h.sync(mappings(t.endpoint, 'passive: true'));
    await until(() => h.report()[0]?.state === 'healthy', 'the first probe');
    expect(h.replyTimeoutMs(t.endpoint)).toBe(200);
    h.observe(unanswered(t.endpoint));
    expect(h.report()[0]).toMatchObject({ state: 'healthy', failures: 1 });
    h.observe(unanswered(t.endpoint));
    expect(h.report()[0]).toMatchObject({ state: 'unhealthy', failures: 2, lastFailure: 'no reply to a new flow within 200 ms' });
  });

  it('as follower, probes nothing, follows the states it is given, hands on unanswered flows and leaves ICMP to the leader', async () => {
    const t = await target('127.0.0.1');
    const passed: PassiveFailure[] = [];
    const resets: UdpEndpoint[] = [];
    const h = new BackendHealth({ bindAddress: '127.0.0.1', log: quiet, role: 'follower', onPassive: (f) => passed.push(f) });
    closers.push(t.close, () => h.stop());
    h.resetFlows = async (target) => (resets.push(target), 1);
    h.sync(mappings(t.endpoint, 'on_down: reset, passive: true'));
    const key = `${t.endpoint.address}:${t.endpoint.port}`;
    expect(h.isUsable(t.endpoint)).toBe(true);

    h.observe(unreachable(t.endpoint, 3));
    h.observe(unanswered(t.endpoint));
    expect(passed).toEqual([{ target: t.endpoint, reason: 'no reply to a new flow within 200 ms', count: 1 }]);

    h.applyShared([[key, 'unhealthy']]);
    expect(h.isUsable(t.endpoint)).toBe(false);
    h.applyShared([[key, 'unhealthy']]);
    // Reset once, when it went down, not at every word from the leader.
    expect(resets).toEqual([t.endpoint]);
    h.applyShared([[key, 'healthy']]);
    expect(h.isUsable(t.endpoint)).toBe(true);
    h.applyShared([[key, 'unhealthy']]);
    expect(resets).toHaveLength(2);

    // Long enough for a probe to have gone out, had the follower sent one.
    await sleep(300);
    expect(t.received()).toBe(0);
  });
});
