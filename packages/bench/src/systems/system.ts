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

/** Waits for `line` to appear in a process's stdout, or fails with what it printed. */
export async function waitForOutput(
  output: () => { stdout: string; stderr: string },
  exited: Promise<unknown>,
  match: (stdout: string) => boolean,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  let done = false;
  const died = exited.then(() => {
    // A short job may print its line and exit between two polls.
    if (!done && !match(output().stdout)) throw new Error(`${what} exited before it was ready:\n${output().stderr || output().stdout}`);
  });
  const deadline = Date.now() + timeoutMs;
  try {
    await Promise.race([
      died,
      (async () => {
        while (!match(output().stdout)) {
          if (Date.now() > deadline) throw new Error(`${what} not ready after ${timeoutMs} ms:\n${output().stderr || output().stdout}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      })(),
    ]);
  } finally {
    done = true;
  }
}
