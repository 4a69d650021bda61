import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliError, EXIT } from '../cli/exit-codes.js';
import type { Io } from '../cli/io.js';
import { Cleanup } from './cleanup.js';
import { loopbackDemo } from './loopback-demo.js';
import { netnsDemo, netnsObstacle } from './netns-demo.js';
import { sh } from './proc.js';
import { findQuicTools, QUIC_INSTALL_HINT, type QuicTools } from './quic.js';
import { say } from './support.js';

export interface DemoOptions {
  userspace?: boolean;
  keep?: boolean;
}

/** `flowlb demo`: the whole thing on a throwaway topology, then nothing left behind. */
export async function demoCommand(opts: DemoOptions, io: Io): Promise<number> {
  try {
    await sh('openssl', ['version']);
  } catch {
    throw new CliError('the demo runs openssl s_server and s_client: install openssl', EXIT.UNABLE);
  }
  const obstacle = opts.userspace ? 'asked for with --userspace' : await netnsObstacle();
  const quic = obstacle ? undefined : findQuicTools();
  const tmp = mkdtempSync(join(tmpdir(), 'flowlb-demo-'));
  const cleanup = new Cleanup();
  cleanup.add('temporary files', () => rmSync(tmp, { recursive: true, force: true }));
  const onExit = (): void => cleanup.runSync();
  // The clients and servers it waits on can take seconds; Ctrl-C should not, so it cleans up and ends here.
  const onSignal = (): void => {
    io.err('flowlb demo: interrupted, cleaning up\n');
    void cleanup.run(io).finally(() => process.exit(130));
  };
  process.on('exit', onExit);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  say(io, `flowlb demo: ${quic ? 'DTLS and QUIC' : 'DTLS'} clients routed by SNI ${obstacle ? `on loopback, userspace datapath (${obstacle})` : 'through network namespaces, XDP datapath'}`);
  const skipped = quicSkipped(obstacle, quic);
  if (skipped) say(io, skipped);
  say(io);
  try {
    const ok = obstacle ? await loopbackDemo(io, cleanup, tmp) : await netnsDemo(io, opts, cleanup, tmp, quic);
    say(io, ok ? 'every client reached the backend its name maps to.' : 'some clients did not reach the backend their name maps to (see above).');
    return ok ? EXIT.OK : EXIT.FAILURE;
  } finally {
    await cleanup.run(io);
    say(io, opts.keep && !obstacle ? 'cleaned up (namespaces kept: --keep).' : 'cleaned up: nothing of the demo is left.');
    process.removeListener('exit', onExit);
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

/** Why the demo leaves QUIC out: it is a part to add, so its missing tools skip it rather than stop the demo. */
function quicSkipped(obstacle: string | undefined, quic: QuicTools | undefined): string | undefined {
  if (obstacle) return "QUIC clients skipped on loopback: gtlsclient sends the host it connects to as SNI, and only the namespace variant (as root) can point the demo's names at the balancer";
  if (!quic) return `QUIC clients skipped: ngtcp2's gtlsserver and gtlsclient are not installed (${QUIC_INSTALL_HINT})`;
  return undefined;
}
