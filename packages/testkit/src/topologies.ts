import {
  Topology,
  type DestroyReport,
  type Iface,
  type IfaceRef,
  type TopologyOptions,
  type XdpMode,
} from './netns.js';

/** An interface that has an IPv4 address. */
export interface AddressedIface extends Iface {
  addr: string;
  cidr: string;
}

/** A namespace with one interface, such as a client or a backend. */
export interface Host extends AddressedIface {
  /** The LB address this host routes through (its default gateway). */
  gateway: string;
}

export interface Segment {
  /** The interface opposite the LB's: the host's own veth end, or the LB's port on the switch. */
  lbPeer: IfaceRef;
  /** Present when more than one host shares the segment. */
  switch?: { ns: string; bridge: string };
}

export interface TwoArmedOptions extends TopologyOptions {
  /** Number of client namespaces (default 1); more than one puts them behind a switch namespace. */
  clients?: number;
  /** Number of backend namespaces (default 1); more than one puts them behind a switch namespace. */
  backends?: number;
  /** First three octets of the client-side /24 (default `10.201.1`): LB .1, clients .2, .3, … */
  frontNet?: string;
  /** First three octets of the backend-side /24 (default `10.201.2`): LB .1, backends .10, .11, … */
  backNet?: string;
  /**
   * Attach an XDP_PASS program to the interfaces opposite the LB's, so XDP_TX / redirect out of the
   * LB's interfaces is delivered (default false; `true` means native mode).
   */
  xdpPassOnPeers?: boolean | XdpMode;
  /** Pre-fill permanent neighbour entries on every host and on the LB (default false). */
  staticNeighbors?: boolean;
}

export interface TwoArmed {
  topology: Topology;
  /** The first client; `clients[0]`. */
  client: Host;
  clients: Host[];
  lb: { ns: string; front: AddressedIface; back: AddressedIface };
  backends: Host[];
  front: Segment;
  back: Segment;
  destroy(): Promise<DestroyReport>;
}

export interface OneArmedOptions extends TopologyOptions {
  clients?: number;
  backends?: number;
  /** First three octets of the shared /24 (default `10.202.0`): LB .1, clients .2…, backends .10… */
  net?: string;
  xdpPassOnPeers?: boolean | XdpMode;
  staticNeighbors?: boolean;
}

export interface OneArmed {
  topology: Topology;
  client: Host;
  clients: Host[];
  lb: { ns: string; iface: AddressedIface };
  backends: Host[];
  /** The bridge every host and the LB hang off. */
  switch: { ns: string; bridge: string };
  /** The LB's port on the switch: the interface that needs an XDP program for XDP_TX to deliver. */
  lbPeer: IfaceRef;
  destroy(): Promise<DestroyReport>;
}

/** A locally administered MAC derived from an IPv4 address: `02:00:` + the four address bytes. */
export function macForIpv4(ip: string): string {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new Error(`not an IPv4 address: ${ip}`);
  }
  return ['02', '00', ...parts.map((p) => p.toString(16).padStart(2, '0'))].join(':');
}

/**
 * Like Promise.all, but settles every branch before rejecting, so cleanup after a failure never runs
 * while another branch is still creating things.
 */
