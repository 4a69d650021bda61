import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { spawnLocal, type Spawned, type Topology } from './netns.js';
import type { ClientSummary, EchoRecord, ListeningNotice } from './udp-protocol.js';

/**
 * Path of the runnable peer. Beside the bundled module in dist/; from the sources it falls back to
 * dist/, and `FLOWLB_UDP_PEER` overrides both (used by this package's own tests).
 */
export function udpPeerScript(): string {
  const override = process.env.FLOWLB_UDP_PEER;
  if (override) return override;
  for (const rel of ['./udp-peer.js', '../dist/udp-peer.js']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error('udp-peer.js not found: build @flowlb/testkit first (pnpm --filter @flowlb/testkit build)');
}

function toHex(data: string | Uint8Array): string {
  return Buffer.from(typeof data === 'string' ? Buffer.from(data, 'utf8') : data).toString('hex');
}

export interface UdpEchoOptions {
  addr: string;
  /** 0 picks a free port; see {@link UdpEcho.bound}. */
  port: number;
  /** Prepended to every reply (default: none, a plain echo). */
  prefix?: string | Uint8Array;
  /** Replies per datagram (default 1; 0 makes a silent sink). */
  replies?: number;
  /** More `ip:port` sockets in the same process; each record's `to` tells which one received. */
  extraBinds?: string[];
  /** The peer exits by itself after this long (default 120 s). */
  lifetimeMs?: number;
  /** How long to wait for the sockets to be bound (default 5 s). */
  readyTimeoutMs?: number;
}

export interface UdpEcho {
  /** `ip:port` of every bound socket, in the order given. */
  readonly bound: string[];
  readonly process: Spawned;
  /** Every datagram received so far. */
  lines(): EchoRecord[];
  /** Resolves with the first record (already received or future) that matches; rejects after the timeout. */
  waitFor(predicate: (r: EchoRecord) => boolean, timeoutMs?: number): Promise<EchoRecord>;
  /** Resolves once at least `n` datagrams were received; rejects after the timeout. */
  waitForCount(n: number, timeoutMs?: number): Promise<EchoRecord[]>;
  stop(): Promise<void>;
}

interface Waiter {
  check: () => boolean;
}

type Launcher = (cmd: string, args: string[]) => Spawned;

/** Starts the echo peer inside `ns` and resolves once it is listening. */
export function startUdpEcho(topology: Topology, ns: string, opts: UdpEchoOptions): Promise<UdpEcho> {
  return startEcho((cmd, args) => topology.spawn(ns, cmd, args), ns, opts);
}

/** The echo peer in this process's own namespace, e.g. on 127.0.0.1; needs no privileges. */
export function startLocalUdpEcho(opts: UdpEchoOptions): Promise<UdpEcho> {
  return startEcho(spawnLocal, 'the local namespace', opts);
}

async function startEcho(launch: Launcher, ns: string, opts: UdpEchoOptions): Promise<UdpEcho> {
  const args = ['echo', '--bind', `${opts.addr}:${opts.port}`];
  for (const b of opts.extraBinds ?? []) args.push('--bind', b);
  if (opts.prefix !== undefined && (typeof opts.prefix !== 'string' || opts.prefix.length > 0)) {
    args.push('--prefix-hex', toHex(opts.prefix));
  }
  if (opts.replies !== undefined) args.push('--replies', String(opts.replies));
  args.push('--lifetime-ms', String(opts.lifetimeMs ?? 120_000));

  const proc = launch(process.execPath, [udpPeerScript(), ...args]);
  const records: EchoRecord[] = [];
  const waiters = new Set<Waiter>();
  const notify = (): void => {
    for (const w of [...waiters]) if (w.check()) waiters.delete(w);
  };

  let outBuf = '';
  proc.child.stdout?.on('data', (chunk: string) => {
    outBuf += chunk;
    let nl: number;
    while ((nl = outBuf.indexOf('\n')) >= 0) {
      const line = outBuf.slice(0, nl);
      outBuf = outBuf.slice(nl + 1);
      if (!line.trim()) continue;
      try {
        records.push(JSON.parse(line) as EchoRecord);
      } catch {
        // not ours; ignore
      }
    }
    notify();
  });

  const readyTimeoutMs = opts.readyTimeoutMs ?? 5000;
  const bound = await new Promise<string[]>((resolve, reject) => {
    let errBuf = '';
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`udp echo in ${ns} not listening after ${readyTimeoutMs} ms; stderr: ${errBuf.trim()}`));
    }, readyTimeoutMs);
    const onData = (chunk: string): void => {
      errBuf += chunk;
      for (const line of errBuf.split('\n')) {
        if (!line.startsWith('{"listening"')) continue;
        try {
          const notice = JSON.parse(line) as ListeningNotice;
          cleanup();
          resolve(notice.listening);
          return;
        } catch {
          // partial line; wait for more
        }
      }
    };
    const onExit = (): void => {
      // Give stderr a moment to deliver the reason before reporting it.
      setTimeout(() => {
        cleanup();
        reject(new Error(`udp echo in ${ns} exited before listening: ${(errBuf || proc.output().stderr).trim()}`));
      }, 50);
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      proc.child.stderr?.removeListener('data', onData);
      proc.child.removeListener('exit', onExit);
    };
    proc.child.stderr?.on('data', onData);
    proc.child.once('exit', onExit);
  }).catch(async (err: unknown) => {
    await proc.stop();
    throw err;
  });

  const waitUntil = <T>(produce: () => T | undefined, timeoutMs: number, what: string): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const first = produce();
      if (first !== undefined) {
        resolve(first);
        return;
      }
      const waiter: Waiter = {
        check: () => {
          const v = produce();
          if (v === undefined) return false;
          clearTimeout(timer);
          resolve(v);
          return true;
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`${what} not seen within ${timeoutMs} ms (echo in ${ns} received ${records.length} datagrams)`));
      }, timeoutMs);
      waiters.add(waiter);
    });

  return {
    bound,
    process: proc,
    lines: () => records.slice(),
    waitFor: (predicate, timeoutMs = 5000) => waitUntil(() => records.find(predicate), timeoutMs, 'matching datagram'),
    waitForCount: (n, timeoutMs = 5000) =>
      waitUntil(() => (records.length >= n ? records.slice() : undefined), timeoutMs, `${n} datagrams`),
    stop: async () => {
      await proc.stop();
    },
  };
}

