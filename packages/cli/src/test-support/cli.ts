import { spawn } from 'node:child_process';
import { CommandError, type Topology } from '@flowlb/testkit';

/** The bin built for this test run by global-setup.ts. */
export function cliBin(): string {
  const bin = process.env.FLOWLB_CLI_BIN;
  if (!bin) throw new Error('FLOWLB_CLI_BIN is not set: run the tests through vitest (global-setup.ts builds the bin)');
  return bin;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `node <bin> ...args` in this namespace to completion, killing it after `timeoutMs`. */
export function runCli(args: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliBin(), ...args], {
      env: { ...process.env, ...options.env },
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * Runs `node <bin> ...args` inside network namespace `ns` to completion (`prefix` goes before node, e.g. `nsenter -t
 * PID -m --`). A non-zero exit is a result, not an error.
 */
export async function runCliIn(
  topology: Topology,
  ns: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; prefix?: readonly string[]; timeoutMs?: number } = {},
): Promise<CliResult> {
  const argv = [...(options.prefix ?? []), process.execPath, cliBin(), ...args];
  try {
    const r = await topology.exec(ns, argv[0]!, argv.slice(1), { env: { ...process.env, ...options.env }, timeoutMs: options.timeoutMs ?? 30_000 });
    return { code: 0, signal: null, ...r };
  } catch (error) {
    if (!(error instanceof CommandError) || error.timedOut) throw error;
    return { code: typeof error.code === 'number' ? error.code : null, signal: null, stdout: error.stdout, stderr: error.stderr };
  }
}
