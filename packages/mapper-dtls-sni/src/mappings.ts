import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { UdpEndpoint } from '@flowlb/mapper-api';
import { isNode, LineCounter, parseDocument, visit, type Document } from 'yaml';
import { parseNamePattern } from './names.js';
import { MAX_TARGET_WEIGHT } from '@flowlb/mapper-api';
import { MappingTable, type HealthSpec, type HelloProtocol, type HelloSelector, type MappingRule, type WhenAllDown } from './table.js';

/** Which `sniMappings` entry a problem is in. */
export interface MappingsEntryRef {
  /** Position in `sniMappings`, from 0. */
  index: number;
  /** The entry's `fqdn` as written, when it has a string one. */
  fqdn?: string;
}

export interface MappingsIssue {
  file?: string;
  /** 1-based line of the offending node, when the mappings came from YAML text. */
  line?: number;
  /** Absent for problems outside `sniMappings` (top-level keys, `default`, syntax). */
  entry?: MappingsEntryRef;
  /** The offending key: inside the entry when `entry` is set (`port`, `targets[1].ipv4`), else from the top. */
  key?: string;
  reason: string;
}

function describe(issue: MappingsIssue): string {
  let where = issue.file ?? '<mappings>';
  if (issue.line !== undefined) where += `:${issue.line}`;
  const parts = [where];
  if (issue.entry !== undefined) {
    parts.push(
      issue.entry.fqdn !== undefined
        ? `sniMappings[${issue.entry.index}] (fqdn ${JSON.stringify(issue.entry.fqdn)})`
        : `sniMappings[${issue.entry.index}]`,
    );
  }
  if (issue.key !== undefined) parts.push(issue.key);
  return `${parts.join(': ')}: ${issue.reason}`;
}

/**
 * A mappings file or object that cannot be used. Every problem found is in `issues`; the top-level fields repeat
 * the first one. Nothing is ever skipped silently: one bad entry rejects the whole table, so a typo cannot quietly
 * send a name to the default target.
 */
export class MappingsError extends Error implements MappingsIssue {
  readonly file?: string;
  readonly line?: number;
  readonly entry?: MappingsEntryRef;
  readonly key?: string;
  readonly reason: string;
  readonly issues: readonly MappingsIssue[];

  constructor(issues: readonly MappingsIssue[]) {
    const first = issues[0] ?? { reason: 'invalid mappings' };
    const lines = issues.map(describe);
    const message = lines.length > 1 ? `${lines.length} problems in mappings:\n  ${lines.join('\n  ')}` : lines[0];
    super(message ?? describe(first));
    this.name = 'MappingsError';
    if (first.file !== undefined) this.file = first.file;
    if (first.line !== undefined) this.line = first.line;
    if (first.entry !== undefined) this.entry = first.entry;
    if (first.key !== undefined) this.key = first.key;
    this.reason = first.reason;
    this.issues = issues;
  }
}

type PathSegment = string | number;

function pathText(path: readonly PathSegment[]): string {
  let s = '';
  for (const seg of path) s += typeof seg === 'number' ? `[${seg}]` : s === '' ? seg : `.${seg}`;
  return s;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return String(v);
}

/** Dotted quad, each part 0-255 without leading zeros (which some parsers read as octal). */
function parseIpv4(v: string): string | undefined {
  const parts = v.split('.');
  if (parts.length !== 4) return undefined;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255) return undefined;
  }
  return v;
}

const TOP_KEYS = new Set(['sniMappings', 'default', 'health', 'when_all_down']);
const TARGET_KEYS = new Set(['ipv4', 'port', 'weight', 'drain']);
const ENTRY_KEYS = new Set(['fqdn', 'ipv4', 'port', 'targets', 'helloVerify', 'health', 'protocols', 'alpn']);
const PROTOCOLS: readonly HelloProtocol[] = ['dtls', 'quic'];
/** RFC 7301: a protocol name is 1 to 255 bytes. */
const MAX_ALPN_LENGTH = 255;
const HEALTH_KEYS = new Set(['probe', 'interval_ms', 'timeout_ms', 'rise', 'fall', 'udp_payload', 'udp_expect', 'sni', 'on_down', 'passive']);

