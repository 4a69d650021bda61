import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'vitest';
import { launcher, udpPortHolder, where } from './dtls.js';
import { findExecutable, sleep } from './exec.js';
import type { Spawned, Topology } from './netns.js';
import { isCi, type PrivilegeCheck } from './privileges.js';

/**
 * Real QUIC v1 peers for end-to-end tests: ngtcp2's example server and client over GnuTLS (Debian's ngtcp2-server
 * and ngtcp2-client: `gtlsserver`, `gtlsclient`), speaking HTTP/3. The server serves one file, `/index.html`, whose
 * body is its name, so a client tells from the body which backend it reached.
 */

const SERVER = 'gtlsserver';
const CLIENT = 'gtlsclient';

export function quicToolsCheck(): PrivilegeCheck {
  const missing = [SERVER, CLIENT].filter((tool) => findExecutable(tool) === undefined);
  return missing.length === 0 ? { ok: true } : { ok: false, reason: `not installed: ${missing.join(', ')} (Debian: ngtcp2-server, ngtcp2-client)` };
}

/** `describe` for blocks that run real QUIC peers: skipped with the reason without them, one failing test with CI=true. */
export function describeWithQuicTools(name: string, fn: () => void): void {
  const check = quicToolsCheck();
  if (check.ok) describe(name, fn);
  else if (isCi()) {
    describe(name, () => {
      it('has gtlsserver and gtlsclient', () => {
        throw new Error(`QUIC test cannot run: ${check.reason ?? 'tools missing'} (CI=true turns this into a failure)`);
      });
    });
  } else describe.skip(`${name} [skipped: ${check.reason ?? 'tools missing'}]`, fn);
}

export interface QuicServerOptions {
  addr: string;
  port: number;
  cert: string;
  key: string;
  /** The body of its /index.html, and its name in errors. */
  name: string;
  readyTimeoutMs?: number;
}

export interface QuicServer {
  readonly name: string;
  readonly endpoint: string;
  readonly process: Spawned;
  stop(): Promise<void>;
}

export async function startQuicServer(topology: Topology | null, ns: string | null, opts: QuicServerOptions): Promise<QuicServer> {
  const holder = await udpPortHolder(topology, ns, opts.addr, opts.port);
  if (holder !== undefined) throw new Error(`${SERVER} '${opts.name}' in ${where(ns)}: UDP ${holder} is already bound`);
  const htdocs = await mkdtemp(join(tmpdir(), 'flowlb-quic-htdocs-'));
  await writeFile(join(htdocs, 'index.html'), opts.name);
  const proc = launcher(topology, ns)(SERVER, ['-q', '-d', htdocs, opts.addr, String(opts.port), opts.key, opts.cert]);
  const cleanup = async (): Promise<void> => {
    await proc.stop();
    await rm(htdocs, { recursive: true, force: true });
  };
  // It prints nothing when ready (-q): ready is its socket bound.
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 5000);
  let exited = false;
  void proc.exited.then(() => {
    exited = true;
  });
  while ((await udpPortHolder(topology, ns, opts.addr, opts.port)) === undefined) {
    if (exited || Date.now() > deadline) {
      const { stderr, stdout } = proc.output();
      await cleanup();
      throw new Error(`${SERVER} '${opts.name}' in ${where(ns)} ${exited ? 'exited' : 'is not listening'}: ${(stderr || stdout).trim()}`);
    }
    await sleep(20);
  }
  return { name: opts.name, endpoint: `${opts.addr}:${opts.port}`, process: proc, stop: cleanup };
}

export interface QuicClientOptions {
  /**
   * Where the client connects, and the name in its ClientHello's server_name and in the request: gtlsclient sends a
   * host name as SNI, and "localhost" for an address (it has no other way to set it). Give the namespace a hosts
   * file with the name (`Topology.setHosts`).
   */
  host: string;
  port: number;
  timeoutMs: number;
  /** QUIC version, as gtlsclient takes it (default v1). */
  version?: string;
}

export interface QuicClientResult {
  /** The handshake completed and the request got its body. */
  ok: boolean;
  /** The body of /index.html: the name of the server that answered. */
  body?: string;
  handshake: boolean;
  alpn?: string;
  stdout: string;
  stderr: string;
}

/** One HTTP/3 GET of /index.html through `gtlsclient`, run to completion within `timeoutMs`. Never throws for a failed connection. */
export async function runQuicClient(topology: Topology | null, ns: string | null, opts: QuicClientOptions): Promise<QuicClientResult> {
  const downloads = await mkdtemp(join(tmpdir(), 'flowlb-quic-get-'));
  try {
    const seconds = Math.max(1, Math.ceil(opts.timeoutMs / 1000));
    const args = [
      '--no-quic-dump',
      '--no-http-dump',
      '--exit-on-all-streams-close',
      `--download=${downloads}`,
      `--timeout=${seconds}s`,
      `--handshake-timeout=${seconds}s`,
      ...(opts.version ? [`--version=${opts.version}`] : []),
      opts.host,
      String(opts.port),
      `https://${opts.host}/index.html`,
    ];
    const proc = launcher(topology, ns)(CLIENT, args);
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      proc.closed.then(() => 'exited' as const),
      new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), opts.timeoutMs + 2000);
      }),
    ]);
    clearTimeout(timer);
    if (outcome === 'timeout') await proc.stop();
    const { stdout, stderr } = proc.output();
    const body = await readFile(join(downloads, 'index.html'), 'utf8').catch(() => undefined);
    // Its progress goes to either stream, depending on the build.
    const log = `${stdout}\n${stderr}`;
    const alpn = /^Negotiated ALPN is (\S+)/m.exec(log)?.[1];
    return {
      ok: body !== undefined,
      ...(body === undefined ? {} : { body }),
      handshake: /^QUIC handshake has completed/m.test(log),
      ...(alpn ? { alpn } : {}),
      stdout,
      stderr,
    };
  } finally {
    await rm(downloads, { recursive: true, force: true });
  }
}
