import { join } from 'node:path';
import type { BpfMap } from '@flowlb/xdp-core';
import { CliError, EXIT } from '../cli/exit-codes.js';
import { instanceFromArg, instanceName, loadConfig } from '../config/index.js';
import { findRunState, findRunStateOf, liveRunStates, runDir, type RunState } from '../run/state-file.js';
import { listInstances, pinRoot, type InstanceSelector } from './locate.js';
import { openPinnedMap } from './pinned.js';

/**
 * Where `flowlb flows` and `flowlb stats` read an instance: its pinned map, or, when it pins none that can be seen
 * from here (the userspace datapath, or a bpffs in another mount namespace), the running process over its metrics
 * server.
 */
export type InstanceSource =
  | { kind: 'pinned'; pinPath: string; map: BpfMap; state: RunState | undefined }
  | { kind: 'metrics'; pinPath: string | null; url: string; state: RunState };

interface Target {
  pinPath?: string;
  state?: RunState;
  /** What was looked for, for messages. */
  root: string;
  runDir: string;
}

async function target(sel: InstanceSelector, env: NodeJS.ProcessEnv): Promise<Target> {
  const root = pinRoot(env);
  const dir = runDir(env);
  const base = { root, runDir: dir };
  if (sel.pinPath) return { ...base, pinPath: sel.pinPath, state: findRunState(dir, sel.pinPath) };
  if (sel.instance) {
    const name = instanceFromArg(sel.instance);
    const state = findRunStateOf(dir, name);
    return { ...base, pinPath: state?.pinPath ?? join(root, name), state };
  }
  if (sel.config) {
    const config = await loadConfig(sel.config);
    return { ...base, pinPath: config.pinPath, state: findRunStateOf(dir, instanceName(config.vip)) };
  }
  const pinned = listInstances(root);
  if (pinned.length === 1) {
    const pinPath = join(root, pinned[0]!);
    return { ...base, pinPath, state: findRunState(dir, pinPath) };
  }
  if (pinned.length > 1) {
    throw new CliError(`${pinned.length} instances are pinned under ${root} (${pinned.join(', ')}); choose one with --instance`, EXIT.USAGE);
  }
  const running = liveRunStates(dir);
  if (running.length > 1) {
    throw new CliError(
      `no instance is pinned under ${root}, and ${running.length} are running (${running.map((s) => s.vip).join(', ')}); choose one with --instance`,
      EXIT.USAGE,
    );
  }
  const state = running[0];
  return state ? { ...base, pinPath: state.pinPath ?? undefined, state } : base;
}

function describeRun(state: RunState): string {
  return `the flowlb run for ${state.vip} (pid ${state.pid}${state.datapath ? `, ${state.datapath} datapath` : ''})`;
}

function withoutMetrics(state: RunState, why: string): CliError {
  return new CliError(
    `${describeRun(state)} ${why} and serves no metrics: set metrics_addr in its config (e.g. "127.0.0.1:9100") ` +
      'and start it again, so that it can be asked over HTTP',
    EXIT.FAILURE,
  );
}

function viaMetrics(state: RunState, why: string): InstanceSource {
  if (!state.metricsUrl) throw withoutMetrics(state, why);
  return { kind: 'metrics', pinPath: state.pinPath, url: state.metricsUrl, state };
}

/** The running instance that `sel` names, asked over its metrics server: for what only the process knows. */
export async function openRunningInstance(sel: InstanceSelector, env: NodeJS.ProcessEnv): Promise<Extract<InstanceSource, { kind: 'metrics' }>> {
  const t = await target(sel, env);
  if (!t.state) {
    throw new CliError(`no running \`flowlb run\` left its run file in ${t.runDir}; start one, or pass --instance or --config`, EXIT.FAILURE);
  }
  return viaMetrics(t.state, 'is running') as Extract<InstanceSource, { kind: 'metrics' }>;
}

/** Opens the instance that `sel` names, for reading its `mapName` map or what its metrics server says instead. */
export async function openInstance(sel: InstanceSelector, env: NodeJS.ProcessEnv, mapName: 'flows' | 'stats'): Promise<InstanceSource> {
  const t = await target(sel, env);
  if (t.state && t.state.pinPath === null) return viaMetrics(t.state, 'pins no maps');
  if (!t.pinPath) {
    throw new CliError(
      `no flowlb instance has maps pinned under ${t.root}, and no running \`flowlb run\` left its run file in ${t.runDir}; ` +
        'pass --pin-path (or --instance, --config). `flowlb run` mounts bpffs on /sys/fs/bpf when it is missing, in its ' +
        'own mount namespace: inside `ip netns exec` run this command from the same one (the shell that started it)',
      EXIT.FAILURE,
    );
  }
  try {
    return { kind: 'pinned', pinPath: t.pinPath, map: await openPinnedMap(t.pinPath, mapName), state: t.state };
  } catch (error) {
    // The process that pinned them still answers, whatever keeps its pins from being read here: a bpffs in another
    // mount namespace (each `ip netns exec` makes its own), or a user without CAP_BPF.
    if (t.state?.metricsUrl) return viaMetrics(t.state, '');
    const code = ((error as Error).cause as NodeJS.ErrnoException | undefined)?.code;
    if (t.state && code === 'ENOENT') {
      throw withoutMetrics(
        t.state,
        `pins its maps at ${t.pinPath}, which cannot be seen from here (a bpffs in another mount namespace: each \`ip netns exec\` makes its own),`,
      );
    }
    throw error;
  }
}

/** GETs `path` of a running instance's metrics server and parses its JSON, or says why it cannot. */
export async function fetchFromInstance<T>(source: Extract<InstanceSource, { kind: 'metrics' }>, path: string): Promise<T> {
  const url = `${source.url}${path}`;
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  } catch (error) {
    const cause = (error as Error & { cause?: Error }).cause?.message ?? (error as Error).message;
    throw new CliError(
      `${describeRun(source.state)} cannot be reached at ${url} (${cause}): its metrics are served in its own network ` +
        'namespace, so run this command there (ip netns exec NS …)',
      EXIT.FAILURE,
      { cause: error },
    );
  }
  const body = await res.text();
  if (!res.ok) {
    let detail = body.trim();
    try {
      detail = (JSON.parse(body) as { error?: string }).error ?? detail;
    } catch {
      // not JSON: shown as it came
    }
    const hint = res.status === 404 ? ' (a flowlb older than this command serves no such endpoint)' : '';
    throw new CliError(`${url} answered ${res.status}: ${detail}${hint}`, EXIT.FAILURE);
  }
  return JSON.parse(body) as T;
}
