import { join } from 'node:path';
import { Child, sh } from './proc.js';

export interface Credentials {
  name: string;
  cert: string;
  key: string;
}

/** A throwaway self-signed P-256 certificate with `CN = name`, so that a client can tell which backend answered. */
export async function makeCertificate(dir: string, name: string): Promise<Credentials> {
  const c = { name, cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  await sh('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
    '-subj', `/CN=${name}`, '-keyout', c.key, '-out', c.cert,
  ]);
  return c;
}

/** `prefix` runs a command in a namespace (`ip netns exec NS`) or, empty, in this one. */
export type Prefix = readonly string[];

export function command(prefix: Prefix, cmd: string, args: string[]): [string, string[]] {
  return prefix.length > 0 ? [prefix[0]!, [...prefix.slice(1), cmd, ...args]] : [cmd, args];
}

/** `openssl s_server -dtls1_2` on addr:port; stdin stays open, since s_server stops at its end. */
export function startBackend(prefix: Prefix, creds: Credentials, addr: string, port: number): Child {
  const [cmd, args] = command(prefix, 'openssl', [
    's_server', '-dtls1_2', '-accept', `${addr}:${port}`, '-cert', creds.cert, '-key', creds.key,
  ]);
  return new Child(cmd, args, { stdin: 'pipe' });
}

export interface ClientResult {
  name: string;
  /** CN of the certificate the server presented; undefined when no handshake completed. */
  answeredBy: string | undefined;
  /** The client's UDP port, where known: its flow in the tables has it. */
  localPort: number | undefined;
  error?: string;
}

/**
 * One `openssl s_client -dtls1_2 -servername NAME` from a fixed local port (so its flow can be found), which sends a
 * line and closes. Bounded: a client nobody answers is killed after `timeoutMs`.
 */
export async function runClient(
  prefix: Prefix,
  vip: string,
  name: string,
  bind: { address: string; port: number },
  timeoutMs = 10_000,
): Promise<ClientResult> {
  const [cmd, args] = command(prefix, 'openssl', [
    's_client', '-dtls1_2', '-connect', vip, '-servername', name, '-bind', `${bind.address}:${bind.port}`, '-brief',
  ]);
  const c = new Child(cmd, args, { stdin: 'pipe' });
  c.child.stdin?.end(`hello from a client of ${name}\n`);
  const timer = setTimeout(() => c.child.kill('SIGKILL'), timeoutMs);
  const r = await c.done;
  clearTimeout(timer);
  const peer = /Peer certificate: .*CN ?= ?([^,\n]+)/.exec(r.stderr)?.[1]?.trim();
  const result: ClientResult = { name, answeredBy: peer, localPort: bind.port };
  if (!peer) {
    result.error = r.signal === 'SIGKILL' ? `no handshake within ${timeoutMs / 1000} s` : r.stderr.trim().split('\n').slice(-2).join(' | ');
  }
  return result;
}