/** What a `health` block says before the file's defaults are merged in; `probe: none` is `undefined` there. */
interface HealthBlock {
  probe?: 'dtls' | 'quic' | 'udp' | 'none';
  intervalMs?: number;
  timeoutMs?: number;
  rise?: number;
  fall?: number;
  udpPayload?: string;
  udpExpect?: string;
  sni?: string;
  onDown?: 'keep' | 'reset';
  passive?: boolean;
}

/** Whether every hello that `later` takes, `earlier` takes too (so that `later`, tried after it, never matches). */
function covers(earlier: HelloSelector, later: HelloSelector): boolean {
  if (!later.protocols.every((p) => earlier.protocols.includes(p))) return false;
  if (earlier.alpn === undefined) return true;
  return later.alpn !== undefined && later.alpn.every((a) => earlier.alpn!.includes(a));
}

/** Probing settings unless the file says otherwise: a probe a second, half a second to answer, two in a row. */
const HEALTH_DEFAULTS = { intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 2, onDown: 'keep' } as const;

/** A target of a `targets` list with its share of new clients and whether it drains. */
interface ParsedTarget {
  endpoint: UdpEndpoint;
  weight: number;
  drain: boolean;
}

/** Collects problems with their location; `locate` turns a document path into a line for YAML sources. */
class Validator {
  readonly issues: MappingsIssue[] = [];
  constructor(
    private readonly file: string | undefined,
    private readonly locate: (path: readonly PathSegment[]) => number | undefined,
  ) {}

  report(path: readonly PathSegment[], reason: string, entry?: MappingsEntryRef): void {
    const issue: MappingsIssue = { reason };
    if (this.file !== undefined) issue.file = this.file;
    const line = this.locate(path);
    if (line !== undefined) issue.line = line;
    if (entry !== undefined) {
      issue.entry = entry;
      const inner = path.slice(2);
      if (inner.length > 0) issue.key = pathText(inner);
    } else if (path.length > 0) {
      issue.key = pathText(path);
    }
    this.issues.push(issue);
  }

  target(value: unknown, path: PathSegment[], entry: MappingsEntryRef | undefined): ParsedTarget | undefined {
    if (!isPlainObject(value)) {
      this.report(path, `a target is a mapping with ipv4 and port, got ${show(value)}`, entry);
      return undefined;
    }
    let ok = true;
    for (const key of Object.keys(value)) {
      if (!TARGET_KEYS.has(key)) {
        this.report([...path, key], 'unknown key; a target has ipv4 and port, and optionally weight and drain', entry);
        ok = false;
      }
    }
    const address = this.address(value.ipv4, [...path, 'ipv4'], entry);
    const port = this.port(value.port, [...path, 'port'], entry);
    const weight = value.weight === undefined ? 1 : this.integer(value.weight, [...path, 'weight'], entry, 1, MAX_TARGET_WEIGHT);
    const drain = this.boolean(value.drain, [...path, 'drain'], entry);
    if (!ok || address === undefined || port === undefined || weight === undefined || drain === undefined) return undefined;
    return { endpoint: Object.freeze({ address, port }), weight, drain };
  }

