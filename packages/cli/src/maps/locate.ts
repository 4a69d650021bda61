import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CliError, EXIT } from '../cli/exit-codes.js';
import { instanceFromArg, loadConfig, PIN_ROOT } from '../config/index.js';

export interface InstanceSelector {
  pinPath?: string;
  instance?: string;
  config?: string;
}

/** The pin root: `FLOWLB_PIN_ROOT` or /sys/fs/bpf/flowlb. */
export function pinRoot(env: NodeJS.ProcessEnv): string {
  return env.FLOWLB_PIN_ROOT ?? PIN_ROOT;
}

/** Instances with pinned maps under the root, by folder name. */
export function listInstances(root: string): string[] {
  try {
    return readdirSync(root, { withFileTypes: true })
      .filter((d) => d.isDirectory() && (existsSync(join(root, d.name, 'flows')) || existsSync(join(root, d.name, 'stats'))))
      .map((d) => d.name)
      .sort();
  } catch {
    return [];
  }
}

/**
 * Which pin folder a command reads: --pin-path, else --instance under the root, else the config's pin_path, else the
 * only instance under the root.
 */
export async function resolvePinPath(sel: InstanceSelector, env: NodeJS.ProcessEnv): Promise<string> {
  if (sel.pinPath) return sel.pinPath;
  const root = pinRoot(env);
  if (sel.instance) return join(root, instanceFromArg(sel.instance));
  if (sel.config) return (await loadConfig(sel.config)).pinPath;
  const found = listInstances(root);
  if (found.length === 1) return join(root, found[0]!);
  if (found.length === 0) {
    throw new CliError(
      `no flowlb instance has maps pinned under ${root}; pass --pin-path (or --instance, --config) ` +
        '(`flowlb run` mounts bpffs where there is none, in its own mount namespace: inside `ip netns exec` run this from the same one)',
      EXIT.FAILURE,
    );
  }
  throw new CliError(`${found.length} instances are pinned under ${root} (${found.join(', ')}); choose one with --instance`, EXIT.USAGE);
}
