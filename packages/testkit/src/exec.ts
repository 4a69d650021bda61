import { execFile, execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface ExecResult {
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Kills the command (SIGKILL) after this long. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Written to the command's stdin (which is closed afterwards). */
  input?: string;
}

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly args: readonly string[],
    readonly code: number | string | null,
    readonly stdout: string,
    readonly stderr: string,
    readonly timedOut: boolean,
  ) {
    const detail = timedOut ? 'timed out' : `exit ${String(code)}`;
    const text = stderr.trim() || stdout.trim();
    super(`${[command, ...args].join(' ')}: ${detail}${text ? `: ${text}` : ''}`);
    this.name = 'CommandError';
  }
}

export const DEFAULT_EXEC_TIMEOUT_MS = 10_000;

/** FLOWLB_TESTKIT_TRACE=1 prints every command with its duration to stderr (slow topology builds). */
const trace = process.env.FLOWLB_TESTKIT_TRACE === '1';

export function run(command: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  if (!trace) return runUntraced(command, args, opts);
  const t0 = performance.now();
  const line = [command, ...args].join(' ');
  return runUntraced(command, args, opts).then(
    (r) => {
      process.stderr.write(`[testkit] ${(performance.now() - t0).toFixed(0)} ms: ${line}\n`);
      return r;
    },
    (err: unknown) => {
      process.stderr.write(`[testkit] ${(performance.now() - t0).toFixed(0)} ms FAILED: ${line}\n`);
      throw err;
    },
  );
}

function runUntraced(command: string, args: readonly string[], opts: ExecOptions): Promise<ExecResult> {
  const timeout = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args,
      { timeout, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, encoding: 'utf8', env: opts.env ?? process.env },
      (err, stdout, stderr) => {
        if (!err) {
          resolve({ stdout, stderr });
          return;
        }
        const e = err as NodeJS.ErrnoException & { killed?: boolean; signal?: string | null };
        const code = typeof e.code === 'number' || typeof e.code === 'string' ? e.code : (e.signal ?? null);
        reject(new CommandError(command, args, code, stdout, stderr, e.killed === true && e.signal === 'SIGKILL'));
      },
    );
    // EOF at once unless there is input, so a command that reads stdin cannot wait for the timeout.
    // A command that exits before reading its input closes the pipe; that is not an error of the command.
    child.stdin?.on('error', () => {});
    child.stdin?.end(opts.input ?? '');
  });
}

/** Synchronous variant for exit handlers, where nothing asynchronous runs any more. */
export function runSync(command: string, args: readonly string[], timeoutMs = 5000): ExecResult {
  try {
    const stdout = execFileSync(command, args, { timeout: timeoutMs, killSignal: 'SIGKILL', stdio: 'pipe', encoding: 'utf8' });
    return { stdout, stderr: '' };
  } catch (err) {
    const e = err as { status?: number | null; signal?: string | null; stdout?: string; stderr?: string };
    throw new CommandError(command, args, e.status ?? e.signal ?? null, e.stdout ?? '', e.stderr ?? '', e.signal === 'SIGKILL');
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function findExecutable(name: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin']);
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return undefined;
}
