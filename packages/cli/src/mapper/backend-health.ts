import { HealthChecker, udpProbe, type HealthState, type Probe, type TargetHealth } from '@flowlb/health';
import { endpointKey, type UdpEndpoint } from '@flowlb/mapper-api';
import { dtlsProbe, type HealthSpec, type MappingTable } from '@flowlb/mapper-dtls-sni';
import { VERSION_NEGOTIATION_REPLY, versionNegotiationProbe } from '@flowlb/mapper-quic-sni';
import type { BalancerEvent, TargetFlows } from '@flowlb/balancer';
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
  probe?: 'dtls' | 'quic' | 'udp';
  lastRttMs?: number;
  lastFailure?: string;
  probes?: number;
  failures?: number;
  /** From the mappings; absent for a target the mappings do not list. */
  weight?: number;
  /** The balancer's flows towards it (every worker's). */
  flows?: TargetFlows;
  /** What the XDP program forwarded to it and back from it (XDP datapath). */
  traffic?: TargetTraffic;
}

/** Datagrams and bytes (IP lengths) forwarded to a target and from it back to clients. */
export interface TargetTraffic {
  toTarget: { packets: number; bytes: number };
  fromTarget: { packets: number; bytes: number };
}

/** `ip:port` back into its parts. */
function splitKey(key: string): [string, number] {
  const i = key.lastIndexOf(':');
  return [key.slice(0, i), Number(key.slice(i + 1))];
}

/** More failures in a row than any `fall` (at most 100) needs. */
const MAX_FAILURES_PER_SIGNAL = 100;

function probeFor(spec: HealthSpec, bindAddress: string): Probe {
  if (spec.probe === 'dtls') return dtlsProbe({ bindAddress, ...(spec.sni === undefined ? {} : { serverName: spec.sni }) });
  if (spec.probe === 'quic') {
    // Fresh connection IDs each time, so that no server takes a probe for the one before.
    const probe = (): Probe => udpProbe({ bindAddress, payload: versionNegotiationProbe(), expect: VERSION_NEGOTIATION_REPLY });
    return (target, options) => probe()(target, options);
  }
  return udpProbe({
    bindAddress,
    payload: spec.udpPayload!,
    ...(spec.udpExpect === undefined ? {} : { expect: new RegExp(spec.udpExpect) }),
  });
}

/** What worker 0 tells the other workers after each change: the state of every target it checks, by `ip:port`. */
export type SharedHealth = Array<[target: string, state: HealthState]>;

/** A failure a worker saw in its own flows, for worker 0's checker. */
export interface PassiveFailure {
  target: UdpEndpoint;
  reason: string;
  /** Failures in a row it stands for (ICMP messages counted together). */
  count: number;
}

export interface BackendHealthOptions {
  bindAddress: string;
  log: Logger;
  /**
   * `leader` (default) probes and decides; `follower` (a worker other than worker 0) probes nothing, takes the states
   * the leader shares (`applyShared`), and hands its passive failures to `onPassive` for the leader's checker.
   */
  role?: 'leader' | 'follower';
  /** Leader: called with every target's state after each change, to pass on to the followers. */
  onShared?: (states: SharedHealth) => void;
  /** Follower: where its passive failures go. */
  onPassive?: (failure: PassiveFailure) => void;
}

/**
 * The health of the DTLS mapper's targets, kept in step with its mappings: each target an entry asks to probe is
 * probed from the SNAT address (from a port of the kernel's ephemeral range, outside the SNAT range), one log line
 * per change of state. Among workers, worker 0 alone probes and decides, so that every worker sends a target's new
 * clients the same way and a target is probed once, not once per worker.
 */
export class BackendHealth {
  readonly #checker: HealthChecker;
  readonly #o: BackendHealthOptions;
  #table: MappingTable | undefined;
  /** How each checked target is probed, by `ip:port`. */
  #specs = new Map<string, HealthSpec>();
  /** Follower: the leader's last word on each target. */
  #shared = new Map<string, HealthState>();

  /** Removes a target's established flows (this worker's); set once the balancer runs. */
  resetFlows: ((target: UdpEndpoint) => Promise<number>) | undefined;

