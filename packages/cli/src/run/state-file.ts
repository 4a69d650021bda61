import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * What a running `flowlb run` tells the other commands: bpffs holds only maps and programs, so where its metrics are
 * served is written to a small JSON file under the run directory.
 */
export interface RunState {
  pid: number;
  instance: string;
  vip: string;
  pinPath: string | null;
  /** Base URL of the metrics server, e.g. http://127.0.0.1:9100. */
  metricsUrl: string | null;
  datapath: string | null;
  startedAt: string;
}

export function runDir(env: NodeJS.ProcessEnv): string {
  return env.FLOWLB_RUN_DIR ?? '/run/flowlb';
}

export function writeRunState(dir: string, state: RunState): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${state.instance}.json`);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(tmp, file);
  return file;
}

export function removeRunState(file: string): void {
  rmSync(file, { force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The states of every live `flowlb run` that wrote one under `dir`, by instance name. */
export function liveRunStates(dir: string): RunState[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json'));
  } catch {
    return [];
  }
  const states: RunState[] = [];
  for (const name of names.sort()) {
    try {
      const s = JSON.parse(readFileSync(join(dir, name), 'utf8')) as RunState;
      if (typeof s.pid === 'number' && alive(s.pid)) states.push(s);
    } catch {
      // a file being replaced, or not ours
    }
  }
  return states;
}

/** The state of the live instance that pins at `pinPath`, if any. */
export function findRunState(dir: string, pinPath: string): RunState | undefined {
  return liveRunStates(dir).find((s) => s.pinPath === pinPath);
}

/** The state of the live instance named `instance` (its VIP, as `instanceName` spells it), if any. */
export function findRunStateOf(dir: string, instance: string): RunState | undefined {
  return liveRunStates(dir).find((s) => s.instance === instance);
}