  integer(value: unknown, path: PathSegment[], entry: MappingsEntryRef | undefined, min: number, max: number): number | undefined {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.report(path, `must be an integer from ${min} to ${max}, got ${show(value)}`, entry);
      return undefined;
    }
    return value;
  }

  /** An optional YAML boolean, false when absent (`yes` and `"true"` are strings there). */
  boolean(value: unknown, path: PathSegment[], entry: MappingsEntryRef | undefined): boolean | undefined {
    if (value === undefined) return false;
    if (typeof value !== 'boolean') {
      this.report(path, `must be true or false, got ${show(value)}`, entry);
      return undefined;
    }
    return value;
  }

  /** A `health` block, at the top (the defaults) or in an entry (overrides, key by key). */
  health(value: unknown, path: PathSegment[], entry: MappingsEntryRef | undefined): HealthBlock | undefined {
    if (value === undefined) return {};
    if (!isPlainObject(value)) {
      this.report(path, `must be a mapping of probe settings, got ${show(value)}`, entry);
      return undefined;
    }
    const before = this.issues.length;
    const out: HealthBlock = {};
    for (const key of Object.keys(value)) {
      if (!HEALTH_KEYS.has(key)) this.report([...path, key], `unknown key; health has ${[...HEALTH_KEYS].join(', ')}`, entry);
    }
    const at = (key: string): PathSegment[] => [...path, key];
    if (value.probe !== undefined) {
      if (value.probe === 'dtls' || value.probe === 'quic' || value.probe === 'udp' || value.probe === 'none') out.probe = value.probe;
      else this.report(at('probe'), `must be dtls, quic, udp or none, got ${show(value.probe)}`, entry);
    }
    const int = (key: string, min: number, max: number): number | undefined =>
      value[key] === undefined ? undefined : this.integer(value[key], at(key), entry, min, max);
    const intervalMs = int('interval_ms', 10, 3_600_000);
    const timeoutMs = int('timeout_ms', 1, 3_600_000);
    const rise = int('rise', 1, 100);
    const fall = int('fall', 1, 100);
    if (intervalMs !== undefined) out.intervalMs = intervalMs;
    if (timeoutMs !== undefined) out.timeoutMs = timeoutMs;
    if (rise !== undefined) out.rise = rise;
    if (fall !== undefined) out.fall = fall;
    if (value.udp_payload !== undefined) {
      if (typeof value.udp_payload === 'string' && value.udp_payload.length > 0 && value.udp_payload.length <= 1200) out.udpPayload = value.udp_payload;
      else this.report(at('udp_payload'), `must be a string of 1 to 1200 characters, got ${show(value.udp_payload)}`, entry);
    }
    if (value.udp_expect !== undefined) {
      if (typeof value.udp_expect !== 'string') this.report(at('udp_expect'), `must be a regular expression in a string, got ${show(value.udp_expect)}`, entry);
      else {
        try {
          new RegExp(value.udp_expect);
          out.udpExpect = value.udp_expect;
        } catch (error) {
          this.report(at('udp_expect'), `is not a regular expression: ${(error as Error).message}`, entry);
        }
      }
    }
    if (value.sni !== undefined) {
      const pattern = typeof value.sni === 'string' ? parseNamePattern(value.sni) : undefined;
      if (pattern === undefined || 'error' in pattern || pattern.wildcard) {
        this.report(at('sni'), `must be a host name, got ${show(value.sni)}${pattern && 'error' in pattern ? ` (${pattern.error})` : ''}`, entry);
      } else out.sni = pattern.name;
    }
    if (value.on_down !== undefined) {
      if (value.on_down === 'keep' || value.on_down === 'reset') out.onDown = value.on_down;
      else this.report(at('on_down'), `must be keep or reset, got ${show(value.on_down)}`, entry);
    }
    if (value.passive !== undefined) {
      if (typeof value.passive === 'boolean') out.passive = value.passive;
      else this.report(at('passive'), `must be true or false, got ${show(value.passive)}`, entry);
    }
    return this.issues.length === before ? out : undefined;
  }

  /**
   * An entry's settings over the file's defaults; undefined when it is not probed. `name` is what a dtls probe asks
   * for unless `sni` says otherwise: the entry's name (for a wildcard, the name it is a wildcard under).
   */
  mergeHealth(defaults: HealthBlock, own: HealthBlock, name: string | undefined, path: PathSegment[], entry: MappingsEntryRef | undefined): HealthSpec | undefined {
    const m = { ...HEALTH_DEFAULTS, ...defaults, ...own };
    if (m.probe === undefined || m.probe === 'none') return undefined;
    if (m.timeoutMs > m.intervalMs) {
      this.report([...path, 'timeout_ms'], `timeout_ms (${m.timeoutMs}) must not exceed interval_ms (${m.intervalMs})`, entry);
      return undefined;
    }
    // DTLS and QUIC servers answer every client's first flight; a UDP service need not answer what its clients send first.
    const passive = m.passive ?? m.probe !== 'udp';
    const spec: HealthSpec = { probe: m.probe, intervalMs: m.intervalMs, timeoutMs: m.timeoutMs, rise: m.rise, fall: m.fall, onDown: m.onDown, passive };
    if (m.probe === 'udp') {
      if (m.udpPayload === undefined) {
        this.report([...path, 'udp_payload'], 'missing: a udp probe sends udp_payload', entry);
        return undefined;
      }
      spec.udpPayload = m.udpPayload;
      if (m.udpExpect !== undefined) spec.udpExpect = m.udpExpect;
    } else if (m.probe === 'dtls') {
      const sni = m.sni ?? name;
      if (sni !== undefined) spec.sni = sni;
    }
    return Object.freeze(spec);
  }

  address(value: unknown, path: PathSegment[], entry: MappingsEntryRef | undefined): string | undefined {
    if (value === undefined) {
      this.report(path, 'missing', entry);
      return undefined;
    }
    const address = typeof value === 'string' ? parseIpv4(value) : undefined;
    if (address === undefined) this.report(path, `must be an IPv4 address like "192.0.2.10", got ${show(value)}`, entry);
    return address;
  }

  port(value: unknown, path: PathSegment[], entry: MappingsEntryRef | undefined): number | undefined {
    if (value === undefined) {
      this.report(path, 'missing', entry);
      return undefined;
    }
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
      this.report(path, `must be an integer from 1 to 65535, got ${show(value)}`, entry);
      return undefined;
    }
    return value;
  }

  /** The optional `protocols` list: which of DTLS and QUIC an entry routes (default both). */
  protocols(value: unknown, path: PathSegment[], entry: MappingsEntryRef | undefined): readonly HelloProtocol[] | undefined {
    if (value === undefined) return undefined;
    if (!Array.isArray(value) || value.length === 0) {
      this.report(path, `must be a non-empty list of dtls and quic, got ${show(value)}`, entry);
      return undefined;
    }
    const bad = value.findIndex((p) => !(PROTOCOLS as readonly unknown[]).includes(p));
    if (bad >= 0) {
      this.report([...path, bad], `must be dtls or quic, got ${show(value[bad])}`, entry);
      return undefined;
    }
    if (new Set(value).size !== value.length) {
      this.report(path, 'lists a protocol twice', entry);
      return undefined;
    }
    return Object.freeze([...(value as HelloProtocol[])]);
  }

  /** The optional `alpn` list: the entry takes only hellos that offer one of these protocol names (RFC 7301). */
  alpn(value: unknown, path: PathSegment[], entry: MappingsEntryRef | undefined): readonly string[] | undefined {
    if (value === undefined) return undefined;
    if (!Array.isArray(value) || value.length === 0) {
      this.report(path, `must be a non-empty list of protocol names such as h3, got ${show(value)}`, entry);
      return undefined;
    }
    const bad = value.findIndex((a: unknown) => typeof a !== 'string' || a.length === 0 || Buffer.byteLength(a) > MAX_ALPN_LENGTH);
    if (bad >= 0) {
      this.report([...path, bad], `must be a protocol name of 1 to ${MAX_ALPN_LENGTH} bytes, got ${show(value[bad])}`, entry);
      return undefined;
    }
    return Object.freeze([...new Set(value as string[])]);
  }

  /** The optional `helloVerify` switch: a YAML boolean, nothing else (`yes` and `"true"` are strings there). */
  helloVerify(value: unknown, path: PathSegment[], entry: MappingsEntryRef | undefined): boolean | undefined {
    if (value === undefined) return false;
    if (typeof value !== 'boolean') {
      this.report(path, `must be true or false, got ${show(value)}`, entry);
      return undefined;
    }
    return value;
  }

  /** Either `ipv4` + `port` or a non-empty `targets` list, never both. */
  targets(
    value: Record<string, unknown>,
    path: PathSegment[],
    entry: MappingsEntryRef | undefined,
  ): ParsedTarget[] | undefined {
    const hasSingle = value.ipv4 !== undefined || value.port !== undefined;
    if (value.targets !== undefined) {
      if (hasSingle) {
        this.report([...path, 'targets'], 'give either ipv4 and port or targets, not both', entry);
        return undefined;
      }
      const list = value.targets;
      if (!Array.isArray(list) || list.length === 0) {
        this.report([...path, 'targets'], `must be a non-empty list of {ipv4, port}, got ${show(list)}`, entry);
        return undefined;
      }
      const out: ParsedTarget[] = [];
      const seen = new Map<string, number>();
      let ok = true;
      list.forEach((item: unknown, i) => {
        const t = this.target(item, [...path, 'targets', i], entry);
        if (t === undefined) {
          ok = false;
          return;
        }
        const key = `${t.endpoint.address}:${t.endpoint.port}`;
        const earlier = seen.get(key);
        if (earlier !== undefined) {
          this.report([...path, 'targets', i], `duplicate target ${key} (also targets[${earlier}])`, entry);
          ok = false;
          return;
        }
        seen.set(key, i);
        out.push(t);
      });
      return ok ? out : undefined;
    }
    if (!hasSingle) {
      this.report(path, 'has no target: give ipv4 and port, or targets', entry);
      return undefined;
    }
    const address = this.address(value.ipv4, [...path, 'ipv4'], entry);
    const port = this.port(value.port, [...path, 'port'], entry);
    return address !== undefined && port !== undefined ? [{ endpoint: Object.freeze({ address, port }), weight: 1, drain: false }] : undefined;
  }
}

