import { startUdpEcho, twoArmedTopology, type TwoArmed, type UdpEcho } from '@flowlb/testkit';
import { bundlePeerCli } from './bundle.js';
import { LbProcess, runPeer } from './lb-process.js';
import type { LbConfig } from './peer-cli.js';

export interface Received {
  from: string;
  data: string;
}

/**
 * A balancer process on the XDP datapath in the middle of a two-armed topology: two client namespaces and one echo
 * backend (`b|` before each reply) on port 7000, all on the VIP's port 5000. `stop` removes all of it.
 */
export interface XdpBed {
  net: TwoArmed;
  lb: LbProcess;
  vip: { address: string; port: number };
  /** Sends from client namespace `i`, bound to `port`, `gapMs` apart, and collects the replies for 500 ms. */
  send(i: number, port: number, payloads: string[], gapMs?: number): Promise<{ received: Received[] }>;
  /** Runs one of the peer script's commands in client namespace `i`. */
  peer<T>(i: number, command: string, args: Record<string, unknown>): Promise<T>;
  stop(): Promise<void>;
}

type BedConfig = Omit<LbConfig, 'vip' | 'snatAddress' | 'targets' | 'datapath' | 'interfaces'>;

export async function startXdpBed(prefix: string, config: BedConfig): Promise<XdpBed> {
  const bundle = await bundlePeerCli();
  let net: TwoArmed | undefined;
  let echo: UdpEcho | undefined;
  let lb: LbProcess | undefined;
  const stop = async (): Promise<void> => {
    await lb?.stop();
    await echo?.stop().catch(() => undefined);
    await net?.destroy();
    bundle.dispose();
  };
  try {
    net = await twoArmedTopology({ prefix, clients: 2, backends: 1, xdpPassOnPeers: 'native' });
    const backend = net.backends[0]!;
    echo = await startUdpEcho(net.topology, backend.ns, { addr: backend.addr, port: 7000, prefix: 'b|' });
    const vip = { address: net.lb.front.addr, port: 5000 };
    lb = await LbProcess.start(net.topology, net.lb.ns, bundle.script, {
      ...config,
      vip,
      snatAddress: net.lb.back.addr,
      targets: [{ address: backend.addr, port: 7000 }],
      datapath: 'xdp',
      interfaces: [net.lb.front.ifname, net.lb.back.ifname],
    });
    const bed = { net, lb, vip };
    const peer = <T>(i: number, command: string, args: Record<string, unknown>): Promise<T> =>
      runPeer<T>(bed.net.topology, bed.net.clients[i]!.ns, bundle.script, command, args);
    return {
      ...bed,
      peer,
      send: (i, port, payloads, gapMs = 200) =>
        peer(i, 'send', { bind: { address: bed.net.clients[i]!.addr, port }, target: vip, payloads, gapMs, collectMs: 500 }),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