  constructor(options: BackendHealthOptions) {
    this.#o = options;
    const { log } = options;
    this.#checker = new HealthChecker({
      onChange: (h: TargetHealth, previous: HealthState) => {
        if (h.state === 'unhealthy') this.#wentDown(h.target);
        const fields = {
          target: endpointKey(h.target),
          from: previous,
          to: h.state,
          ...(h.lastRttMs === undefined ? {} : { rttMs: Math.round(h.lastRttMs * 10) / 10 }),
          ...(h.state === 'unhealthy' && h.lastFailure ? { reason: h.lastFailure } : {}),
        };
        if (h.state === 'unhealthy') log.warn(fields, 'backend unhealthy: new clients go to the other targets');
        else log.info(fields, h.state === 'healthy' ? 'backend healthy' : 'backend state changed');
        options.onShared?.(this.shared());
      },
    });
  }

  get #follower(): boolean {
    return this.#o.role === 'follower';
  }

  /** May `target` take new clients. */
  isUsable(target: UdpEndpoint): boolean {
    if (this.#follower) return this.#shared.get(endpointKey(target)) !== 'unhealthy';
    return this.#checker.isUsable(target);
  }

  /** How long a new flow towards `target` may wait for a reply before it counts as a failure (LoadBalancer's replyTimeoutMs). */
  replyTimeoutMs(target: UdpEndpoint): number | undefined {
    const spec = this.#specs.get(endpointKey(target));
    return spec?.passive ? spec.timeoutMs : undefined;
  }

  /**
   * The balancer's passive signals: an ICMP unreachable from a checked target, or a new flow it left unanswered,
   * counts as a failed probe.
   */
  observe(event: BalancerEvent): void {
    if (event.type === 'target-unreachable') {
      // Every worker reads the XDP program's shared counts: the leader's reading stands for all.
      if (this.#follower || !this.#specs.has(endpointKey(event.target))) return;
      this.passive({ target: event.target, reason: event.detail, count: event.count });
    } else if (event.type === 'flow-unanswered') {
      const { target } = event.pair;
      if (!this.#specs.get(endpointKey(target))?.passive) return;
      const failure = { target, reason: `no reply to a new flow within ${event.waitedMs} ms`, count: 1 };
      if (this.#follower) this.#o.onPassive?.(failure);
      else this.passive(failure);
    }
  }

  /** Leader: a passive failure, its own or a follower's. */
  passive(failure: PassiveFailure): void {
    // Each ICMP message is a failure of its own, as a probe answered so would be; a burst needs no more than `fall`.
    const n = Math.min(failure.count, MAX_FAILURES_PER_SIGNAL);
    for (let i = 0; i < n; i++) this.#checker.reportFailure(failure.target, failure.reason);
  }

  /** Leader: every checked target's state, for the followers. */
  shared(): SharedHealth {
    return this.#checker.all().map((h) => [endpointKey(h.target), h.state]);
  }

  /** Follower: the leader's states; a target that turns unhealthy has its flows here removed if it asks for that. */
  applyShared(states: SharedHealth): void {
    const before = this.#shared;
    this.#shared = new Map(states);
    for (const [key, state] of this.#shared) {
      if (state !== 'unhealthy' || before.get(key) === 'unhealthy') continue;
      const [address, port] = splitKey(key);
      this.#wentDown({ address, port });
    }
  }

  #wentDown(target: UdpEndpoint): void {
    if (this.#specs.get(endpointKey(target))?.onDown !== 'reset' || !this.resetFlows) return;
    this.resetFlows(target).catch((error: unknown) =>
      this.#o.log.error({ target: endpointKey(target), error: (error as Error).message }, 'cannot remove the flows of an unhealthy target'),
    );
  }

  /** Probes exactly what `table` asks to probe, as it asks; a target no longer listed is forgotten. */
  sync(table: MappingTable): void {
    this.#table = table;
    const wanted = new Map(table.checkedTargets().map((c) => [endpointKey(c.target), c] as const));
    this.#specs = new Map([...wanted].map(([key, c]) => [key, c.health]));
    if (this.#follower) return;
    for (const { target, health: spec } of wanted.values()) {
      // A target checked before keeps its state and counts through a reload: only how it is probed changes.
      const settings = { intervalMs: spec.intervalMs, timeoutMs: spec.timeoutMs, rise: spec.rise, fall: spec.fall };
      this.#checker.set(target, probeFor(spec, this.#o.bindAddress), settings);
    }
    for (const h of this.#checker.all()) if (!wanted.has(endpointKey(h.target))) this.#checker.delete(h.target);
    this.#o.onShared?.(this.shared());
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
