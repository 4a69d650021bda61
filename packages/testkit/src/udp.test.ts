import { execFile } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { parseEndpoint } from './udp-protocol.js';
import { runLocalUdpClient, startLocalUdpEcho, udpPeerScript, type UdpEcho } from './udp.js';

// Loopback only: these run without privileges.
const started: UdpEcho[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((e) => e.stop()));
});

async function echo(opts: Partial<Parameters<typeof startLocalUdpEcho>[0]> = {}): Promise<UdpEcho & { port: number }> {
  const e = await startLocalUdpEcho({ addr: '127.0.0.1', port: 0, lifetimeMs: 20_000, ...opts });
  started.push(e);
  return Object.assign(e, { port: parseEndpoint(e.bound[0] ?? '').port });
}

function runPeer(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [udpPeerScript(), ...args], { timeout: 10_000 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? null) : 0;
      resolve({ code: typeof code === 'number' ? code : null, stdout, stderr });
    });
  });
}

describe('udp peer', () => {
  it('echoes with a prefix and the client matches every reply to its datagram', async () => {
    const e = await echo({ prefix: 'srv:' });
    expect(e.port).toBeGreaterThan(0);
    const s = await runLocalUdpClient({ target: `127.0.0.1:${e.port}`, bind: '127.0.0.1', count: 5, timeoutMs: 3000 });
    expect(s.sent).toBe(5);
    expect(s.received).toBe(5);
    expect(s.lostSeqs).toEqual([]);
    expect(s.replies.map((r) => r.seq).sort()).toEqual([0, 1, 2, 3, 4]);
    for (const r of s.replies) {
      expect(r.from).toBe(`127.0.0.1:${e.port}`);
      expect(r.data).toBe(`srv:ping ${r.seq}`);
    }
    const lines = await e.waitForCount(5, 2000);
    const localPort = parseEndpoint(s.local).port;
    expect(lines.map((l) => l.data).sort()).toEqual(['ping 0', 'ping 1', 'ping 2', 'ping 3', 'ping 4']);
    for (const l of lines) {
      expect(l.from).toBe(`127.0.0.1:${localPort}`);
      expect(l.to).toBe(`127.0.0.1:${e.port}`);
      expect(l.len).toBe(6);
      expect(Buffer.from(l.hex, 'hex').toString()).toBe(l.data);
    }
  });

  it('sends exact binary payloads, in lockstep, and waits for a predicate', async () => {
    const e = await echo({ prefix: Buffer.from([0xff, 0x00]) });
    const payloads = [Buffer.from([1, 2, 3]), 'text', Buffer.alloc(0)];
    const s = await runLocalUdpClient({ target: { address: '127.0.0.1', port: e.port }, payloads, lockstep: true, timeoutMs: 2000 });
    expect(s.sent).toBe(3);
    expect(s.lostSeqs).toEqual([]);
    expect(s.replies.map((r) => [r.seq, r.hex])).toEqual([
      [0, 'ff00010203'],
      [1, `ff00${Buffer.from('text').toString('hex')}`],
      [2, 'ff00'],
    ]);
    const rec = await e.waitFor((r) => r.data === 'text', 1000);
    expect(rec.len).toBe(4);
    await expect(e.waitFor((r) => r.data === 'never', 200)).rejects.toThrow(/not seen within 200 ms/);
    await expect(e.waitForCount(99, 100)).rejects.toThrow(/99 datagrams/);
  });

  it('reports lost datagrams when nothing answers, within the timeout', async () => {
    const sink = await echo({ replies: 0 });
    const t0 = Date.now();
    const s = await runLocalUdpClient({ target: `127.0.0.1:${sink.port}`, count: 3, timeoutMs: 300 });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(s.sent).toBe(3);
    expect(s.received).toBe(0);
    expect(s.lostSeqs).toEqual([0, 1, 2]);
    await sink.waitForCount(3, 1000);
  });

  it('counts several replies per datagram and can send without waiting', async () => {
    const e = await echo({ replies: 2 });
    const s = await runLocalUdpClient({ target: `127.0.0.1:${e.port}`, count: 2, expectReplies: 2, timeoutMs: 2000 });
    expect(s.received).toBe(4);
    expect(s.lostSeqs).toEqual([]);
    const fire = await runLocalUdpClient({ target: `127.0.0.1:${e.port}`, count: 2, expectReplies: 0, payload: 'x{seq}y' });
    expect(fire.sent).toBe(2);
    await e.waitFor((r) => r.data === 'x1y', 2000);
  });

  it('serves several sockets from one process', async () => {
    const e = await echo({ extraBinds: ['127.0.0.1:0'] });
    expect(e.bound.length).toBe(2);
    const second = parseEndpoint(e.bound[1] ?? '').port;
    const s = await runLocalUdpClient({ target: `127.0.0.1:${second}`, timeoutMs: 2000 });
    expect(s.replies[0]?.from).toBe(`127.0.0.1:${second}`);
    expect((await e.waitForCount(1)).at(0)?.to).toBe(`127.0.0.1:${second}`);
  });

  it('fails to start on a busy port and on bad arguments', async () => {
    const e = await echo();
    await expect(startLocalUdpEcho({ addr: '127.0.0.1', port: e.port, readyTimeoutMs: 3000 })).rejects.toThrow(/exited before listening.*EADDRINUSE/s);
    expect((await runPeer([])).code).toBe(2);
    expect((await runPeer(['echo'])).code).toBe(2);
    expect((await runPeer(['client', '--target', 'nonsense'])).code).toBe(2);
    expect((await runPeer(['client', '--target', '127.0.0.1:1', '--bogus'])).code).toBe(2);
    expect((await runPeer(['echo', '--bind', '127.0.0.1:0', '--prefix-hex', 'abc'])).code).toBe(2);
  });

  it('ends by itself after its lifetime', async () => {
    const e = await echo({ lifetimeMs: 200 });
    const status = await Promise.race([e.process.exited, new Promise((r) => setTimeout(() => r('still running'), 5000))]);
    expect(status).toEqual({ code: 0, signal: null });
  });
});
