import { XDP_PASS_BPF_OBJECT, describeUppers, type OffloadState, type VlanDevice } from '@flowlb/xdp-core';
import type { FlowlbConfig } from '../config/index.js';
import type { LinkDetails, SystemProbe } from './probe.js';
import type { CheckResult } from './types.js';

const PROC_IPV4 = '/proc/sys/net/ipv4';

export function checkAddresses(config: FlowlbConfig, addresses: readonly string[]): CheckResult[] {
  const out: CheckResult[] = [];
  const wanted: Array<[string, string]> = [['addr', config.vip.address]];
  if (config.snatAddr !== config.vip.address) wanted.push(['snat_addr', config.snatAddr]);
  for (const [key, address] of wanted) {
    const base = { id: `address:${key}`, title: key };
    out.push(
      addresses.includes(address)
        ? { ...base, verdict: 'ok', detail: `${address} is an address of this host` }
        : {
            ...base,
            verdict: 'fail',
            detail: `${address} is not configured on any interface in this network namespace, so the balancer cannot bind it`,
            fix: `add it (ip addr add ${address}/32 dev <interface>) or correct ${key}`,
          },
    );
  }
  return out;
}

export function sysctl(probe: SystemProbe, rel: string): string | undefined {
  return probe.readFile(`${PROC_IPV4}/${rel}`)?.trim();
}

/** The fix of a sysctl `flowlb run` sets when it attaches, unless `sysctls: false` leaves it to the operator. */
function sysctlFix(sysctls: boolean, assignment: string): string {
  return sysctls
    ? `\`flowlb run\` sets it when it attaches (and puts it back when it detaches); or: sysctl -w ${assignment}`
    : `sysctls: false, so \`flowlb run\` leaves it alone: sysctl -w ${assignment}, or remove sysctls: false`;
}

/** The kernel forwards a packet or not by the `forwarding` of the interface it arrived on; ip_forward only sets them all. */
export function checkForwarding(probe: SystemProbe, ifname: string, sysctls = true): CheckResult {
  const base = { id: `forwarding:${ifname}`, title: `forwarding ${ifname}` };
  const v = sysctl(probe, `conf/${ifname}/forwarding`);
  if (v === '1') return { ...base, verdict: 'ok', detail: `net.ipv4.conf.${ifname}.forwarding is 1` };
  return {
    ...base,
    verdict: 'warn',
    detail:
      `net.ipv4.conf.${ifname}.forwarding is ${v ?? 'unreadable'}: packets of known flows that arrive on ${ifname} and that the ` +
      'XDP program hands to the kernel (next hop not resolved yet) are not forwarded',
    fix: sysctlFix(sysctls, `net.ipv4.conf.${ifname}.forwarding=1`),
  };
}

export function checkAcceptLocal(probe: SystemProbe, ifname: string, sysctls = true): CheckResult {
  const base = { id: `accept_local:${ifname}`, title: `accept_local ${ifname}` };
  const all = sysctl(probe, 'conf/all/accept_local');
  const own = sysctl(probe, `conf/${ifname}/accept_local`);
  // The kernel ORs the two.
  if (own === '1' || all === '1') {
    return { ...base, verdict: 'ok', detail: `accept_local is on for ${ifname}${own === '1' ? '' : ' (through conf/all)'}` };
  }
  return {
    ...base,
    verdict: 'warn',
    detail:
      `net.ipv4.conf.${ifname}.accept_local is ${own ?? 'unreadable'}: a rewritten packet that the XDP program passes to the ` +
      "kernel carries the balancer's own address as source and is dropped as a martian",
    fix: sysctlFix(sysctls, `net.ipv4.conf.${ifname}.accept_local=1`),
  };
}

