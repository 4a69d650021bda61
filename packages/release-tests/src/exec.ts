import { spawn } from 'node:child_process';
import { delimiter, resolve, sep } from 'node:path';
import { repoRoot } from './workspace.js';

export interface RunOptions {
  cwd: string;
  /** The whole process group is killed after this long: npm leaves node-gyp, make and compilers behind otherwise. */
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export class RunError extends Error {
  constructor(
    readonly line: string,
    readonly result: RunResult,
  ) {
    const why = result.timedOut ? 'timed out' : `exit ${result.code ?? result.signal}`;
    super(`${line}: ${why}\n--- stdout\n${tail(result.stdout)}\n--- stderr\n${tail(result.stderr)}`);
    this.name = 'RunError';
  }
}

function tail(text: string, max = 6000): string {
  return text.length > max ? `…${text.slice(-max)}` : text;
}

/** Runs a command to its end; never throws for a failed command (see `runOk`). */
export function run(command: string, args: readonly string[], opts: RunOptions): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      cwd: opts.cwd,
      env: opts.env ?? userEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const killGroup = (): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, opts.timeoutMs);
    // A test that fails or times out leaves its children running unless they go with this worker.
    process.once('exit', killGroup);
    child.on('error', (err) => {
      clearTimeout(timer);
      process.off('exit', killGroup);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      process.off('exit', killGroup);
      resolvePromise({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** Runs a command and rejects, with its output, unless it exits 0. */
export async function runOk(command: string, args: readonly string[], opts: RunOptions): Promise<RunResult> {
  const r = await run(command, args, opts);
  if (r.code !== 0 || r.timedOut) throw new RunError([command, ...args].join(' '), r);
  return r;
}

/**
 * The environment of a user's shell rather than of this test: without what pnpm and vitest add (lifecycle
 * variables, pnpm's config, the workspace's node_modules/.bin on PATH), so that npm behaves as it does for someone
 * who installs the packages, and a node-gyp found on PATH is npm's own, not the workspace's.
 */
export function userEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(npm|pnpm)_/i.test(key) && key.toLowerCase() !== 'npm_config_registry') continue;
    if (/^(VITEST|TURBO_)/.test(key) || key === 'TEST' || key === 'NODE_ENV' || key === 'NODE_OPTIONS' || key === 'INIT_CWD') {
      continue;
    }
    env[key] = value;
  }
  const root = repoRoot + sep;
  env.PATH = (process.env.PATH ?? '')
    .split(delimiter)
    .filter((dir) => dir !== '' && !resolve(dir).startsWith(root) && !dir.split(/[\\/]/).includes('node_modules'))
    .join(delimiter);
  return { ...env, ...extra };
}
