import { readFile } from 'node:fs/promises';
import { formatRange, parseDashedPortRange, type PortRange } from '@flowlb/balancer';
import { NEW_CLIENT_RATE_MAX, type NewClientLimits } from '@flowlb/flow-table';
import type { z } from 'zod';
import { DEFAULTS, type FlowlbConfig } from './config.js';
import { closestKey, describeValue } from './describe-value.js';
import { ConfigError, type ConfigIssue } from './errors.js';
import { defaultPinPath } from './instance.js';
import { expectedFor, PENDING_KEYS, RATE_LIMIT_KEYS, TOP_LEVEL_KEYS } from './keys.js';
import { configSchema, type RawConfig } from './schema.js';
import { isIfName, parseHostPort } from './values.js';
import { YamlSource, type PathSegment } from './yaml-source.js';

function pathText(path: readonly PathSegment[]): string {
  let s = '';
  for (const seg of path) s += typeof seg === 'number' ? `[${seg}]` : s === '' ? seg : `.${seg}`;
  return s;
}

function valueAtPath(root: unknown, path: readonly PathSegment[]): unknown {
  let v = root;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

/** Collects issues with their place in the document; sorted by place at the end. */
class Issues {
  readonly list: ConfigIssue[] = [];
  constructor(
    private readonly file: string,
    private readonly source: YamlSource,
    readonly raw: unknown,
  ) {}

  at(path: readonly PathSegment[], message: string, where: 'key' | 'value' = 'value'): void {
    const pos = where === 'key' ? this.source.keyAt(path) : this.source.valueAt(path);
    const present = valueAtPath(this.raw, path) !== undefined;
    const issue: ConfigIssue = { file: this.file, key: pathText(path), message };
    // A missing key has no place of its own: pointing at the document start would mislead.
    if (pos && (present || path.length > 1)) {
      issue.line = pos.line;
      issue.col = pos.col;
    }
    this.list.push(issue);
  }

  /** `expected …, got …` for the value at `path`. */
  expected(path: readonly PathSegment[]): void {
    const value = valueAtPath(this.raw, path);
    const expected = expectedFor(pathText(path)) ?? 'a valid value';
    this.at(path, value === undefined ? `missing; expected ${expected}` : `expected ${expected}, got ${describeValue(value)}`);
  }

  unknownKey(path: readonly PathSegment[], known: readonly string[]): void {
    const key = String(path[path.length - 1]);
    const guess = closestKey(key, known);
    const hint = guess ? `did you mean "${guess}"?` : `known keys here: ${known.join(', ')}`;
    this.at(path, `unknown key (${hint})`, 'key');
  }

  has(path: string): boolean {
    return this.list.some((i) => i.key === path || i.key.startsWith(`${path}.`) || i.key.startsWith(`${path}[`));
  }

  sorted(): ConfigIssue[] {
    return this.list
      .map((issue, i) => ({ issue, i }))
      .sort((a, b) => (a.issue.line ?? 0) - (b.issue.line ?? 0) || (a.issue.col ?? 0) - (b.issue.col ?? 0) || a.i - b.i)
      .map((x) => x.issue);
  }
}

function reportSchemaIssues(issues: Issues, zodIssues: readonly z.core.$ZodIssue[]): void {
  for (const zi of zodIssues) {
    const path = zi.path.filter((p): p is string | number => typeof p !== 'symbol');
    if (zi.code === 'unrecognized_keys') {
      const known = path.length === 0 ? TOP_LEVEL_KEYS : path[0] === 'pending' ? PENDING_KEYS : path[0] === 'rate_limit' ? RATE_LIMIT_KEYS : [];
      for (const key of zi.keys) issues.unknownKey([...path, key], known);
    } else if (path.length === 0) {
      issues.at([], `expected a mapping of config keys (port, addr, interface, …), got ${describeValue(issues.raw)}`);
    } else {
      issues.expected(path);
    }
  }
}

/** Rules between keys, applied to the keys that are valid on their own. */
function crossCheck(issues: Issues, raw: RawConfig): { snatPorts: PortRange; interfaces: string[] } {
  let snatPorts: PortRange = { ...DEFAULTS.snatPorts };
  const hasMin = raw.snat_port_min !== undefined;
  const hasMax = raw.snat_port_max !== undefined;
  if (issues.has('snat_ports')) {
    // reported already
  } else if (raw.snat_ports !== undefined && (hasMin || hasMax)) {
    issues.at(['snat_ports'], 'give either snat_ports or snat_port_min/snat_port_max, not both');
  } else if (raw.snat_ports !== undefined) {
    snatPorts = parseDashedPortRange(raw.snat_ports)!;
    if (snatPorts.min > snatPorts.max) {
      issues.at(['snat_ports'], `the range ${JSON.stringify(raw.snat_ports)} runs backwards; expected min-max with min ≤ max`);
    }
  } else if ((hasMin || hasMax) && !issues.has('snat_port_min') && !issues.has('snat_port_max')) {
    snatPorts = { min: raw.snat_port_min ?? DEFAULTS.snatPorts.min, max: raw.snat_port_max ?? DEFAULTS.snatPorts.max };
    if (snatPorts.min > snatPorts.max) {
      const maxText = hasMax ? String(snatPorts.max) : `${snatPorts.max} (the default)`;
      const minText = hasMin ? String(snatPorts.min) : `${snatPorts.min} (the default)`;
      issues.at([hasMin ? 'snat_port_min' : 'snat_port_max'], `snat_port_min ${minText} is greater than snat_port_max ${maxText}`);
    }
  }

  const sameAddress = (raw.snat_addr ?? raw.addr) === raw.addr;
  const explicit = raw.snat_ports !== undefined || hasMin || hasMax;
  if (
    sameAddress &&
    typeof raw.port === 'number' &&
    !issues.has('port') &&
    snatPorts.min <= snatPorts.max &&
    raw.port >= snatPorts.min &&
    raw.port <= snatPorts.max
  ) {
    if (explicit) {
      issues.at(['port'], `${raw.port} lies inside the SNAT port range ${formatRange(snatPorts)} on the same address; move port or the SNAT range`);
    } else {
      // The original's example uses port 10000, inside the default range: take the larger side of the port instead.
      snatPorts = defaultRangeAvoiding(raw.port);
    }
  }

  const interfaces: string[] = [];
  const seen = new Map<string, string>();
  if (raw.interface !== undefined && !issues.has('interface')) {
    interfaces.push(raw.interface);
    seen.set(raw.interface, 'interface');
  }
  if (Array.isArray(raw.interfaces)) {
    (raw.interfaces as unknown[]).forEach((name, i) => {
      if (typeof name !== 'string' || !isIfName(name)) return;
      const earlier = seen.get(name);
      if (earlier !== undefined) {
        issues.at(['interfaces', i], `${JSON.stringify(name)} is listed twice (also ${earlier})`);
        return;
      }
      seen.set(name, `interfaces[${i}]`);
      interfaces.push(name);
    });
  }
  if ((raw.workers ?? 1) > 1 && raw.mode === 'userspace') {
    issues.at(['workers'], 'workers share the XDP flow map: mode userspace runs in one process; remove workers or the mode');
  }
  if (raw.mode === 'xdp' && raw.interface === undefined && (raw.interfaces ?? []).length === 0 && !issues.has('interface')) {
    issues.at(['mode'], 'xdp needs an interface to attach to: set interface (and interfaces for more)');
  }
  return { snatPorts, interfaces };
}

/**
 * The default SNAT range without the VIP's port: the larger side of it. Backends next to the VIP (seed-style
 * configs put them at port+1, port+2) may still fall inside; the pools never give a flow its own target's port, a
 * port another socket holds is found at bind time and set aside (and logged), and `flowlb check` names such ports.
 */
export function defaultRangeAvoiding(port: number): PortRange {
  const { min, max } = DEFAULTS.snatPorts;
  if (port < min || port > max) return { min, max };
  return port - min >= max - port ? { min, max: port - 1 } : { min: port + 1, max };
}

/** `rate_limit` as the balancer takes it: datagrams of new clients a second, with room for two seconds' worth. */
function newClientLimits(r: { per_source?: number | undefined; per_24?: number | undefined } | undefined): NewClientLimits | undefined {
  if (r?.per_source === undefined && r?.per_24 === undefined) return undefined;
  const limits: NewClientLimits = {};
  if (r.per_source !== undefined) limits.perSource = { rate: r.per_source, burst: Math.min(NEW_CLIENT_RATE_MAX, 2 * r.per_source) };
  if (r.per_24 !== undefined) limits.perNet24 = { rate: r.per_24, burst: Math.min(NEW_CLIENT_RATE_MAX, 2 * r.per_24) };
  return limits;
}

/** Validates config text. Throws {@link ConfigError} listing every problem, each with file, line:column and key. */
export function parseConfig(text: string, file: string): FlowlbConfig {
  const source = new YamlSource(text);
  if (source.errors.length > 0) {
    throw new ConfigError(source.errors.map((e) => ({ file, line: e.line, col: e.col, key: '', message: `YAML: ${e.message}` })));
  }
  let raw: unknown;
  try {
    raw = source.toJS();
  } catch (err) {
    throw new ConfigError([{ file, key: '', message: `YAML: ${(err as Error).message}` }]);
  }
  if (raw === null || raw === undefined) {
    throw new ConfigError([{ file, key: '', message: 'the file is empty; expected a mapping with at least port and addr' }]);
  }
  const issues = new Issues(file, source, raw);
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) reportSchemaIssues(issues, parsed.error.issues);
  // Cross-key rules run on what is individually valid, so one run reports everything at once.
  const partial = (parsed.success ? parsed.data : (raw as RawConfig)) ?? ({} as RawConfig);
  const valid = (typeof partial === 'object' && !Array.isArray(partial) ? partial : {}) as RawConfig;
  const { snatPorts, interfaces } = crossCheck(issues, valid);
  if (issues.list.length > 0 || !parsed.success) throw new ConfigError(issues.sorted());

  const c = parsed.data;
  const vip = { address: c.addr, port: c.port };
  const p = c.pending ?? {};
  return {
    file,
    vip,
    interfaces,
    debug: c.debug ?? DEFAULTS.debug,
    connTtlSec: c.conn_ttl_sec ?? DEFAULTS.connTtlSec,
    unconfirmedTtlSec: c.unconfirmed_ttl_sec,
    mode: c.mode ?? DEFAULTS.mode,
    xdpMode: c.xdp_mode ?? DEFAULTS.xdpMode,
    snatAddr: c.snat_addr ?? c.addr,
    snatPorts,
    reserveSnatPorts: c.reserve_snat_ports ?? DEFAULTS.reserveSnatPorts,
    flowTableSize: c.flow_table_size ?? DEFAULTS.flowTableSize,
    workers: c.workers ?? DEFAULTS.workers,
    pending: {
      maxPendingClients: p.max_clients ?? DEFAULTS.pending.maxPendingClients,
      maxDatagramsPerClient: p.max_datagrams ?? DEFAULTS.pending.maxDatagramsPerClient,
      maxBytesPerClient: p.max_bytes_per_client ?? DEFAULTS.pending.maxBytesPerClient,
      maxTotalBytes: p.max_total_bytes ?? DEFAULTS.pending.maxTotalBytes,
      maxPendingPerSource: p.max_per_source ?? DEFAULTS.pending.maxPendingPerSource,
      classifyTimeoutMs: p.timeout_ms ?? DEFAULTS.pending.classifyTimeoutMs,
    },
    newClientLimits: newClientLimits(c.rate_limit),
    metricsAddr: c.metrics_addr === undefined ? undefined : parseHostPort(c.metrics_addr),
    pinPath: c.pin_path ?? defaultPinPath(vip),
    pinPathSet: c.pin_path !== undefined,
    sysctls: c.sysctls ?? DEFAULTS.sysctls,
  };
}

/** Reads and validates a config file; an unreadable file is a {@link ConfigError} too. */
export async function loadConfig(file: string): Promise<FlowlbConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EISDIR' ? 'is a directory, not a file' : e.message;
    throw new ConfigError([{ file, key: '', message: `cannot read the config: ${why}` }]);
  }
  return parseConfig(text, file);
}
