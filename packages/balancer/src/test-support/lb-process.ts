import type { FlowPairRecord } from '@flowlb/flow-table';
import { ControlledChild, type Spawned, type Topology } from '@flowlb/testkit';
import type { BalancerStats } from '../stats.js';
import type { MapperCall } from './scenario-mapper.js';
import type { LbConfig } from './peer-cli.js';

export type LbEvent = { type: string } & Record<string, unknown>;

/** A balancer running in another namespace (peer-cli `lb`), driven over its stdin and stdout. */
export class LbProcess {
  readonly #child: ControlledChild<LbEvent>;

  private constructor(child: ControlledChild<LbEvent>) {
    this.#child = child;
  }

  /** Starts the balancer in `ns`. */
  static start(topology: Topology, ns: string, script: string, config: LbConfig): Promise<LbProcess> {
    return LbProcess.launch((args) => topology.spawn(ns, process.execPath, args, { stdin: true }), script, config);
  }

  /** Starts the balancer with `spawn`, which runs node with the arguments it is given (and stdin as a pipe). */
  static async launch(spawn: (args: string[]) => Spawned, script: string, config: LbConfig): Promise<LbProcess> {
    return new LbProcess(await ControlledChild.start<LbEvent>(() => spawn([script, 'lb', JSON.stringify(config)]), 'the balancer'));
  }

  get events(): LbEvent[] {
    return this.#child.events;
  }

  get stderr(): string {
    return this.#child.stderr;
  }

  stats(): Promise<BalancerStats> {
    return this.#child.ask('stats');
  }

  flows(): Promise<FlowPairRecord[]> {
    return this.#child.ask('flows');
  }

  calls(): Promise<MapperCall[]> {
    return this.#child.ask('calls');
  }

  /** Stops the balancer and returns its last figures (undefined if it had to be killed). */
  stop(): Promise<BalancerStats | undefined> {
    return this.#child.stop();
  }
}

/** Runs a peer-cli command to completion in `ns` and returns its JSON result line. */
export async function runPeer<T>(topology: Topology, ns: string, script: string, command: string, arg: unknown, timeoutMs = 60_000): Promise<T> {
  const proc = topology.spawn(ns, process.execPath, [script, command, JSON.stringify(arg)]);
  let timer: NodeJS.Timeout | undefined;
  const status = await Promise.race([
    proc.closed,
    new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (status === 'timeout') {
    await proc.stop();
    throw new Error(`peer '${command}' in ${ns} did not finish within ${timeoutMs} ms`);
  }
  const { stdout, stderr } = proc.output();
  const last = stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last) as T;
  } catch {
    throw new Error(`peer '${command}' in ${ns} failed (exit ${String(status.code)}): ${stderr.trim() || stdout.trim()}`);
  }
}
