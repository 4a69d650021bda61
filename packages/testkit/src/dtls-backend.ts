import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Spawned, Topology } from './netns.js';

/** tools/dtls-backend.c, resolved from this module, one level below the package root in src/ and in dist/ alike. */
const SOURCE = fileURLToPath(new URL('../tools/dtls-backend.c', import.meta.url));

let built: string | undefined;

/**
 * Compiles tools/dtls-backend.c once per process, against the libraries the openssl command uses: no development
 * headers needed. Throws with the compiler's words when it cannot.
 */
export function dtlsBackendBinary(): string {
  if (built) return built;
  const bin = join(mkdtempSync(join(tmpdir(), 'flowlb-dtls-backend-')), 'dtls-backend');
  try {
    execFileSync('cc', ['-O2', '-o', bin, SOURCE, '-l:libssl.so.3', '-l:libcrypto.so.3'], { stdio: 'pipe', timeout: 60_000 });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`cannot build the DTLS backend (${SOURCE}): ${stderr || (error as Error).message}`);
  }
  built = bin;
  return bin;
}

export interface DtlsBackendOptions {
  addr: string;
  port: number;
  cert: string;
  key: string;
  /** Take any cookie as proof, for behind a balancer that runs the cookie exchange itself. */
  anyCookie?: boolean;
  /** A command it runs under, e.g. `['taskset', '-c', '0']`. */
  prefix?: readonly string[];
  /** How long to wait for it to listen (default 10 s). */
  readyTimeoutMs?: number;
}

export interface DtlsBackend {
  endpoint: { address: string; port: number };
  readonly process: Spawned;
  /** What it printed last, for failure messages. */
  transcript(): string;
  stop(): Promise<void>;
}

/**
 * A DTLS 1.2 server that serves many clients at once (tools/dtls-backend.c: a stateless HelloVerifyRequest for
 * hellos without a valid cookie, then a process per client), unlike `openssl s_server` and `gnutls-serv`, which serve
 * one at a time: for tests where several clients, or a client and a health probe, meet one server.
 */
export async function startDtlsBackend(topology: Topology, ns: string, opts: DtlsBackendOptions): Promise<DtlsBackend> {
  const args = [dtlsBackendBinary(), opts.addr, String(opts.port), opts.cert, opts.key, ...(opts.anyCookie ? ['--any-cookie'] : [])];
  const [cmd, ...rest] = [...(opts.prefix ?? []), ...args];
  const proc = topology.spawn(ns, cmd!, rest);
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 10_000);
  let exited = false;
  void proc.exited.then(() => (exited = true));
  while (!proc.output().stdout.includes('READY')) {
    if (exited || Date.now() > deadline) {
      await proc.stop(1000);
      const out = proc.output();
      throw new Error(`dtls-backend on ${opts.addr}:${opts.port} ${exited ? 'exited' : 'did not get ready'}: ${(out.stderr || out.stdout).trim()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    endpoint: { address: opts.addr, port: opts.port },
    process: proc,
    transcript: () => {
      const out = proc.output();
      return `${out.stdout.slice(-1500)}${out.stderr.slice(-1000)}`;
    },
    stop: async () => void (await proc.stop(1000)),
  };
}