/** The kernel filters by the larger of conf/all and the interface's own rp_filter: 0 off, 1 strict, 2 loose. */
export function checkRpFilter(probe: SystemProbe, ifname: string, sysctls = true): CheckResult {
  const base = { id: `rp_filter:${ifname}`, title: `rp_filter ${ifname}` };
  const all = sysctl(probe, 'conf/all/rp_filter');
  const own = sysctl(probe, `conf/${ifname}/rp_filter`);
  const values = `net.ipv4.conf.${ifname}.rp_filter is ${own ?? 'unreadable'}, net.ipv4.conf.all.rp_filter ${all ?? 'unreadable'}`;
  if (all === undefined || own === undefined || !/^\d+$/.test(all) || !/^\d+$/.test(own)) {
    return { ...base, verdict: 'warn', detail: `${values}: whether reverse path filtering is strict cannot be told`, fix: sysctlFix(sysctls, `net.ipv4.conf.${ifname}.rp_filter=2`) };
  }
  const effective = Math.max(Number(all), Number(own));
  if (effective !== 1) {
    return { ...base, verdict: 'ok', detail: `reverse path filtering is ${effective === 0 ? 'off' : 'loose'} for ${ifname} (${values})` };
  }
  return {
    ...base,
    verdict: 'warn',
    detail:
      `${values}, so reverse path filtering is strict for ${ifname} (the larger of the two counts): a rewritten packet that the ` +
      `XDP program passes to the kernel has one of this host's addresses as source, which is not routed through ${ifname}, ` +
      'and is dropped as a martian; loose mode (2) lets it through',
    fix: sysctlFix(sysctls, `net.ipv4.conf.${ifname}.rp_filter=2`),
  };
}

/**
 * With hardware VLAN stripping on, frames tagged for a VLAN device on top of the interface reach the XDP program
 * looking untagged, and those of known flows leave without their tag. Undefined when no VLAN device sits on top.
 */
export function checkVlan(ifname: string, uppers: readonly VlanDevice[], rxvlan: () => OffloadState): CheckResult | undefined {
  if (uppers.length === 0) return undefined;
  const base = { id: `vlan:${ifname}`, title: `VLAN ${ifname}` };
  const has = `${ifname} has VLAN devices on top (${describeUppers(uppers)})`;
  const harm = 'frames tagged for them reach the XDP program looking untagged, and those of known flows are forwarded without their tag';
  const instead = `or attach to the VLAN devices instead of ${ifname} (interface/interfaces; generic mode, as VLAN devices have no native XDP)`;
  const state = rxvlan();
  if (state === 'off') {
    return { ...base, verdict: 'ok', detail: `${has}; hardware VLAN stripping (rx-vlan-offload) is off, so their frames reach the XDP program tagged and go to the kernel` };
  }
  if (state === 'on') {
    return {
      ...base,
      verdict: 'warn',
      detail: `${has} and hardware VLAN stripping (rx-vlan-offload) is on: ${harm}`,
      fix: `turn stripping off: ethtool -K ${ifname} rxvlan off; ${instead}`,
      command: `ethtool -K ${shellWord(ifname)} rxvlan off`,
    };
  }
  return {
    ...base,
    verdict: 'warn',
    detail: `${has}, and whether hardware VLAN stripping (rx-vlan-offload) is on cannot be read (ethtool is missing or cannot tell): if it is, ${harm}`,
    fix: `install ethtool and look: ethtool -k ${ifname} | grep rx-vlan-offload; if it is on, ethtool -K ${ifname} rxvlan off, ${instead}`,
  };
}

export interface PeerInfo {
  where: string;
  ns: string | undefined;
  link: LinkDetails | undefined;
  /** Why the peer could not be looked at. */
  unknown?: string;
}

