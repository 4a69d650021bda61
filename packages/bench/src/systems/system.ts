import type { ClientSpread } from '../bench-object.js';
import type { SystemName } from '../results.js';
import type { BenchTopology } from '../topology.js';

export interface StartOptions {
  /** Most flows the system will be asked to hold. */
  maxFlows: number;
  /** CPU the system's own processes are pinned to, if it has any. */
  cpu: number;
}

export interface RunningSystem {
  /** Where clients send: the VIP, or for a forwarder that rewrites nothing, the backend itself. */
  target: { address: string; port: number };
  /**
   * Datagrams that have not taken the system's fast path so far, when it has one: a pass over every client that
   * moves this is a pass over flows not yet established.
   */
  slowPathDatagrams?(): number;
  /** Installs the flows of these clients directly, for tables too large to fill through the slow path. */
  prefill?(clients: ClientSpread): void;
  stop(): Promise<void>;
}

/** One of the load balancers (or forwarders) measured side by side. */
export interface SystemUnderTest {
  name: SystemName;
  /** New clients per second its warm-up may offer; 0 when it keeps no per-flow state. */
  warmupPps: number;
  /**
   * Where its work happens. 'kernel': in the receive path of the balancer's client-side device, which is then
   * polled by a kernel thread on the system's CPU. 'process': in its own process on that CPU, while the device's
   * receive path stays with the generator; sharing one CPU with a flooded receive path would starve the process.
   */
  runsIn: 'kernel' | 'process';
  /** Holds a socket, so a file descriptor, per flow: the process's descriptor limit bounds its flows. */
  socketPerFlow?: boolean;
  /** Sets it up on the balancer namespace: attaches, configures, starts its processes. */
  start(t: BenchTopology, opts: StartOptions): Promise<RunningSystem>;
}

/**
 * Waits until `match` accepts a process's stdout, or fails with what it printed. The deadline follows the process:
 * it is `quietMs` after the last time its output grew, so a child that reports progress may take as long as it
 * needs on a slow machine, while one that hangs silently is given up on. It also fails at once if the process exits
 * without printing the line.
 */
export async function waitForOutput(
  output: () => { stdout: string; stderr: string },
  exited: Promise<unknown>,
  match: (stdout: string) => boolean,
  what: string,
  quietMs = 30_000,
): Promise<void> {
  let done = false;
  const died = exited.then(() => {
    // A short job may print its line and exit between two polls.
    if (!done && !match(output().stdout)) throw new Error(`${what} exited before printing what was awaited:\n${output().stderr || output().stdout}`);
  });
  let seen = -1;
  let deadline = 0;
  try {
    await Promise.race([
      died,
      (async () => {
        while (!match(output().stdout)) {
          const { stdout, stderr } = output();
          const size = stdout.length + stderr.length;
          if (size !== seen) {
            seen = size;
            deadline = Date.now() + quietMs;
          } else if (Date.now() > deadline) {
            throw new Error(`${what}: nothing awaited, and no output at all, for ${quietMs} ms; so far:\n${stderr || stdout}`);
          }
          await new Promise((r) => setTimeout(r, 50));
        }
      })(),
    ]);
  } finally {
    done = true;
  }
}
