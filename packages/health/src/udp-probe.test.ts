import { afterEach, describe, expect, it } from 'vitest';
import type { UdpEndpoint } from '@flowlb/mapper-api';
import { closedPort, udpHandles, udpPeer, type Peer } from '../test/udp-peers.js';
import { HealthChecker } from './checker.js';
import type { Probe, ProbeOutcome, TargetHealth } from './types.js';
import { udpProbe } from './udp-probe.js';

// Generous: only the never-answering peer waits for it, everything else settles on an event.
const TIMEOUT_MS = 5000;

const peers: Peer[] = [];
afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.close()));
});

async function peer(answer: Parameters<typeof udpPeer>[0], address?: string): Promise<Peer> {
  const p = await udpPeer(answer, address);
  peers.push(p);
  return p;
}

function run(probe: Probe, target: UdpEndpoint, signal = new AbortController().signal): Promise<ProbeOutcome> {
  return probe(target, { timeoutMs: TIMEOUT_MS, signal });
}

describe('udpProbe', () => {
  it('succeeds on any reply from an echo server, having sent the payload bytes', async () => {
    const echo = await peer((d) => d);
    const before = await udpHandles();
    expect(await run(udpProbe({ payload: '\xffping\n' }), echo.endpoint)).toEqual({ ok: true });
    expect(echo.received).toHaveLength(1);
    expect([...echo.received[0]!]).toEqual([0xff, 0x70, 0x69, 0x6e, 0x67, 0x0a]);
    expect(await udpHandles()).toBe(before);
  });

  it('sends a Uint8Array payload as given', async () => {
    const echo = await peer((d) => d);
    const payload = new Uint8Array([0, 1, 2, 250]);
    const probe = udpProbe({ payload });
    payload[0] = 9;
    expect(await run(probe, echo.endpoint)).toEqual({ ok: true });
    expect([...echo.received[0]!]).toEqual([0, 1, 2, 250]);
  });

  it('with expect, succeeds on a matching reply and fails on another', async () => {
    const server = await peer((d) => (d.toString('latin1') === 'status' ? 'OK \xe9t\xe9' : 'ERR'));
    expect(await run(udpProbe({ payload: 'status', expect: /^OK \xe9t\xe9$/ }), server.endpoint)).toEqual({ ok: true });
    expect(await run(udpProbe({ payload: 'other', expect: /^OK/ }), server.endpoint)).toEqual({ ok: false, reason: 'unexpected reply' });
  });

  it('gives the same answer to every probe with a global or sticky expect', async () => {
    const server = await peer(() => 'OK');
    const probe = udpProbe({ payload: 'x', expect: /OK/gy });
    for (let i = 0; i < 3; i++) expect(await run(probe, server.endpoint)).toEqual({ ok: true });
  });

  it('fails as port unreachable on a closed port, and frees its socket', async () => {
    const target = await closedPort();
    const before = await udpHandles();
    expect(await run(udpProbe({ payload: 'ping' }), target)).toEqual({ ok: false, reason: 'port unreachable' });
    expect(await udpHandles()).toBe(before);
  });

  it('resolves aborted when its signal aborts, and frees its socket', async () => {
    const silent = await peer(() => null);
    const before = await udpHandles();
    const controller = new AbortController();
    const pending = run(udpProbe({ payload: 'ping' }), silent.endpoint, controller.signal);
    // Aborts once the datagram has arrived, so the socket is bound, connected and waiting.
    while (silent.received.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await udpHandles()).toBe(before + 1);
    controller.abort();
    expect(await pending).toEqual({ ok: false, reason: 'aborted' });
    expect(await udpHandles()).toBe(before);
  });

  it('resolves aborted at once, without a socket, for a signal already aborted', async () => {
    const silent = await peer(() => null);
    const before = await udpHandles();
    const probe = udpProbe({ payload: 'ping' });
    expect(await run(probe, silent.endpoint, AbortSignal.abort())).toEqual({ ok: false, reason: 'aborted' });
    expect(await udpHandles()).toBe(before);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(silent.received).toHaveLength(0);
  });

  it('keeps its own deadline when used without a checker', async () => {
    const silent = await peer(() => null);
    const started = Date.now();
    const outcome = await udpProbe({ payload: 'ping' })(silent.endpoint, { timeoutMs: 100, signal: new AbortController().signal });
    expect(outcome).toEqual({ ok: false, reason: 'timeout' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
  });

  it('probes from bindAddress, and refuses one of the other family', async () => {
    const sources: string[] = [];
    const spy = await peer((d, from) => {
      sources.push(`${d.toString()} from ${from.address}`);
      return d;
    });
    // All of 127/8 is loopback on Linux: a source other than 127.0.0.1 shows the bind took effect.
    expect(await run(udpProbe({ payload: 'a', bindAddress: '127.0.0.2' }), spy.endpoint)).toEqual({ ok: true });
    expect(await run(udpProbe({ payload: 'b' }), spy.endpoint)).toEqual({ ok: true });
    expect(await run(udpProbe({ payload: 'c', bindAddress: '::1' }), spy.endpoint)).toEqual({
      ok: false,
      reason: 'bindAddress ::1 cannot reach an IPv4 target',
    });
    expect(sources).toEqual(['a from 127.0.0.2', 'b from 127.0.0.1']);
  });

  it('probes IPv6 targets from a udp6 socket', async (context) => {
    let echo: Peer;
    try {
      echo = await peer((d) => d, '::1');
    } catch {
      context.skip('no IPv6 loopback here');
      return;
    }
    expect(await run(udpProbe({ payload: 'ping' }), echo.endpoint)).toEqual({ ok: true });
  });

  it('refuses bad options', () => {
    expect(() => udpProbe({ payload: '€' })).toThrow(RangeError);
    expect(() => udpProbe({ payload: 42 as unknown as string })).toThrow(TypeError);
    expect(() => udpProbe({ payload: 'x', expect: 'OK' as unknown as RegExp })).toThrow(TypeError);
    expect(() => udpProbe({ payload: 'x', bindAddress: 'localhost' })).toThrow(TypeError);
  });
});

describe('udpProbe under a HealthChecker, with real timers', () => {
  it('turns an echo server healthy and a closed port unhealthy', async () => {
    const echo = await peer((d) => d);
    const closed = await closedPort();
    const probe = udpProbe({ payload: 'ping' });
    const changed: TargetHealth[] = [];
    let both: () => void;
    const done = new Promise<void>((resolve) => (both = resolve));
    const checker = new HealthChecker({
      onChange: (health) => {
        changed.push(health);
        if (changed.length === 2) both();
      },
    });
    try {
      const settings = { intervalMs: 10_000, timeoutMs: TIMEOUT_MS, rise: 1, fall: 1 };
      checker.set(echo.endpoint, probe, settings);
      checker.set(closed, probe, settings);
      await done;
    } finally {
      checker.stop();
    }
    expect(checker.get(echo.endpoint)).toMatchObject({ state: 'healthy' });
    expect(checker.get(echo.endpoint)!.lastRttMs).toBeGreaterThanOrEqual(0);
    expect(checker.get(closed)).toMatchObject({ state: 'unhealthy', lastFailure: 'port unreachable' });
  });

  it("fails a server that never answers by the checker's timeout, and closes the probe's socket", async () => {
    const silent = await peer(() => null);
    const before = await udpHandles();
    const probe = udpProbe({ payload: 'ping' });
    const probes: Promise<ProbeOutcome>[] = [];
    // The checker's deadline comes first: the probe's own would only fire well after it.
    const tracked: Probe = (target, options) => {
      const outcome = probe(target, { ...options, timeoutMs: options.timeoutMs * 50 });
      probes.push(outcome);
      return outcome;
    };
    let unhealthy: (health: TargetHealth) => void;
    const changed = new Promise<TargetHealth>((resolve) => (unhealthy = resolve));
    const checker = new HealthChecker({ onChange: (health) => unhealthy(health) });
    const started = Date.now();
    try {
      checker.set(silent.endpoint, tracked, { intervalMs: 60_000, timeoutMs: 200, rise: 1, fall: 1 });
      const health = await changed;
      expect(health).toMatchObject({ state: 'unhealthy', lastFailure: 'timeout' });
      expect(Date.now() - started).toBeGreaterThanOrEqual(190);
      expect(Date.now() - started).toBeLessThan(200 * 50);
    } finally {
      checker.stop();
    }
    expect(probes).toHaveLength(1);
    expect(await probes[0]!).toEqual({ ok: false, reason: 'aborted' });
    expect(await udpHandles()).toBe(before);
    expect(silent.received.map(String)).toEqual(['ping']);
  });
});
