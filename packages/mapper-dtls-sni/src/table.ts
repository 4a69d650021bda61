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
}

export interface MappingTableOptions {
  /** The default target's `helloVerify`: hellos sent to the default must bring a cookie first. */
  defaultHelloVerify?: boolean;
}

export type MatchKind = 'exact' | 'wildcard' | 'default';

export type Resolution =
  /** `helloVerify` is set, to true, only when the entry (or the default) that matched asks for a cookie. */
  | { kind: 'target'; target: UdpEndpoint; match: MatchKind; rule?: MappingRule; helloVerify?: boolean }
  /** Nothing to route to and no default: `no-name` when the hello named no server, else `unknown-name`. */
  | { kind: 'none'; why: 'no-name' | 'unknown-name' };

interface CompiledRule {
  rule: MappingRule;
  targets: RendezvousSet;
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
  private readonly exact = new Map<string, CompiledRule>();
  private readonly wildcards = new Map<string, CompiledRule>();
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
    for (const rule of rules) {
      (rule.wildcard ? this.wildcards : this.exact).set(rule.name, { rule, targets: new RendezvousSet(rule.targets) });
    }
    this.fallback = defaultTargets !== undefined && defaultTargets.length > 0 ? new RendezvousSet(defaultTargets) : undefined;
  }

  /**
   * The rule a server name falls under: an exact entry first, then the wildcard with the longest suffix, since the
   * most specific entry wins. Undefined when only the default (if any) applies.
   */
  match(serverName: string): { rule: MappingRule; match: 'exact' | 'wildcard' } | undefined {
    const compiled = this.lookup(normalizeHostName(serverName));
    if (compiled === undefined) return undefined;
    return { rule: compiled.rule, match: compiled.rule.wildcard ? 'wildcard' : 'exact' };
  }

  /** Chooses the target for a hello, given its server name (if any) and the client's affinity key. */
  resolve(serverName: string | undefined, clientKey: string): Resolution {
    if (serverName !== undefined) {
      const compiled = this.lookup(normalizeHostName(serverName));
      if (compiled !== undefined) {
        const resolution: Resolution = {
          kind: 'target',
          target: compiled.targets.pick(clientKey),
          match: compiled.rule.wildcard ? 'wildcard' : 'exact',
          rule: compiled.rule,
        };
        if (compiled.rule.helloVerify === true) resolution.helloVerify = true;
        return resolution;
      }
    }
    if (this.fallback !== undefined) {
      const resolution: Resolution = { kind: 'target', target: this.fallback.pick(clientKey), match: 'default' };
      if (this.defaultHelloVerify) resolution.helloVerify = true;
      return resolution;
    }
    return { kind: 'none', why: serverName === undefined ? 'no-name' : 'unknown-name' };
  }

  private lookup(name: string): CompiledRule | undefined {
    const exact = this.exact.get(name);
    if (exact !== undefined || this.wildcards.size === 0) return exact;
    // Walking the dots left to right tries the longest suffix first.
    for (let dot = name.indexOf('.'); dot !== -1; dot = name.indexOf('.', dot + 1)) {
      const wildcard = this.wildcards.get(name.slice(dot + 1));
      if (wildcard !== undefined) return wildcard;
    }
    return undefined;
  }
}
