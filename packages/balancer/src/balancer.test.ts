import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LoadBalancer, createLoadBalancer } from './balancer.js';
import { SnatPortRangeError } from './ephemeral-range.js';
import type { BalancerEvent } from './events.js';
import { scenarioMapper } from './test-support/scenario-mapper.js';
import { EchoBackend, TestClient, waitUntil } from './test-support/udp-peers.js';

describe('LoadBalancer start-up checks of the SNAT ports', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });
  const fakeProc = (range: string, reserved: string): string => {
    dir = mkdtempSync(join(tmpdir(), 'flowlb-lb-proc-'));
    writeFileSync(join(dir, 'ip_local_port_range'), range);
    writeFileSync(join(dir, 'ip_local_reserved_ports'), reserved);
    return dir;
  };

  it('refuses to start when the SNAT ports overlap the ephemeral range, and binds nothing', async () => {
    const procDir = fakeProc('32768\t60999\n', '\n');
    const vip = { address: '127.77.6.1', port: 5000 };
    const lb = new LoadBalancer({ vip, mapper: scenarioMapper([]), datapath: 'userspace', snatPorts: { min: 30000, max: 40000 }, procDir });
    const error = await lb.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SnatPortRangeError);
    expect((error as Error).message).toMatch(/SNAT ports 30000-40000 overlap the kernel's ephemeral port range 32768-60999/);
    expect(lb.state).toBe('stopped');
    expect(lb.datapath).toBeUndefined();
    // Nothing was bound: the VIP is free.
    const probe = await TestClient.open(vip.address, vip.port);
    probe.close();
  });

  it('with reserveSnatPorts, reserves the overlap, reports it and starts', async () => {
    const procDir = fakeProc('32768\t60999\n', '8080\n');
    const events: BalancerEvent[] = [];
    const lb = await createLoadBalancer({
      vip: { address: '127.77.6.2', port: 5000 },
      mapper: scenarioMapper([]),
      datapath: 'userspace',
      snatPorts: { min: 30000, max: 40000 },
      reserveSnatPorts: true,
      procDir,
      onEvent: (e) => events.push(e),
    });
    try {
      expect(lb.state).toBe('running');
      expect(readFileSync(join(procDir, 'ip_local_reserved_ports'), 'utf8')).toBe('8080,32768-40000');
      expect(events).toContainEqual({ type: 'snat-ports-reserved', ranges: [{ min: 32768, max: 40000 }] });
      expect(lb.snatPortCheck).toMatchObject({ checked: true, overlap: { min: 32768, max: 40000 } });
    } finally {
      await lb.stop();
    }
  });
});

describe('LoadBalancer robustness', () => {
  it('survives a listener that throws and datagrams of any size or content', async () => {
    const target = { address: '127.77.6.11', port: 7000 };
    const echo = await EchoBackend.start('t', target.address, target.port);
    const vip = { address: '127.77.6.10', port: 5000 };
    const lb = await createLoadBalancer({
      vip,
      mapper: scenarioMapper([target]),
      datapath: 'userspace',
      onEvent: () => {
        throw new Error('listener bug');
      },
    });
    const c = await TestClient.open('127.77.6.12');
    try {
      await c.send(Buffer.alloc(0), vip);
      await c.send(Buffer.from([0xff, 0x00, 0xfe]), vip);
      await c.send(Buffer.alloc(60_000, 0x41), vip);
      await waitUntil(() => lb.stats().datagrams.slowPathIn === 3, 2000, 'three datagrams');
      // The mapper waits on junk; the client is classified again with each datagram and still pending.
      expect(lb.stats().pending.datagrams).toBe(3);
      const d = await TestClient.open('127.77.6.13');
      expect((await d.request('to:0:ok', vip))?.data).toBe('t|to:0:ok');
      d.close();
      expect(() => lb.receive('nope' as unknown as Uint8Array, { address: '127.0.0.1', port: 1 })).toThrow(/Buffer or Uint8Array/);
      expect(() => lb.receive(Buffer.alloc(1), { address: '::1', port: 1 })).toThrow(/from\.address.*IPv4 only/);
      expect(() => lb.receive(Buffer.alloc(1), { address: '127.0.0.1', port: 70000 })).toThrow(/from\.port 70000/);
      lb.receive(new Uint8Array([1, 2, 3]), { address: '127.77.6.14', port: 9 });
      expect(lb.stats().datagrams.slowPathIn).toBe(5);
    } finally {
      c.close();
      await lb.stop();
      echo.close();
    }
    expect(() => lb.receive(Buffer.alloc(1), { address: '127.0.0.1', port: 1 })).toThrow(/receive\(\) in state 'stopped'/);
    // What was still pending is counted as dropped at shutdown.
    expect(lb.stats().drops.shutdown).toBe(4);
  });
});

describe('LoadBalancer VIP receive buffer', () => {
  it('warns, once, when the kernel grants less receive buffer than asked for', async () => {
    const rmemMax = Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8'));
    const events: BalancerEvent[] = [];
    // Past net.core.rmem_max: Node's socket sets SO_RCVBUF, which the kernel caps there whoever asks.
    const lb = new LoadBalancer({
      vip: { address: '127.77.6.9', port: 5000 },
      mapper: scenarioMapper([]),
      datapath: 'userspace',
      receiveBufferBytes: rmemMax + (1 << 20),
      onEvent: (e) => events.push(e),
    });
    await lb.start();
    try {
      const warnings = events.filter((e) => e.type === 'warning');
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ where: 'VIP socket', message: expect.stringMatching(/not the \d+ asked for: net\.core\.rmem_max caps it/) });
    } finally {
      await lb.stop();
    }
  });
});
