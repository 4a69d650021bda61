import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'vitest';
import { findExecutable, run, sleep } from './exec.js';
import { spawnLocal, type ExitStatus, type Spawned, type Topology } from './netns.js';
import { isCi, type PrivilegeCheck } from './privileges.js';

/**
 * Real DTLS 1.2 peers for end-to-end tests: `openssl s_server` as a backend, `openssl s_client` and `gnutls-cli`
 * as clients, each run in a network namespace of a {@link Topology} or, with `null` for both, in this process's own
 * namespace (loopback, no privileges). Every process has a deadline and is killed on stop or teardown.
 */

/** Whether `openssl` and `gnutls-cli` are installed, which every helper here runs. */
export function dtlsToolsCheck(): PrivilegeCheck {
  const missing = ['openssl', 'gnutls-cli'].filter((tool) => findExecutable(tool) === undefined);
  return missing.length === 0 ? { ok: true } : { ok: false, reason: `not installed: ${missing.join(', ')}` };
}

/**
 * `describe` for blocks that run real DTLS peers. Like `describePrivileged`: without the tools the block is skipped
 * with the reason in its name, or, with CI=true, becomes one failing test, so a CI machine cannot skip it unnoticed.
 */
export function describeWithDtlsTools(name: string, fn: () => void): void {
  const check = dtlsToolsCheck();
  if (check.ok) {
    describe(name, fn);
  } else if (isCi()) {
    describe(name, () => {
      it('has openssl and gnutls-cli', () => {
        throw new Error(`DTLS test cannot run: ${check.reason ?? 'tools missing'} (CI=true turns this into a failure)`);
      });
    });
  } else {
    describe.skip(`${name} [skipped: ${check.reason ?? 'tools missing'}]`, fn);
  }
}

/** A certificate and its key, self-signed, with `CN = name`. */
export interface DtlsCredentials {
  name: string;
  cert: string;
  key: string;
}

/** A temporary folder of throwaway certificates; `remove()` deletes it with everything in it. */
export interface DtlsCertificates {
  readonly dir: string;
  issue(name: string): Promise<DtlsCredentials>;
  remove(): Promise<void>;
}

const CN_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** Creates a folder for certificates. Each `issue(name)` makes a P-256 key and a one-day certificate for `CN = name`. */
export async function createDtlsCertificates(prefix = 'flowlb-dtls-'): Promise<DtlsCertificates> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const issued = new Map<string, DtlsCredentials>();
  return {
    dir,
    async issue(name) {
      // The name becomes part of a file name and of the -subj argument, where / and = have meaning.
      if (!CN_RE.test(name)) throw new Error(`certificate name must match ${String(CN_RE)}, got '${name}'`);
      const known = issued.get(name);
      if (known) return known;
      const creds = { name, cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
      await run(
        'openssl',
        ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
          '-subj', `/CN=${name}`, '-keyout', creds.key, '-out', creds.cert],
        { timeoutMs: 15_000 },
      );
      issued.set(name, creds);
      return creds;
    },
    async remove() {
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export type Launch = (cmd: string, args: string[]) => Spawned;

/** Starts a command in `ns` of `topology`, or in this process's own namespace with `null` for both. */
export function launcher(topology: Topology | null, ns: string | null, prefix: readonly string[] = []): Launch {
  const wrap = (cmd: string, args: string[]): [string, string[]] => (prefix.length > 0 ? [prefix[0]!, [...prefix.slice(1), cmd, ...args]] : [cmd, args]);
  if (topology === null && ns === null) return (cmd, args) => spawnLocal(...wrap(cmd, args), { stdin: true });
  if (topology === null || ns === null) throw new Error('give both a topology and a namespace, or neither');
  return (cmd, args) => topology.spawn(ns, ...wrap(cmd, args), { stdin: true });
}

export function where(ns: string | null): string {
  return ns === null ? 'the local namespace' : ns;
}

let stdbufPath: string | null | undefined;

/**
 * Runs `cmd` with line-buffered stdout where coreutils' stdbuf exists. The tools print through stdio, which a
 * pipe makes block-buffered: without this some lines would only arrive when the process exits.
 */
function lineBuffered(cmd: string, args: string[]): [string, string[]] {
  stdbufPath ??= findExecutable('stdbuf') ?? null;
  return stdbufPath ? [stdbufPath, ['-oL', cmd, ...args]] : [cmd, args];
}

/** Calls `onLine` for every complete line the process writes to stdout. */
function onStdoutLines(proc: Spawned, onLine: (line: string) => void): void {
  let buf = '';
  proc.child.stdout?.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).replace(/\r$/, '');
      buf = buf.slice(nl + 1);
      onLine(line);
    }
  });
}

