import { readFileSync } from 'node:fs';
import type { BalancerStats, LoadBalancer } from '@flowlb/balancer';
import type { Attachment } from '@flowlb/xdp-core';
import type { FlowlbConfig } from '../config/index.js';
import type { BuiltMapper } from '../mapper/build.js';
import type { DatapathPlan } from './datapath-plan.js';
import { healthReport, type HealthReport } from './health.js';
import type { MetricsServer } from './http-server.js';
import type { Logger } from './logger.js';

function readSysctl(rel: string): string | undefined {
  try {
    return readFileSync(`/proc/sys/net/ipv4/${rel}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** What one `flowlb run` holds, and the views of it that metrics and health need. */
export class Instance {
  lb: LoadBalancer | undefined;
  metrics: MetricsServer | undefined;
  stateFile: string | undefined;
  /** The interfaces the XDP program is attached to, and how each attachment came about. */
  attachments: Attachment[] = [];
  reloads = { ok: 0, failed: 0 };
  #core: typeof import('@flowlb/xdp-core') | undefined;

  constructor(
    readonly config: FlowlbConfig,
    readonly plan: DatapathPlan,
    readonly mapper: BuiltMapper,
    readonly log: Logger,
  ) {}

  async loadCore(): Promise<void> {
    if (this.plan.forwarder) this.#core = await import('@flowlb/xdp-core');
  }

  stats(): BalancerStats | undefined {
    return this.lb && this.lb.state !== 'new' ? this.lb.stats() : undefined;
  }

  xdp(): Record<string, number> | undefined {
    try {
      return this.plan.forwarder?.stats();
    } catch {
      return undefined;
    }
  }

  health(): HealthReport {
    const fwd = this.plan.forwarder;
    const core = this.#core;
    return healthReport({
      state: this.lb?.state ?? 'new',
      datapath: this.lb?.datapath ?? null,
      vip: `${this.config.vip.address}:${this.config.vip.port}`,
      attachments:
        fwd && core
          ? this.config.interfaces.map((iface) => {
              let actual: number | undefined;
              try {
                actual = core.xdpAttachment(iface).progId;
              } catch {
                actual = undefined;
              }
              return { iface, expectedProgId: fwd.program.id, actualProgId: actual };
            })
          : [],
      readSysctl,
      interfaces: this.config.interfaces,
    });
  }
}
