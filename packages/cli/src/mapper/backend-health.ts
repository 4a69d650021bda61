import { HealthChecker, udpProbe, type HealthState, type Probe, type TargetHealth } from '@flowlb/health';
import { endpointKey, type UdpEndpoint } from '@flowlb/mapper-api';
import { dtlsProbe, type HealthSpec, type MappingTable } from '@flowlb/mapper-dtls-sni';
import type { Logger } from '../run/logger.js';

/** A target as `flowlb backends` and /backends show it. */
export interface BackendReport {
  target: string;
  /** The mappings entries that list it (`default` for the default route). */
  names: string[];
  /** `unchecked` when no entry probes it; `draining` when every entry that lists it drains it. */
  state: HealthState | 'unchecked' | 'draining';
  /** The checker's state under a drain, when it probes the target. */
  health?: HealthState;
  /** When the checker's state last changed (ISO time). */
  since?: string;
  probe?: 'dtls' | 'udp';
  lastRttMs?: number;
  lastFailure?: string;
  probes?: number;
  failures?: number;
  weight: number;
}

function probeFor(spec: HealthSpec, bindAddress: string): Probe {
  if (spec.probe === 'dtls') return dtlsProbe({ bindAddress, ...(spec.sni === undefined ? {} : { serverName: spec.sni }) });
  return udpProbe({
    bindAddress,
    payload: spec.udpPayload!,
    ...(spec.udpExpect === undefined ? {} : { expect: new RegExp(spec.udpExpect) }),
  });
}

/**
 * The health of the DTLS mapper's targets, kept in step with its mappings: each target an entry asks to probe is
 * probed from the SNAT address (from a port of the kernel's ephemeral range, outside the SNAT range), one log line
 * per change of state.
 */
export class BackendHealth {
  readonly #checker: HealthChecker;
  readonly #bindAddress: string;
  #table: MappingTable | undefined;

  constructor(options: { bindAddress: string; log: Logger }) {
    const { log } = options;
    this.#bindAddress = options.bindAddress;
    this.#checker = new HealthChecker({
      onChange: (h: TargetHealth, previous: HealthState) => {
        const fields = {
          target: endpointKey(h.target),
          from: previous,
          to: h.state,
          ...(h.lastRttMs === undefined ? {} : { rttMs: Math.round(h.lastRttMs * 10) / 10 }),
          ...(h.state === 'unhealthy' && h.lastFailure ? { reason: h.lastFailure } : {}),
        };
        if (h.state === 'unhealthy') log.warn(fields, 'backend unhealthy: new clients go to the other targets');
        else log.info(fields, h.state === 'healthy' ? 'backend healthy' : 'backend state changed');
      },
    });
  }

  /** May `target` take new clients. */
  isUsable(target: UdpEndpoint): boolean {
    return this.#checker.isUsable(target);
  }

  /** Probes exactly what `table` asks to probe, as it asks; a target no longer listed is forgotten. */
  sync(table: MappingTable): void {
    this.#table = table;
    const wanted = new Map(table.checkedTargets().map((c) => [endpointKey(c.target), c] as const));
    for (const { target, health: spec } of wanted.values()) {
      // A target checked before keeps its state and counts through a reload: only how it is probed changes.
      const settings = { intervalMs: spec.intervalMs, timeoutMs: spec.timeoutMs, rise: spec.rise, fall: spec.fall };
      this.#checker.set(target, probeFor(spec, this.#bindAddress), settings);
    }
    for (const h of this.#checker.all()) if (!wanted.has(endpointKey(h.target))) this.#checker.delete(h.target);
  }

  /** Every target of the mappings, with its state. */
  report(): BackendReport[] {
    const table = this.#table;
    if (!table) return [];
    const rows = new Map<string, { target: UdpEndpoint; names: string[]; drained: boolean[]; weight: number }>();
    const add = (name: string, targets: readonly UdpEndpoint[], weights?: readonly number[], drain?: readonly boolean[]): void => {
      targets.forEach((target, i) => {
        const key = endpointKey(target);
        const row = rows.get(key) ?? { target, names: [], drained: [], weight: weights?.[i] ?? 1 };
        row.names.push(name);
        row.drained.push(drain?.[i] === true);
        rows.set(key, row);
      });
    };
    for (const r of table.rules) add(r.fqdn, r.targets, r.weights, r.drain);
    if (table.defaultRoute) add('default', table.defaultRoute.targets, table.defaultRoute.weights, table.defaultRoute.drain);
    const probed = new Map(table.checkedTargets().map((c) => [endpointKey(c.target), c] as const));
    return [...rows.entries()].map(([key, row]) => {
      const h = this.#checker.get(row.target);
      const draining = row.drained.every(Boolean);
      const out: BackendReport = { target: key, names: row.names, state: draining ? 'draining' : (h?.state ?? 'unchecked'), weight: row.weight };
      if (h) {
        out.health = h.state;
        out.since = new Date(h.since).toISOString();
        out.probes = h.probes;
        out.failures = h.failures;
        if (h.lastRttMs !== undefined) out.lastRttMs = h.lastRttMs;
        if (h.lastFailure !== undefined) out.lastFailure = h.lastFailure;
        const checked = probed.get(key);
        if (checked) out.probe = checked.health.probe;
      }
      return out;
    });
  }

  stop(): void {
    this.#checker.stop();
  }
}
