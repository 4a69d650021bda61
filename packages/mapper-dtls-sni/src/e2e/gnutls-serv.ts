import { setTimeout as sleep } from 'node:timers/promises';
import { spawnLocal } from '@flowlb/testkit';

export interface GnutlsServ {
  /** What the server printed. */
  transcript(): { stdout: string; stderr: string };
  stop(): Promise<void>;
}

/**
 * `gnutls-serv --udp --echo` as it ships: its own cookie exchange, answering on every local address at `port`
 * (it has no option to bind one). Resolves once it listens, within 5 s.
 */
export async function startGnutlsServ(opts: { port: number; cert: string; key: string }): Promise<GnutlsServ> {
  const proc = spawnLocal('gnutls-serv', [
    '--udp',
    '--echo',
    '--port',
    String(opts.port),
    '--x509certfile',
    opts.cert,
    '--x509keyfile',
    opts.key,
  ]);
  const deadline = Date.now() + 5000;
  let exited = false;
  void proc.exited.then(() => {
    exited = true;
  });
  // It says so on stderr.
  while (!/listening on IPv4/.test(proc.output().stderr)) {
    if (exited || Date.now() > deadline) {
      await proc.stop();
      const { stdout, stderr } = proc.output();
      throw new Error(`gnutls-serv on port ${opts.port} did not start: ${(stderr || stdout).trim()}`);
    }
    await sleep(10);
  }
  return {
    transcript: () => proc.output(),
    async stop() {
      await proc.stop();
    },
  };
}
