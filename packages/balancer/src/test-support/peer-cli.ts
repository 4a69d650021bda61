/**
 * Processes for the end-to-end tests in network namespaces (bundled and run with `ip netns exec`):
 *
 *   lb '<json LbConfig>'   a LoadBalancer with the scenario mapper. Reads commands on stdin, one per line:
 *                          `stats`, `flows`, `calls`, `stop`. Writes JSON lines: {"started": {...}}, {"event": ...},
 *                          {"stats": ...}, {"flows": [...]}, {"calls": [...]}, {"stopped": stats}, {"failed": ...}.
 *   push '<json>'          {bind, count, intervalMs}: on a datagram from X, send X `count` pushes.
 *   clients '<json>'       {address, ports, target, payload, requests, timeoutMs}: one socket per port, each
 *                          sending `requests` datagrams in lockstep; payload has {port}, {parity} and {seq}.
 *   send '<json>'          {bind, target, payloads, gapMs, collectMs}: send payloads gapMs apart, collect replies.
 *   flood '<json>'         {address, sources, perSource, size, batch, target}: junk from many source ports.
 *
 * Every wait is bounded; a process that gets SIGTERM stops cleanly.
 */
import dgram from 'node:dgram';
import { createInterface } from 'node:readline';
import { LoadBalancer } from '../balancer.js';
import type { BalancerEvent } from '../events.js';
import type { LimitsOptions } from '../options.js';
import type { NewClientLimits } from '@flowlb/flow-table';
import { scenarioMapper } from './scenario-mapper.js';
import { bindUdp } from '../udp-socket.js';

interface Endpoint {
  address: string;
  port: number;
}

export interface LbConfig {
  vip: Endpoint;
  snatAddress?: string;
  snatPorts?: { min: number; max: number };
  targets: Endpoint[];
  datapath?: 'auto' | 'xdp' | 'userspace';
  interfaces?: string[];
  xdpMode?: 'native' | 'generic' | 'auto';
  connTtlSec?: number;
  unconfirmedTtlSec?: number;
  newClientLimits?: NewClientLimits;
  sweepIntervalMs?: number;
  dropHoldMs?: number;
  limits?: LimitsOptions;
  receiveBufferBytes?: number;
}

const print = (obj: unknown): void => {
  process.stdout.write(`${JSON.stringify(obj, (_k, v: unknown) => (v instanceof Error ? v.message : v))}\n`);
};

const QUIET_EVENTS = new Set<BalancerEvent['type']>(['client-dropped']);

async function runLb(config: LbConfig): Promise<void> {
  const mapper = scenarioMapper(config.targets);
  const lb = new LoadBalancer({
    vip: config.vip,
    snatAddress: config.snatAddress,
    snatPorts: config.snatPorts,
    mapper,
    datapath: config.datapath ?? 'xdp',
    interfaces: config.interfaces,
    xdp: { mode: config.xdpMode ?? 'native', ...(config.newClientLimits ? { newClientLimits: config.newClientLimits } : {}) },
    connTtlSec: config.connTtlSec,
    unconfirmedTtlSec: config.unconfirmedTtlSec,
    sweepIntervalMs: config.sweepIntervalMs,
    dropHoldMs: config.dropHoldMs,
    limits: config.limits,
    receiveBufferBytes: config.receiveBufferBytes,
    // Thousands of junk clients would flood the pipe; their drops are in the counters.
    onEvent: (event) => {
      if (!QUIET_EVENTS.has(event.type)) print({ event });
    },
  });
  try {
    await lb.start();
  } catch (error) {
    print({ failed: (error as Error).message });
    process.exitCode = 1;
    return;
  }
  print({ started: { datapath: lb.datapath, reason: lb.datapathChoice?.reason } });
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await lb.stop();
    print({ stopped: lb.stats() });
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const cmd = line.trim();
    if (cmd === 'stats') print({ stats: lb.stats() });
    else if (cmd === 'flows') print({ flows: [...lb.table!.pairs()].map((r) => ({ ...r, forwardLastUsed: String(r.forwardLastUsed), reverseLastUsed: String(r.reverseLastUsed) })) });
    else if (cmd === 'calls') print({ calls: mapper.calls.filter((c) => !c.packets[0]?.startsWith('jjj')) });
    else if (cmd === 'stop') void stop();
  });
  lines.on('close', () => void stop());
}

