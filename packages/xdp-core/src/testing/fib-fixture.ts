/**
 * One network namespace whose routing table gives bpf_fib_lookup every answer the XDP program handles: a next hop
 * with a known MAC on the ingress link (XDP_TX) and on another link (redirect), next hops without a neighbour entry,
 * blackhole/unreachable/prohibit/throw/encap routes, no route at all, a local destination, a small-MTU link and an
 * interface with forwarding off. Only BPF_PROG_TEST_RUN runs against it, so no packet ever leaves: the veth peers
 * exist only so that the links have carrier.
 */
import { Topology } from '@flowlb/testkit';
import { ifIndex, withNetns } from '../index.js';

export interface LinkSpec {
  ifname: string;
  peer: string;
  mac: string;
  addr: string;
  prefix: number;
  mtu?: number;
}

/** The balancer's own interfaces. MACs are fixed so that expected frames can be written down. */
export const LINKS = {
  /** Client side; its address is the VIP. */
  lan: { ifname: 'lan0', peer: 'lan0p', mac: '02:00:00:00:00:01', addr: '10.0.0.1', prefix: 24 },
  /** Backend side. */
  srv: { ifname: 'srv0', peer: 'srv0p', mac: '02:00:00:00:01:01', addr: '10.1.0.1', prefix: 24 },
  /** Backend side with a small MTU. */
  tiny: { ifname: 'tiny0', peer: 'tiny0p', mac: '02:00:00:00:02:01', addr: '10.2.0.1', prefix: 24, mtu: 576 },
  /** Client side with forwarding turned off. */
  nofwd: { ifname: 'nofwd0', peer: 'nofwd0p', mac: '02:00:00:00:03:01', addr: '10.3.0.1', prefix: 24 },
  /** Backend side, never among the forwarder's tx_ports: as a device that takes no XDP frames. */
  plain: { ifname: 'plain0', peer: 'plain0p', mac: '02:00:00:00:04:01', addr: '10.4.0.1', prefix: 24 },
} as const satisfies Record<string, LinkSpec>;

export type LinkName = keyof typeof LINKS;

/** Hosts with permanent neighbour entries: address → MAC, on the given link. */
export const NEIGHBOURS = {
  client: { link: 'lan', addr: '10.0.0.10', mac: '02:00:00:0a:00:0a' },
  lanBackend: { link: 'lan', addr: '10.0.0.20', mac: '02:00:00:0a:00:14' },
  srvBackend: { link: 'srv', addr: '10.1.0.20', mac: '02:00:00:0b:00:14' },
  tinyBackend: { link: 'tiny', addr: '10.2.0.20', mac: '02:00:00:0c:00:14' },
  nofwdClient: { link: 'nofwd', addr: '10.3.0.10', mac: '02:00:00:0d:00:0a' },
  plainBackend: { link: 'plain', addr: '10.4.0.20', mac: '02:00:00:0e:00:14' },
} as const satisfies Record<string, { link: LinkName; addr: string; mac: string }>;

/** Who sends to the balancer on each link. */
export const SENDER_MAC: Record<LinkName, string> = {
  lan: NEIGHBOURS.client.mac,
  srv: NEIGHBOURS.srvBackend.mac,
  tiny: NEIGHBOURS.tinyBackend.mac,
  nofwd: NEIGHBOURS.nofwdClient.mac,
  plain: NEIGHBOURS.plainBackend.mac,
};

/** On srv0's subnet, never given a neighbour entry. */
export const UNRESOLVED_HOST = '10.1.0.30';

/** Destinations whose route decides the lookup's outcome. */
export const ROUTED = {
  /** 10.7.0.0/24 via srvBackend: the frame goes to the gateway's MAC. */
  viaGateway: '10.7.0.5',
  /** 10.8.0.0/24 via UNRESOLVED_HOST. */
  viaUnresolvedGateway: '10.8.0.5',
  blackhole: '10.9.0.5',
  unreachable: '10.9.1.5',
  prohibit: '10.9.2.5',
  /** 10.9.3.0/24 with an IP lightweight-tunnel encap, which bpf_fib_lookup does not handle. */
  encap: '10.9.3.5',
  throw: '10.9.4.5',
  /** No route covers it: the namespace has no default route. */
  unrouted: '192.0.2.5',
} as const;

export interface FibFixture {
  ns: string;
  ifindex: Record<LinkName, number>;
  /** Runs `fn` with the calling thread inside the namespace. */
  inNs<T>(fn: () => T): T;
  /** Lets `fwd` redirect frames to every link but `plain`, as attaching to them would. */
  addTxPorts(fwd: { addTxPort(ifindex: number): void }): void;
  destroy(): Promise<void>;
}

export async function createFibFixture(prefix = 'xdpprog'): Promise<FibFixture> {
  const topo = new Topology({ prefix });
  try {
    const ns = await topo.addNamespace('fib');
    for (const l of Object.values(LINKS) as LinkSpec[]) {
      await topo.addVethPair(ns, l.ifname, ns, l.peer, {
        addrA: `${l.addr}/${l.prefix}`,
        macA: l.mac,
        ...(l.mtu === undefined ? {} : { mtu: l.mtu }),
      });
    }
    for (const n of Object.values(NEIGHBOURS)) await topo.addNeighbor(ns, LINKS[n.link].ifname, n.addr, n.mac);

    const srv = LINKS.srv.ifname;
    const routes: string[][] = [
      ['10.7.0.0/24', 'via', NEIGHBOURS.srvBackend.addr, 'dev', srv],
      ['10.8.0.0/24', 'via', UNRESOLVED_HOST, 'dev', srv],
      ['blackhole', '10.9.0.0/24'],
      ['unreachable', '10.9.1.0/24'],
      ['prohibit', '10.9.2.0/24'],
      ['10.9.3.0/24', 'encap', 'ip', 'id', '1', 'dst', '198.51.100.1', 'dev', srv],
      ['throw', '10.9.4.0/24'],
    ];
    for (const r of routes) await topo.ip(ns, 'route', 'add', ...r);

    // ip_forward first: writing it resets every interface's own forwarding switch.
    await topo.sysctl(ns, {
      'net.ipv4.ip_forward': 1,
      [`net.ipv4.conf.${LINKS.nofwd.ifname}.forwarding`]: 0,
    });

    const inNs = <T>(fn: () => T): T => withNetns(ns, fn);
    const ifindex = inNs(() => {
      const out = {} as Record<LinkName, number>;
      for (const [name, l] of Object.entries(LINKS) as [LinkName, LinkSpec][]) out[name] = ifIndex(l.ifname);
      return out;
    });
    return {
      ns,
      ifindex,
      inNs,
      addTxPorts: (fwd) => {
        inNs(() => {
          for (const name of Object.keys(LINKS) as LinkName[]) if (name !== 'plain') fwd.addTxPort(ifindex[name]);
        });
      },
      destroy: async () => {
        const report = await topo.destroy();
        if (report.errors.length > 0) throw new Error(`fixture cleanup failed: ${report.errors.join('; ')}`);
      },
    };
  } catch (err) {
    await topo.destroy();
    throw err;
  }
}
