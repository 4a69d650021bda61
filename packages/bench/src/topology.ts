import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { twoArmedTopology, type Topology, type TwoArmed } from '@flowlb/testkit';

/**
 * client ⇄ balancer ⇄ backend, each in its own network namespace; every system is measured on this.
 * The backend host answers on `backends` addresses, the generator's clients come from `clientAddrs` addresses of
 * the client-side /24.
 */
export interface BenchTopology {
  net: TwoArmed;
  topo: Topology;
  clientNs: string;
  lbNs: string;
  backendNs: string;
  vip: { address: string; port: number };
  backends: { address: string; port: number }[];
  /** First address of the generator's client range; each address carries up to CLIENT_PORTS_PER_ADDR flows. */
  firstClientAddr: string;
  clientMac: string;
  lbFrontMac: string;
  lbBackMac: string;
  backendMac: string;
  destroy(): Promise<void>;
}

export const VIP_PORT = 4433;
export const BACKEND_PORT = 7000;
export const CLIENT_FIRST_PORT = 10_000;
export const CLIENT_PORTS_PER_ADDR = 50_000;
/** Host part of the first generator client address in the client-side /24. */
const CLIENT_HOST_BASE = 100;
const BACKEND_HOST_BASE = 10;

export function clientAddrsFor(flows: number): number {
  return Math.ceil(flows / CLIENT_PORTS_PER_ADDR);
}

export async function createBenchTopology(opts: { backends: number; clientAddrs: number }): Promise<BenchTopology> {
  const net = await twoArmedTopology({ prefix: 'fb', staticNeighbors: true });
  const topo = net.topology;
  try {
    const backend = net.backends[0];
    if (!backend) throw new Error('no backend host');
    const backNet = net.lb.back.addr.split('.').slice(0, 3).join('.');
    const frontNet = net.lb.front.addr.split('.').slice(0, 3).join('.');
    const backends: { address: string; port: number }[] = [];
    for (let i = 0; i < opts.backends; i++) {
      const address = `${backNet}.${BACKEND_HOST_BASE + i}`;
      if (address !== backend.addr) {
        await topo.addAddress(backend.ns, backend.ifname, `${address}/24`);
        await topo.addNeighbor(net.lb.ns, net.lb.back.ifname, address, backend.mac);
      }
      backends.push({ address, port: BACKEND_PORT });
    }
    // Replies to generated clients (latency, warm-up answers) must find them without ARP.
    for (let i = 0; i < opts.clientAddrs; i++) {
      const address = `${frontNet}.${CLIENT_HOST_BASE + i}`;
      await topo.addAddress(net.client.ns, net.client.ifname, `${address}/24`);
      await topo.addNeighbor(net.lb.ns, net.lb.front.ifname, address, net.client.mac);
    }
    // A local sender on veth leaves UDP checksums for the device to fill in; with offload off they are complete on
    // the wire, as from a real NIC, and an XDP program forwarding them keeps them valid.
    await topo.txOff(net.client.ns, net.client.ifname);
    await topo.txOff(backend.ns, backend.ifname);
    return {
      net,
      topo,
      clientNs: net.client.ns,
      lbNs: net.lb.ns,
      backendNs: backend.ns,
      vip: { address: net.lb.front.addr, port: VIP_PORT },
      backends,
      firstClientAddr: `${frontNet}.${CLIENT_HOST_BASE}`,
      clientMac: net.client.mac,
      lbFrontMac: net.lb.front.mac,
      lbBackMac: net.lb.back.mac,
      backendMac: backend.mac,
      destroy: async () => {
        const report = await net.destroy();
        if (report.errors.length > 0) throw new Error(`cleanup: ${report.errors.join('; ')}`);
      },
    };
  } catch (err) {
    await net.destroy();
    throw err;
  }
}

/** pids of the kernel threads that poll a device's NAPI instances when it is threaded. */
function napiThreads(ifname: string): Set<number> {
  const out = new Set<number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/comm`, 'utf8').startsWith(`napi/${ifname}-`)) out.add(Number(name));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/**
 * Moves a device's receive processing (its NAPI polling, where XDP programs and the stack run) into kernel threads
 * pinned to `cpu`. Without this a veth polls on the CPU that sent into it, and the generator and the system under
 * test would share one. Returns how many threads were pinned.
 */
export async function pinDeviceNapi(
  topo: Topology,
  ns: string,
  ifname: string,
  cpu: number,
  options: { realtime?: boolean } = {},
): Promise<number> {
  const before = napiThreads(ifname);
  await topo.exec(ns, 'sh', ['-c', `echo 1 > /sys/class/net/${ifname}/threaded`]);
  const threads = [...napiThreads(ifname)].filter((pid) => !before.has(pid));
  for (const pid of threads) {
    execFileSync('taskset', ['-pc', String(cpu), String(pid)], { stdio: 'ignore' });
    if (options.realtime) execFileSync('chrt', ['--fifo', '-p', '10', String(pid)], { stdio: 'ignore' });
  }
  return threads.length;
}

export async function unthreadDeviceNapi(topo: Topology, ns: string, ifname: string): Promise<void> {
  await topo.exec(ns, 'sh', ['-c', `echo 0 > /sys/class/net/${ifname}/threaded`]);
}

/**
 * The most file descriptors a process may have here (the hard RLIMIT_NOFILE; raising it needs CAP_SYS_RESOURCE).
 * A system with a socket per flow holds no more flows than this.
 */
export function descriptorLimit(): number {
  const out = execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim();
  return out === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(out);
}
