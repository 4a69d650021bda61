import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** An inclusive range of UDP ports. */
export interface PortRange {
  min: number;
  max: number;
}

/** Where the kernel keeps `net.ipv4.ip_local_port_range` and `net.ipv4.ip_local_reserved_ports`. */
export const PROC_IPV4_DIR = '/proc/sys/net/ipv4';

export function assertPortRange(range: PortRange, what: string, lowest = 1): void {
  if (typeof range !== 'object' || range === null) {
    throw new TypeError(`${what}: expected { min, max }, got ${range === null ? 'null' : typeof range}`);
  }
  const { min, max } = range;
  for (const [name, v] of [
    ['min', min],
    ['max', max],
  ] as const) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lowest || v > 65535) {
      throw new RangeError(`${what}.${name}: ${String(v)} is not a port number in ${lowest}..65535`);
    }
  }
  if (min > max) throw new RangeError(`${what}: min ${min} is greater than max ${max}`);
}

export function formatRange(range: PortRange): string {
  return range.min === range.max ? String(range.min) : `${range.min}-${range.max}`;
}

/** `ip_local_reserved_ports` syntax: comma-separated ports and ranges. */
export function formatRanges(ranges: readonly PortRange[]): string {
  return ranges.map(formatRange).join(',');
}

/**
 * Parses the dashed form `10000-29999`, or a single port `8080`, as config files and `ip_local_reserved_ports` write
 * a range. Undefined when the text is neither or a port lies outside `lowest`..65535; a range that runs backwards
 * (`20-10`) is returned as written, for the caller to report in its own words.
 */
export function parseDashedPortRange(text: string, lowest = 1): PortRange | undefined {
  const m = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$/.exec(text);
  if (!m) return undefined;
  const min = Number(m[1]);
  const max = Number(m[2] ?? m[1]);
  if (min < lowest || max < lowest || min > 65535 || max > 65535) return undefined;
  return { min, max };
}

/** Parses `net.ipv4.ip_local_port_range`: two numbers separated by whitespace, e.g. "32768\t60999\n". */
export function parseIpLocalPortRange(text: string): PortRange {
  const m = /^\s*(\d+)\s+(\d+)\s*$/.exec(text);
  if (!m) throw new SyntaxError(`ip_local_port_range: expected "<min> <max>", got ${JSON.stringify(text)}`);
  const range = { min: Number(m[1]), max: Number(m[2]) };
  assertPortRange(range, 'ip_local_port_range', 0);
  return range;
}

/** Parses `net.ipv4.ip_local_reserved_ports`: "" or a comma-separated list of dashed ranges, e.g. "8080,10000-10999". */
export function parseReservedPorts(text: string): PortRange[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  const ranges = trimmed.split(',').map((part) => {
    const range = parseDashedPortRange(part, 0);
    if (!range) throw new SyntaxError(`ip_local_reserved_ports: cannot read ${JSON.stringify(part)} in ${JSON.stringify(text)}`);
    assertPortRange(range, 'ip_local_reserved_ports', 0);
    return range;
  });
  return normalizeRanges(ranges);
}

/** Sorted, with overlapping and adjacent ranges merged. */
export function normalizeRanges(ranges: readonly PortRange[]): PortRange[] {
  const sorted = ranges.map((r) => ({ min: r.min, max: r.max })).sort((a, b) => a.min - b.min);
  const out: PortRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.min <= last.max + 1) {
      if (r.max > last.max) last.max = r.max;
    } else {
      out.push(r);
    }
  }
  return out;
}

export function intersectRange(a: PortRange, b: PortRange): PortRange | undefined {
  const min = Math.max(a.min, b.min);
  const max = Math.min(a.max, b.max);
  return min <= max ? { min, max } : undefined;
}

/** The parts of `range` that none of `minus` covers. */
export function subtractRanges(range: PortRange, minus: readonly PortRange[]): PortRange[] {
  const out: PortRange[] = [];
  let start = range.min;
  for (const m of normalizeRanges(minus)) {
    if (m.max < start) continue;
    if (m.min > range.max) break;
    if (m.min > start) out.push({ min: start, max: Math.min(m.min - 1, range.max) });
    start = m.max + 1;
    if (start > range.max) return out;
  }
  if (start <= range.max) out.push({ min: start, max: range.max });
  return out;
}

export interface SnatReservationPlan {
  /** The SNAT ports that the kernel could also hand out as ephemeral ports, before reservations. */
  overlap: PortRange | undefined;
  /** The part of `overlap` that is not reserved yet: what has to be added to `ip_local_reserved_ports`. */
  missing: PortRange[];
  /** The reserved list with `missing` added, as it should be written. */
  merged: PortRange[];
}

/**
 * Pure part of the check: where the SNAT range meets the ephemeral range, and what the reserved list would have to
 * become so that the kernel never picks a SNAT port for a socket of its own.
 */
