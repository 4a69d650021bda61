import type { Spawned, Topology } from '@flowlb/testkit';
import { cliBin } from './cli.js';

export interface LogLine {
  level: string;
  msg: string;
  [key: string]: unknown;
}

/** A `flowlb run` started in a namespace, with its JSON log lines parsed as they arrive. */
export class LbProcess {
  readonly proc: Spawned;
  readonly lines: LogLine[] = [];
  #buffer = '';
  #waiters = new Set<() => void>();

  /** `prefix` goes before node, e.g. `nsenter -t PID -m --` to run in the mount namespace of another process. */
  constructor(topology: Topology, ns: string, args: readonly string[], env: NodeJS.ProcessEnv = {}, prefix: readonly string[] = []) {
    const argv = [...prefix, process.execPath, cliBin(), 'run', ...args];
    this.proc = topology.spawn(ns, argv[0]!, argv.slice(1), { env: { ...process.env, ...env } });
    this.proc.child.stdout?.on('data', (chunk: string) => {
      this.#buffer += chunk;
      let nl: number;
      while ((nl = this.#buffer.indexOf('\n')) >= 0) {
        const line = this.#buffer.slice(0, nl);
        this.#buffer = this.#buffer.slice(nl + 1);
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          // not a log line
        }
      }
      for (const w of [...this.#waiters]) w();
    });
  }

  /** The first log line (already logged or to come) that matches; rejects after the timeout or when the process ends. */
  waitForLog(match: (l: LogLine) => boolean, timeoutMs = 20_000): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = this.lines.find(match);
        if (!found) return false;
        done();
        resolve(found);
        return true;
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`log line not seen within ${timeoutMs} ms; output so far:\n${this.describe()}`));
      }, timeoutMs);
      const waiter = (): void => void check();
      const onExit = (): void => {
        // Let the last output arrive before giving up.
        setTimeout(() => {
          if (check()) return;
          done();
          reject(new Error(`flowlb run exited before the log line appeared:\n${this.describe()}`));
        }, 100);
      };
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(waiter);
        this.proc.child.removeListener('exit', onExit);
      };
      if (check()) return;
      this.#waiters.add(waiter);
      this.proc.child.once('exit', onExit);
    });
  }

  running(): Promise<LogLine> {
    return this.waitForLog((l) => l.msg.startsWith('running'));
  }

  signal(sig: NodeJS.Signals): void {
    this.proc.child.kill(sig);
  }

  /** Waits for the exit, killing the process if it outlives `timeoutMs`. */
  async exit(timeoutMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const status = await Promise.race([this.proc.closed, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), timeoutMs))]);
    if (status === 'timeout') {
      await this.proc.stop();
      throw new Error(`flowlb run did not exit within ${timeoutMs} ms:\n${this.describe()}`);
    }
    return { code: status.code, signal: status.signal };
  }

  describe(): string {
    const { stdout, stderr } = this.proc.output();
    return `stdout:\n${stdout}\nstderr:\n${stderr}`;
  }
}
