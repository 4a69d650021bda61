/**
 * UDP peer for end-to-end tests, run inside a namespace:
 *
 *   node udp-peer.js echo --bind 10.0.2.10:9000 [--bind ...] [--prefix STR | --prefix-hex HEX]
 *                         [--replies N] [--max-datagrams N] [--lifetime-ms MS]
 *   node udp-peer.js client --target IP:PORT [--bind IP[:PORT]] [--count N] [--interval-ms MS]
 *                         [--timeout-ms MS] [--payload TEMPLATE | --payload-hex HEX ...]
 *                         [--expect N] [--lockstep] [--max-ms MS]
 *
 * echo: one JSON line per datagram on stdout ({from, to?, len, data, hex, t}); a `{"listening":[...]}`
 * line on stderr once bound. Replies with prefix + datagram from the receiving socket.
 * client: one JSON summary line on stdout ({local, sent, received, replies, lostSeqs, durationMs}).
 * `{seq}` in a payload template is replaced by the 0-based sequence number.
 * Exit codes: 0 done, 2 usage error, 3 socket error.
 */
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import { parseArgs } from 'node:util';
import {
  formatEndpoint,
  parseEndpoint,
  type ClientReply,
  type ClientSummary,
  type EchoRecord,
  type ListeningNotice,
} from './udp-protocol.js';

const started = Date.now();
const elapsed = (): number => Date.now() - started;

class UsageError extends Error {}

