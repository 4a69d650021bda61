import type { UdpEndpoint } from '@flowlb/mapper-api';
import { normalizeHostName } from './names.js';
import { RendezvousSet } from '@flowlb/mapper-api';

/** One validated entry of `sniMappings`. */
export interface MappingRule {
  /** Position in `sniMappings`, from 0. */
  readonly index: number;
  /** The name as written in the file. */
  readonly fqdn: string;
  /** True for `*.suffix` entries. */
  readonly wildcard: boolean;
  /** The normalised name; for a wildcard, the part after `*.`. */
  readonly name: string;
  readonly targets: readonly UdpEndpoint[];
  /**
   * True when hellos for this entry must first come back with a cookie from the mapper's own HelloVerifyRequest
   * (`helloVerify: true` in the mappings). Absent when off.
   */
  readonly helloVerify?: boolean;
  /** Each target's share of new clients (`weight`, 1 by default), one per target; absent when all are 1. */
  readonly weights?: readonly number[];
  /** Which targets take no new clients (`drain: true`), one per target; absent when none drains. */
  readonly drain?: readonly boolean[];
  /** How the targets are probed; absent when they are not (`probe: none`, the default). */
  readonly health?: HealthSpec;
  /** The protocols whose hellos this entry routes (`protocols`); absent: both. */
  readonly protocols?: readonly HelloProtocol[];
  /** The entry takes only hellos that offer one of these ALPN protocol names (`alpn`); absent: any hello. */
  readonly alpn?: readonly string[];
}

/** The protocols whose ClientHellos the mappings route: DTLS's, and QUIC's (in its Initial packets). */
export type HelloProtocol = 'dtls' | 'quic';

/** Which hellos an entry takes, as far as its name does not decide it. */
export interface HelloSelector {
  protocols: readonly HelloProtocol[];
  alpn: readonly string[] | undefined;
}

/** What of a hello, besides its name, chooses among the entries of that name. */
export interface HelloTraits {
  protocol: HelloProtocol;
  /** The ALPN protocol names the client offered (none: it sent no ALPN extension). */
  alpn?: readonly string[];
}

/** What to do with new clients of a name whose targets are all unhealthy or draining. */
export type WhenAllDown = 'drop' | 'any';

/** The `health` settings of an entry, the file's defaults merged in. */
export interface HealthSpec {
  /**
   * `dtls`: a ClientHello for `sni`; `quic`: a long header of a reserved version, which a QUIC server answers with
   * Version Negotiation; `udp`: `udpPayload`.
   */
  probe: 'dtls' | 'quic' | 'udp';
  intervalMs: number;
  timeoutMs: number;
  /** Successes in a row that make a target healthy, failures in a row that make it unhealthy. */
  rise: number;
  fall: number;
  /** The udp probe's datagram, and what a reply must match (a regular expression) to count. */
  udpPayload?: string;
  udpExpect?: string;
  /** The server name the dtls probe's ClientHello asks for; absent: none. */
  sni?: string;
  /** `reset`: when a target becomes unhealthy, its established flows are removed too; `keep` (default) lets them run. */
  onDown: 'keep' | 'reset';
  /**
   * A new flow the target leaves unanswered for `timeoutMs` counts as a failed probe (default for dtls, whose servers
   * answer every ClientHello; off by default for udp).
   */
  passive: boolean;
}

/** A target group without a name: the default's targets, with their weights, drain flags and health. */
export interface DefaultRoute {
  readonly targets: readonly UdpEndpoint[];
  readonly weights?: readonly number[];
  readonly drain?: readonly boolean[];
  readonly health?: HealthSpec;
}

export interface MappingTableOptions {
  /** The default target's `helloVerify`: hellos sent to the default must bring a cookie first. */
  defaultHelloVerify?: boolean;
  /** The default's weights, drain flags and health; its targets are the constructor's `defaultTargets`. */
  defaultRoute?: Omit<DefaultRoute, 'targets'>;
  /** Default `drop`. */
  whenAllDown?: WhenAllDown;
}

