import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { udpSocketDrops } from './socket-drops.js';

describe('udpSocketDrops', () => {
  it('reads the drops column of the sockets bound to the address, summed over workers sharing it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'flowlb-udp-'));
    try {
      const file = join(dir, 'udp');
      writeFileSync(
        file,
        [
          '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops',
          ' 1234: 0101C90A:1388 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17',
          ' 1235: 0100007F:1388 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4243 2 0000000000000000 3',
          ' 1236: 0201C90A:1388 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4244 2 0000000000000000 5',
          ' 1237: 0201C90A:1388 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4245 2 0000000000000000 6',
        ].join('\n'),
      );
      expect(udpSocketDrops({ address: '10.201.1.1', port: 5000 }, file)).toBe(17);
      expect(udpSocketDrops({ address: '127.0.0.1', port: 5000 }, file)).toBe(3);
      expect(udpSocketDrops({ address: '10.201.1.2', port: 5000 }, file)).toBe(11);
      expect(udpSocketDrops({ address: '127.0.0.1', port: 5001 }, file)).toBeUndefined();
      expect(udpSocketDrops({ address: '::1', port: 5000 }, file)).toBeUndefined();
      expect(udpSocketDrops({ address: '127.0.0.1', port: 5000 }, join(dir, 'missing'))).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('counts what a full receive buffer made the kernel drop on a real socket', async () => {
    // A socket that never reads, in a process of its own (Node reads every socket it binds).
    const sink = spawn('python3', [
      '-c',
      'import socket,sys,time\n' +
        's=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n' +
        's.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,4096)\n' +
        "s.bind(('127.0.0.1',0))\n" +
        'print(s.getsockname()[1],flush=True)\n' +
        'time.sleep(20)\n',
    ]);
    try {
      const port = await new Promise<number>((resolve, reject) => {
        sink.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
        sink.once('error', reject);
        setTimeout(() => reject(new Error('the sink did not start')), 10_000).unref();
      });
      const sender = dgram.createSocket('udp4');
      const payload = Buffer.alloc(1000);
      for (let i = 0; i < 200; i++) await new Promise<void>((r) => sender.send(payload, port, '127.0.0.1', () => r()));
      sender.close();
      expect(udpSocketDrops({ address: '127.0.0.1', port })).toBeGreaterThan(100);
    } finally {
      sink.kill('SIGKILL');
    }
  });
});