/** The endpoints of a parsed list, and its weights and drain flags where any differs from the default. */
function route(list: readonly ParsedTarget[]): { targets: readonly UdpEndpoint[]; weights?: readonly number[]; drain?: readonly boolean[] } {
  const out: { targets: readonly UdpEndpoint[]; weights?: readonly number[]; drain?: readonly boolean[] } = {
    targets: Object.freeze(list.map((t) => t.endpoint)),
  };
  if (list.some((t) => t.weight !== 1)) out.weights = Object.freeze(list.map((t) => t.weight));
  if (list.some((t) => t.drain)) out.drain = Object.freeze(list.map((t) => t.drain));
  return out;
}

export interface MappingsSourceOptions {
  /** Named in errors and kept on the table, so a mapper built from it can reload it. */
  file?: string;
}

function validate(
  doc: unknown,
  file: string | undefined,
  locate: (path: readonly PathSegment[]) => number | undefined,
): MappingTable {
  const v = new Validator(file, locate);
  if (!isPlainObject(doc)) {
    v.report([], `the mappings must be a mapping with sniMappings (and optionally default), got ${show(doc)}`);
    throw new MappingsError(v.issues);
  }
  for (const key of Object.keys(doc)) {
    if (!TOP_KEYS.has(key)) v.report([key], 'unknown top-level key; expected sniMappings, default, health and when_all_down');
  }
  const healthDefaults = v.health(doc.health, ['health'], undefined) ?? {};
  let whenAllDown: WhenAllDown = 'drop';
  if (doc.when_all_down !== undefined) {
    if (doc.when_all_down === 'drop' || doc.when_all_down === 'any') whenAllDown = doc.when_all_down;
    else v.report(['when_all_down'], `must be drop or any, got ${show(doc.when_all_down)}`);
  }

  const rules: MappingRule[] = [];
  const list = doc.sniMappings;
  if (!Array.isArray(list)) {
    v.report(['sniMappings'], `must be a list of entries (it may be empty), got ${show(list)}`);
  } else {
    const seen = new Map<string, Array<{ index: number; selector: HelloSelector }>>();
    list.forEach((item: unknown, index) => {
      const path: PathSegment[] = ['sniMappings', index];
      const entry: MappingsEntryRef = { index };
      if (!isPlainObject(item)) {
        v.report(path, `an entry is a mapping with fqdn and ipv4/port or targets, got ${show(item)}`, entry);
        return;
      }
      if (typeof item.fqdn === 'string') entry.fqdn = item.fqdn;
      const before = v.issues.length;
      for (const key of Object.keys(item)) {
        if (!ENTRY_KEYS.has(key)) {
          v.report([...path, key], 'unknown key; an entry has fqdn, ipv4/port or targets, and optionally helloVerify, health, protocols and alpn', entry);
        }
      }
      let pattern: ReturnType<typeof parseNamePattern> | undefined;
      if (item.fqdn === undefined) v.report([...path, 'fqdn'], 'missing', entry);
      else if (typeof item.fqdn !== 'string') v.report([...path, 'fqdn'], `must be a string, got ${show(item.fqdn)}`, entry);
      else {
        pattern = parseNamePattern(item.fqdn);
        if ('error' in pattern) v.report([...path, 'fqdn'], pattern.error, entry);
      }
      const targets = v.targets(item, path, entry);
      const helloVerify = v.helloVerify(item.helloVerify, [...path, 'helloVerify'], entry);
      const ownHealth = v.health(item.health, [...path, 'health'], entry);
      const protocols = v.protocols(item.protocols, [...path, 'protocols'], entry);
      const alpn = v.alpn(item.alpn, [...path, 'alpn'], entry);
      if (pattern === undefined || 'error' in pattern || targets === undefined || ownHealth === undefined || v.issues.length !== before) return;
      const name = pattern.wildcard ? pattern.suffix : pattern.name;
      const health = v.mergeHealth(healthDefaults, ownHealth, name, [...path, 'health'], entry);
      if (v.issues.length !== before) return;
      if (helloVerify === true && protocols !== undefined && !protocols.includes('dtls')) {
        v.report([...path, 'helloVerify'], 'applies to DTLS hellos, and this entry routes QUIC alone', entry);
        return;
      }
      const dupKey = `${pattern.wildcard ? '*.' : ''}${name}`;
      const selector = { protocols: protocols ?? PROTOCOLS, alpn };
      // Entries of one name are tried in file order: one that an earlier entry covers whole could never match.
      const earlier = (seen.get(dupKey) ?? []).find((e) => covers(e.selector, selector));
      if (earlier !== undefined) {
        const why = protocols === undefined && alpn === undefined ? '' : ', which takes every hello this entry would';
        v.report([...path, 'fqdn'], `duplicate of sniMappings[${earlier.index}]: both name ${dupKey}${why}`, entry);
        return;
      }
      seen.set(dupKey, [...(seen.get(dupKey) ?? []), { index, selector }]);
      const fqdn = item.fqdn as string;
      // Settings left out when off, so that tables written without them are the same objects as before they existed.
      const rule: MappingRule = { index, fqdn, wildcard: pattern.wildcard, name, ...route(targets) };
      rules.push(
        Object.freeze({
          ...rule,
          ...(helloVerify === true ? { helloVerify } : {}),
          ...(health ? { health } : {}),
          ...(protocols ? { protocols } : {}),
          ...(alpn ? { alpn } : {}),
        }),
      );
    });
  }

  let defaultTargets: ParsedTarget[] | undefined;
  let defaultHelloVerify: boolean | undefined = false;
  let defaultHealth: HealthSpec | undefined;
  if (doc.default !== undefined) {
    const d = doc.default;
    if (d === 'drop') defaultTargets = undefined;
    else if (isPlainObject(d)) {
      for (const key of Object.keys(d)) {
        if (!ENTRY_KEYS.has(key) || key === 'fqdn') {
          v.report(['default', key], 'unknown key; default has ipv4/port or targets, and optionally helloVerify and health');
        }
      }
      defaultTargets = v.targets(d, ['default'], undefined);
      defaultHelloVerify = v.helloVerify(d.helloVerify, ['default', 'helloVerify'], undefined);
      const own = v.health(d.health, ['default', 'health'], undefined);
      if (own !== undefined) defaultHealth = v.mergeHealth(healthDefaults, own, undefined, ['default', 'health'], undefined);
    } else {
      v.report(['default'], `must be "drop", {ipv4, port} or {targets: [...]}, got ${show(d)}`);
    }
  }

  if (v.issues.length > 0) throw new MappingsError(v.issues);
  const fallback = defaultTargets === undefined ? undefined : route(defaultTargets);
  return new MappingTable(Object.freeze(rules), fallback?.targets, file, {
    defaultHelloVerify: defaultHelloVerify === true,
    whenAllDown,
    ...(fallback ? { defaultRoute: { ...(fallback.weights ? { weights: fallback.weights } : {}), ...(fallback.drain ? { drain: fallback.drain } : {}), ...(defaultHealth ? { health: defaultHealth } : {}) } } : {}),
  });
}

