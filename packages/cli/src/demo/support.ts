import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import dgram from 'node:dgram';
import { CliError, EXIT } from '../cli/exit-codes.js';
import type { Io } from '../cli/io.js';
import { formatDuration, renderTable } from '../format/table.js';
import type { FlowRow } from '../maps/flows.js';
import type { Cleanup } from './cleanup.js';
import { makeCertificate, runClient, startBackend, type ClientResult, type Credentials, type Prefix } from './dtls.js';
import { Child } from './proc.js';
import { runQuicClient, startQuicBackend, type QuicTools } from './quic.js';
import { BACKENDS, CLIENTS, type DemoClient } from './scenario.js';

export function binPath(): string {
  const here = fileURLToPath(new URL('./bin.js', import.meta.url));
  return existsSync(here) ? here : process.argv[1]!;
}

export async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => resolve());
  });
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface Balancer {
  child: Child;
  metricsUrl: string | undefined;
  logs(): Array<Record<string, unknown>>;
}

export async function startBalancer(prefix: Prefix, config: string, mappings: string, runDir: string): Promise<Balancer> {
  const argv = [process.execPath, binPath(), 'run', '--config', config, '--mappings', mappings];
  const [cmd, ...args] = [...prefix, ...argv];
  const child = new Child(cmd!, args, { env: { ...process.env, FLOWLB_RUN_DIR: runDir } });
  const logs = (): Array<Record<string, unknown>> =>
    child.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return {};
        }
      });
  try {
    await child.waitForLine((l) => l.includes('"msg":"running'), 20_000, 'flowlb run did not start');
  } catch (error) {
    await child.stop();
    throw new CliError(`${(error as Error).message}\n${child.stderr.trim()}`, EXIT.FAILURE);
  }
  const url = logs().find((l) => typeof l.url === 'string')?.url as string | undefined;
  return { child, metricsUrl: url, logs };
}

export function say(io: Io, line = ''): void {
  io.out(`${line}\n`);
}

export async function runClients(
  io: Io,
  prefix: Prefix,
  vip: string,
  clientAddress: string,
  firstPort: number,
): Promise<{ results: ClientResult[]; ok: boolean }> {
  say(io, `DTLS clients: openssl s_client -dtls1_2 -connect ${vip} -servername NAME, one after another`);
  return reportClients(io, clientAddress, (c, i) => runClient(prefix, vip, c.name, { address: clientAddress, port: firstPort + i }, c.timeoutMs));
}

/** The same clients over QUIC; `vip.address` is what every name resolves to where they run. */
export async function runQuicClients(
  io: Io,
  tools: QuicTools,
  prefix: Prefix,
  vip: { address: string; port: number },
  clientAddress: string,
  tmp: string,
): Promise<{ results: ClientResult[]; ok: boolean }> {
  say(io, `QUIC clients: gtlsclient NAME ${vip.port} https://NAME/index.html (HTTP/3; NAME is ${vip.address} in the client's /etc/hosts), one after another`);
  return reportClients(io, clientAddress, (c) => runQuicClient(tools, prefix, c.name, vip.port, tmp, c.timeoutMs));
}

async function reportClients(
  io: Io,
  clientAddress: string,
  run: (c: DemoClient, i: number) => Promise<ClientResult>,
): Promise<{ results: ClientResult[]; ok: boolean }> {
  const results: ClientResult[] = [];
  let ok = true;
  for (const [i, c] of CLIENTS.entries()) {
    const r = await run(c, i);
    results.push(r);
    const right = r.answeredBy === c.expect;
    ok &&= right;
    const what = r.answeredBy ? `answered by ${r.answeredBy}` : `no answer (${c.expect ? r.error : 'no mapping: dropped, as configured'})`;
    const from = r.localPort === undefined ? clientAddress : `${clientAddress}:${r.localPort}`;
    say(io, `  ${right ? 'ok  ' : 'FAIL'}  ${c.name.padEnd(18)} from ${from}  ${what}`);
  }
  say(io);
  return { results, ok };
}

export function flowsTable(rows: readonly FlowRow[]): string {
  const ep = (e: { address: string; port: number }): string => `${e.address}:${e.port}`;
  return renderTable(
    ['CLIENT', 'BACKEND', 'SNAT', 'IDLE'],
    rows.map((r) => [ep(r.client), ep(r.target), ep(r.snat), formatDuration(r.idleMs)]),
  ).replace(/^(?=.)/gm, '  ');
}

export async function stopBalancer(io: Io, b: Balancer): Promise<boolean> {
  const r = await b.child.stop(10_000);
  const clean = r.code === 0;
  say(io, clean ? 'flowlb run stopped on SIGTERM (exit 0)' : `flowlb run ended with ${r.code ?? r.signal}: ${r.stderr.trim()}`);
  return clean;
}

type Target = { address: string; port: number };

/** A DTLS backend per name and, with `quic`, a QUIC one beside it that shows the same certificate. */
export async function startBackends(
  io: Io,
  cleanup: Cleanup,
  tmp: string,
  prefix: Prefix,
  targets: readonly Target[],
  quic?: { tools: QuicTools; targets: readonly Target[] },
): Promise<void> {
  const all: Credentials[] = [];
  for (const [i, t] of targets.entries()) {
    const creds = await makeCertificate(tmp, BACKENDS[i]!);
    all.push(creds);
    const server = startBackend(prefix, creds, t.address, t.port);
    cleanup.add(`s_server ${creds.name}`, () => server.stop(1000));
    await server.waitForLine((l) => l.startsWith('ACCEPT'), 10_000, `openssl s_server for ${creds.name} did not start`);
    say(io, `backend ${creds.name}: openssl s_server -dtls1_2 on ${t.address}:${t.port} (certificate CN = ${creds.name})`);
  }
  if (quic) await startQuicBackends(io, cleanup, tmp, prefix, all, quic);
  say(io);
}

async function startQuicBackends(
  io: Io,
  cleanup: Cleanup,
  tmp: string,
  prefix: Prefix,
  all: readonly Credentials[],
  quic: { tools: QuicTools; targets: readonly Target[] },
): Promise<void> {
  for (const [i, t] of quic.targets.entries()) {
    const creds = all[i]!;
    const server = await startQuicBackend(quic.tools, prefix, creds, tmp, t.address, t.port);
    cleanup.add(`gtlsserver ${creds.name}`, () => server.stop(1000));
    say(io, `backend ${creds.name}: gtlsserver (HTTP/3) on ${t.address}:${t.port}, its /index.html says ${creds.name}`);
  }
}
