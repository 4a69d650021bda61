/**
 * A balancer with a DtlsSniMapper, as a process of its own, for end-to-end tests that need it inside a network
 * namespace (where its VIP socket has to live). Bundled from source and run as `node lb-child.mjs '<json config>'`.
 *
 * Commands on stdin, one per line: `stats`, `reload`, `stop`. Output, one JSON object per line on stdout:
 * {"started": {datapath, reason}} | {"failed": message} | {"event": BalancerEvent} |
 * {"stats": {balancer, mapper}} | {"reload": {ok, applied?, error?}} | {"stopped": {balancer, mapper}}.
 * SIGTERM and the end of stdin stop it too.
 */
import { createInterface } from 'node:readline';
import { LoadBalancer, type LimitsOptions } from '@flowlb/balancer';
import { DtlsSniMapper } from '../mapper.js';

export interface LbChildConfig {
  vip: { address: string; port: number };
  snatAddress: string;
  snatPorts: { min: number; max: number };
  mappingsFile: string;
  datapath: 'xdp' | 'userspace';
  interfaces?: string[];
  xdpMode?: 'native' | 'generic';
  dropHoldMs?: number;
  limits?: LimitsOptions;
}

const print = (obj: unknown): void => {
  process.stdout.write(`${JSON.stringify(obj, (_k, v: unknown) => (v instanceof Error ? v.message : v))}\n`);
};

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '{}') as LbChildConfig;
  let mapper: DtlsSniMapper;
  let lb: LoadBalancer;
  try {
    mapper = await DtlsSniMapper.fromFile(config.mappingsFile);
    lb = new LoadBalancer({
      vip: config.vip,
      snatAddress: config.snatAddress,
      snatPorts: config.snatPorts,
      mapper,
      datapath: config.datapath,
      interfaces: config.interfaces ?? [],
      xdp: { mode: config.xdpMode ?? 'native' },
      dropHoldMs: config.dropHoldMs,
      limits: config.limits,
      onEvent: (event) => print({ event }),
    });
    await lb.start();
  } catch (error) {
    print({ failed: (error as Error).message });
    process.exitCode = 1;
    return;
  }
  print({ started: { datapath: lb.datapath, reason: lb.datapathChoice?.reason } });

  const snapshot = () => ({ balancer: lb.stats(), mapper: mapper.stats() });
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await lb.stop();
    print({ stopped: snapshot() });
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const command = line.trim();
    if (command === 'stats') print({ stats: snapshot() });
    else if (command === 'stop') void stop();
    else if (command === 'reload') {
      void mapper.reload().then((r) => print({ reload: r.ok ? { ok: true, applied: r.applied } : { ok: false, error: r.error.message } }));
    }
  });
  lines.on('close', () => void stop());
}

main().catch((error: unknown) => {
  print({ failed: (error as Error).stack ?? String(error) });
  process.exitCode = 3;
});