/** A target as a health checker watches it: where, and how, as the first entry that lists it says. */
export interface CheckedTarget {
  target: UdpEndpoint;
  health: HealthSpec;
}

export type MatchKind = 'exact' | 'wildcard' | 'default';

export type Resolution =
  /** `helloVerify` is set, to true, only when the entry (or the default) that matched asks for a cookie. */
  | { kind: 'target'; target: UdpEndpoint; match: MatchKind; rule?: MappingRule; helloVerify?: boolean }
  /**
   * Nothing to route to: `no-name` when the hello named no server and there is no default, `unknown-name` when its
   * name matched nothing and there is no default, `all-targets-down` when every target of the match is unhealthy or
   * draining and `when_all_down` is `drop`.
   */
  | { kind: 'none'; why: 'no-name' | 'unknown-name' | 'all-targets-down'; match?: MatchKind; rule?: MappingRule };

/** Whether a target may take new clients, as a health checker says; every target may, without one. */
export type TargetUsable = (target: UdpEndpoint) => boolean;

interface CompiledRule {
  rule: MappingRule;
  targets: RendezvousSet;
}

/** The target a client gets among `set`'s, passing over draining and unusable ones; -1 when none is left. */
function choose(set: RendezvousSet, drain: readonly boolean[] | undefined, clientKey: string, usable: TargetUsable | undefined, whenAllDown: WhenAllDown): number {
  if (drain === undefined && usable === undefined) return set.pickIndex(clientKey);
  const targets = set.targets;
  const index = set.pickIndex(clientKey, (i) => drain?.[i] !== true && (usable === undefined || usable(targets[i]!)));
  if (index >= 0 || whenAllDown === 'drop') return index;
  // Failing open: health is ignored, then draining too, rather than refusing the client.
  const notDraining = set.pickIndex(clientKey, (i) => drain?.[i] !== true);
  return notDraining >= 0 ? notDraining : set.pickIndex(clientKey);
}

/** The first of a name's entries that takes the hello. */
function takes(entries: readonly CompiledRule[] | undefined, hello: HelloTraits | undefined): CompiledRule | undefined {
  if (entries === undefined || hello === undefined) return entries?.[0];
  return entries.find(({ rule }) => {
    if (rule.protocols !== undefined && !rule.protocols.includes(hello.protocol)) return false;
    return rule.alpn === undefined || (hello.alpn ?? []).some((a) => rule.alpn!.includes(a));
  });
}

/**
 * A validated, immutable set of mappings. Built by the loaders in mappings.ts, which are the only place that checks
 * entries; a table is swapped whole on reload, never edited.
 */
export class MappingTable {
  readonly rules: readonly MappingRule[];
  /** Targets for hellos with no name or an unknown name; undefined means such flows are dropped. */
  readonly defaultTargets: readonly UdpEndpoint[] | undefined;
  /** The file the table was read from, if any. */
  readonly file: string | undefined;
  /** Whether hellos routed to the default must bring a cookie first. */
  readonly defaultHelloVerify: boolean;
  /** The default's weights, drain flags and health, when it has targets. */
  readonly defaultRoute: DefaultRoute | undefined;
  readonly whenAllDown: WhenAllDown;
  /** The entries of each name, in file order: the first that takes a hello routes it. */
  private readonly exact = new Map<string, CompiledRule[]>();
  private readonly wildcards = new Map<string, CompiledRule[]>();
  private readonly fallback: RendezvousSet | undefined;

  /** Use the loaders (`loadMappings`, `mappingsFromYaml`, `mappingsFromObject`): they validate what this assumes. */
  constructor(
    rules: readonly MappingRule[],
    defaultTargets: readonly UdpEndpoint[] | undefined,
    file?: string,
    options: MappingTableOptions = {},
  ) {
    this.rules = rules;
    this.defaultTargets = defaultTargets;
    this.file = file;
    this.defaultHelloVerify = options.defaultHelloVerify === true && defaultTargets !== undefined;
    this.whenAllDown = options.whenAllDown ?? 'drop';
    for (const rule of rules) {
      const byName = rule.wildcard ? this.wildcards : this.exact;
      const compiled = { rule, targets: new RendezvousSet(rule.targets, rule.weights) };
      byName.set(rule.name, [...(byName.get(rule.name) ?? []), compiled]);
    }
    this.defaultRoute = defaultTargets === undefined ? undefined : { ...options.defaultRoute, targets: defaultTargets };
    this.fallback =
      defaultTargets !== undefined && defaultTargets.length > 0 ? new RendezvousSet(defaultTargets, options.defaultRoute?.weights) : undefined;
  }

