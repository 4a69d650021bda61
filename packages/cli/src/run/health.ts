export interface HealthCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface HealthReport {
  status: 'ok' | 'unhealthy';
  state: string;
  datapath: string | null;
  checks: HealthCheck[];
  /** Problems that do not stop traffic but lose some of it (sysctls the XDP datapath relies on). */
  warnings: string[];
}

export interface HealthInputs {
  state: string;
  datapath: 'xdp' | 'userspace' | null;
  vip: string;
  /** For the XDP datapath: what each interface should run and what it runs now. */
  attachments: Array<{ iface: string; expectedProgId: number; actualProgId: number | undefined }>;
  readSysctl(rel: string): string | undefined;
  interfaces: readonly string[];
}

/** Healthy when the balancer runs (so the VIP socket is bound) and, on XDP, every interface runs our program. */
export function healthReport(h: HealthInputs): HealthReport {
  const checks: HealthCheck[] = [
    {
      name: 'vip-socket',
      ok: h.state === 'running',
      detail: h.state === 'running' ? `bound on ${h.vip}` : `the balancer is ${h.state}`,
    },
  ];
  const warnings: string[] = [];
  if (h.datapath === 'xdp') {
    for (const a of h.attachments) {
      const ok = a.actualProgId === a.expectedProgId;
      checks.push({
        name: `xdp:${a.iface}`,
        ok,
        detail: ok
          ? `program ${a.expectedProgId} attached`
          : a.actualProgId
            ? `another program (${a.actualProgId}) is attached instead of ${a.expectedProgId}`
            : 'no XDP program is attached',
      });
    }
    warnings.push(...sysctlWarnings(h.readSysctl, h.interfaces));
  }
  return {
    status: checks.every((c) => c.ok) ? 'ok' : 'unhealthy',
    state: h.state,
    datapath: h.datapath,
    checks,
    warnings,
  };
}

/**
 * The sysctls of each interface that lose the packets of known flows which the XDP program hands to the kernel while
 * their next hop is unresolved; `readSysctl` takes a path below /proc/sys/net/ipv4.
 */
export function sysctlWarnings(readSysctl: (rel: string) => string | undefined, interfaces: readonly string[]): string[] {
  const warnings: string[] = [];
  const allAcceptLocal = readSysctl('conf/all/accept_local');
  const allRpFilter = Number(readSysctl('conf/all/rp_filter') ?? 0);
  for (const iface of interfaces) {
    // The kernel decides forwarding by the interface a packet arrives on.
    if (readSysctl(`conf/${iface}/forwarding`) !== '1') {
      warnings.push(`net.ipv4.conf.${iface}.forwarding is not 1: packets of known flows that arrive on ${iface} and are passed to the kernel are not forwarded`);
    }
    if (allAcceptLocal !== '1' && readSysctl(`conf/${iface}/accept_local`) !== '1') {
      warnings.push(`net.ipv4.conf.${iface}.accept_local is not 1: rewritten packets passed to the kernel are dropped as martians`);
    }
    if (Math.max(allRpFilter, Number(readSysctl(`conf/${iface}/rp_filter`) ?? 0)) === 1) {
      warnings.push(
        `net.ipv4.conf.${iface}.rp_filter is strict (1, the larger of conf/all and conf/${iface}): rewritten packets passed to the kernel are dropped as martians; 2 (loose) lets them through`,
      );
    }
  }
  return warnings;
}
