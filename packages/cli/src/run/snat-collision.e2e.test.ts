import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnLocal, type Topology } from '@flowlb/testkit';
import { LbProcess, type LogLine } from '../test-support/lb-process.js';

const HOST = '127.0.0.1';

/** Runs `flowlb run` in this process's own namespace: loopback needs no namespace of its own, nor root. */
const here = { spawn: (_ns: string, cmd: string, args: readonly string[], opts: object) => spawnLocal(cmd, args, opts) } as unknown as Topology;

/** Binds like many servers (openssl s_server among them) do: with SO_REUSEADDR, unless `share` is false. */
function bind(port: number, share: boolean): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket({ type: 'udp4', reuseAddr: share });
    socket.once('error', reject);
    socket.bind({ address: HOST, port, exclusive: true }, () => {
      socket.removeListener('error', reject);
      socket.on('error', () => {});
      resolve(socket);
    });
  });
}

/**
 * A VIP port like the report's 17000, whose next two ports are free too: inside the default SNAT range and below its
 * middle, so the range chosen around it starts right after it, at the first backend's port.
 */
async function freeBase(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 11000 + Math.floor(Math.random() * 8000);
    const held: dgram.Socket[] = [];
    try {
      for (let p = base; p <= base + 2; p++) held.push(await bind(p, false));
      return base;
    } catch {
      // taken: try another
    } finally {
      for (const s of held) s.close();
    }
  }
  throw new Error('no three free consecutive UDP ports found on 127.0.0.1');
}

interface Backend {
  socket: dgram.Socket;
  /** `ip:port` of every datagram's sender. */
  from: string[];
}

async function echoBackend(name: string, port: number): Promise<Backend> {
  const socket = await bind(port, true);
  const from: string[] = [];
  socket.on('message', (msg, rinfo) => {
    from.push(`${rinfo.address}:${rinfo.port}`);
    socket.send(Buffer.concat([Buffer.from(`${name}|`), msg]), rinfo.port, rinfo.address);
  });
  return { socket, from };
}

/** Sends one datagram and resolves with the first reply, or undefined once `timeoutMs` passed without one. */
function request(socket: dgram.Socket, data: string, to: number, timeoutMs: number): Promise<{ from: string; data: string } | undefined> {
  return new Promise((resolve) => {
    const onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
      done();
      resolve({ from: `${rinfo.address}:${rinfo.port}`, data: msg.toString() });
    };
    const timer = setTimeout(() => {
      done();
      resolve(undefined);
    }, timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      socket.removeListener('message', onMessage);
    };
    socket.on('message', onMessage);
    socket.send(data, to, HOST);
  });
}

/** Routes by the first byte of the first datagram: `0…` to the first backend, `1…` to the second. */
const mapperSource = (ports: readonly number[]): string => `
export default {
  findFlow(client, packets) {
    const i = packets[0][0] - 0x30;
    const port = ${JSON.stringify(ports)}[i];
    if (port === undefined) return { action: 'drop', reason: 'no backend ' + i };
    return { action: 'forward', flow: { dstAddr: { address: '${HOST}', port } } };
  },
};
`;

// The reported setup, as a seed-style config: VIP and backends on one address, backends right after the VIP port,
// no SNAT range given, userspace datapath. The default range then starts at the first backend's port.
describe('flowlb run with its backends on its own address', () => {
  const closeAfter: Array<() => void> = [];
  let lb: LbProcess | undefined;
  let dir: string | undefined;

  afterEach(async () => {
    if (lb) await lb.proc.stop(2000);
    lb = undefined;
    for (const close of closeAfter.splice(0)) {
      try {
        close();
      } catch {
        // already closed
      }
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('reaches both backends, answers from the VIP, and never uses a backend or the VIP port as a SNAT port', async () => {
    const vipPort = await freeBase();
    const backendPorts = [vipPort + 1, vipPort + 2];
    const backends = await Promise.all(backendPorts.map((p, i) => echoBackend(`b${i}`, p)));
    for (const b of backends) closeAfter.push(() => b.socket.close());

    dir = mkdtempSync(join(tmpdir(), 'flowlb-snat-collision-'));
    const config = join(dir, 'config.yaml');
    writeFileSync(config, `port: ${vipPort}\naddr: ${HOST}\nmode: userspace\ndebug: true\nconn_ttl_sec: 30\n`);
    const mapper = join(dir, 'mapper.mjs');
    writeFileSync(mapper, mapperSource(backendPorts));
    lb = new LbProcess(here, '', ['--config', config, '--mapper', mapper], { FLOWLB_RUN_DIR: dir });
    await lb.running();
    const started = lb.lines.find((l) => l.msg === 'started');
    expect(started).toMatchObject({ vip: `${HOST}:${vipPort}`, snatPorts: `${vipPort + 1}-29999`, datapath: 'userspace' });

    const clients = await Promise.all([0, 1, 2, 3].map(() => bind(0, false)));
    for (const c of clients) closeAfter.push(() => c.close());
    const vip = `${HOST}:${vipPort}`;
    await Promise.all(
      clients.map(async (c, i) => {
        const b = i % 2;
        for (let seq = 0; seq < 3; seq++) {
          const reply = await request(c, `${b}:c${i}#${seq}`, vipPort, 5000);
          expect(reply, `client ${i}, datagram ${seq}`).toEqual({ from: vip, data: `b${b}|${b}:c${i}#${seq}` });
        }
      }),
    );

    const taken = new Set([vipPort, ...backendPorts]);
    const created = lb.lines.filter((l) => l.msg === 'flow created');
    expect(created).toHaveLength(4);
    for (const f of created) {
      expect(f.snat, `flow to ${String(f.target)}`).not.toBe(f.target);
      expect(taken.has(portOf(f.snat)), `SNAT ${String(f.snat)} towards ${String(f.target)}`).toBe(false);
    }
    for (const b of backends) {
      expect(b.from).toHaveLength(6);
      for (const from of b.from) expect(taken.has(portOf(from)), `a backend heard from ${from}`).toBe(false);
    }
    // Backend ports that a pool offered were found taken when bound, set aside, and said so.
    const setAside = lb.lines.filter((l) => l.msg.startsWith('SNAT port taken by another socket'));
    expect(setAside.length).toBeGreaterThan(0);
    for (const l of setAside) {
      expect(l.level).toBe('warn');
      expect(backendPorts).toContain(portOf(l.snat));
      expect(l.snat).not.toBe(l.target);
    }

    lb.signal('SIGTERM');
    expect(await lb.exit()).toEqual({ code: 0, signal: null });
    lb = undefined;
  }, 60_000);
});

function portOf(endpoint: LogLine[string]): number {
  return Number(String(endpoint).split(':')[1]);
}