function writeStdin(proc: Spawned, text: string): void {
  const stdin = proc.child.stdin;
  if (!stdin || stdin.destroyed || stdin.writableEnded) return;
  // A process that exits closes the pipe; the write then fails, which is the process's business, not ours.
  stdin.on('error', () => {});
  stdin.write(text);
}

function endStdin(proc: Spawned): void {
  const stdin = proc.child.stdin;
  if (!stdin || stdin.destroyed || stdin.writableEnded) return;
  stdin.on('error', () => {});
  stdin.end();
}

// ---------------------------------------------------------------------------------------------------------------
// Server

/** One client as `openssl s_server` saw it, from its first ClientHello to the end of the connection. */
export interface DtlsServerConnection {
  /** The server_name the client sent (from the ClientHello's extension dump); absent when it sent none. */
  sni?: string;
  /** The handshake completed (the server printed the negotiated cipher). */
  handshake: boolean;
  cipher?: string;
  /** Lines of application data received after the handshake. */
  received: string[];
  /** The connection ended (close_notify, an alert or an error). */
  closed: boolean;
}

export interface DtlsServerOptions {
  addr: string;
  port: number;
  cert: string;
  key: string;
  /** Names the server in errors and in its echo replies: `<name> echo <line>`. */
  name: string;
  /** Answer every line of application data with `<name> echo <line>` (default true). */
  echo?: boolean;
  /** Link MTU for the server's own records (`-mtu`); default: path MTU discovery. */
  mtu?: number;
  /** Exit after this many connections (`-naccept`); default: serve until stopped. */
  naccept?: number;

  /** How long to wait until the server is listening (default 5 s). */
  readyTimeoutMs?: number;
  /** A command the server runs under, e.g. `['taskset', '-c', '0']` to keep it on one CPU. */
  prefix?: readonly string[];
}

export interface DtlsServer {
  readonly name: string;
  /** `addr:port` it listens on. */
  readonly endpoint: string;
  readonly process: Spawned;
  /** Every connection so far, oldest first (a copy). */
  connections(): DtlsServerConnection[];
  /** The server names of all connections, in order; '' for a connection without one. */
  serverNames(): string[];
  /** Resolves with the first connection (past or future) that matches; rejects after the timeout. */
  waitForConnection(predicate: (c: DtlsServerConnection) => boolean, timeoutMs?: number): Promise<DtlsServerConnection>;
  /** Everything the server printed. */
  transcript(): { stdout: string; stderr: string };
  stop(): Promise<ExitStatus>;
}

const DUMP_LINE = /^[0-9a-f]{4} - /;
// BIO_dump: "0000 - " then 16 columns of "xx " (the 8th separated by '-'), then the printable rendering.
const DUMP_HEX_WIDTH = 16 * 3;

/** Bytes of one BIO_dump line, read from the fixed-width hex columns (the text part may look like hex too). */
function dumpBytes(line: string): number[] {
  const hex = line.slice(7, 7 + DUMP_HEX_WIDTH);
  return (hex.match(/[0-9a-f]{2}/g) ?? []).map((h) => parseInt(h, 16));
}