async function allSettledOrThrow<T extends readonly unknown[]>(promises: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

function checkNet(net: string): void {
  if (!/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(net)) throw new Error(`expected three octets like 10.201.1, got '${net}'`);
}

function withAddr(iface: Iface): AddressedIface {
  if (!iface.addr || !iface.cidr) throw new Error(`${iface.ifname} in ${iface.ns} has no address`);
  return { ...iface, addr: iface.addr, cidr: iface.cidr };
}

const SWITCH_SYSCTLS = {
  // br_netfilter is loaded on this machine kind: without these a bridge runs iptables on every frame.
  'net.bridge.bridge-nf-call-iptables': 0,
  'net.bridge.bridge-nf-call-ip6tables': 0,
  'net.bridge.bridge-nf-call-arptables': 0,
};

async function addSwitch(topo: Topology, hint: string): Promise<{ ns: string; bridge: string }> {
  const ns = await topo.addNamespace(hint);
  await topo.sysctl(ns, SWITCH_SYSCTLS, { ignoreMissing: true });
  const bridge = 'br0';
  await topo.addBridge(ns, bridge);
  return { ns, bridge };
}

interface HostPlan {
  hint: string;
  addr: string;
}

/**
 * Connects hosts to `lbIf` in `lbNs`: directly with one veth when there is a single host, otherwise
 * through a bridge in a switch namespace.
 */
async function buildSegment(
  topo: Topology,
  lbNs: string,
  lbIf: string,
  lbAddr: string,
  prefixLen: number,
  plans: HostPlan[],
  switchHint: string,
): Promise<{ lb: AddressedIface; hosts: Host[]; segment: Segment }> {
  const lbCidr = `${lbAddr}/${prefixLen}`;
  const first = plans[0];
  if (plans.length === 1 && first) {
    const ns = await topo.addNamespace(first.hint);
    const pair = await topo.addVethPair(lbNs, lbIf, ns, 'eth0', {
      addrA: lbCidr,
      addrB: `${first.addr}/${prefixLen}`,
      macA: macForIpv4(lbAddr),
      macB: macForIpv4(first.addr),
    });
    await topo.addRoute(ns, 'default', { via: lbAddr });
    return {
      lb: withAddr(pair.a),
      hosts: [{ ...withAddr(pair.b), gateway: lbAddr }],
      segment: { lbPeer: { ns, ifname: 'eth0' } },
    };
  }
  const sw = await addSwitch(topo, switchHint);
  const lbPort = 'p-lb';
  const [lbPair, ...hosts] = await allSettledOrThrow([
    topo.addVethPair(lbNs, lbIf, sw.ns, lbPort, { addrA: lbCidr, macA: macForIpv4(lbAddr) }).then(async (pair) => {
      await topo.addBridgePort(sw.ns, sw.bridge, lbPort);
      return pair;
    }),
    ...plans.map((plan) => addSwitchedHost(topo, sw, plan, prefixLen, lbAddr)),
  ]);
  return { lb: withAddr(lbPair.a), hosts, segment: { lbPeer: { ns: sw.ns, ifname: lbPort }, switch: sw } };
}

/** A host namespace whose `eth0` is a port of the switch's bridge. */
async function addSwitchedHost(
  topo: Topology,
  sw: { ns: string; bridge: string },
  plan: HostPlan,
  prefixLen: number,
  gateway: string,
): Promise<Host> {
  const ns = await topo.addNamespace(plan.hint);
  const pair = await topo.addVethPair(ns, 'eth0', sw.ns, `p-${plan.hint}`.slice(0, 15), {
    addrA: `${plan.addr}/${prefixLen}`,
    macA: macForIpv4(plan.addr),
  });
  await allSettledOrThrow([topo.addBridgePort(sw.ns, sw.bridge, pair.b.ifname), topo.addRoute(ns, 'default', { via: gateway })]);
  return { ...withAddr(pair.a), gateway };
}

function lbSysctls(ifnames: string[]): Record<string, number> {
  const s: Record<string, number> = { 'net.ipv4.ip_forward': 1 };
  for (const scope of ['all', 'default', ...ifnames]) {
    // A rewritten packet passed to the stack carries the LB's own address as source: a martian
    // unless accept_local is on.
    s[`net.ipv4.conf.${scope}.accept_local`] = 1;
    s[`net.ipv4.conf.${scope}.rp_filter`] = 0;
    // Forwarding back out of the ingress interface would otherwise trigger ICMP redirects.
    s[`net.ipv4.conf.${scope}.send_redirects`] = 0;
  }
  return s;
}

function xdpModeOf(opt: boolean | XdpMode | undefined): XdpMode | undefined {
  if (opt === true) return 'native';
  if (opt === false || opt === undefined) return undefined;
  return opt;
}

function countOf(value: number | undefined, fallback: number, max: number, what: string): number {
  const n = value ?? fallback;
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`${what} must be an integer in 1..${max}, got ${n}`);
  return n;
}

async function fillNeighbors(topo: Topology, lbNs: string, lbIface: AddressedIface, hosts: Host[]): Promise<void> {
  for (const h of hosts) {
    await topo.addNeighbor(h.ns, h.ifname, lbIface.addr, lbIface.mac);
    await topo.addNeighbor(lbNs, lbIface.ifname, h.addr, h.mac);
  }
}

/**
 * client(s) ⇄ [front] LB [back] ⇄ backend(s). The LB namespace routes between its two interfaces
 * (ip_forward=1, accept_local=1, rp_filter=0), clients and backends use it as default gateway.
 * Every veth has tx checksum offload off. Destroy with `destroy()` (or `topology.destroy()`).
 */
