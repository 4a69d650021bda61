import { readFileSync } from 'node:fs';
import { importXdpCore, type BalancerStats, type LoadBalancer, type XdpAttachmentInfo } from '@flowlb/balancer';
import type { FlowlbConfig } from '../config/index.js';
import { collectFlows, type FlowsPage } from '../maps/flows.js';
import type { BackendReport, TargetTraffic } from '../mapper/backend-health.js';
import type { BuiltMapper } from '../mapper/build.js';
import { backendsView } from './backends-view.js';
import type { DatapathPlan } from './datapath-plan.js';
import { healthReport, type HealthReport } from './health.js';
import type { MetricsServer } from './http-server.js';
import type { Logger } from './logger.js';
import { mergeStats } from './merge-stats.js';
import type { WorkerPool } from './workers.js';

/** A value below /proc/sys/net/ipv4 of this process's network namespace; undefined when it cannot be read. */
export function readSysctl(rel: string): string | undefined {
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
  attachments: XdpAttachmentInfo[] = [];
  reloads = { ok: 0, failed: 0 };
  /** The pins are on a bpffs mounted in a namespace that ends with this process. */
  pinsEndWithRun = false;
  /** Workers 1 and up, with `workers` above 1. */
  workers: WorkerPool | undefined;
  #core: typeof import('@flowlb/xdp-core') | undefined;

  constructor(
    readonly config: FlowlbConfig,
    readonly plan: DatapathPlan,
    readonly mapper: BuiltMapper,
    readonly log: Logger,
  ) {}

  async loadCore(): Promise<void> {
    if (this.plan.forwarder) this.#core = await importXdpCore<typeof import('@flowlb/xdp-core')>();
  }

  /** The counters of the whole balancer: this process's and those its workers last sent. */
  stats(): BalancerStats | undefined {
    const own = this.lb && this.lb.state !== 'new' ? this.lb.stats() : undefined;
    if (!own || !this.workers) return own;
    return mergeStats([own, ...this.workers.stats()]);
  }

  /** The flows of the running datapath's table (the kernel map, or the userspace one), most recent first. */
  async flows(limit: number): Promise<(FlowsPage & { vip: string; datapath: string }) | undefined> {
    const lb = this.lb;
    const table = lb && lb.state === 'running' ? lb.table : undefined;
    if (!lb || !table) return undefined;
    const page = await collectFlows(table.pairs(), limit, { maxRecords: table.maxEntries });
    return { vip: `${this.config.vip.address}:${this.config.vip.port}`, datapath: lb.datapath ?? this.plan.datapath, ...page };
  }

  /** Every target with its health, flows and traffic (/backends, `flowlb backends`, the per-target metrics). */
  backends(): BackendReport[] {
    return backendsView(this.mapper.health?.report(), this.stats()?.targets, this.#traffic());
  }

  /** The XDP program's per-target counters, shared by every worker, so read here alone. */
  #traffic(): Map<string, TargetTraffic> | undefined {
    const fwd = this.plan.forwarder;
    if (!fwd || this.lb?.datapath !== 'xdp') return undefined;
    try {
      return new Map(
        fwd.targetStats().map((t) => [
          `${t.target.address}:${t.target.port}`,
          {
            toTarget: { packets: Number(t.fwdPackets), bytes: Number(t.fwdBytes) },
            fromTarget: { packets: Number(t.revPackets), bytes: Number(t.revBytes) },
          },
        ]),
      );
    } catch {
      return undefined;
    }
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