export async function findPeer(probe: SystemProbe, link: LinkDetails, local: readonly LinkDetails[]): Promise<PeerInfo> {
  const peer = link.peer;
  if (!peer) return { where: 'unknown', ns: undefined, link: undefined, unknown: 'the kernel does not say where its peer is' };
  if (peer.netnsid === undefined) {
    const found = local.find((l) => (peer.ifname !== undefined ? l.ifname === peer.ifname : l.ifindex === peer.ifindex));
    return { where: `${found?.ifname ?? peer.ifname ?? `#${peer.ifindex}`} (same namespace)`, ns: undefined, link: found };
  }
  const names = await probe.netnsNames();
  const ns = names.get(peer.netnsid);
  if (ns === undefined) {
    return {
      where: `#${peer.ifindex} in namespace id ${peer.netnsid}`,
      ns: undefined,
      link: undefined,
      unknown: `its peer is in a namespace without a name (id ${peer.netnsid})`,
    };
  }
  const found = (await probe.linksIn(ns).catch(() => [])).find((l) => l.ifindex === peer.ifindex);
  return { where: `${found?.ifname ?? `#${peer.ifindex}`} in namespace ${ns}`, ns, link: found };
}

/** `word` as one shell word: left alone when nothing in it is special to a shell, single-quoted otherwise. */
export function shellWord(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export function checkVethPeer(ifname: string, peer: PeerInfo, xdpPassObject: string = XDP_PASS_BPF_OBJECT): CheckResult {
  const base = { id: `veth-peer:${ifname}`, title: `veth peer ${ifname}` };
  const consequence = `frames the XDP program sends out of ${ifname} (XDP_TX or redirect) are lost`;
  if (peer.unknown !== undefined) {
    return {
      ...base,
      verdict: 'warn',
      detail: `${ifname} is a veth and ${peer.unknown}, so whether it has an XDP program is unknown; without one ${consequence}`,
      fix:
        'make sure the peer has an XDP program attached in native mode (one returning XDP_PASS is enough, such as ' +
        `${xdpPassObject}: ip link set dev PEER xdpdrv obj ${shellWord(xdpPassObject)} sec xdp)`,
    };
  }
  const xdp = peer.link?.xdp;
  const ip = peer.link ? `ip ${peer.ns ? `-n ${shellWord(peer.ns)} ` : ''}link set dev ${shellWord(peer.link.ifname)}` : undefined;
  const attach = `${ip} xdpdrv obj ${shellWord(xdpPassObject)} sec xdp`;
  const fix = (first: string): string =>
    `${first}attach the XDP_PASS program that @flowlb/xdp-core ships (${xdpPassObject}) to ${peer.link?.ifname ?? 'the peer'} ` +
    'in native mode; or run with mode: userspace';
  if (xdp && xdp.mode !== 'generic') {
    return { ...base, verdict: 'ok', detail: `its peer ${peer.where} has an XDP program (id ${xdp.progId}, ${xdp.mode})` };
  }
  if (xdp) {
    return {
      ...base,
      verdict: 'fail',
      detail: `its peer ${peer.where} has an XDP program in generic mode only: veth delivers XDP_TX and redirected frames only to a peer with a native-mode program, so ${consequence}`,
      // The kernel refuses a native-mode program while a generic-mode one is attached.
      fix: fix('detach the generic-mode program and '),
      command: `${ip} xdpgeneric off && ${attach}`,
    };
  }
  return {
    ...base,
    verdict: 'fail',
    detail: `${ifname} is a veth whose peer ${peer.where} has no XDP program: ${consequence}`,
    fix: fix(''),
    ...(ip ? { command: attach } : {}),
  };
}

export async function checkTxChecksum(probe: SystemProbe, ifname: string, peer: PeerInfo): Promise<CheckResult> {
  const base = { id: `tx-checksum:${ifname}`, title: `checksum offload ${ifname}` };
  const target = peer.link ? { ifname: peer.link.ifname, ns: peer.ns, where: peer.where } : undefined;
  if (!target) {
    return { ...base, verdict: 'skip', detail: `the peer of ${ifname} cannot be looked at` };
  }
  const on = await probe.txChecksum(target.ifname, target.ns);
  if (on === undefined) return { ...base, verdict: 'skip', detail: `ethtool cannot read the offloads of ${target.where}` };
  if (!on) return { ...base, verdict: 'ok', detail: `tx checksum offload is off on the peer ${target.where}` };
  const exec = target.ns ? `ip netns exec ${target.ns} ` : '';
  return {
    ...base,
    verdict: 'warn',
    detail:
      `tx checksum offload is on at the peer ${target.where}: local senders on veth hand over UDP packets whose checksum ` +
      'is not filled in yet, and the XDP program forwards them as they are (receivers drop them); real NICs deliver complete checksums',
    fix: `${exec}ethtool -K ${target.ifname} tx off (on every veth of the senders)`,
  };
}
