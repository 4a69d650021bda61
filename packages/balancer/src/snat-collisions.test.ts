import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import type { Endpoint } from '@flowlb/flow-table';
import { LoadBalancer } from './balancer.js';
import type { BalancerEvent } from './events.js';
import { PortClaims } from './port-claims.js';
import { scenarioMapper } from './test-support/scenario-mapper.js';
import { TestClient } from './test-support/udp-peers.js';
import { assertUnbound } from './udp-socket.js';

// Loopback only, in this process, without privileges. A random address of 127.78/16 keeps parallel runs apart.
const HOST = `127.78.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
const BASE = 20000 + Math.floor(Math.random() * 400) * 10;

/** A socket bound the way many servers bind (openssl s_server among them): with SO_REUSEADDR. */
function bindShared(address: string, port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    socket.once('error', reject);
    socket.bind({ address, port, exclusive: true }, () => {
      socket.removeListener('error', reject);
      socket.on('error', () => {});
      resolve(socket);
    });
  });
}

/** Answers `<name>|<datagram>` from a SO_REUSEADDR socket, remembering who sent what. */
async function sharedEcho(name: string, at: Endpoint): Promise<{ socket: dgram.Socket; from: string[] }> {
  const socket = await bindShared(at.address, at.port);
  const from: string[] = [];
  socket.on('message', (msg, rinfo) => {
    from.push(`${rinfo.address}:${rinfo.port}`);
    socket.send(Buffer.concat([Buffer.from(`${name}|`), msg]), rinfo.port, rinfo.address);
  });
  return { socket, from };
}

const open: Array<{ close(): void }> = [];
afterEach(() => {
  for (const s of open.splice(0)) {
    try {
      s.close();
    } catch {
      // already closed
    }
  }
});

describe('assertUnbound', () => {
  it('finds a socket of another program even when it set SO_REUSEADDR, on the address or on 0.0.0.0', async () => {
    const port = BASE + 1;
    open.push(await bindShared(HOST, port));
    await expect(assertUnbound({ address: HOST, port })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    open.push(await bindShared('0.0.0.0', port + 1));
    await expect(assertUnbound({ address: HOST, port: port + 1 })).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });

  it('leaves a free port free', async () => {
    const at = { address: HOST, port: BASE + 3 };
    await assertUnbound(at);
    open.push(await bindShared(at.address, at.port));
  });
});

describe('PortClaims', () => {
  const at = { address: HOST, port: BASE + 4 };

  it('checks an endpoint once for every holder at a time, and again once all have let go', async () => {
    const claims = new PortClaims();
    let checks = 0;
    const check = async (): Promise<void> => {
      checks++;
    };
    await Promise.all([claims.claim(at, check), claims.claim(at, check), claims.claim(at, check)]);
    expect([checks, claims.size]).toEqual([1, 1]);
    for (let i = 0; i < 3; i++) claims.release(at);
    expect(claims.size).toBe(0);
    await claims.claim(at, check);
    expect(checks).toBe(2);
  });

  it('a failed check fails everyone waiting for it and holds nothing', async () => {
    const claims = new PortClaims();
    const refused = Object.assign(new Error('taken'), { code: 'EADDRINUSE' });
    const results = await Promise.allSettled([claims.claim(at, () => Promise.reject(refused)), claims.claim(at, async () => {})]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(claims.size).toBe(0);
    claims.release(at);
    expect(claims.size).toBe(0);
  });
});

describe('LoadBalancer with its backends on its own address (userspace)', () => {
  it("never gives a flow its target's port, the VIP's port or a port a backend holds with SO_REUSEADDR", async () => {
    const vip = { address: HOST, port: BASE + 5 };
    const targets = [
      { address: HOST, port: vip.port + 1 },
      { address: HOST, port: vip.port + 2 },
    ];
    const backends = await Promise.all(targets.map((t, i) => sharedEcho(`b${i}`, t)));
    open.push(...backends.map((b) => b.socket));
    const events: BalancerEvent[] = [];
    const lb = new LoadBalancer({
      vip,
      snatPorts: { min: vip.port + 1, max: vip.port + 8 },
      mapper: scenarioMapper(targets),
      datapath: 'userspace',
      onEvent: (e) => events.push(e),
    });
    open.push({ close: () => void lb.stop() });
    await lb.start();

    const clients = await Promise.all([0, 1, 2, 3].map(() => TestClient.open(HOST)));
    open.push(...clients);
    const replies = await Promise.all(clients.map((c, i) => c.request(`to:${i % 2}:c${i}`, vip)));
    replies.forEach((r, i) => {
      expect(r, `client ${i}`).toMatchObject({ from: `${vip.address}:${vip.port}`, data: `b${i % 2}|to:${i % 2}:c${i}` });
    });

    const created = events.flatMap((e) => (e.type === 'flow-created' ? [e.pair] : []));
    expect(created).toHaveLength(4);
    const taken = new Set([vip.port, ...targets.map((t) => t.port)]);
    for (const pair of created) {
      expect(pair.snat.address).toBe(HOST);
      expect(taken.has(pair.snat.port), `SNAT port ${pair.snat.port} towards ${pair.target.port}`).toBe(false);
    }
    // Each backend saw only the flows' ports, never its own or its neighbour's.
    for (const b of backends) for (const from of b.from) expect(taken.has(Number(from.split(':')[1]))).toBe(false);
    // The backends' ports were found taken at bind time and set aside, with a word about it.
    const quarantined = events.flatMap((e) => (e.type === 'snat-port-quarantined' ? [e] : []));
    expect(quarantined.length).toBeGreaterThan(0);
    for (const q of quarantined) {
      expect(targets.map((t) => t.port)).toContain(q.snat.port);
      expect(q.snat.port).not.toBe(q.target.port);
      expect(q.error).toMatch(/EADDRINUSE/);
    }
    expect(lb.stats().snat.quarantined).toBe(quarantined.length);
    await lb.stop();
    expect(lb.state).toBe('stopped');
  });
});