export function planSnatReservation(
  snat: PortRange,
  ephemeral: PortRange,
  reserved: readonly PortRange[],
): SnatReservationPlan {
  const overlap = intersectRange(snat, ephemeral);
  if (!overlap) return { overlap, missing: [], merged: normalizeRanges(reserved) };
  const missing = subtractRanges(overlap, reserved);
  return { overlap, missing, merged: normalizeRanges([...reserved, ...missing]) };
}

export interface SnatPortCheckOptions {
  snatPorts: PortRange;
  /** Add the overlapping ports to `ip_local_reserved_ports` instead of refusing. */
  reserve: boolean;
  /** Default `/proc/sys/net/ipv4`; both files are per network namespace. */
  procDir?: string;
}

export interface SnatPortCheck {
  /** False where the files do not exist (not Linux): nothing could be checked. */
  checked: boolean;
  ephemeral?: PortRange;
  overlap?: PortRange;
  /** Ranges this check wrote into `ip_local_reserved_ports`. */
  reservedAdded: PortRange[];
}

/** The SNAT range meets the kernel's ephemeral range and those ports are not reserved. */
export class SnatPortRangeError extends Error {
  readonly code = 'ERR_FLOWLB_SNAT_EPHEMERAL_OVERLAP';
  readonly snatPorts: PortRange;
  readonly ephemeral: PortRange;
  readonly missing: PortRange[];

  constructor(message: string, snatPorts: PortRange, ephemeral: PortRange, missing: PortRange[]) {
    super(message);
    this.name = 'SnatPortRangeError';
    this.snatPorts = snatPorts;
    this.ephemeral = ephemeral;
    this.missing = missing;
  }
}

/**
 * Makes sure the kernel never hands out a SNAT port as an ephemeral port: a socket of another program bound that
 * way, talking to one of our targets, would have its replies taken for a flow (by XDP) or collide with a flow's
 * socket. Reads `ip_local_port_range` and `ip_local_reserved_ports`; where the SNAT range overlaps the first and is
 * not covered by the second it either adds the missing ports to the reserved list (`reserve`) or throws a
 * {@link SnatPortRangeError} that names the ranges and the fix.
 */
export function ensureSnatPortsReserved(options: SnatPortCheckOptions): SnatPortCheck {
  const dir = options.procDir ?? PROC_IPV4_DIR;
  const rangeFile = join(dir, 'ip_local_port_range');
  const reservedFile = join(dir, 'ip_local_reserved_ports');
  let rangeText: string;
  try {
    rangeText = readFileSync(rangeFile, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { checked: false, reservedAdded: [] };
    throw error;
  }
  const ephemeral = parseIpLocalPortRange(rangeText);
  const snat = options.snatPorts;
  const overlap = intersectRange(snat, ephemeral);
  if (!overlap) return { checked: true, ephemeral, reservedAdded: [] };

  let reserved: PortRange[] = [];
  try {
    reserved = parseReservedPorts(readFileSync(reservedFile, 'utf8'));
  } catch (error) {
    // Kernels without the file cannot reserve; treat the list as empty and let the check below explain.
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const plan = planSnatReservation(snat, ephemeral, reserved);
  if (plan.missing.length === 0) return { checked: true, ephemeral, overlap, reservedAdded: [] };

  const problem =
    `SNAT ports ${formatRange(snat)} overlap the kernel's ephemeral port range ${formatRange(ephemeral)} ` +
    `(net.ipv4.ip_local_port_range) at ${formatRange(overlap)}, and ${formatRanges(plan.missing)} ` +
    `${plan.missing.length === 1 && plan.missing[0]!.min === plan.missing[0]!.max ? 'is' : 'are'} not in ` +
    'net.ipv4.ip_local_reserved_ports, so the kernel may give those ports to other sockets';
  const fixes =
    `choose snatPorts outside ${formatRange(ephemeral)} (the default is 10000-29999), ` +
    `or reserve them: sysctl -w net.ipv4.ip_local_reserved_ports=${formatRanges(plan.merged)}, ` +
    'or set reserveSnatPorts: true to let the balancer add them at start';
  if (!options.reserve) {
    throw new SnatPortRangeError(`${problem}. Fix: ${fixes}.`, { ...snat }, ephemeral, plan.missing);
  }
  try {
    writeFileSync(reservedFile, formatRanges(plan.merged));
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new SnatPortRangeError(
      `${problem}; reserveSnatPorts is set but writing ${reservedFile} failed (${why}; it needs root or ` +
        `CAP_NET_ADMIN in this network namespace). Fix: run with that privilege, or ${fixes.replace(/, or set reserveSnatPorts.*$/, '')}.`,
      { ...snat },
      ephemeral,
      plan.missing,
    );
  }
  return { checked: true, ephemeral, overlap, reservedAdded: plan.missing };
}