export async function twoArmedTopology(opts: TwoArmedOptions = {}): Promise<TwoArmed> {
  const nClients = countOf(opts.clients, 1, 8, 'clients');
  const nBackends = countOf(opts.backends, 1, 200, 'backends');
  const frontNet = opts.frontNet ?? '10.201.1';
  const backNet = opts.backNet ?? '10.201.2';
  checkNet(frontNet);
  checkNet(backNet);
  const topology = new Topology(opts);
  try {
    const lbNs = await topology.addNamespace('lb');
    const [front, back] = await allSettledOrThrow([
      buildSegment(
        topology,
        lbNs,
        'front',
        `${frontNet}.1`,
        24,
        Array.from({ length: nClients }, (_, i) => ({ hint: nClients === 1 ? 'client' : `c${i}`, addr: `${frontNet}.${2 + i}` })),
        'fswitch',
      ),
      buildSegment(
        topology,
        lbNs,
        'back',
        `${backNet}.1`,
        24,
        Array.from({ length: nBackends }, (_, i) => ({ hint: `b${i}`, addr: `${backNet}.${10 + i}` })),
        'bswitch',
      ),
    ]);
    await topology.sysctl(lbNs, lbSysctls(['front', 'back']));
    if (opts.staticNeighbors) {
      await fillNeighbors(topology, lbNs, front.lb, front.hosts);
      await fillNeighbors(topology, lbNs, back.lb, back.hosts);
    }
    const mode = xdpModeOf(opts.xdpPassOnPeers);
    if (mode) {
      await topology.attachXdpPass(front.segment.lbPeer.ns, front.segment.lbPeer.ifname, { mode });
      await topology.attachXdpPass(back.segment.lbPeer.ns, back.segment.lbPeer.ifname, { mode });
    }
    const client = front.hosts[0];
    if (!client) throw new Error('no client host');
    return {
      topology,
      client,
      clients: front.hosts,
      lb: { ns: lbNs, front: front.lb, back: back.lb },
      backends: back.hosts,
      front: front.segment,
      back: back.segment,
      destroy: () => topology.destroy(),
    };
  } catch (err) {
    await topology.destroy();
    throw err;
  }
}

/**
 * client(s), LB and backend(s) on one bridge (in its own "switch" namespace). The LB has a single
 * interface and forwards back out of it (ip_forward=1, accept_local=1, send_redirects=0); hosts use
 * the LB as default gateway, but reach each other on-link.
 */
export async function oneArmedTopology(opts: OneArmedOptions = {}): Promise<OneArmed> {
  const nClients = countOf(opts.clients, 1, 8, 'clients');
  const nBackends = countOf(opts.backends, 1, 200, 'backends');
  const net = opts.net ?? '10.202.0';
  checkNet(net);
  const topology = new Topology(opts);
  try {
    const [sw, lbNs] = await allSettledOrThrow([addSwitch(topology, 'switch'), topology.addNamespace('lb')]);
    const lbAddr = `${net}.1`;
    const lbPort = 'p-lb';
    const plans: (HostPlan & { kind: 'client' | 'backend' })[] = [
      ...Array.from({ length: nClients }, (_, i) => ({
        kind: 'client' as const,
        hint: nClients === 1 ? 'client' : `c${i}`,
        addr: `${net}.${2 + i}`,
      })),
      ...Array.from({ length: nBackends }, (_, i) => ({ kind: 'backend' as const, hint: `b${i}`, addr: `${net}.${10 + i}` })),
    ];
    const [lbPair, hosts] = await allSettledOrThrow([
      (async () => {
        const pair = await topology.addVethPair(lbNs, 'eth0', sw.ns, lbPort, { addrA: `${lbAddr}/24`, macA: macForIpv4(lbAddr) });
        await allSettledOrThrow([topology.addBridgePort(sw.ns, sw.bridge, lbPort), topology.sysctl(lbNs, lbSysctls(['eth0']))]);
        return pair;
      })(),
      allSettledOrThrow(
        plans.map(async (plan) => ({ kind: plan.kind, host: await addSwitchedHost(topology, sw, plan, 24, lbAddr) })),
      ),
    ]);
    const clients = hosts.filter((h) => h.kind === 'client').map((h) => h.host);
    const backends = hosts.filter((h) => h.kind === 'backend').map((h) => h.host);
    const lbIface = withAddr(lbPair.a);
    if (opts.staticNeighbors) {
      await fillNeighbors(topology, lbNs, lbIface, [...clients, ...backends]);
    }
    const lbPeer = { ns: sw.ns, ifname: lbPort };
    const mode = xdpModeOf(opts.xdpPassOnPeers);
    if (mode) await topology.attachXdpPass(lbPeer.ns, lbPeer.ifname, { mode });
    const client = clients[0];
    if (!client) throw new Error('no client host');
    return {
      topology,
      client,
      clients,
      lb: { ns: lbNs, iface: lbIface },
      backends,
      switch: sw,
      lbPeer,
      destroy: () => topology.destroy(),
    };
  } catch (err) {
    await topology.destroy();
    throw err;
  }
}