/** The host_name in a server_name extension body (RFC 6066 ServerNameList), or undefined if it has none. */
export function hostNameFromServerNameExtension(body: readonly number[]): string | undefined {
  if (body.length < 2) return undefined;
  const listEnd = Math.min(body.length, 2 + ((body[0]! << 8) | body[1]!));
  let i = 2;
  while (i + 3 <= listEnd) {
    const type = body[i]!;
    const len = (body[i + 1]! << 8) | body[i + 2]!;
    const start = i + 3;
    if (start + len > listEnd) return undefined;
    if (type === 0) return String.fromCharCode(...body.slice(start, start + len));
    i = start + len;
  }
  return undefined;
}

/**
 * Turns `openssl s_server -tlsextdebug` output into connections. Fed line by line; the state survives between
 * calls, so a test can read it while the server runs.
 */
export class SServerLogParser {
  readonly connections: DtlsServerConnection[] = [];
  #current: DtlsServerConnection | undefined;
  #sniBytes: number[] | undefined;
  #inData = false;

  #open(): DtlsServerConnection {
    if (!this.#current) {
      this.#current = { handshake: false, received: [], closed: false };
      this.connections.push(this.#current);
    }
    return this.#current;
  }

  #flushSni(): void {
    if (this.#sniBytes === undefined) return;
    const c = this.#open();
    const name = hostNameFromServerNameExtension(this.#sniBytes);
    // A client repeats its hello after a HelloVerifyRequest; the first name stands.
    if (name !== undefined && c.sni === undefined) c.sni = name;
    this.#sniBytes = undefined;
  }

  /** Handles one line; returns the application data it carried, if any. */
  push(line: string): string | undefined {
    if (this.#sniBytes !== undefined) {
      if (DUMP_LINE.test(line)) {
        this.#sniBytes.push(...dumpBytes(line));
        return undefined;
      }
      this.#flushSni();
    }
    if (this.#inData) {
      if (line === 'DONE' || line === 'shutting down SSL' || line === 'CONNECTION CLOSED' || line === 'ERROR') {
        this.#inData = false;
      } else {
        this.#current?.received.push(line);
        return line;
      }
    }
    if (/^TLS client extension "server name" \(id=0\)/.test(line)) {
      this.#open();
      this.#sniBytes = [];
      return undefined;
    }
    if (line.startsWith('TLS client extension ')) {
      this.#open();
      return undefined;
    }
    const cipher = /^CIPHER is (\S+)/.exec(line);
    if (cipher) {
      const c = this.#open();
      c.handshake = true;
      c.cipher = cipher[1]!;
      return undefined;
    }
    // The last line of the connection summary; what follows is the client's data.
    if (/^Secure Renegotiation IS (NOT )?supported/.test(line) && this.#current?.handshake) {
      this.#inData = true;
      return undefined;
    }
    if (line === 'CONNECTION CLOSED') {
      if (this.#current) this.#current.closed = true;
      this.#current = undefined;
    }
    return undefined;
  }

  /** Call at the end of the output: a server-name dump may be the last thing printed. */
  finish(): void {
    this.#flushSni();
  }
}

/** The bound UDP socket that `addr:port` would share its port with, as `ss` shows it; undefined if none (or no ss). */
export async function udpPortHolder(topology: Topology | null, ns: string | null, addr: string, port: number): Promise<string | undefined> {
  const args = ['-H', '-u', '-a', '-n'];
  let stdout: string;
  try {
    stdout = (topology && ns !== null ? await topology.exec(ns, 'ss', args) : await run('ss', args)).stdout;
  } catch {
    return undefined;
  }
  const wanted = new Set([`${addr}:${port}`, `0.0.0.0:${port}`, `*:${port}`]);
  for (const line of stdout.split('\n')) {
    const local = line.trim().split(/\s+/)[3];
    if (local !== undefined && wanted.has(local)) return local;
  }
  return undefined;
}

/**
 * Starts `openssl s_server -dtls1_2` (cookie exchange on, as s_server always does for DTLS) and resolves once it
 * listens. It serves one client at a time, which is what sequential test clients need.
 */
export async function startDtlsServer(
  topology: Topology | null,
  ns: string | null,
  opts: DtlsServerOptions,
): Promise<DtlsServer> {
  // s_server binds with SO_REUSEADDR, which for UDP lets a second server share a busy port without an error and
  // take its datagrams: refuse a port that something already holds.
  const holder = await udpPortHolder(topology, ns, opts.addr, opts.port);
  if (holder !== undefined) {
    throw new Error(`openssl s_server '${opts.name}' in ${where(ns)}: UDP ${holder} is already bound`);
  }
  const args = ['s_server', '-dtls1_2', '-accept', `${opts.addr}:${opts.port}`, '-cert', opts.cert, '-key', opts.key, '-tlsextdebug'];
  if (opts.mtu !== undefined) args.push('-mtu', String(opts.mtu));
  if (opts.naccept !== undefined) args.push('-naccept', String(opts.naccept));
  const [cmd, argv] = lineBuffered('openssl', args);
  // stdin stays an open pipe: s_server quits on EOF there, and sends what is written to it to the client.
  const proc = launcher(topology, ns, opts.prefix)(cmd, argv);
  const parser = new SServerLogParser();
  const echo = opts.echo ?? true;
  const waiters = new Set<() => boolean>();
  let listening = false;
  onStdoutLines(proc, (line) => {
    if (line === 'ACCEPT') listening = true;
    const data = parser.push(line);
    // The reply cannot start with a letter s_server reads as a command (Q, q, r, R, ...): it starts with the name.
    if (data !== undefined && echo) writeStdin(proc, `${opts.name} echo ${data}\n`);
    for (const w of [...waiters]) if (w()) waiters.delete(w);
  });

  const readyTimeoutMs = opts.readyTimeoutMs ?? 5000;
  const deadline = Date.now() + readyTimeoutMs;
  let exited = false;
  void proc.exited.then(() => {
    exited = true;
  });
  while (!listening) {
    if (exited || Date.now() > deadline) {
      await proc.stop();
      const { stderr, stdout } = proc.output();
      const why = exited ? 'exited before listening' : `not listening after ${readyTimeoutMs} ms`;
      throw new Error(`openssl s_server '${opts.name}' in ${where(ns)} ${why}: ${(stderr || stdout).trim()}`);
    }
    await sleep(10);
  }

  const snapshot = (): DtlsServerConnection[] => parser.connections.map((c) => ({ ...c, received: [...c.received] }));
  return {
    name: opts.name,
    endpoint: `${opts.addr}:${opts.port}`,
    process: proc,
    connections: snapshot,
    serverNames: () => parser.connections.map((c) => c.sni ?? ''),
    waitForConnection(predicate, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const found = snapshot().find(predicate);
          if (!found) return false;
          clearTimeout(timer);
          resolve(found);
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching connection on '${opts.name}' within ${timeoutMs} ms; server names seen: ` +
            JSON.stringify(parser.connections.map((c) => c.sni ?? null))));
        }, timeoutMs);
        if (!check()) waiters.add(check);
      });
    },
    transcript: () => proc.output(),
    async stop() {
      const status = await proc.stop();
      parser.finish();
      return status;
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Clients

export interface DtlsClientOptions {
  /** `ip:port` to connect to. */
  connect: string;
  /** The SNI to send; omitted, the client sends none. */
  servername?: string;
  /** Link MTU: small values make the client fragment its ClientHello (openssl `-mtu`, gnutls `--mtu`). */
  mtu?: number;
  /** Local `ip` or `ip:port` (openssl only). */
  bind?: string;
  /** A line to send once the handshake is done; the run then waits for a reply line that contains it. */
  message?: string;
  /** Deadline for the handshake and the reply together; the client is killed when it passes. */
  timeoutMs: number;
  /** How long the client may take to close after its work is done before it is killed (default 3 s). */
  closeTimeoutMs?: number;
  /** A command the client runs under, e.g. `['taskset', '-c', '0']` to keep it on one CPU. */
  prefix?: readonly string[];
}

export interface DtlsClientSummary {
  /** The handshake completed with a negotiated cipher. */
  handshake: boolean;
  /** `DTLSv1.2` (GnuTLS' `DTLS1.2` is written the OpenSSL way). */
  protocol?: string;
  cipher?: string;
  /** Common name of the server certificate's subject. */
  peerCn?: string;
  /** What OpenSSL reports as "Verify return code" (18 for a self-signed certificate). */
  verifyReturnCode?: number;
}

export interface DtlsClientResult extends DtlsClientSummary {
  tool: 'openssl' | 'gnutls';
  /** Handshake complete and, when a message was sent, a reply that contains it came back. */
  ok: boolean;
  /** The line of application data that answered the message. */
  reply?: string;
  /** The deadline passed before the handshake (or the reply) was done. */
  timedOut: boolean;
  /** Milliseconds from start until the handshake was seen complete. */
  handshakeMs?: number;
  exit: ExitStatus;
  stdout: string;
  stderr: string;
}

/** Reads the connection summary that `openssl s_client` prints after the handshake. */
export function parseOpensslClientOutput(stdout: string): DtlsClientSummary {
  const summary: DtlsClientSummary = { handshake: false };
  const cipherLine = /^(?:New|Reused), (\S+), Cipher is (\S+)/m.exec(stdout);
  const protocol = /^\s*Protocol\s*: (\S+)/m.exec(stdout);
  if (protocol) summary.protocol = protocol[1]!;
  if (cipherLine && cipherLine[2] !== '(NONE)') {
    summary.handshake = true;
    summary.cipher = cipherLine[2]!;
  }
  const subject = /^subject=(.*)$/m.exec(stdout);
  const cn = subject ? /(?:^|[,/]\s*)CN\s*=\s*([^,/]+)/.exec(subject[1]!) : null;
  if (cn) summary.peerCn = cn[1]!.trim();
  const verify = /^\s*Verify return code: (\d+)/m.exec(stdout);
  if (verify) summary.verifyReturnCode = Number(verify[1]);
  return summary;
}

/** Reads what `gnutls-cli` prints about the handshake. */
export function parseGnutlsClientOutput(stdout: string): DtlsClientSummary {
  const summary: DtlsClientSummary = { handshake: /^- Handshake was completed/m.test(stdout) };
  const desc = /^- Description: \(([^)-]+)-[^)]*\)-(.*)$/m.exec(stdout);
  if (desc) {
    summary.protocol = desc[1]!.replace(/^DTLS(\d)/, 'DTLSv$1');
    summary.cipher = desc[2]!.trim();
  }
  const subject = /subject `([^']*)'/.exec(stdout);
  const cn = subject ? /(?:^|,)CN=([^,]+)/.exec(subject[1]!) : null;
  if (cn) summary.peerCn = cn[1]!;
  if (!summary.handshake) delete summary.cipher;
  return summary;
}

interface ClientTool {
  tool: 'openssl' | 'gnutls';
  cmd: string;
  args: string[];
  parse(stdout: string): DtlsClientSummary;
  /** The handshake is complete and its summary has been printed in full. */
  handshakeDone(stdout: string): boolean;
}

async function runDtlsClient(launch: Launch, tool: ClientTool, opts: DtlsClientOptions): Promise<DtlsClientResult> {
  const [cmd, argv] = lineBuffered(tool.cmd, tool.args);
  const t0 = performance.now();
  const proc = launch(cmd, argv);
  let stdout = '';
  let handshakeMs: number | undefined;
  let reply: string | undefined;
  let sent = false;
  let settle: (() => void) | undefined;
  const progress = new Promise<void>((resolve) => {
    settle = resolve;
  });
  const done = (): boolean => handshakeMs !== undefined && (opts.message === undefined || reply !== undefined);
  proc.child.stdout?.on('data', (chunk: string) => {
    stdout += chunk;
    if (handshakeMs === undefined && tool.handshakeDone(stdout)) handshakeMs = performance.now() - t0;
    if (handshakeMs !== undefined && opts.message !== undefined && !sent) {
      sent = true;
      writeStdin(proc, `${opts.message}\n`);
    }
    if (sent && reply === undefined) {
      // Servers answer "<name> echo <line>"; matching the whole shape keeps a certificate's base64 out of it.
      reply = stdout.split('\n').find((l) => l.trim().endsWith(` echo ${opts.message}`));
    }
    if (done()) settle?.();
  });

  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    progress.then(() => 'done' as const),
    proc.exited.then(() => 'exited' as const),
    new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), opts.timeoutMs);
    }),
  ]);
  clearTimeout(timer);

