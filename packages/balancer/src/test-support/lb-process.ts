import type { FlowPairRecord } from '@flowlb/flow-table';
import type { Spawned, Topology } from '@flowlb/testkit';
import type { BalancerStats } from '../stats.js';
import type { MapperCall } from './scenario-mapper.js';
import type { LbConfig } from './peer-cli.js';

type Line = Record<string, unknown>;
export type LbEvent = { type: string } & Record<string, unknown>;

/** A balancer running in another namespace (peer-cli `lb`), driven over its stdin and stdout. */
export class LbProcess {
  readonly events: LbEvent[] = [];
  readonly #proc: Spawned;
  readonly #lines: Line[] = [];
  readonly #waiters = new Set<() => void>();
  #buffer = '';

  private constructor(proc: Spawned) {
    this.#proc = proc;
    proc.child.stdout?.on('data', (chunk: string) => {
      this.#buffer += chunk;
      let nl: number;
      while ((nl = this.#buffer.indexOf('\n')) >= 0) {
        const text = this.#buffer.slice(0, nl);
        this.#buffer = this.#buffer.slice(nl + 1);
        let line: Line;
        try {
          line = JSON.parse(text) as Line;
        } catch {
          continue;
        }
        if (line.event) this.events.push(line.event as LbEvent);
        else this.#lines.push(line);
      }
      for (const w of [...this.#waiters]) w();
    });
  }

  /** Starts the balancer in `ns`. */
  static start(topology: Topology, ns: string, script: string, config: LbConfig): Promise<LbProcess> {
    return LbProcess.launch((args) => topology.spawn(ns, process.execPath, args, { stdin: true }), script, config);
  }

  /** Starts the balancer with `spawn`, which runs node with the arguments it is given (and stdin as a pipe). */
  static async launch(spawn: (args: string[]) => Spawned, script: string, config: LbConfig): Promise<LbProcess> {
    const proc = spawn([script, 'lb', JSON.stringify(config)]);
    const lb = new LbProcess(proc);
    const first = await lb.#next((l) => 'started' in l || 'failed' in l, 30_000, 'the balancer to start');
    if ('failed' in first) {
      await proc.stop();
      throw new Error(`balancer failed to start: ${String(first.failed)}; stderr: ${proc.output().stderr}`);
    }
    return lb;
  }

  get stderr(): string {
    return this.#proc.output().stderr;
  }

  async stats(): Promise<BalancerStats> {
    return (await this.#ask('stats')) as BalancerStats;
  }

  async flows(): Promise<FlowPairRecord[]> {
    return (await this.#ask('flows')) as FlowPairRecord[];
  }

  async calls(): Promise<MapperCall[]> {
    return (await this.#ask('calls')) as MapperCall[];
  }

  /** Stops the balancer and returns its last figures (undefined if it had to be killed). */
  async stop(): Promise<BalancerStats | undefined> {
    try {
      this.#proc.child.stdin?.write('stop\n');
      const line = await this.#next((l) => 'stopped' in l, 10_000, 'the balancer to stop');
      return line.stopped as BalancerStats;
    } catch {
      return undefined;
    } finally {
      await this.#proc.stop();
    }
  }

  async #ask(command: string): Promise<unknown> {
    const start = this.#lines.length;
    this.#proc.child.stdin?.write(`${command}\n`);
    const line = await this.#next((l) => command in l, 10_000, `an answer to '${command}'`, start);
    return line[command];
  }

  #next(match: (l: Line) => boolean, timeoutMs: number, what: string, from = 0): Promise<Line> {
    return new Promise((resolve, reject) => {
      let scanned = from;
      let finished = false;
      const finish = (result: Line | Error): void => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        this.#waiters.delete(check);
        if (result instanceof Error) reject(result);
        else resolve(result);
      };
      const check = (): void => {
        for (; scanned < this.#lines.length; scanned++) {
          const l = this.#lines[scanned]!;
          if (match(l)) {
            this.#lines.splice(scanned, 1);
            finish(l);
            return;
          }
        }
      };
      const timer = setTimeout(
        () => finish(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; stderr: ${this.stderr.slice(-2000)}`)),
        timeoutMs,
      );
      this.#waiters.add(check);
      // `closed` comes after the last of stdout has been read.
      void this.#proc.closed.then(() => {
        check();
        finish(new Error(`the balancer exited while waiting for ${what}; stderr: ${this.stderr.slice(-2000)}`));
      });
      check();
    });
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