/** A socket bound to exactly address:port, as the balancer binds its own; late errors are ignored. */
function bind(address: string, port: number): Promise<dgram.Socket> {
  return bindUdp({ address, port }, () => {});
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function runPush(o: { bind: Endpoint; count: number; intervalMs: number }): Promise<void> {
  const s = await bind(o.bind.address, o.bind.port);
  s.on('message', (msg, rinfo) => {
    print({ from: `${rinfo.address}:${rinfo.port}`, data: msg.toString() });
    let i = 0;
    const t = setInterval(() => {
      s.send(`push ${i}`, rinfo.port, rinfo.address);
      if (++i === o.count) clearInterval(t);
    }, o.intervalMs);
  });
  process.stderr.write(`${JSON.stringify({ listening: [`${o.bind.address}:${o.bind.port}`] })}\n`);
  setTimeout(() => process.exit(0), 120_000).unref();
  process.on('SIGTERM', () => process.exit(0));
}

interface Reply {
  from: string;
  data: string;
}

async function runClients(o: {
  address: string;
  ports: number[];
  target: Endpoint;
  payload: string;
  requests: number;
  timeoutMs: number;
  gapMs?: number;
}): Promise<void> {
  const results = await Promise.all(
    o.ports.map(async (port) => {
      const s = await bind(o.address, port);
      const replies: (Reply | null)[] = [];
      for (let seq = 0; seq < o.requests; seq++) {
        const payload = o.payload
          .replaceAll('{port}', String(port))
          .replaceAll('{parity}', String(port % 2))
          .replaceAll('{seq}', String(seq));
        const reply = await new Promise<Reply | null>((resolve) => {
          const timer = setTimeout(() => {
            s.removeListener('message', onMessage);
            resolve(null);
          }, o.timeoutMs);
          const onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
            clearTimeout(timer);
            s.removeListener('message', onMessage);
            resolve({ from: `${rinfo.address}:${rinfo.port}`, data: msg.toString() });
          };
          s.on('message', onMessage);
          s.send(payload, o.target.port, o.target.address);
        });
        replies.push(reply);
        if (o.gapMs) await sleep(o.gapMs);
      }
      s.close();
      return { port, replies };
    }),
  );
  print({ clients: results });
}

async function runSend(o: { bind: Endpoint; target: Endpoint; payloads: string[]; gapMs: number; collectMs: number }): Promise<void> {
  const s = await bind(o.bind.address, o.bind.port);
  const received: Reply[] = [];
  s.on('message', (msg, rinfo) => received.push({ from: `${rinfo.address}:${rinfo.port}`, data: msg.toString() }));
  for (const [i, p] of o.payloads.entries()) {
    if (i > 0) await sleep(o.gapMs);
    s.send(p, o.target.port, o.target.address);
  }
  await sleep(o.collectMs);
  s.close();
  print({ received });
}

async function runFlood(o: { address: string; sources: number; perSource: number; size: number; batch: number; target: Endpoint }): Promise<void> {
  const payload = Buffer.alloc(o.size, 'j');
  let sent = 0;
  for (let done = 0; done < o.sources; done += o.batch) {
    const n = Math.min(o.batch, o.sources - done);
    const sockets = await Promise.all(Array.from({ length: n }, () => bind(o.address, 0)));
    await Promise.all(
      sockets.map(async (s) => {
        for (let i = 0; i < o.perSource; i++) {
          await new Promise<void>((resolve) => s.send(payload, o.target.port, o.target.address, () => resolve()));
          sent++;
        }
      }),
    );
    for (const s of sockets) s.close();
  }
  print({ sent });
}

async function main(): Promise<void> {
  const [command, json] = process.argv.slice(2);
  const arg = JSON.parse(json ?? '{}') as never;
  switch (command) {
    case 'lb':
      return runLb(arg);
    case 'push':
      return runPush(arg);
    case 'clients':
      return runClients(arg);
    case 'send':
      return runSend(arg);
    case 'flood':
      return runFlood(arg);
    default:
      process.stderr.write(`unknown command ${String(command)}\n`);
      process.exitCode = 2;
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 3;
});
