import type { FlowlbConfig } from '../config/index.js';
import type { CheckResult } from './types.js';

function notNeeded(id: string, title: string, why: string): CheckResult {
  return { id, title, verdict: 'skip', detail: `not needed with mode: userspace: ${why}` };
}

/**
 * The checks that only the XDP datapath needs, each reported as not needed: with `mode: userspace` flowlb never
 * loads or attaches the program, and its sockets work on any Linux that runs Node.js.
 */
export function hostChecksNotNeeded(): CheckResult[] {
  return [
    notNeeded('kernel', 'kernel', 'XDP links and the coarse clock helper are not used'),
    notNeeded('btf', 'BTF', 'no BPF program is loaded'),
    notNeeded('privileges', 'privileges', 'the userspace datapath needs neither CAP_BPF nor CAP_NET_ADMIN'),
    notNeeded('xdp-program', 'XDP program', 'the XDP program is not loaded'),
    notNeeded('bpffs', 'bpffs', 'nothing is pinned'),
  ];
}

/** Likewise for what the XDP datapath needs of the interfaces it attaches to. */
export function networkChecksNotNeeded(config: FlowlbConfig): CheckResult[] {
  return config.interfaces.map((ifname) =>
    notNeeded(
      `interface:${ifname}`,
      `interface ${ifname}`,
      `no XDP program is attached to ${ifname}, and the balancer forwards through its own sockets, so neither it nor its sysctls, VLAN devices, veth peer and checksum offload are looked at`,
    ),
  );
}
