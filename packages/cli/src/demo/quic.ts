import { accessSync, constants, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { command, type ClientResult, type Credentials, type Prefix } from './dtls.js';
import { Child, sh } from './proc.js';

/**
 * ngtcp2's example QUIC server and client over GnuTLS (Debian's ngtcp2-server and ngtcp2-client), speaking HTTP/3.
 * Each server serves one page, /index.html, whose body is its backend's name: the client tells from it who answered.
 */
export interface QuicTools {
  server: string;
  client: string;
}

export const QUIC_INSTALL_HINT = 'apt-get install ngtcp2-client ngtcp2-server';

/** Debian puts gtlsserver in /usr/sbin, which a user's PATH may lack. */
function findExecutable(name: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/usr/bin']);
  for (const dir of dirs.filter(Boolean)) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // keep looking
    }
  }
  return undefined;
}

export function findQuicTools(): QuicTools | undefined {
  const server = findExecutable('gtlsserver');
  const client = findExecutable('gtlsclient');
  return server && client ? { server, client } : undefined;
}

async function udpBound(prefix: Prefix, endpoint: string): Promise<boolean> {
  const out = await sh(...command(prefix, 'ss', ['-H', '-u', '-a', '-n'])).catch(() => '');
  return out.split('\n').some((l) => l.trim().split(/\s+/)[3] === endpoint);
}

/** `gtlsserver` on addr:port, serving `creds.name` as /index.html from a folder in `dir`; resolves once it listens. */
export async function startQuicBackend(tools: QuicTools, prefix: Prefix, creds: Credentials, dir: string, addr: string, port: number): Promise<Child> {
  const htdocs = join(dir, `htdocs-${creds.name}`);
  mkdirSync(htdocs);
  writeFileSync(join(htdocs, 'index.html'), creds.name);
  const server = new Child(...command(prefix, tools.server, ['-q', '-d', htdocs, addr, String(port), creds.key, creds.cert]));
  // With -q it prints nothing once ready: ready is its socket bound.
  const deadline = Date.now() + 5000;
  while (!(await udpBound(prefix, `${addr}:${port}`))) {
    if (!server.running || Date.now() > deadline) {
      await server.stop(1000);
      const why = server.stderr.trim().split('\n').at(-1) || 'not listening within 5 s';
      throw new Error(`gtlsserver for ${creds.name} on ${addr}:${port} did not start: ${why}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return server;
}

/**
 * One HTTP/3 GET of https://NAME/index.html through `gtlsclient`. It sends as SNI the host it connects to (and
 * "localhost" for an address), so NAME must resolve to the balancer where the client runs. Bounded: a client
 * nobody answers gives up after `timeoutMs`, and is killed if it does not.
 */
export async function runQuicClient(
  tools: QuicTools,
  prefix: Prefix,
  name: string,
  port: number,
  dir: string,
  timeoutMs = 10_000,
): Promise<ClientResult> {
  const downloads = mkdtempSync(join(dir, 'quic-get-'));
  try {
    const seconds = `${Math.max(1, Math.ceil(timeoutMs / 1000))}s`;
    const c = new Child(
      ...command(prefix, tools.client, [
        '--no-quic-dump', '--no-http-dump', '--exit-on-all-streams-close', `--download=${downloads}`,
        `--timeout=${seconds}`, `--handshake-timeout=${seconds}`, name, String(port), `https://${name}/index.html`,
      ]),
    );
    const timer = setTimeout(() => c.child.kill('SIGKILL'), timeoutMs + 2000);
    const r = await c.done;
    clearTimeout(timer);
    // Its log goes to either stream, depending on the build.
    const log = `${r.stdout}\n${r.stderr}`;
    const localPort = Number(/^Sent packet: local=\S+?:(\d+) /m.exec(log)?.[1]) || undefined;
    const body = readPage(downloads);
    const result: ClientResult = { name, answeredBy: body, localPort };
    if (!body) result.error = quicError(log, r.signal === 'SIGKILL', timeoutMs);
    return result;
  } finally {
    rmSync(downloads, { recursive: true, force: true });
  }
}

function readPage(downloads: string): string | undefined {
  try {
    return readFileSync(join(downloads, 'index.html'), 'utf8').trim();
  } catch {
    return undefined;
  }
}

function quicError(log: string, killed: boolean, timeoutMs: number): string {
  if (killed || /ERR_HANDSHAKE_TIMEOUT/.test(log)) return `no handshake within ${timeoutMs / 1000} s`;
  // What is left once its per-packet trace is taken out says what went wrong.
  const problems = log.split('\n').filter((l) => l.trim() !== '' && !/^(I\d|Sent packet|Received packet|Set timer|QUIC handshake|Negotiated)/.test(l));
  return problems.slice(-2).join(' | ') || 'no page came back';
}
