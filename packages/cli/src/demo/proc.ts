import { execFile, spawn, type ChildProcess } from 'node:child_process';

export interface Done {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; rejects with its stderr when it fails or outlives `timeoutMs`. */
export function sh(cmd: string, args: readonly string[], timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

/** A long-running child whose output is kept, with a bounded stop. */
export class Child {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly done: Promise<Done>;
  #lineListeners = new Set<(line: string) => void>();
  #partial = '';

  constructor(cmd: string, args: readonly string[], options: { stdin?: 'pipe' | 'ignore'; env?: NodeJS.ProcessEnv } = {}) {
    this.child = spawn(cmd, args, { stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'], env: options.env ?? process.env });
    this.child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      this.stdout += d;
      this.#partial += d;
      let nl: number;
      while ((nl = this.#partial.indexOf('\n')) >= 0) {
        const line = this.#partial.slice(0, nl);
        this.#partial = this.#partial.slice(nl + 1);
        for (const l of this.#lineListeners) l(line);
      }
    });
    this.child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.child.stdin?.on('error', () => {});
    this.done = new Promise((resolve) => {
      const finish = (code: number | null, signal: NodeJS.Signals | null): void =>
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr });
      this.child.once('close', finish);
      this.child.once('error', (e) => {
        this.stderr += e.message;
        finish(null, null);
      });
    });
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves with the first stdout line that `match` accepts; rejects on timeout or exit. */
  waitForLine(match: (line: string) => boolean, timeoutMs: number, what: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const found = this.stdout.split('\n').find(match);
      if (found !== undefined) {
        resolve(found);
        return;
      }
      const cleanup = (): void => {
        clearTimeout(timer);
        this.#lineListeners.delete(listener);
      };
      const listener = (line: string): void => {
        if (!match(line)) return;
        cleanup();
        resolve(line);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${what}: nothing within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.#lineListeners.add(listener);
      void this.done.then(() => {
        if (!this.#lineListeners.has(listener)) return;
        cleanup();
        reject(new Error(`${what}: the process ended first (${this.stderr.trim().split('\n').slice(-3).join(' | ')})`));
      });
    });
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 3000): Promise<Done> {
    if (this.running) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.running && this.child.kill('SIGKILL'), graceMs);
      const r = await this.done;
      clearTimeout(timer);
      return r;
    }
    return this.done;
  }
}
