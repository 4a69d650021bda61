import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'tsup';
import type { Spawned } from './netns.js';

export interface ChildBundle {
  /** The bundled script, runnable with a plain `node`. */
  script: string;
  dispose(): void;
}

export interface BundleOptions {
  /** The package whose sources are bundled; the bundle goes under its node_modules. */
  packageRoot: string;
  /** Entry file, relative to `packageRoot`. */
  entry: string;
  /** Packages to leave out of the bundle; they resolve from the package's node_modules as they would for a user. */
  external?: string[];
}

/**
 * Bundles a TypeScript entry from the current sources so that a plain `node` — in another network namespace, under
 * another user — can run it. Node 20 cannot load TypeScript by itself.
 */
export async function bundleForChild(opts: BundleOptions): Promise<ChildBundle> {
  const dir = mkdtempSync(join(opts.packageRoot, 'node_modules', '.child-bundle-'));
  try {
    await bundleEsm({ child: join(opts.packageRoot, opts.entry) }, dir, opts.external ?? []);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return { script: join(dir, 'child.mjs'), dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Bundles each entry (name → source file) into `outDir` as `<name>.mjs`, for Node 20, leaving `external` out. */
export async function bundleEsm(entries: Record<string, string>, outDir: string, external: string[] = []): Promise<void> {
  await build({
    entry: entries,
    outDir,
    format: ['esm'],
    outExtension: () => ({ js: '.mjs' }),
    target: 'node20',
    platform: 'node',
    config: false,
    dts: false,
    sourcemap: false,
    clean: false,
    silent: true,
    external,
  });
}

type Line = Record<string, unknown>;

/**
 * A long-running child driven over a line protocol: it reads one command per line on stdin and writes JSON lines on
 * stdout — `{"started": …}` or `{"failed": "why"}` once it is ready, `{"<command>": answer}` for each command,
 * `{"stopped": …}` after `stop`, and `{"event": …}` whenever it has something to report. Every wait is bounded.
 */
export class ControlledChild<E = Record<string, unknown>> {
  readonly events: E[] = [];
  readonly process: Spawned;
  readonly #what: string;
  readonly #lines: Line[] = [];
  readonly #waiters = new Set<() => void>();
  #buffer = '';

  private constructor(proc: Spawned, what: string) {
    this.process = proc;
    this.#what = what;
    // Writing a command to a process that has already gone fails on the pipe; the wait for its answer reports that.
    proc.child.stdin?.on('error', () => {});
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
        if ('event' in line) this.events.push(line.event as E);
        else this.#lines.push(line);
      }
      for (const w of [...this.#waiters]) w();
    });
  }

  /**
   * Starts the child with `spawn` (which must give it a stdin pipe) and waits until it says it started.
   * `what` names it in errors, e.g. "the balancer".
   */
  static async start<E = Record<string, unknown>>(spawn: () => Spawned, what: string, startTimeoutMs = 30_000): Promise<ControlledChild<E>> {
    const proc = spawn();
    const child = new ControlledChild<E>(proc, what);
    const first = await child.#next((l) => 'started' in l || 'failed' in l, startTimeoutMs, `${what} to start`).catch(
      async (error: unknown) => {
        await proc.stop();
        throw error;
      },
    );
    if ('failed' in first) {
      await proc.stop();
      throw new Error(`${what} failed to start: ${String(first.failed)}; stderr: ${proc.output().stderr}`);
    }
    return child;
  }

  get stderr(): string {
    return this.process.output().stderr;
  }

  /** Sends a command and resolves with the child's answer to it. */
  async ask<T>(command: string, timeoutMs = 10_000): Promise<T> {
    const from = this.#lines.length;
    this.process.child.stdin?.write(`${command}\n`);
    const line = await this.#next((l) => command in l, timeoutMs, `an answer to '${command}'`, from);
    return line[command] as T;
  }

  /** Asks the child to stop and returns what it said last; undefined if it was gone or had to be killed. */
  async stop<T>(): Promise<T | undefined> {
    try {
      if (this.process.child.exitCode !== null || this.process.child.signalCode !== null) return undefined;
      this.process.child.stdin?.write('stop\n');
      const line = await this.#next((l) => 'stopped' in l, 10_000, `${this.#what} to stop`);
      return line.stopped as T;
    } catch {
      return undefined;
    } finally {
      await this.process.stop();
    }
  }

  #next(match: (l: Line) => boolean, timeoutMs: number, waitingFor: string, from = 0): Promise<Line> {
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
        () => finish(new Error(`timed out after ${timeoutMs} ms waiting for ${waitingFor}; stderr: ${this.stderr.slice(-2000)}`)),
        timeoutMs,
      );
      this.#waiters.add(check);
      // `closed` comes after the last of stdout has been read.
      void this.process.closed.then(() => {
        check();
        finish(new Error(`${this.#what} exited while waiting for ${waitingFor}; stderr: ${this.stderr.slice(-2000)}`));
      });
      check();
    });
  }
}
