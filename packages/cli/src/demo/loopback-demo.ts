import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BalancerStats } from '@flowlb/balancer';
import type { Io } from '../cli/io.js';
import type { Cleanup } from './cleanup.js';
import { mappingsYaml, ROUTES_SUMMARY } from './scenario.js';
import { freeUdpPort, runClients, say, startBackends, startBalancer, stopBalancer } from './support.js';

export async function loopbackDemo(io: Io, cleanup: Cleanup, tmp: string): Promise<boolean> {
  const vipPort = await freeUdpPort();
  const targets = [{ address: '127.0.0.1', port: await freeUdpPort() }, { address: '127.0.0.1', port: await freeUdpPort() }];
  await startBackends(io, cleanup, tmp, [], targets);
  const config = join(tmp, 'config.yaml');
  writeFileSync(
    config,
    [`port: ${vipPort}`, 'addr: "127.0.0.1"', 'mode: userspace', 'metrics_addr: "127.0.0.1:0"', 'debug: true', ''].join('\n'),
  );
  const mappings = join(tmp, 'mappings.yaml');
  writeFileSync(mappings, mappingsYaml(targets));
  say(io, `mappings: ${ROUTES_SUMMARY}`);
  const lb = await startBalancer([], config, mappings, tmp);
  cleanup.add('flowlb run', () => lb.child.stop());
  say(io, `flowlb run: userspace datapath on 127.0.0.1:${vipPort}`);
  say(io);

  const { ok } = await runClients(io, [], `127.0.0.1:${vipPort}`, '127.0.0.1', await freeUdpPort());
  const created = lb.logs().filter((l) => l.msg === 'flow created');
  say(io, 'flows the balancer created (from its debug log):');
  for (const f of created) say(io, `  ${String(f.client).padEnd(21)} -> ${String(f.target).padEnd(21)} from ${String(f.snat)}`);
  say(io);
  if (lb.metricsUrl) {
    try {
      const s = (await (await fetch(`${lb.metricsUrl}/stats`, { signal: AbortSignal.timeout(2000) })).json()) as BalancerStats;
      say(io, `counters: ${s.datagrams.userspaceForward + s.datagrams.forwardedNew} datagrams to backends and ${s.datagrams.userspaceReverse} back, all through the balancer process;`);
      say(io, `  ${s.classification.calls} mapper calls, ${s.datagrams.dropped} datagrams dropped. As root, \`flowlb demo\` shows the same with XDP.`);
      say(io);
    } catch (error) {
      say(io, `counters unavailable: ${(error as Error).message}`);
    }
  }
  return (await stopBalancer(io, lb)) && ok;
}
