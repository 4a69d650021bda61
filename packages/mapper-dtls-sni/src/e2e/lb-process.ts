import { fileURLToPath } from 'node:url';
import type { BalancerEvent, BalancerStats } from '@flowlb/balancer';
import { bundleForChild, ControlledChild, type ChildBundle, type Topology } from '@flowlb/testkit';
import type { MapperStats } from '../mapper.js';
import type { LbChildConfig } from './lb-child.js';

/** lb-child.ts (with this package's mapper from source), runnable by a plain `node` in another namespace. */
export function bundleLbChild(): Promise<ChildBundle> {
  return bundleForChild({
    packageRoot: fileURLToPath(new URL('../..', import.meta.url)),
    entry: 'src/e2e/lb-child.ts',
    external: ['@flowlb/balancer', '@flowlb/xdp-core', '@flowlb/mapper-api', 'yaml'],
  });
}

export interface Snapshot {
  balancer: BalancerStats;
  mapper: MapperStats;
}

/** The balancer process, driven over its stdin and stdout. Every wait is bounded. */
export class LbChild {
  readonly #child: ControlledChild<BalancerEvent>;

  private constructor(child: ControlledChild<BalancerEvent>) {
    this.#child = child;
  }

  static async start(topology: Topology, ns: string, script: string, config: LbChildConfig): Promise<LbChild> {
    const spawn = () => topology.spawn(ns, process.execPath, [script, JSON.stringify(config)], { stdin: true });
    return new LbChild(await ControlledChild.start<BalancerEvent>(spawn, 'the balancer'));
  }

  get events(): BalancerEvent[] {
    return this.#child.events;
  }

  stats(): Promise<Snapshot> {
    return this.#child.ask('stats');
  }

  /** Re-reads the mappings file. */
  reload(): Promise<{ ok: boolean; applied?: boolean; error?: string }> {
    return this.#child.ask('reload');
  }

  /** Flows created for a client address, oldest first, with the target each went to. */
  flowsOf(clientAddress: string): Extract<BalancerEvent, { type: 'flow-created' }>[] {
    return this.events.filter(
      (e): e is Extract<BalancerEvent, { type: 'flow-created' }> => e.type === 'flow-created' && e.pair.client.address === clientAddress,
    );
  }

  get stderr(): string {
    return this.#child.stderr;
  }

  stop(): Promise<Snapshot | undefined> {
    return this.#child.stop();
  }
}
