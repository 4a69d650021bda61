import {
  formatRange,
  formatRanges,
  parseIpLocalPortRange,
  parseReservedPorts,
  planSnatReservation,
  type PortRange,
} from '@flowlb/balancer';
import type { FlowlbConfig } from '../config/index.js';
import { DEFAULTS } from '../config/index.js';
import type { SystemProbe } from './probe.js';
import { sysctl } from './network-checks.js';
import type { CheckResult } from './types.js';

export function checkSnatPorts(probe: SystemProbe, config: FlowlbConfig | undefined): CheckResult {
  const base = { id: 'snat-ports', title: 'SNAT ports' };
  const snat: PortRange = config?.snatPorts ?? { ...DEFAULTS.snatPorts };
  const reserve = config?.reserveSnatPorts ?? false;
  const rangeText = sysctl(probe, 'ip_local_port_range');
  if (rangeText === undefined) {
    return { ...base, verdict: 'warn', detail: 'cannot read net.ipv4.ip_local_port_range', fix: 'run on Linux' };
  }
  const ephemeral = parseIpLocalPortRange(rangeText);
  const reserved = parseReservedPorts(sysctl(probe, 'ip_local_reserved_ports') ?? '');
  const plan = planSnatReservation(snat, ephemeral, reserved);
  const s = formatRange(snat);
  const e = formatRange(ephemeral);
  if (!plan.overlap) return { ...base, verdict: 'ok', detail: `SNAT ports ${s} lie outside the ephemeral range ${e}` };
  if (plan.missing.length === 0) {
    return { ...base, verdict: 'ok', detail: `SNAT ports ${s} overlap the ephemeral range ${e} but are all in ip_local_reserved_ports` };
  }
  const problem = `SNAT ports ${s} overlap the kernel's ephemeral range ${e} and ${formatRanges(plan.missing)} not reserved: the kernel may give them to other sockets`;
  const fixes = `choose SNAT ports outside ${e}, or sysctl -w net.ipv4.ip_local_reserved_ports=${formatRanges(plan.merged)}`;
  if (reserve) {
    return { ...base, verdict: 'warn', detail: `${problem}; reserve_snat_ports is on, so \`flowlb run\` reserves them at start`, fix: fixes };
  }
  return { ...base, verdict: 'fail', detail: `${problem}; \`flowlb run\` refuses to start`, fix: `${fixes}, or set reserve_snat_ports: true` };
}
