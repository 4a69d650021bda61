import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Topology, TwoArmed } from '@flowlb/testkit';
import { runCliIn } from './cli.js';
import { LbProcess } from './lb-process.js';
import { twoArmedConfigLines } from './two-armed-run.js';
import type { BackendReport } from '../mapper/backend-health.js';

/** How a test asks a `flowlb run` in a namespace about itself: `flowlb <command> --json` for its config. */
export interface RunProbe {
  topology: Topology;
  ns: string;
  /** The folder holding config.yaml and the run's state file. */
  dir: string;
}

export async function cliJson<T>(p: RunProbe, args: readonly string[]): Promise<T> {
  const r = await runCliIn(p.topology, p.ns, [...args, '--json', '--config', join(p.dir, 'config.yaml')], {
    env: { FLOWLB_RUN_DIR: p.dir },
    timeoutMs: 10_000,
  });
  if (r.code !== 0) throw new Error(`flowlb ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** Far more than probes need, however slow the machine: a deadline to give up on, not a measurement. */
const STATE_WAIT_MS = 20_000;

/** Polls `flowlb backends` until `target` is in `state`. */
export async function waitForBackend(p: RunProbe, target: string, state: BackendReport['state']): Promise<BackendReport> {
  const deadline = Date.now() + STATE_WAIT_MS;
  for (;;) {
    const row = (await cliJson<BackendReport[]>(p, ['backends'])).find((b) => b.target === target);
    if (row?.state === state) return row;
    if (Date.now() > deadline) throw new Error(`${target} did not become ${state}: ${JSON.stringify(row)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Starts `flowlb run --mappings` in the balancer's namespace of `net`, on the XDP datapath (or `mode`), with its
 * config and run state in `dir` and metrics on 127.0.0.1:9100, and resolves once it runs.
 */
export async function startMappingsRun(
  net: TwoArmed,
  dir: string,
  mappings: string,
  options: { port: number; pinName: string; extraConfig?: readonly string[]; mode?: 'xdp' | 'userspace' },
): Promise<LbProcess> {
  const bpffs = await net.topology.mountBpffs();
  writeFileSync(
    join(dir, 'config.yaml'),
    [
      ...twoArmedConfigLines(net, options.port),
      `mode: ${options.mode ?? 'xdp'}`,
      `pin_path: ${bpffs}/${options.pinName}`,
      'metrics_addr: 127.0.0.1:9100',
      ...(options.extraConfig ?? []),
      '',
    ].join('\n'),
  );
  const lb = new LbProcess(net.topology, net.lb.ns, ['--config', join(dir, 'config.yaml'), '--mappings', mappings, '--detach-on-exit'], {
    FLOWLB_RUN_DIR: dir,
  });
  await lb.running();
  return lb;
}

/** A mappings file of one name over `targets` (YAML flow mappings), with the file-wide `health` settings given. */
export function healthMappingsYaml(options: {
  name: string;
  health: Readonly<Record<string, string | number | boolean>>;
  targets: readonly string[];
  whenAllDown?: 'drop' | 'any';
}): string {
  return [
    ...(options.whenAllDown ? [`when_all_down: ${options.whenAllDown}`] : []),
    'health:',
    ...Object.entries(options.health).map(([k, v]) => `  ${k}: ${typeof v === 'string' ? JSON.stringify(v) : v}`),
    'sniMappings:',
    `  - fqdn: "${options.name}"`,
    '    targets:',
    ...options.targets.map((t) => `      - ${t}`),
    '',
  ].join('\n');
}

/**
 * Ends whatever a backend test got as far as starting, even when its setup failed part-way: the run (SIGTERM, then
 * waits for it), the backends, the namespaces and the folder.
 */
export async function tearDownRun(parts: {
  lb: LbProcess | undefined;
  backends: Iterable<{ stop(): Promise<unknown> } | undefined>;
  net: TwoArmed | undefined;
  dir: string | undefined;
}): Promise<void> {
  parts.lb?.signal('SIGTERM');
  await parts.lb?.exit().catch(() => undefined);
  for (const b of parts.backends) await b?.stop().catch(() => undefined);
  await parts.net?.destroy();
  if (parts.dir) rmSync(parts.dir, { recursive: true, force: true });
}
