import type { BalancerEvent } from '@flowlb/balancer';
import type { Endpoint, FlowPair } from '@flowlb/flow-table';
import type { Logger } from './logger.js';

const ep = (e: Endpoint): string => `${e.address}:${e.port}`;

function flowFields(p: FlowPair): Record<string, string> {
  return { client: ep(p.client), target: ep(p.target), snat: ep(p.snat) };
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** One structured line per balancer event; per-flow and per-client decisions only at debug level. */
export function logBalancerEvent(log: Logger, e: BalancerEvent): void {
  switch (e.type) {
    case 'datapath':
      log.info({ datapath: e.kind, reason: e.reason }, 'datapath chosen');
      return;
    case 'xdp-attached':
      for (const a of e.attachments) {
        const fields = { iface: a.iface, pinPath: a.pinPath ?? null };
        if (a.how === 'updated') {
          log.info({ ...fields, previousProgId: a.previousProgId }, 'took over the pinned XDP link: program swapped in place, no packet missed');
        } else if (a.how === 'replaced') {
          log.warn({ ...fields, reason: a.replaced }, 'pinned XDP link replaced by a new one');
        } else {
          log.info(fields, 'XDP program attached');
        }
        for (const warning of a.warnings ?? []) log.warn({ iface: a.iface }, warning);
      }
      return;
    case 'pressure':
      if (e.active) {
        log.warn(
          { reason: e.reason, unconfirmedTtlMs: e.unconfirmedTtlMs },
          'new flows refused for want of SNAT ports or table entries: flows whose client never spoke again now go sooner',
        );
      } else {
        log.info({ unconfirmedTtlMs: e.unconfirmedTtlMs }, 'no more refusals for want of SNAT ports or table entries');
      }
      return;
    case 'started':
      log.info(
        { vip: ep(e.vip), snatAddress: e.snatAddress, snatPorts: `${e.snatPorts.min}-${e.snatPorts.max}`, datapath: e.datapath },
        'started',
      );
      return;
    case 'stopped':
      log.info('balancer stopped');
      return;
    case 'snat-ports-reserved':
      log.warn({ ranges: e.ranges.map((r) => `${r.min}-${r.max}`) }, 'SNAT ports added to net.ipv4.ip_local_reserved_ports');
      return;
    case 'snat-ports-unchecked':
      log.warn({ reason: e.reason }, 'SNAT ports not checked against the ephemeral range');
      return;
    case 'flows-adopted':
      log.info({ count: e.count }, 'flows adopted from the pinned map');
      return;
    case 'flow-created':
      log.debug({ ...flowFields(e.pair), datagrams: e.datagrams }, 'flow created');
      return;
    case 'flow-expired':
      log.debug({ ...flowFields(e.pair), idleMs: Math.round(e.idleMs) }, 'flow expired');
      return;
    case 'flow-refused':
      log.debug({ client: ep(e.client), target: e.target && ep(e.target), reason: e.reason, detail: e.detail }, 'flow refused');
      return;
    case 'flow-unanswered':
      log.debug({ ...flowFields(e.pair), waitedMs: e.waitedMs }, 'no reply from the target to a new flow');
      return;
    case 'target-unreachable':
      log.debug({ target: ep(e.target), count: e.count, detail: e.detail }, 'ICMP destination unreachable from a target');
      return;
    case 'flows-reset':
      log.info({ target: ep(e.target), count: e.count }, 'flows of an unhealthy target removed (on_down: reset)');
      return;
    case 'client-dropped':
      log.debug({ client: ep(e.client), reason: e.reason, datagrams: e.datagrams, detail: e.detail }, 'client dropped');
      return;
    case 'mapper-error':
      log.warn({ client: ep(e.client), error: errorText(e.error) }, 'the mapper failed for a client');
      return;
    case 'snat-port-quarantined':
      log.warn({ snat: ep(e.snat), target: ep(e.target), error: e.error }, 'SNAT port taken by another socket, set aside');
      return;
    case 'warning':
      log.warn({ where: e.where }, e.message);
      return;
    case 'error':
      log.error({ where: e.where, error: errorText(e.error) }, 'error');
      return;
    default: {
      const other = e as { type?: string };
      log.debug({ event: other }, other.type ?? 'event');
    }
  }
}
