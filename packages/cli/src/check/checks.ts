import type { MappingTable } from '@flowlb/mapper-dtls-sni';
import type { FlowlbConfig } from '../config/index.js';
import { checkBpffs, checkBtf, checkKernel, checkPrivileges, checkProgram } from './host-checks.js';
import {
  checkAcceptLocal,
  checkAddresses,
  checkForwarding,
  checkRpFilter,
  checkTxChecksum,
  checkVethPeer,
  checkVlan,
  findPeer,
} from './network-checks.js';
import type { LinkDetails, SystemProbe } from './probe.js';
import { checkSnatPorts } from './snat-check.js';
import { checkSnatPortUsers, mappingTargets } from './snat-port-users.js';
import type { CheckReport, CheckResult } from './types.js';
import { hostChecksNotNeeded, networkChecksNotNeeded } from './userspace.js';

export interface CheckInputs {
  /** The DTLS SNI mappings `flowlb run` would use: their targets are checked against the SNAT ports. */
  mappings?: MappingTable;
}

/** Everything `flowlb check` looks at, in the order it prints them. */
export async function runChecks(probe: SystemProbe, config?: FlowlbConfig, inputs: CheckInputs = {}): Promise<CheckReport> {
  // With mode: userspace flowlb never touches XDP: what only the XDP datapath needs must not fail the check.
  const userspace = config?.mode === 'userspace';
  const checks: CheckResult[] = userspace ? hostChecksNotNeeded() : [checkKernel(probe), checkBtf(probe)];
  if (!userspace) {
    const priv = checkPrivileges(probe);
    const { capable: _capable, ...privResult } = priv;
    checks.push(privResult, await checkProgram(probe, priv.capable), checkBpffs(probe, config));
  }

  if (config && userspace) {
    checks.push(...checkAddresses(config, await probe.addresses().catch(() => [])), ...networkChecksNotNeeded(config));
  } else if (config) {
    checks.push(...checkAddresses(config, await probe.addresses().catch(() => [])));
    const links = await probe.links().catch(() => [] as LinkDetails[]);
    if (config.interfaces.length === 0) {
      checks.push({
        id: 'interfaces',
        title: 'interfaces',
        verdict: config.mode === 'xdp' ? 'fail' : 'warn',
        detail: 'no interface is configured, so the XDP datapath has nothing to attach to (mode auto runs the userspace datapath)',
        fix: 'set interface (and interfaces) in the config',
      });
    }
    for (const ifname of config.interfaces) {
      const link = links.find((l) => l.ifname === ifname);
      if (!link) {
        checks.push({
          id: `interface:${ifname}`,
          title: `interface ${ifname}`,
          verdict: 'fail',
          detail: `${ifname} does not exist in this network namespace`,
          fix: `correct interface/interfaces, or run flowlb in the namespace that has ${ifname} (ip netns exec …)`,
        });
        continue;
      }
      checks.push({
        id: `interface:${ifname}`,
        title: `interface ${ifname}`,
        verdict: 'ok',
        detail: `${ifname} exists (index ${link.ifindex}${link.kind ? `, ${link.kind}` : ''})${link.xdp ? `; XDP program ${link.xdp.progId} is attached now` : ''}`,
      });
      checks.push(checkForwarding(probe, ifname, config.sysctls), checkAcceptLocal(probe, ifname, config.sysctls), checkRpFilter(probe, ifname, config.sysctls));
      const vlan = checkVlan(ifname, probe.vlanUppers(ifname), () => probe.rxVlanOffload(ifname));
      if (vlan) checks.push(vlan);
      if (link.kind === 'veth') {
        const peer = await findPeer(probe, link, links);
        checks.push(checkVethPeer(ifname, peer), await checkTxChecksum(probe, ifname, peer));
      }
    }
  } else {
    checks.push({
      id: 'config',
      title: 'config',
      verdict: 'skip',
      detail: 'no --config: addresses, interfaces and their sysctls are not checked; SNAT ports use the default range',
    });
  }
  checks.push(checkSnatPorts(probe, config));
  checks.push(checkSnatPortUsers(probe, config, inputs.mappings && mappingTargets(inputs.mappings)));
  return { ok: checks.every((c) => c.verdict !== 'fail'), datapath: userspace ? 'userspace' : 'xdp', config: config?.file, checks };
}