  let exit: ExitStatus;
  if (outcome === 'done') {
    // EOF on stdin makes both tools send close_notify, so the server is free for its next client.
    endStdin(proc);
    const closeMs = opts.closeTimeoutMs ?? 3000;
    const closed = await Promise.race([proc.closed, sleep(closeMs).then(() => undefined)]);
    exit = closed ?? (await proc.stop());
  } else {
    exit = await proc.stop();
  }
  // Also for a process that has exited by itself: stop() is what makes a topology forget it.
  await proc.stop();
  await Promise.race([proc.closed, sleep(500)]);
  const out = proc.output();
  const summary = tool.parse(out.stdout);
  const result: DtlsClientResult = {
    tool: tool.tool,
    ...summary,
    ok: summary.handshake && (opts.message === undefined || reply !== undefined),
    timedOut: outcome === 'timeout',
    exit,
    stdout: out.stdout,
    stderr: out.stderr,
  };
  if (reply !== undefined) result.reply = reply.trim();
  if (handshakeMs !== undefined) result.handshakeMs = handshakeMs;
  return result;
}

/** `openssl s_client -dtls1_2 -connect … [-servername …] [-mtu …]`, run to completion. Never throws for a failed handshake. */
export function runOpensslDtlsClient(
  topology: Topology | null,
  ns: string | null,
  opts: DtlsClientOptions,
): Promise<DtlsClientResult> {
  const args = ['s_client', '-dtls1_2', '-connect', opts.connect, '-nocommands'];
  args.push(...(opts.servername !== undefined ? ['-servername', opts.servername] : ['-noservername']));
  if (opts.mtu !== undefined) args.push('-mtu', String(opts.mtu));
  if (opts.bind !== undefined) args.push('-bind', opts.bind);
  return runDtlsClient(launcher(topology, ns, opts.prefix), {
    tool: 'openssl',
    cmd: 'openssl',
    args,
    parse: parseOpensslClientOutput,
    // The session block ends with the verify result; before it, a failed handshake looks the same.
    handshakeDone: (out) => /^\s*Verify return code: /m.test(out) && parseOpensslClientOutput(out).handshake,
  }, opts);
}

/** `gnutls-cli --udp --insecure [--sni-hostname …] [--mtu …] --port P HOST`, run to completion. */
export function runGnutlsDtlsClient(
  topology: Topology | null,
  ns: string | null,
  opts: DtlsClientOptions,
): Promise<DtlsClientResult> {
  if (opts.bind !== undefined) return Promise.reject(new Error('gnutls-cli cannot bind a local address'));
  const colon = opts.connect.lastIndexOf(':');
  if (colon < 0) return Promise.reject(new Error(`connect must be ip:port, got '${opts.connect}'`));
  const host = opts.connect.slice(0, colon);
  const port = opts.connect.slice(colon + 1);
  const args = ['--udp', '--insecure', '--port', port];
  args.push(...(opts.servername !== undefined ? ['--sni-hostname', opts.servername] : ['--disable-sni']));
  if (opts.mtu !== undefined) args.push('--mtu', String(opts.mtu));
  args.push(host);
  return runDtlsClient(launcher(topology, ns, opts.prefix), {
    tool: 'gnutls',
    cmd: 'gnutls-cli',
    args,
    parse: parseGnutlsClientOutput,
    handshakeDone: (out) => /^- Handshake was completed/m.test(out),
  }, opts);
}
