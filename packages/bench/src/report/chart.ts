import type { ForwardingCell, ForwardingResult, Machine } from '../results.js';
import { caseLabel, formatPps, systemLabel, systemOrder } from './format.js';

const SYSTEM_COLORS: Record<string, string> = {
  'bare-xdp': '#8c8c8c',
  'flowlb-xdp': '#1f5fbf',
  'flowlb-xdp-lookup': '#5a86cf',
  nftables: '#e08a1e',
  nginx: '#3a9a48',
  'flowlb-userspace': '#8fb8ea',
};
const OTHER_COLOR = '#b07cc6';

const WIDTH = 960;
// Room right of the longest bar for its value label.
const PLOT_RIGHT = WIDTH - 100;
const BAR_H = 16;
const BAR_GAP = 4;
const GROUP_PAD = 12;
const NA_BAR_W = 56;
// No font metrics without a renderer; this over-estimates sans-serif at 12px so legend items do not collide.
const CHAR_W = 6.6;

/** Text and attribute values; also drops characters XML 1.0 forbids (an error message may carry terminal escapes). */
export function escapeXml(s: string): string {
  return s
    .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

function n(x: number): string {
  return String(Math.round(x * 10) / 10);
}

function color(system: string): string {
  return SYSTEM_COLORS[system] ?? OTHER_COLOR;
}

interface Group {
  payload: number;
  flows: number;
  /** Cells in SYSTEM_LABELS order. */
  cells: ForwardingCell[];
}

function groupCells(cells: readonly ForwardingCell[]): Group[] {
  const byKey = new Map<string, Group>();
  for (const c of cells) {
    const key = `${c.payload}/${c.flows}`;
    let g = byKey.get(key);
    if (!g) {
      g = { payload: c.payload, flows: c.flows, cells: [] };
      byKey.set(key, g);
    }
    g.cells.push(c);
  }
  const groups = [...byKey.values()].sort((a, b) => a.payload - b.payload || a.flows - b.flows);
  for (const g of groups) {
    const order = systemOrder(g.cells.map((c) => c.system));
    g.cells.sort((a, b) => order.indexOf(a.system) - order.indexOf(b.system));
  }
  return groups;
}

function measuredOk(c: ForwardingCell): boolean {
  return c.error === undefined && Number.isFinite(c.pps.median);
}

/**
 * From the decade below the smallest value to the first 1, 2 or 5 × 10^k above the largest, so a value just over
 * a decade does not cost a whole empty decade; at least two decades so a single value still has an axis.
 * Returned as exponents.
 */
function logDomain(cells: readonly ForwardingCell[]): { lo: number; hi: number } {
  const values = cells
    .filter(measuredOk)
    .flatMap((c) => [c.pps.median, ...c.pps.runs])
    .filter((v) => Number.isFinite(v) && v > 0);
  if (values.length === 0) return { lo: 4, hi: 7 };
  const max = Math.max(...values);
  const decade = Math.floor(Math.log10(max));
  const step = [1, 2, 5, 10].find((k) => k * 10 ** decade >= max) ?? 10;
  const hi = Math.log10(step * 10 ** decade);
  let lo = Math.floor(Math.log10(Math.min(...values)));
  if (hi - lo < 2) lo = Math.ceil(hi) - 2;
  return { lo, hi };
}

function decadeLabel(exp: number): string {
  const units = ['pps', 'kpps', 'Mpps', 'Gpps'];
  const u = Math.min(units.length - 1, Math.max(0, Math.floor(exp / 3)));
  return `${10 ** (exp - 3 * u)} ${units[u]}`;
}

/**
 * Grouped horizontal bars of delivered datagrams per second on a log axis, one group per (payload, flows).
 * Self-contained SVG: no scripts, no external fonts or images.
 */
export function renderForwardingChart(result: ForwardingResult, machine: Machine): string {
  const groups = groupCells(result.cells);
  // Wide enough for the longest group label ("64 B · 1,000,000 flows") in bold.
  const plotLeft = Math.max(
    140,
    Math.ceil(Math.max(0, ...groups.map((g) => caseLabel(g.payload, g.flows).length)) * CHAR_W * 1.1 + 24),
  );
  const { lo, hi } = logDomain(result.cells);
  const plotW = PLOT_RIGHT - plotLeft;
  const x = (v: number): number => {
    if (!(v > 0)) return plotLeft;
    const t = (Math.log10(v) - lo) / (hi - lo);
    return plotLeft + Math.min(1, Math.max(0, t)) * plotW;
  };

  const out: string[] = [];
  const title = 'UDP forwarding rate: datagrams per second delivered to the backend';
  const runsPerCell = Math.max(0, ...result.cells.map((c) => c.pps.runs.length));
  const subtitle =
    `${machine.cpus} CPUs · ${machine.cpuModel} · Linux ${machine.kernel}` +
    ` · median of ${runsPerCell} ${runsPerCell === 1 ? 'run' : 'runs'} of ${result.runSeconds} s` +
    (runsPerCell > 1 ? ', whiskers min–max' : '');

  // Legend: every system that appears, then the two marks that need explaining.
  const systems = systemOrder(result.cells.map((c) => c.system));
  const legendItems: { mark: string; label: string }[] = systems.map((s) => ({
    mark: `<rect width="12" height="12" fill="${color(s)}"/>`,
    label: systemLabel(s),
  }));
  if (result.cells.some((c) => !measuredOk(c))) {
    legendItems.push({
      mark: '<rect width="12" height="12" fill="url(#na-hatch)" stroke="#666"/>',
      label: 'n/a: not measured',
    });
  }
  if (runsPerCell > 1) {
    legendItems.push({
      mark: '<path d="M0 6H12M0 2V10M12 2V10" stroke="#222" fill="none"/>',
      label: 'min–max of runs',
    });
  }
  const legend: string[] = [];
  let lx = 20;
  let ly = 72;
  for (const item of legendItems) {
    const w = 12 + 6 + item.label.length * CHAR_W + 16;
    if (lx + w > WIDTH - 20 && lx > 20) {
      lx = 20;
      ly += 20;
    }
    legend.push(
      `<g class="legend-item" transform="translate(${n(lx)},${n(ly)})">${item.mark}` +
        `<text x="18" y="10.5" font-size="12">${escapeXml(item.label)}</text></g>`,
    );
    lx += w;
  }

  const plotTop = ly + 32;
  let y = plotTop;
  const bands: string[] = [];
  const body: string[] = [];
  groups.forEach((g, gi) => {
    const h = 2 * GROUP_PAD + g.cells.length * BAR_H + (g.cells.length - 1) * BAR_GAP;
    if (gi % 2 === 1) {
      bands.push(`<rect x="0" y="${n(y)}" width="${WIDTH}" height="${n(h)}" fill="#f4f6f8"/>`);
    }
    body.push(
      `<text class="group-label" x="${plotLeft - 12}" y="${n(y + h / 2 + 4)}" text-anchor="end" font-size="12" font-weight="bold">` +
        `${escapeXml(caseLabel(g.payload, g.flows))}</text>`,
    );
    g.cells.forEach((c, ci) => {
      const by = y + GROUP_PAD + ci * (BAR_H + BAR_GAP);
      const cy = by + BAR_H / 2;
      const data =
        `data-system="${escapeXml(c.system)}" data-payload="${c.payload}" data-flows="${c.flows}"`;
      const who = `${systemLabel(c.system)}, ${caseLabel(c.payload, c.flows)}`;
      if (!measuredOk(c)) {
        body.push(
          `<rect class="bar na" ${data} x="${plotLeft}" y="${n(by)}" width="${NA_BAR_W}" height="${BAR_H}"` +
            ` fill="url(#na-hatch)" stroke="${color(c.system)}">` +
            `<title>${escapeXml(`${who}: not measured: ${c.error ?? 'no result'}`)}</title></rect>`,
          `<text class="value" x="${plotLeft + NA_BAR_W + 6}" y="${n(cy + 4)}" font-size="11" fill="#444">n/a</text>`,
        );
        return;
      }
      const end = x(c.pps.median);
      const runs = c.pps.runs.filter((v) => Number.isFinite(v));
      const range =
        runs.length > 1 ? { min: Math.min(...runs), max: Math.max(...runs) } : undefined;
      const tip =
        `${who}: ${formatPps(c.pps.median)}` +
        (range ? ` (runs ${formatPps(range.min)}–${formatPps(range.max)})` : '') +
        `, offered ${formatPps(c.offeredPps.median)}`;
      body.push(
        `<rect class="bar" ${data} x="${plotLeft}" y="${n(by)}" width="${n(Math.max(0, end - plotLeft))}" height="${BAR_H}"` +
          ` fill="${color(c.system)}"><title>${escapeXml(tip)}</title></rect>`,
      );
      let labelX = end + 6;
      if (range) {
        const x0 = x(range.min);
        const x1 = x(range.max);
        body.push(
          `<path class="range" d="M${n(x0)} ${n(cy)}H${n(x1)}M${n(x0)} ${n(cy - 4)}V${n(cy + 4)}M${n(x1)} ${n(cy - 4)}V${n(cy + 4)}"` +
            ` stroke="#222" stroke-width="1" fill="none"/>`,
        );
        labelX = Math.max(labelX, x1 + 6);
      }
      body.push(
        `<text class="value" x="${n(labelX)}" y="${n(cy + 4)}" font-size="11" fill="#222">${escapeXml(formatPps(c.pps.median))}</text>`,
      );
    });
    y += h;
  });
  const plotBottom = y;

  // Emitted after the bars are laid out (they need the plot's height) but drawn beneath them.
  const grid: string[] = [];
  const axis: string[] = [];
  const top = 10 ** hi * (1 + 1e-9);
  for (let e = lo; 10 ** e <= top; e++) {
    const gx = x(10 ** e);
    grid.push(`<line x1="${n(gx)}" y1="${n(plotTop)}" x2="${n(gx)}" y2="${n(plotBottom)}" stroke="#c8c8c8"/>`);
    axis.push(
      `<text class="tick" x="${n(gx)}" y="${n(plotBottom + 18)}" text-anchor="middle" font-size="11" fill="#444">${escapeXml(decadeLabel(e))}</text>`,
    );
    for (let m = 2; m <= 9 && m * 10 ** e <= top; m++) {
      const mx = x(m * 10 ** e);
      grid.push(`<line x1="${n(mx)}" y1="${n(plotTop)}" x2="${n(mx)}" y2="${n(plotBottom)}" stroke="#ececec"/>`);
    }
  }
  axis.push(
    `<line x1="${plotLeft}" y1="${n(plotBottom)}" x2="${PLOT_RIGHT}" y2="${n(plotBottom)}" stroke="#444"/>`,
    `<text x="${n((plotLeft + PLOT_RIGHT) / 2)}" y="${n(plotBottom + 40)}" text-anchor="middle" font-size="12" fill="#444">` +
      `datagrams per second delivered (log scale)</text>`,
  );
  const height = plotBottom + 56;

  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${n(height)}" viewBox="0 0 ${WIDTH} ${n(height)}"` +
      ` font-family="sans-serif" role="img" aria-labelledby="chart-title">`,
    `<title id="chart-title">${escapeXml(`${title} (${subtitle})`)}</title>`,
    '<defs><pattern id="na-hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">' +
      '<rect width="6" height="6" fill="#ffffff"/><line x1="0" y1="0" x2="0" y2="6" stroke="#9a9a9a" stroke-width="2"/></pattern></defs>',
    `<rect width="${WIDTH}" height="${n(height)}" fill="#ffffff"/>`,
    `<text x="20" y="30" font-size="18" font-weight="bold" fill="#111">${escapeXml(title)}</text>`,
    `<text x="20" y="52" font-size="12" fill="#444">${escapeXml(subtitle)}</text>`,
    ...legend,
    ...bands,
    ...grid,
    ...body,
    ...axis,
    '</svg>',
  );
  return out.join('\n') + '\n';
}