function intOpt(value: string | undefined, name: string, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}`);
  return n;
}

function hexOpt(value: string, name: string): Buffer {
  if (!/^([0-9a-fA-F]{2})*$/.test(value)) throw new UsageError(`--${name} must be an even number of hex digits`);
  return Buffer.from(value, 'hex');
}

function endpointOpt(text: string, name: string, defaultPort?: number): { address: string; port: number } {
  try {
    return parseEndpoint(text, defaultPort);
  } catch (err) {
    throw new UsageError(`--${name}: ${(err as Error).message}`);
  }
}

function socketFor(address: string): dgram.Socket {
  return dgram.createSocket({ type: isIPv6(address) ? 'udp6' : 'udp4', reuseAddr: false });
}

function bindSocket(sock: dgram.Socket, address: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    sock.once('error', onError);
    sock.bind({ address, port, exclusive: true }, () => {
      sock.removeListener('error', onError);
      resolve();
    });
  });
}

function writeLine(obj: unknown): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

async function runEcho(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      bind: { type: 'string', multiple: true },
      prefix: { type: 'string' },
      'prefix-hex': { type: 'string' },
      replies: { type: 'string' },
      'max-datagrams': { type: 'string' },
      'lifetime-ms': { type: 'string' },
    },
    strict: true,
  });
  const binds = values.bind ?? [];
  if (binds.length === 0) throw new UsageError('echo needs at least one --bind ip:port');
  const prefix =
    values['prefix-hex'] !== undefined
      ? hexOpt(values['prefix-hex'], 'prefix-hex')
      : Buffer.from(values.prefix ?? '', 'utf8');
  const replies = intOpt(values.replies, 'replies', 1);
  const maxDatagrams = intOpt(values['max-datagrams'], 'max-datagrams', Number.MAX_SAFE_INTEGER, 1);
  // Even an echo server that nobody stops must end by itself.
  const lifetimeMs = intOpt(values['lifetime-ms'], 'lifetime-ms', 300_000, 1);

  const sockets: dgram.Socket[] = [];
  let seen = 0;
  let finish: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => {
    finish = resolve;
  });

  const listening: string[] = [];
  for (const b of binds) {
    const { address, port } = endpointOpt(b, 'bind');
    const sock = socketFor(address);
    await bindSocket(sock, address, port);
    const local = sock.address();
    const wildcard = address === '0.0.0.0' || address === '::';
    const to = wildcard ? undefined : formatEndpoint(local.address, local.port);
    listening.push(formatEndpoint(local.address, local.port));
    sock.on('error', (err) => {
      process.stderr.write(`${JSON.stringify({ error: String(err) })}\n`);
      finish(3);
    });
    sock.on('message', (msg, rinfo) => {
      seen += 1;
      const rec: EchoRecord = {
        from: formatEndpoint(rinfo.address, rinfo.port),
        len: msg.length,
        data: msg.toString('utf8'),
        hex: msg.toString('hex'),
        t: elapsed(),
      };
      if (to) rec.to = to;
      writeLine(rec);
      if (replies > 0) {
        const out = Buffer.concat([prefix, msg]);
        for (let i = 0; i < replies; i++) sock.send(out, rinfo.port, rinfo.address);
      }
      if (seen >= maxDatagrams) setTimeout(() => finish(0), 50);
    });
    sockets.push(sock);
  }
  const notice: ListeningNotice = { listening };
  process.stderr.write(`${JSON.stringify(notice)}\n`);

  const timer = setTimeout(() => finish(0), lifetimeMs);
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => finish(0));
  const code = await done;
  clearTimeout(timer);
  for (const s of sockets) s.close();
  return code;
}

async function runClient(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      target: { type: 'string' },
      bind: { type: 'string' },
      count: { type: 'string' },
      'interval-ms': { type: 'string' },
      'timeout-ms': { type: 'string' },
      payload: { type: 'string' },
      'payload-hex': { type: 'string', multiple: true },
      expect: { type: 'string' },
      lockstep: { type: 'boolean' },
      'max-ms': { type: 'string' },
    },
    strict: true,
  });
  if (!values.target) throw new UsageError('client needs --target ip:port');
  const target = endpointOpt(values.target, 'target');
  const hexPayloads = (values['payload-hex'] ?? []).map((h) => hexOpt(h, 'payload-hex'));
  const count = hexPayloads.length > 0 ? hexPayloads.length : intOpt(values.count, 'count', 1, 0);
  const intervalMs = intOpt(values['interval-ms'], 'interval-ms', 0);
  const timeoutMs = intOpt(values['timeout-ms'], 'timeout-ms', 2000);
  const expect = intOpt(values.expect, 'expect', 1);
  const lockstep = values.lockstep === true;
  const template = values.payload ?? 'ping {seq}';
  const maxMs = intOpt(values['max-ms'], 'max-ms', 120_000, 1);

  const datagrams: Buffer[] = Array.from({ length: count }, (_, seq) =>
    hexPayloads[seq] ?? Buffer.from(template.replaceAll('{seq}', String(seq)), 'utf8'),
  );

  const sock = socketFor(target.address);
  const bind = values.bind ? endpointOpt(values.bind, 'bind', 0) : { address: isIPv6(target.address) ? '::' : '0.0.0.0', port: 0 };
  await bindSocket(sock, bind.address, bind.port);
  const local = sock.address();

  const replies: ClientReply[] = [];
  const matched = new Array<number>(count).fill(0);
  let wake: (() => void) | undefined;
  const satisfied = (seq: number): boolean => (matched[seq] ?? 0) >= expect;
  const allSatisfied = (): boolean => matched.every((_, i) => satisfied(i));

  sock.on('message', (msg, rinfo) => {
    const reply: ClientReply = {
      from: formatEndpoint(rinfo.address, rinfo.port),
      data: msg.toString('utf8'),
      hex: msg.toString('hex'),
      t: elapsed(),
    };
    // An echo reply is prefix + datagram: attribute it to the first unsatisfied datagram it ends with.
    let seq = -1;
    for (let i = 0; i < count; i++) {
      const d = datagrams[i];
      if (d && !satisfied(i) && msg.length >= d.length && msg.subarray(msg.length - d.length).equals(d)) {
        seq = i;
        break;
      }
    }
    if (seq < 0) {
      for (let i = 0; i < count; i++) {
        const d = datagrams[i];
        if (d && msg.length >= d.length && msg.subarray(msg.length - d.length).equals(d)) {
          seq = i;
          break;
        }
      }
    }
    if (seq >= 0) {
      reply.seq = seq;
      matched[seq] = (matched[seq] ?? 0) + 1;
    }
    replies.push(reply);
    wake?.();
  });

  let sockError: Error | undefined;
  sock.on('error', (err) => {
    sockError = err;
    wake?.();
  });

  const deadline = started + maxMs;
  const waitUntil = (pred: () => boolean, ms: number): Promise<void> =>
    new Promise((resolve) => {
      if (pred() || sockError) {
        resolve();
        return;
      }
      const limit = Math.max(0, Math.min(ms, deadline - Date.now()));
      const timer = setTimeout(() => {
        wake = undefined;
        resolve();
      }, limit);
      wake = () => {
        if (pred() || sockError) {
          clearTimeout(timer);
          wake = undefined;
          resolve();
        }
      };
    });
  const send = (buf: Buffer): Promise<void> =>
    new Promise((resolve) => {
      sock.send(buf, target.port, target.address, (err) => {
        if (err) sockError = err;
        resolve();
      });
    });

  let sent = 0;
  for (let seq = 0; seq < count && Date.now() < deadline && !sockError; seq++) {
    const d = datagrams[seq];
    if (!d) break;
    await send(d);
    sent += 1;
    if (lockstep && expect > 0) await waitUntil(() => satisfied(seq), timeoutMs);
    if (intervalMs > 0 && seq + 1 < count) await new Promise((r) => setTimeout(r, intervalMs));
  }
  if (expect > 0 && !lockstep) await waitUntil(allSatisfied, timeoutMs);
  sock.close();

  const summary: ClientSummary = {
    local: formatEndpoint(local.address, local.port),
    sent,
    received: replies.length,
    replies,
    lostSeqs: matched.flatMap((m, i) => (m === 0 ? [i] : [])),
    durationMs: elapsed(),
  };
  writeLine(summary);
  if (sockError) {
    process.stderr.write(`${JSON.stringify({ error: String(sockError) })}\n`);
    return 3;
  }
  return 0;
}

async function main(): Promise<number> {
  const [mode, ...rest] = process.argv.slice(2);
  try {
    if (mode === 'echo') return await runEcho(rest);
    if (mode === 'client') return await runClient(rest);
    throw new UsageError(`first argument must be 'echo' or 'client', got '${mode ?? ''}'`);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`udp-peer: ${(err as Error).message}\n`);
      return 2;
    }
    process.stderr.write(`${JSON.stringify({ error: String(err) })}\n`);
    return 3;
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${String(err)}\n`);
    process.exitCode = 3;
  },
);
