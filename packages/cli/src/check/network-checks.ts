import { XDP_PASS_BPF_OBJECT } from '@flowlb/xdp-core';
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

export function checkIpForward(probe: SystemProbe): CheckResult {
  const base = { id: 'ip_forward', title: 'ip_forward' };
  const v = sysctl(probe, 'ip_forward');
  if (v === '1') return { ...base, verdict: 'ok', detail: 'net.ipv4.ip_forward is 1' };
  return {
    ...base,
    verdict: 'warn',
    detail: `net.ipv4.ip_forward is ${v ?? 'unreadable'}: packets of known flows that the XDP program hands to the kernel (next hop not resolved yet) are not forwarded`,
    fix: '`flowlb run` sets it when it attaches; or: sysctl -w net.ipv4.ip_forward=1',
  };
}

export function checkAcceptLocal(probe: SystemProbe, ifname: string): CheckResult {
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
    fix: `\`flowlb run\` sets it when it attaches; or: sysctl -w net.ipv4.conf.${ifname}.accept_local=1`,
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
