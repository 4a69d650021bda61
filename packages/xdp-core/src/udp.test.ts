import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { UdpSocket } from './udp.js';

const HOST = '127.0.0.1';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const opened: Array<{ close(): void }> = [];
afterEach(() => {
  for (const s of opened.splice(0)) {
    try {
      s.close();
    } catch {
      // closed already
    }
  }
});

function nodeSocket(): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind(0, HOST, () => resolve(s));
    opened.push(s);
  });
}

function bound(options: Parameters<typeof UdpSocket.bind>[1] = {}, port = 0): UdpSocket {
  const s = UdpSocket.bind({ address: HOST, port }, options);
  opened.push(s);
  return s;
}

/** The port the kernel chose for a socket bound to port 0, found by sending to a Node socket. */
async function portOf(s: UdpSocket): Promise<number> {
  const peer = await nodeSocket();
  const got = new Promise<number>((resolve) => peer.once('message', (_m, rinfo) => resolve(rinfo.port)));
  s.send({ address: HOST, port: peer.address().port }, [Buffer.from('?')]);
  return got;
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await sleep(10);
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

describe('UdpSocket', () => {
  it('sends many datagrams in order in one call, from its own port', async () => {
    const peer = await nodeSocket();
    const s = bound();
    const from = await portOf(s);
    const got: string[] = [];
    peer.removeAllListeners('message');
    peer.on('message', (m, rinfo) => {
      expect(rinfo.port).toBe(from);
      got.push(m.toString());
    });
    const datagrams = Array.from({ length: 150 }, (_, i) => Buffer.from(`datagram ${i}`));
    expect(s.send({ address: HOST, port: peer.address().port }, datagrams)).toBe(150);
    await until(() => got.length === 150, '150 datagrams');
    expect(got).toEqual(datagrams.map(String));
  });

  it('fails to bind a port another socket holds, like Node: EADDRINUSE with errno and syscall', async () => {
    const holder = await nodeSocket();
    const port = holder.address().port;
    let error: unknown;
    try {
      bound({}, port);
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: 'EADDRINUSE', errno: -98, syscall: 'bind' });
    expect(String((error as Error).message)).toContain(`127.0.0.1:${port}`);
  });

  it('lets sockets that all ask for SO_REUSEPORT share a port', async () => {
    const a = bound({ reusePort: true });
    const port = await portOf(a);
    expect(() => bound({ reusePort: true }, port)).not.toThrow();
    expect(() => bound({}, port)).toThrow(expect.objectContaining({ code: 'EADDRINUSE' }));
  });

  it('receives batches: every datagram with its sender, large ones whole, then the end of the batch', async () => {
    const s = bound();
    const port = await portOf(s);
    const received: Array<{ data: string; address: string; port: number }> = [];
    let batches = 0;
    let inBatch = 0;
    let largest = 0;
    s.receive(
      (datagram, from) => {
        inBatch++;
        largest = Math.max(largest, datagram.length);
        received.push({ data: datagram.length > 100 ? `${datagram.length}:${datagram[datagram.length - 1]}` : datagram.toString(), ...from });
      },
      () => {
        expect(inBatch).toBeGreaterThan(0);
        inBatch = 0;
        batches++;
      },
    );
    const senders = [await nodeSocket(), await nodeSocket()];
    const big = Buffer.alloc(60_000, 7);
    for (let i = 0; i < 100; i++) senders[i % 2]!.send(Buffer.from(`d${i}`), port, HOST);
    senders[0]!.send(big, port, HOST);
    await until(() => received.length === 101, '101 datagrams');
    await until(() => inBatch === 0, 'the end of the batch');
    for (let i = 0; i < 100; i++) {
      expect(received).toContainEqual({ data: `d${i}`, address: HOST, port: senders[i % 2]!.address().port });
    }
    expect(received).toContainEqual({ data: '60000:7', address: HOST, port: senders[0]!.address().port });
    expect(largest).toBe(60_000);
    expect(batches).toBeGreaterThan(0);
    expect(batches).toBeLessThanOrEqual(101);
  });

  it('stops receiving once closed, and closing twice is harmless', async () => {
    const s = bound();
    const port = await portOf(s);
    let n = 0;
    s.receive(() => n++);
    const peer = await nodeSocket();
    peer.send('one', port, HOST);
    await until(() => n === 1, 'the first datagram');
    s.close();
    s.close();
    expect(s.closed).toBe(true);
    // The port is free again at once.
    const again = bound({}, port);
    again.close();
    expect(() => s.send({ address: HOST, port: 9 }, [Buffer.from('x')])).toThrow(/closed/);
  });

  it('sets the receive buffer past rmem_max when it may (root), and reports what it got', () => {
    const rmemMax = Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8'));
    const asked = rmemMax + (1 << 20);
    const s = bound({ receiveBufferBytes: asked });
    // The kernel doubles what it grants; without CAP_NET_ADMIN it caps the request at net.core.rmem_max.
    if (process.getuid?.() === 0) expect(s.receiveBufferBytes()).toBe(2 * asked);
    else expect(s.receiveBufferBytes()).toBe(2 * rmemMax);
  });

  it('says what is wrong with its arguments', () => {
    expect(() => UdpSocket.bind({ address: 'localhost', port: 0 })).toThrow(/not an IPv4 address/);
    expect(() => UdpSocket.bind({ address: HOST, port: 70000 })).toThrow(/port must be an integer from 0 to 65535, got 70000/);
    expect(() => UdpSocket.bind({ address: HOST, port: 0 }, { receiveBufferBytes: -1 })).toThrow(/receiveBufferBytes/);
    const s = bound();
    expect(() => s.send({ address: HOST, port: 9 }, ['text' as unknown as Uint8Array])).toThrow(/Buffer or Uint8Array/);
  });
});