/**
 * Builds a table from an already-parsed document, e.g. `{ sniMappings: [{ fqdn, ipv4, port }], default: 'drop' }`.
 * Throws {@link MappingsError} listing every problem.
 */
export function mappingsFromObject(doc: unknown, options: MappingsSourceOptions = {}): MappingTable {
  return validate(doc, options.file, () => undefined);
}

/** Builds a table from YAML text; errors carry line numbers. Throws {@link MappingsError}. */
export function mappingsFromYaml(text: string, options: MappingsSourceOptions = {}): MappingTable {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new MappingsError(
      doc.errors.map((e) => {
        const issue: MappingsIssue = { reason: `YAML: ${e.message.split('\n')[0]}${aliasHint(e.message)}` };
        if (options.file !== undefined) issue.file = options.file;
        issue.line = lineCounter.linePos(e.pos[0]).line;
        return issue;
      }),
    );
  }
  const locate = (path: readonly PathSegment[]): number | undefined => {
    // Point at the deepest node that exists: a missing key is reported at its parent.
    for (let n = path.length; n >= 0; n--) {
      const node: unknown = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
      if (isNode(node) && node.range) return lineCounter.linePos(node.range[0]).line;
    }
    return undefined;
  };
  let value: unknown;
  try {
    value = doc.toJS();
  } catch (err) {
    // toJS throws for an alias without an anchor, which is what an unquoted `*.example.com` is.
    const issue: MappingsIssue = { reason: `YAML: ${err instanceof Error ? err.message : String(err)}` };
    if (options.file !== undefined) issue.file = options.file;
    const alias = unresolvedAlias(doc);
    if (alias !== undefined) {
      issue.reason = `YAML: "*${alias.source}" is an alias with no anchor (quote wildcard names: fqdn: "*.example.com")`;
      issue.line = lineCounter.linePos(alias.offset).line;
    }
    throw new MappingsError([issue]);
  }
  return validate(value, options.file, locate);
}

function unresolvedAlias(doc: Document): { source: string; offset: number } | undefined {
  let found: { source: string; offset: number } | undefined;
  visit(doc, {
    Alias(_key, node) {
      if (node.resolve(doc) === undefined) {
        found = { source: node.source, offset: node.range?.[0] ?? 0 };
        return visit.BREAK;
      }
      return undefined;
    },
  });
  return found;
}

function aliasHint(message: string): string {
  return /alias/i.test(message) ? ' (quote wildcard names: fqdn: "*.example.com")' : '';
}

function readError(file: string, err: unknown): MappingsError {
  const reason = err instanceof Error ? err.message : String(err);
  return new MappingsError([{ file, reason: `cannot read: ${reason}` }]);
}

/** Reads and validates a mappings YAML file. Rejects with {@link MappingsError}, also when the file is unreadable. */
export async function loadMappings(file: string): Promise<MappingTable> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw readError(file, err);
  }
  return mappingsFromYaml(text, { file });
}

/** Synchronous {@link loadMappings}. Throws {@link MappingsError}. */
export function loadMappingsSync(file: string): MappingTable {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw readError(file, err);
  }
  return mappingsFromYaml(text, { file });
}