  /**
   * The targets to probe, each once, with the health settings of the first entry that lists it (the default's
   * last): one checker state per target, since a backend that is down is down for every name it serves.
   */
  checkedTargets(): CheckedTarget[] {
    const out = new Map<string, CheckedTarget>();
    const add = (targets: readonly UdpEndpoint[], health: HealthSpec | undefined): void => {
      if (health === undefined) return;
      for (const target of targets) {
        const key = `${target.address}:${target.port}`;
        if (!out.has(key)) out.set(key, { target, health });
      }
    };
    for (const rule of this.rules) add(rule.targets, rule.health);
    if (this.defaultRoute) add(this.defaultRoute.targets, this.defaultRoute.health);
    return [...out.values()];
  }

  /**
   * The rule a server name falls under: an exact entry first, then the wildcard with the longest suffix, since the
   * most specific entry wins. Undefined when only the default (if any) applies.
   */
  match(serverName: string, hello?: HelloTraits): { rule: MappingRule; match: 'exact' | 'wildcard' } | undefined {
    const compiled = this.lookup(normalizeHostName(serverName), hello);
    if (compiled === undefined) return undefined;
    return { rule: compiled.rule, match: compiled.rule.wildcard ? 'wildcard' : 'exact' };
  }

  /**
   * Chooses the target for a hello, given its server name (if any) and the client's affinity key: by weighted
   * rendezvous hashing among the match's targets that do not drain and that `usable` accepts, so that a target
   * that fails or comes back moves only its own share of clients. Among entries of the name, the first (in file
   * order) whose `protocols` and `alpn` take the hello routes it; without `hello`, every entry takes it.
   */
  resolve(serverName: string | undefined, clientKey: string, usable?: TargetUsable, hello?: HelloTraits): Resolution {
    if (serverName !== undefined) {
      const compiled = this.lookup(normalizeHostName(serverName), hello);
      if (compiled !== undefined) {
        const match: MatchKind = compiled.rule.wildcard ? 'wildcard' : 'exact';
        const index = choose(compiled.targets, compiled.rule.drain, clientKey, usable, this.whenAllDown);
        if (index < 0) return { kind: 'none', why: 'all-targets-down', match, rule: compiled.rule };
        const resolution: Resolution = { kind: 'target', target: compiled.targets.targets[index]!, match, rule: compiled.rule };
        if (compiled.rule.helloVerify === true) resolution.helloVerify = true;
        return resolution;
      }
    }
    if (this.fallback !== undefined) {
      const index = choose(this.fallback, this.defaultRoute?.drain, clientKey, usable, this.whenAllDown);
      if (index < 0) return { kind: 'none', why: 'all-targets-down', match: 'default' };
      const resolution: Resolution = { kind: 'target', target: this.fallback.targets[index]!, match: 'default' };
      if (this.defaultHelloVerify) resolution.helloVerify = true;
      return resolution;
    }
    return { kind: 'none', why: serverName === undefined ? 'no-name' : 'unknown-name' };
  }

  private lookup(name: string, hello: HelloTraits | undefined): CompiledRule | undefined {
    const exact = takes(this.exact.get(name), hello);
    if (exact !== undefined || this.wildcards.size === 0) return exact;
    // Walking the dots left to right tries the longest suffix first.
    for (let dot = name.indexOf('.'); dot !== -1; dot = name.indexOf('.', dot + 1)) {
      const wildcard = takes(this.wildcards.get(name.slice(dot + 1)), hello);
      if (wildcard !== undefined) return wildcard;
    }
    return undefined;
  }
}
