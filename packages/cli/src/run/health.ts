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
    if (h.readSysctl('ip_forward') !== '1') {
      warnings.push('net.ipv4.ip_forward is not 1: packets of known flows passed to the kernel are not forwarded');
    }
    const all = h.readSysctl('conf/all/accept_local');
    for (const iface of h.interfaces) {
      if (all !== '1' && h.readSysctl(`conf/${iface}/accept_local`) !== '1') {
        warnings.push(`net.ipv4.conf.${iface}.accept_local is not 1: rewritten packets passed to the kernel are dropped as martians`);
      }
    }
  }
  return {
    status: checks.every((c) => c.ok) ? 'ok' : 'unhealthy',
    state: h.state,
    datapath: h.datapath,
    checks,
    warnings,
  };
}
