import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'vitest';
import { dtlsToolsCheck, findExecutable, isCi, spawnLocal, type Spawned } from '@flowlb/testkit';

/**
 * The small DTLS servers written in C beside this file, which carry on a handshake from the message_seq of the
 * client's hello (see the comments at the top of each): the backends that can sit behind a balancer that answers
 * hellos with its own HelloVerifyRequest. Compiled once per test file with `cc` against the shared libraries the
 * openssl and gnutls commands use, so that no development headers are needed.
 */
export type CServerKind =
  /** OpenSSL, DTLSv1_listen() accepting any cookie. */
  | 'openssl-trusting'
  /** GnuTLS with its own stateless cookie exchange, numbered from the hello. */
  | 'gnutls-cookies'
  /** GnuTLS without a cookie exchange, numbered from the hello. */
  | 'gnutls-none';

const SOURCES = {
  'openssl-trusting-server': { file: 'openssl-trusting-server.c', libs: ['-l:libssl.so.3', '-l:libcrypto.so.3'] },
  'gnutls-cookie-server': { file: 'gnutls-cookie-server.c', libs: ['-l:libgnutls.so.30'] },
} as const;

interface Built {
  ok: boolean;
  reason?: string;
  dir?: string;
}

let built: Built | undefined;

/** Compiles both servers (once per process); says why not when it cannot. */
export function buildCServers(): Built {
  if (built) return built;
  const tools = dtlsToolsCheck();
  if (!tools.ok) return (built = { ok: false, reason: tools.reason ?? 'DTLS tools missing' });
  const cc = findExecutable('cc');
  if (cc === undefined) return (built = { ok: false, reason: 'no C compiler (cc)' });
  const dir = mkdtempSync(join(tmpdir(), 'flowlb-c-dtls-'));
  try {
    for (const [name, { file, libs }] of Object.entries(SOURCES)) {
      const source = fileURLToPath(new URL(file, import.meta.url));
      execFileSync(cc, ['-O1', '-o', join(dir, name), source, ...libs], { stdio: 'pipe', timeout: 60_000 });
    }
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    return (built = { ok: false, reason: `cannot build the C DTLS servers: ${stderr || (error as Error).message}` });
  }
  return (built = { ok: true, dir });
}

/** Deletes the compiled servers; a later buildCServers() compiles them again. */
export function removeCServers(): void {
  if (built?.dir !== undefined) rmSync(built.dir, { recursive: true, force: true });
  built = undefined;
}

/**
 * `describe` for blocks that need openssl, gnutls-cli and the C servers: skipped with the reason when they are
 * missing, or, with CI=true, one failing test, as the testkit's describe helpers do.
 */
export function describeWithCServers(name: string, fn: () => void): void {
  const check = buildCServers();
  if (check.ok) describe(name, fn);
  else if (isCi()) {
    describe(name, () => {
      it('can build and run the C DTLS servers', () => {
        throw new Error(`cannot run: ${check.reason} (CI=true turns this into a failure)`);
      });
    });
  } else describe.skip(`${name} [skipped: ${check.reason}]`, fn);
}

export interface CServerOptions {
  kind: CServerKind;
  /** The certificate's CN, and the name in echo replies: `<name> echo <line>`. */
  name: string;
  addr: string;
  port: number;
  cert: string;
  key: string;
}

export interface CServer {
  readonly name: string;
  /** HelloVerifyRequests the server sent itself, with the message_seq each carried (OpenSSL's: always 0). */
  helloVerifies(): number[];
  /** Completed handshakes, by the server name each client sent ('' for none). */
  handshakes(): string[];
  /** Lines of application data received. */
  received(): string[];
  /** Lines that say a handshake failed. */
  failures(): string[];
  transcript(): { stdout: string; stderr: string };
  stop(): Promise<void>;
}

/** Starts one of the servers and resolves once it has bound its socket (5 s at most). */
export async function startCServer(opts: CServerOptions): Promise<CServer> {
  const dir = buildCServers().dir;
  if (dir === undefined) throw new Error('the C DTLS servers are not built');
  const base = [opts.addr, String(opts.port), opts.cert, opts.key, opts.name];
  const [binary, args] =
    opts.kind === 'openssl-trusting'
      ? ['openssl-trusting-server', base]
      : ['gnutls-cookie-server', [...base, opts.kind === 'gnutls-cookies' ? 'cookies' : 'none']];
  const proc: Spawned = spawnLocal(join(dir, binary), args);
  const events: string[] = [];
  let partial = '';
  proc.child.stdout?.on('data', (chunk: string | Buffer) => {
    partial += chunk.toString();
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    events.push(...lines);
  });
  const deadline = Date.now() + 5000;
  let exited = false;
  void proc.exited.then(() => {
    exited = true;
  });
  while (!events.includes('ACCEPT')) {
    if (exited || Date.now() > deadline) {
      await proc.stop();
      const { stdout, stderr } = proc.output();
      throw new Error(`${opts.kind} server '${opts.name}' did not start: ${(stderr || stdout).trim()}`);
    }
    await sleep(10);
  }
  const after = (prefix: string) => events.filter((e) => e.startsWith(prefix)).map((e) => e.slice(prefix.length));
  return {
    name: opts.name,
    helloVerifies: () => after('HELLO-VERIFY').map((s) => (s.trim() === '' ? 0 : Number(s.trim()))),
    handshakes: () => after('HANDSHAKE ').map((s) => (s === '-' ? '' : s)),
    received: () => after('DATA '),
    failures: () => after('FAILED '),
    transcript: () => proc.output(),
    async stop() {
      await proc.stop();
    },
  };
}