export interface UdpClientOptions {
  /** `ip:port` or an endpoint object. */
  target: string | { address: string; port: number };
  /** Local `ip` or `ip:port` to bind (default: wildcard, ephemeral port). */
  bind?: string;
  /** Datagrams to send (default 1); ignored when `payloads` is given. */
  count?: number;
  /** Pause between datagrams (default 0). */
  intervalMs?: number;
  /** How long to wait for replies after the last datagram, or per datagram in lockstep (default 2000). */
  timeoutMs?: number;
  /** Template for every datagram; `{seq}` becomes the 0-based sequence number (default `ping {seq}`). */
  payload?: string;
  /** Exact datagrams to send, in order. */
  payloads?: (string | Uint8Array)[];
  /** Replies expected per datagram before the client stops early (default 1; 0 = send and exit). */
  expectReplies?: number;
  /** Send the next datagram only after the previous one was answered or timed out. */
  lockstep?: boolean;
}

/** Runs the client peer inside `ns` to completion and returns its summary. */
export function runUdpClient(topology: Topology, ns: string, opts: UdpClientOptions): Promise<ClientSummary> {
  return runClient((cmd, args) => topology.spawn(ns, cmd, args), ns, opts);
}

/** The client peer in this process's own namespace (loopback tests without privileges). */
export function runLocalUdpClient(opts: UdpClientOptions): Promise<ClientSummary> {
  return runClient(spawnLocal, 'the local namespace', opts);
}

async function runClient(launch: Launcher, ns: string, opts: UdpClientOptions): Promise<ClientSummary> {
  const target = typeof opts.target === 'string' ? opts.target : `${opts.target.address}:${opts.target.port}`;
  const args = ['client', '--target', target];
  if (opts.bind) args.push('--bind', opts.bind);
  const timeoutMs = opts.timeoutMs ?? 2000;
  const intervalMs = opts.intervalMs ?? 0;
  let count = opts.count ?? 1;
  if (opts.payloads) {
    count = opts.payloads.length;
    for (const p of opts.payloads) args.push('--payload-hex', toHex(p));
  } else {
    args.push('--count', String(count));
    if (opts.payload !== undefined) args.push('--payload', opts.payload);
  }
  args.push('--interval-ms', String(intervalMs), '--timeout-ms', String(timeoutMs));
  if (opts.expectReplies !== undefined) args.push('--expect', String(opts.expectReplies));
  if (opts.lockstep) args.push('--lockstep');

  // Upper bound on the whole run: every pause, every wait, plus start-up time.
  const budget = count * intervalMs + (opts.lockstep ? count : 1) * timeoutMs + 10_000;
  args.push('--max-ms', String(budget));
  const proc = launch(process.execPath, [udpPeerScript(), ...args]);
  let timer: NodeJS.Timeout | undefined;
  const status = await Promise.race([
    proc.closed,
    new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), budget + 5000);
    }),
  ]);
  clearTimeout(timer);
  if (status === 'timeout') {
    await proc.stop();
    throw new Error(`udp client in ${ns} did not finish within ${budget + 5000} ms`);
  }
  await proc.stop();
  const { stdout, stderr } = proc.output();
  const line = stdout.trim().split('\n').pop() ?? '';
  let summary: ClientSummary;
  try {
    summary = JSON.parse(line) as ClientSummary;
  } catch {
    throw new Error(`udp client in ${ns} failed (exit ${String(status.code)}): ${stderr.trim() || stdout.trim()}`);
  }
  if (status.code !== 0) throw new Error(`udp client in ${ns} exit ${String(status.code)}: ${stderr.trim()}`);
  return summary;
}
