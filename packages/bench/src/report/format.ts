import type { Measured } from '../results.js';
import { SYSTEM_LABELS } from '../results.js';

// A fixed locale so the report reads the same whichever machine ran the bench.
const numberFormats = new Map<number, Intl.NumberFormat>();
function fixed(x: number, decimals: number): string {
  let f = numberFormats.get(decimals);
  if (!f) {
    f = new Intl.NumberFormat('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
    numberFormats.set(decimals, f);
  }
  return f.format(x);
}

/** Integer with thousands separators: 100000 → "100,000". */
export function formatCount(x: number): string {
  return Number.isFinite(x) ? fixed(Math.round(x), 0) : 'n/a';
}

/** Three significant digits, thousands separators above 999: 2.4123 → "2.41", 95.31 → "95.3", 12345 → "12,300". */
export function formatSig3(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  if (x === 0) return '0';
  const r = Number(x.toPrecision(3));
  const a = Math.abs(r);
  if (a >= 100) return fixed(r, 0);
  if (a >= 10) return fixed(r, 1);
  if (a >= 1) return fixed(r, 2);
  return r.toPrecision(3);
}

interface Unit {
  scale: number;
  suffix: string;
}

const PPS_UNITS: Unit[] = [
  { scale: 1e9, suffix: 'Gpps' },
  { scale: 1e6, suffix: 'Mpps' },
  { scale: 1e3, suffix: 'kpps' },
  { scale: 1, suffix: 'pps' },
];

const BPS_UNITS: Unit[] = [
  { scale: 1e9, suffix: 'Gbit/s' },
  { scale: 1e6, suffix: 'Mbit/s' },
  { scale: 1e3, suffix: 'kbit/s' },
  { scale: 1, suffix: 'bit/s' },
];

function pickUnit(x: number, units: Unit[]): Unit {
  // Round first so 999,600 reads "1.00 Mpps" rather than "1,000 kpps".
  const r = Math.abs(Number(x.toPrecision(3)));
  return units.find((u) => r >= u.scale) ?? (units[units.length - 1] as Unit);
}

function scaled(x: number, units: Unit[]): string {
  if (!Number.isFinite(x)) return 'n/a';
  const u = pickUnit(x, units);
  return `${formatSig3(x / u.scale)} ${u.suffix}`;
}

/** "2.41 Mpps", "95.3 kpps". */
export function formatPps(pps: number): string {
  return scaled(pps, PPS_UNITS);
}

/** "9.87 Gbit/s". */
export function formatBps(bps: number): string {
  return scaled(bps, BPS_UNITS);
}

function runRange(m: Measured): { min: number; max: number } | undefined {
  const runs = m.runs.filter(Number.isFinite);
  if (runs.length < 2) return undefined;
  return { min: Math.min(...runs), max: Math.max(...runs) };
}

/** Median with the runs' spread in the median's unit: "2.41 Mpps (2.38–2.45)". */
export function formatPpsMeasured(m: Measured): string {
  if (!Number.isFinite(m.median)) return 'n/a';
  const u = pickUnit(m.median, PPS_UNITS);
  const median = `${formatSig3(m.median / u.scale)} ${u.suffix}`;
  const range = runRange(m);
  if (!range) return median;
  return `${median} (${formatSig3(range.min / u.scale)}–${formatSig3(range.max / u.scale)})`;
}

/**
 * Median with one fixed number of decimals and the runs' spread: "42.3 ns (41.9–43.0)".
 * `decimals` undefined means three significant digits.
 */
export function formatMeasured(m: Measured, unit: string, decimals?: number): string {
  const f = (x: number): string => (decimals === undefined ? formatSig3(x) : fixed(x, decimals));
  if (!Number.isFinite(m.median)) return 'n/a';
  const median = `${f(m.median)} ${unit}`;
  const range = runRange(m);
  if (!range) return median;
  return `${median} (${f(range.min)}–${f(range.max)})`;
}

/** One decimal: "42.3 ns". */
export function formatNs(ns: number): string {
  return Number.isFinite(ns) ? `${fixed(ns, 1)} ns` : 'n/a';
}

/** One decimal: "18.4 µs". */
export function formatUs(us: number): string {
  return Number.isFinite(us) ? `${fixed(us, 1)} µs` : 'n/a';
}

/** A difference that keeps its sign: "+3.2 µs", "−0.4 µs". */
export function formatSignedUs(us: number): string {
  if (!Number.isFinite(us)) return 'n/a';
  const s = fixed(Math.abs(us), 1);
  if (s === '0.0') return '±0.0 µs';
  return `${us < 0 ? '−' : '+'}${s} µs`;
}

/** "0.90×", "4.1×", "95×": two significant digits below 10, whole numbers above. */
export function formatRatio(r: number): string {
  if (!Number.isFinite(r)) return '—';
  if (r >= 9.95) return `${fixed(r, 0)}×`;
  if (r >= 1) return `${fixed(r, 1)}×`;
  return `${r.toPrecision(2)}×`;
}

/** A ratio with enough digits that it does not round across the target it is checked against ("19.93×", not "20×"). */
export function ratioBeside(r: number, want: number): string {
  const reads = (s: string) => Number.parseFloat(s) < want === r < want;
  const shown = formatRatio(r);
  if (reads(shown)) return shown;
  for (let digits = 2; digits < 6; digits++) if (reads(r.toFixed(digits))) return `${r.toFixed(digits)}×`;
  return `${r}×`;
}

/** "64 B · 1 flow", "1472 B · 100,000 flows". */
export function caseLabel(payload: number, flows: number): string {
  return `${payload} B · ${formatCount(flows)} ${flows === 1 ? 'flow' : 'flows'}`;
}

/** The display name of a system; names a newer runner adds still print as themselves. */
export function systemLabel(system: string): string {
  return (SYSTEM_LABELS as Record<string, string | undefined>)[system] ?? system;
}

/** Known systems first in SYSTEM_LABELS order, then any others in the order given. */
export function systemOrder(systems: Iterable<string>): string[] {
  const known = Object.keys(SYSTEM_LABELS);
  const present = [...new Set(systems)];
  return [
    ...known.filter((s) => present.includes(s)),
    ...present.filter((s) => !known.includes(s)),
  ];
}
