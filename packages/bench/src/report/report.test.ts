import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { BenchRun, ForwardingCell, Measured, SystemName } from '../results.js';
import { SYSTEM_LABELS } from '../results.js';
import { renderForwardingChart } from './chart.js';
import { formatPps, formatRatio, ratioBeside } from './format.js';
import { renderMarkdown } from './markdown.js';
import { writeReport } from './write.js';
import { floodRowFixture } from '../test-support/flood-row.js';

// ---------------------------------------------------------------------------------------------------------------
// A minimal XML reader: enough to prove the chart is well-formed and to query it.

interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  /** Decoded text directly inside this element. */
  text: string;
}

const ENTITY = /&(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);/g;

function decode(raw: string, where: string): string {
  if (raw.includes('<')) throw new Error(`raw < in ${where}: ${raw}`);
  if (raw.replace(ENTITY, '').includes('&')) throw new Error(`bare & in ${where}: ${raw}`);
  return raw
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#x([0-9a-fA-F]+);/g, (_, h: string) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#([0-9]+);/g, (_, d: string) => String.fromCodePoint(parseInt(d, 10)))
    .replace(/&amp;/g, '&');
}

function parseXml(src: string): XmlElement {
  const tag = /<!--[\s\S]*?-->|<\?[\s\S]*?\?>|<\/([A-Za-z][\w:.-]*)\s*>|<([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+\s*=\s*"[^"]*")*)\s*(\/?)>/g;
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  let pos = 0;
  const text = (raw: string): void => {
    const top = stack[stack.length - 1];
    if (top) top.text += decode(raw, `<${top.name}>`);
    else if (raw.trim() !== '') throw new Error(`text outside the root element: ${raw}`);
  };
  for (const m of src.matchAll(tag)) {
    text(src.slice(pos, m.index));
    pos = m.index + m[0].length;
    const [, close, open, attrText, selfClose] = m;
    if (close) {
      const top = stack.pop();
      if (!top || top.name !== close) throw new Error(`</${close}> closes <${top?.name ?? 'nothing'}>`);
      continue;
    }
    if (!open) continue;
    const el: XmlElement = { name: open, attrs: {}, children: [], text: '' };
    for (const a of (attrText ?? '').matchAll(/([\w:.-]+)\s*=\s*"([^"]*)"/g)) {
      const [, k, v] = a as unknown as [string, string, string];
      if (k in el.attrs) throw new Error(`duplicate attribute ${k} on <${open}>`);
      el.attrs[k] = decode(v, `${open}@${k}`);
    }
    const parent = stack[stack.length - 1];
    if (parent) parent.children.push(el);
    else if (root) throw new Error('more than one root element');
    else root = el;
    if (!selfClose) stack.push(el);
  }
  text(src.slice(pos));
  if (stack.length > 0) throw new Error(`unclosed <${stack[stack.length - 1]?.name}>`);
  if (!root) throw new Error('no root element');
  return root;
}

function all(el: XmlElement, pred: (e: XmlElement) => boolean): XmlElement[] {
  return [...(pred(el) ? [el] : []), ...el.children.flatMap((c) => all(c, pred))];
}

function allText(el: XmlElement): string[] {
  return all(el, (e) => e.name === 'text').map((e) => e.text);
}

// ---------------------------------------------------------------------------------------------------------------
// A run as the runner would record it.

function m(median: number, spread = 0.01): Measured {
  return { median, runs: [median * (1 - spread), median, median * (1 + spread)] };
}

const RATES: Record<SystemName, number> = {
  'bare-xdp': 10e6,
  'flowlb-xdp': 9e6,
  'flowlb-xdp-lookup': 8.5e6,
  nftables: 2.2e6,
  nginx: 95_300,
  'flowlb-userspace': 410_000,
};

function cell(system: SystemName, payload: number, flows: number, error?: string): ForwardingCell {
  // Larger payloads and more flows cost something, so the grid is not six copies of one group.
  const pps = error ? 0 : RATES[system] * (payload === 64 ? 1 : 0.6) * (flows === 1 ? 1 : flows === 1000 ? 0.95 : 0.85);
  return {
    system,
    payload,
    flows,
    pps: error ? { median: 0, runs: [] } : m(pps),
    offeredPps: m(12e6),
    payloadBps: pps * payload * 8,
    ...(error ? { error } : {}),
  };
}

const SYSTEMS = Object.keys(SYSTEM_LABELS) as SystemName[];
const NGINX_ERROR = 'nginx <stream> worker exited & did not restart';

function forwardingCells(): ForwardingCell[] {
  const cells: ForwardingCell[] = [];
  for (const payload of [64, 1472]) {
    for (const flows of [1, 1000, 100_000]) {
      for (const system of SYSTEMS) {
        cells.push(cell(system, payload, flows, payload === 1472 && flows === 100_000 && system === 'nginx' ? NGINX_ERROR : undefined));
      }
    }
  }
  cells.push(cell('flowlb-xdp', 64, 1_000_000));
  return cells;
}

function sampleRun(): BenchRun {
  return {
    startedAt: '2025-06-01T14:03:07.123Z',
    finishedAt: '2025-06-01T14:45:50.000Z',
    machine: {
      cpus: 8,
      cpuModel: 'AMD EPYC 7B13 <virtual> & co',
      kernel: '6.8.0-48-generic',
      node: 'v20.18.0',
      memoryGiB: 31.3,
      commit: 'v0.3.0-12-g53efacd',
    },
    settings: { runs: 3, quick: false },
    kernelCost: {
      tableFlows: 65_536,
      rows: [
        {
          name: 'flowlb forward hit (redirect)',
          program: 'flowlb',
          packets: 254_000,
          nsPerPacket: { median: 42.3, runs: [41.9, 42.3, 43.0] },
          verdicts: { XDP_REDIRECT: 254_000 },
          counters: { fwdHit: 254_000 },
        },
        {
          name: 'flowlb miss (pass)',
          program: 'flowlb',
          packets: 254_000,
          nsPerPacket: { median: 31.05, runs: [30.9, 31.05, 31.4] },
          verdicts: { XDP_PASS: 254_000 },
          counters: { miss: 254_000 },
        },
        {
          name: 'floor: parse + XDP_TX',
          program: 'floor',
          packets: 254_000,
          nsPerPacket: { median: 25.6, runs: [25.5, 25.6, 25.9] },
          verdicts: { XDP_TX: 254_000 },
        },
      ],
      naive: { repeat: 1000, nsPerPacket: 12.4, hits: 1, misses: 999 },
      notes: ['Batches of 254 runs; `bpf_prog_test_run_opts` with `repeat` = 254.'],
    },
    forwarding: {
      cells: forwardingCells(),
      runSeconds: 3,
      notes: [
        'nginx drops datagrams when <worker_connections> is exceeded & logs each one.',
        'The 1,000,000-flow cell is flowlb (XDP) only.',
      ],
    },
    latency: {
      payload: 64,
      rows: [
        { system: 'direct', p50Us: m(18.2), p99Us: m(25.4), addedP50Us: 0, addedP99Us: 0, samples: 100_000 },
        { system: 'flowlb-xdp', p50Us: m(19.1), p99Us: m(26.9), addedP50Us: 0.9, addedP99Us: 1.5, samples: 100_000 },
        { system: 'nftables', p50Us: m(20.0), p99Us: m(33.3), addedP50Us: 1.8, addedP99Us: 7.9, samples: 100_000 },
        { system: 'nginx', p50Us: m(41.7), p99Us: m(80.2), addedP50Us: 23.5, addedP99Us: 54.8, samples: 100_000 },
        {
          system: 'flowlb-userspace',
          p50Us: { median: Number.NaN, runs: [] },
          p99Us: { median: Number.NaN, runs: [] },
          addedP50Us: Number.NaN,
          addedP99Us: Number.NaN,
          samples: 0,
          error: 'echo server timed out',
        },
      ],
      notes: ['One datagram in flight; 100,000 round trips per run.'],
    },
    newFlows: {
      rows: [
        {
          mapper: 'trivial',
          datapath: 'xdp',
          flows: 50_000,
          flowsPerSec: m(48_213),
          installP50Ms: m(0.41),
          installP99Ms: m(2.7),
          refused: 0,
          offered: 50_000,
          reachedVip: 49_100,
          socketDrops: 900,
          flowsPerCpuSec: m(52_000),
          limitedBy: 'balancer CPU (VIP socket overflowed)',
        },
        {
          mapper: 'dtls-sni',
          datapath: 'xdp',
          flows: 20_000,
          flowsPerSec: m(11_870),
          installP50Ms: m(1.2),
          installP99Ms: m(9.8),
          refused: 3,
        },
      ],
      notes: ['Each new flow sends a ClientHello for the DTLS SNI mapper.'],
    },
    scale: {
      rows: [
        {
          flows: 1_000_000,
          installSeconds: m(21.4),
          heapUsedMiB: 182.4,
          rssMiB: 402.9,
          sweepWallMs: m(640),
          sweepCpuMs: m(590),
          sweepMaxStallMs: m(4.2),
          forwardingPps: m(8.1e6),
        },
      ],
      notes: ['The sweep yields to the event loop every 4,096 entries.'],
    },
    targets: [
      {
        target: 'flowlb (XDP) ≥ 0.8× bare XDP (64 B, 100,000 flows)',
        measured: '0.90×',
        met: true,
      },
      {
        target: 'added p99 latency ≤ 5 µs (flowlb XDP)',
        measured: '1.5 µs',
        met: true,
      },
      {
        target: 'new flows ≥ 20,000/s with DTLS SNI',
        measured: '11,870/s',
        met: false,
        note: 'the mapper parses every ClientHello in the main thread | a worker pool would close it',
      },
      { target: 'IPv6 forwarding', measured: 'not run', met: null },
    ],
    errors: [],
  };
}

// ---------------------------------------------------------------------------------------------------------------

describe('renderForwardingChart', () => {
  const run = sampleRun();
  const fwd = run.forwarding!;
  const svg = renderForwardingChart(fwd, run.machine);
  const doc = parseXml(svg);
  const bars = all(doc, (e) => e.name === 'rect' && (e.attrs.class ?? '').split(' ').includes('bar'));

  it('is a well-formed standalone SVG', () => {
    expect(doc.name).toBe('svg');
    expect(doc.attrs.xmlns).toBe('http://www.w3.org/2000/svg');
    expect(doc.attrs['font-family']).toBe('sans-serif');
    expect(svg).not.toMatch(/(?:href|url)\(?\s*=?\s*["']?https?:/);
    expect(svg).not.toMatch(/@import|<script|<image/);
  });

  it('draws one bar per cell, in SYSTEM_LABELS order within each group', () => {
    expect(bars).toHaveLength(fwd.cells.length);
    for (const c of fwd.cells) {
      const matching = bars.filter(
        (b) => b.attrs['data-system'] === c.system && b.attrs['data-payload'] === String(c.payload) && b.attrs['data-flows'] === String(c.flows),
      );
      expect(matching).toHaveLength(1);
    }
    const group = bars.filter((b) => b.attrs['data-payload'] === '64' && b.attrs['data-flows'] === '1');
    expect(group.map((b) => b.attrs['data-system'])).toEqual(SYSTEMS);
    const ys = group.map((b) => Number(b.attrs.y));
    expect([...ys].sort((a, b) => a - b)).toEqual(ys);
  });

  it('keeps the log scale ordered and nginx visible next to millions', () => {
    const width = (system: string): number =>
      Number(bars.find((b) => b.attrs['data-system'] === system && b.attrs['data-payload'] === '64' && b.attrs['data-flows'] === '1')?.attrs.width);
    expect(width('bare-xdp')).toBeGreaterThan(width('flowlb-xdp'));
    expect(width('flowlb-xdp')).toBeGreaterThan(width('nftables'));
    expect(width('nftables')).toBeGreaterThan(width('flowlb-userspace'));
    expect(width('flowlb-userspace')).toBeGreaterThan(width('nginx'));
    expect(width('nginx')).toBeGreaterThan(50);
    const ticks = all(doc, (e) => e.attrs.class === 'tick').map((e) => e.text);
    expect(ticks).toEqual(['10 kpps', '100 kpps', '1 Mpps', '10 Mpps']);
  });

  it('draws the errored cell hatched and labelled n/a, with the reason', () => {
    const na = bars.filter((b) => (b.attrs.class ?? '').split(' ').includes('na'));
    expect(na).toHaveLength(1);
    expect(na[0]?.attrs['data-system']).toBe('nginx');
    expect(na[0]?.attrs.fill).toMatch(/^url\(#/);
    expect(na[0]?.children.find((c) => c.name === 'title')?.text).toContain(NGINX_ERROR);
    expect(allText(doc).filter((t) => t === 'n/a')).toHaveLength(1);
  });

  it('labels values, groups, the legend and the machine', () => {
    const texts = allText(doc);
    for (const label of ['10.0 Mpps', '9.00 Mpps', '2.20 Mpps', '95.3 kpps', '410 kpps']) expect(texts).toContain(label);
    for (const label of ['64 B · 1 flow', '64 B · 1,000 flows', '1472 B · 100,000 flows', '64 B · 1,000,000 flows']) {
      expect(texts).toContain(label);
    }
    for (const label of Object.values(SYSTEM_LABELS)) expect(texts).toContain(label);
    const subtitle = texts.find((t) => t.includes('CPUs'));
    expect(subtitle).toContain('8 CPUs');
    expect(subtitle).toContain('Linux 6.8.0-48-generic');
  });

  it('escapes text from the machine, errors and system labels', () => {
    const saved = SYSTEM_LABELS.nginx;
    (SYSTEM_LABELS as Record<SystemName, string>).nginx = 'nginx <stream> & "co"';
    try {
      const s = renderForwardingChart(fwd, run.machine);
      const d = parseXml(s);
      expect(s).toContain('nginx &lt;stream&gt; &amp; &quot;co&quot;');
      expect(allText(d)).toContain('nginx <stream> & "co"');
      expect(s).toContain('AMD EPYC 7B13 &lt;virtual&gt; &amp; co');
      expect(allText(d).some((t) => t.includes('AMD EPYC 7B13 <virtual> & co'))).toBe(true);
      expect(s).not.toContain('<stream>');
      expect(s).not.toContain('<virtual>');
    } finally {
      (SYSTEM_LABELS as Record<SystemName, string>).nginx = saved;
    }
  });

  it('still renders when nothing was measured', () => {
    const d = parseXml(
      renderForwardingChart({ cells: [cell('flowlb-xdp', 64, 1, 'no veth')], runSeconds: 3, notes: [] }, run.machine),
    );
    expect(all(d, (e) => e.attrs.class === 'bar na')).toHaveLength(1);
  });
});

describe('number formatting', () => {
  it('reads like the tables', () => {
    expect(formatPps(2_412_345)).toBe('2.41 Mpps');
    expect(formatPps(95_000)).toBe('95.0 kpps');
    expect(formatPps(999_700)).toBe('1.00 Mpps');
    expect(formatRatio(9 / 10)).toBe('0.90×');
    expect(formatRatio(9e6 / 2.2e6)).toBe('4.1×');
    expect(formatRatio(9e6 / 95_300)).toBe('94×');
  });

  it('shows a ratio beside its target with the digits that keep a miss from reading as met', () => {
    expect(ratioBeside(19.93, 20)).toBe('19.93×');
    expect(ratioBeside(0.8996, 0.9)).toBe('0.8996×');
    expect(ratioBeside(2.96, 3)).toBe('2.96×');
    expect(ratioBeside(31.4, 20)).toBe('31×');
    expect(ratioBeside(20.2, 20)).toBe('20×');
  });
});

function tableRow(md: string, firstCell: string): string {
  const row = md.split('\n').find((l) => l.startsWith(`| ${firstCell} |`));
  if (!row) throw new Error(`no row starting with ${firstCell}`);
  return row;
}

function cells(row: string): string[] {
  return row
    .replace(/^\| | \|$/g, '')
    .split(/ (?<!\\)\| /);
}

describe('renderMarkdown', () => {
  const run = sampleRun();
  const md = renderMarkdown(run, { chartFile: 'bench/results/forwarding.svg', resultsFile: 'bench/results/x.json' });

  it('has the header facts', () => {
    expect(md.startsWith('# flowlb benchmarks\n')).toBe(true);
    expect(md).toContain('2025-06-01 14:03 UTC (the run took 43 min)');
    expect(md).toContain('`v0.3.0-12-g53efacd`');
    expect(md).toContain('8 CPUs');
    expect(md).toContain('Linux 6.8.0-48-generic');
    expect(md).toContain('AMD EPYC 7B13 &lt;virtual> & co');
    expect(md).not.toContain('Quick run');
  });

  it('marks targets met, not met and not checked in their own rows', () => {
    expect(md).toContain('| target | measured | met | note |');
    expect(cells(tableRow(md, 'flowlb (XDP) ≥ 0.8× bare XDP (64 B, 100,000 flows)'))[2]).toBe('✅');
    expect(cells(tableRow(md, 'added p99 latency ≤ 5 µs (flowlb XDP)'))[2]).toBe('✅');
    const missed = cells(tableRow(md, 'new flows ≥ 20,000/s with DTLS SNI'));
    expect(missed[2]).toBe('❌');
    expect(missed[3]).toBe('the mapper parses every ClientHello in the main thread \\| a worker pool would close it');
    expect(cells(tableRow(md, 'IPv6 forwarding'))[2]).toBe('—');
    expect(md).toMatch(/2 of 3 checked targets are met; not met: new flows ≥ 20,000\/s with DTLS SNI; 1 target could not be checked\./);
  });

  it('computes ratios against bare XDP and flowlb (XDP) within a group', () => {
    expect(md).toContain('![Forwarding rate per system, payload and number of flows](bench/results/forwarding.svg)');
    const flowlb = cells(tableRow(md, '**64 B · 1 flow**'));
    expect(flowlb[1]).toBe('bare XDP forwarder');
    expect(flowlb[2]).toBe('10.0 Mpps (9.90–10.1)');
    expect(flowlb[5]).toBe('—');
    const rows = md.split('\n');
    const start = rows.indexOf(tableRow(md, '**64 B · 1 flow**'));
    const group = rows.slice(start, start + 6).map(cells);
    expect(group.map((r) => r[1])).toEqual(Object.values(SYSTEM_LABELS));
    expect(group[1]?.[5]).toBe('0.90×');
    expect(group[1]?.[6]).toBe('—');
    expect(group[2]?.[6]).toBe('1.1×');
    expect(group[3]?.[6]).toBe('4.1×');
    expect(group[4]?.[6]).toBe('94×');
    expect(group[4]?.[2]).toBe('95.3 kpps (94.3–96.3)');
    expect(md).toContain(
      "flowlb's XDP path delivered 7.65–9.00 Mpps to the backend, 0.90× the rate of a bare XDP forwarder",
    );
    expect(md).toContain(
      'flowlb (XDP) is 1.1× flowlb (XDP, a route lookup per packet), 4.1× nftables DNAT+SNAT, 94× nginx stream (UDP) and 22× flowlb (userspace).',
    );
  });

  it('shows errored cells as n/a with their reason, escaped', () => {
    const row = md.split('\n').find((l) => l.includes('n/a: nginx'));
    expect(row).toBe('|  | nginx stream (UDP) | n/a: nginx &lt;stream> worker exited & did not restart | — | — | — | — |');
  });

  it('renders each scenario with its numbers and notes', () => {
    expect(cells(tableRow(md, 'flowlb forward hit (redirect)')).slice(1, 3)).toEqual(['42.3 ns (41.9–43.0)', '+16.7 ns']);
    expect(md).toContain('ran 1 hit and 999 misses');
    expect(md).toContain('- Batches of 254 runs; `bpf_prog_test_run_opts` with `repeat` = 254.');
    expect(md).toContain('- nginx drops datagrams when &lt;worker_connections> is exceeded & logs each one.');
    expect(cells(tableRow(md, 'flowlb (XDP)')).slice(3, 5)).toEqual(['+0.9 µs', '+1.5 µs']);
    expect(cells(tableRow(md, 'direct (routing only)'))[1]).toBe('18.2 µs (18.0–18.4)');
    expect(md).toContain('| flowlb (userspace) | n/a: echo server timed out |');
    expect(md).toContain('- One datagram in flight; 100,000 round trips per run.');
    expect(cells(tableRow(md, 'DTLS SNI'))[3]).toBe('11,900 flows/s (11,800–12,000)');
    // Where the new clients went and what held the rate down; results written before those were recorded show dashes.
    expect(cells(tableRow(md, 'trivial')).slice(7)).toEqual(['50,000', '49,100', '900', '52,000 flows/CPU-s (51,500–52,500)', 'balancer CPU (VIP socket overflowed)']);
    expect(cells(tableRow(md, 'DTLS SNI')).slice(7)).toEqual(['—', '—', '—', '—', '—']);
    expect(md).toContain('- Each new flow sends a ClientHello for the DTLS SNI mapper.');
    expect(cells(tableRow(md, '1,000,000')).at(-1)).toBe('8.10 Mpps (8.02–8.18)');
    expect(md).toContain('- The sweep yields to the event loop every 4,096 entries.');
    for (const h of ['## Kernel cost per packet', '## Forwarding rate', '## Latency', '## New flows', '## Scale', '## Method', '## How to reproduce']) {
      expect(md).toContain(`\n${h}\n`);
    }
    expect(md).toContain('scripts/quickstart.sh setup');
    expect(md).toContain('`pnpm bench -- --quick`');
    expect(md).toContain('[bench/results/x.json](bench/results/x.json)');
    expect(md).not.toContain('## Scenarios that failed');
  });

  it('renders the flood: a row per step and mode, the counters, the notes and a line in the summary', () => {
    const flood: BenchRun = {
      ...sampleRun(),
      flood: {
        rows: [
          floodRowFixture({ askedCompletePerSec: 5000, askedPartialPerSec: 5000, offeredCompletePerSec: 5000, offeredPartialPerSec: 5000, limitedBy: 'held' }),
          floodRowFixture({
            successes: 36,
            successRate: 0.9,
            failedWithout: { flow: 3, confirmation: 1 },
            socketDrops: 120_000,
            drops: { 'snat-exhausted': 5000 },
            limitedBy: 'balancer CPU | more',
          }),
          floodRowFixture({ helloVerify: true, repliesSent: 280_000, limitedBy: 'held' }),
          floodRowFixture({ helloVerify: true, askedCompletePerSec: 40_000, askedPartialPerSec: 40_000, attempts: 0, successes: 0, successRate: 0, error: 'flowlb run <exited>' }),
        ],
        notes: ['Forged sources come from <10.128.0.0/12>.'],
      },
    };
    const out = renderMarkdown(flood, { chartFile: 'c.svg', resultsFile: 'r.json' });
    expect(out).toContain('\n## Flood of forged DTLS clients\n');
    const rows = out.split('\n').filter((l) => /^\| o(n|ff) \|/.test(l)).map(cells);
    // Main table first (without helloVerify, then with, by rate), then the counters.
    expect(rows.slice(0, 4).map((r) => r.slice(0, 5))).toEqual([
      ['off', '5,000 + 5,000', '5,000 + 5,000', '40 / 40', '100 %'],
      ['off', '20,000 + 20,000', '19,990 + 19,990', '36 / 40', '90.0 %'],
      ['on', '20,000 + 20,000', '19,990 + 19,990', '40 / 40', '100 %'],
      ['on', '40,000 + 40,000', 'n/a: flowlb run &lt;exited>', '—', '—'],
    ]);
    expect(rows[1]?.slice(5)).toEqual(['210 · 1,400 ms', '2', '3 · 1', '20,000', '10,000', '205 MiB (71.0 MiB before)', '110 MiB (12.0 MiB before)', '97.0 % (92.0 % process)', 'balancer CPU \\| more']);
    expect(rows.slice(4).map((r) => r.slice(0, 4))).toEqual([
      ['off', '5,000 + 5,000', '400,000', '0'],
      ['off', '20,000 + 20,000', '400,000', '120,000'],
      ['on', '20,000 + 20,000', '400,000', '0'],
    ]);
    expect(rows[5]?.[4]).toBe('0 of 300,000');
    expect(rows[5]?.at(-1)).toBe('snat-exhausted 5,000');
    expect(rows[6]?.[8]).toBe('280,000');
    expect(out).toContain('- Forged sources come from &lt;10.128.0.0/12>.');
    expect(out).toContain(
      'Under a flood of forged DTLS clients, ≥ 99 % of real handshakes completed up to 5,000 forged whole and 5,000 forged partial ' +
        'ClientHellos/s without helloVerify and up to 20,000 forged whole and 20,000 forged partial ClientHellos/s with helloVerify.',
    );
  });

  it('renders ClientHello parsing per protocol and QUIC new flows beside the DTLS ones', () => {
    const base = sampleRun();
    const withQuic: BenchRun = {
      ...base,
      helloParse: {
        rows: [
          { protocol: 'dtls', hello: 'OpenSSL capture ossl_foo', datagrams: 1, bytes: 220, hellosPerSec: m(400_000), decision: 'forward 10.0.0.1:4433' },
          { protocol: 'quic', hello: 'v1 Initial, X25519 key share', datagrams: 1, bytes: 1200, hellosPerSec: m(50_000), decision: 'forward 10.0.0.3:443' },
          {
            protocol: 'quic',
            hello: 'v1 Initials, X25519MLKEM768 key share',
            datagrams: 2,
            bytes: 2400,
            hellosPerSec: { median: Number.NaN, runs: [] },
            decision: 'drop (unknown-name)',
            error: 'the mapper did not forward it: drop (unknown-name)',
          },
        ],
        notes: ['Per second of <one> thread.'],
      },
      newFlows: {
        rows: [
          ...base.newFlows!.rows,
          { mapper: 'quic-sni', datapath: 'xdp', flows: 20_000, flowsPerSec: m(9_000), installP50Ms: m(0.03), installP99Ms: m(0.1), refused: 0 },
        ],
        notes: base.newFlows!.notes,
      },
    };
    const out = renderMarkdown(withQuic, { chartFile: 'c.svg', resultsFile: 'r.json' });
    expect(out).toContain('\n## ClientHello parsing\n');
    expect(out.indexOf('## ClientHello parsing')).toBeLessThan(out.indexOf('## New flows'));
    expect(out).toContain('| protocol | client hello | datagrams | bytes | hellos/s (one core) | per hello | decision |');
    expect(cells(tableRow(out, 'DTLS'))).toEqual(['DTLS', 'OpenSSL capture ossl_foo', '1', '220 B', '400,000 hellos/s (396,000–404,000)', '2.50 µs', 'forward 10.0.0.1:4433']);
    const quic = out.split('\n').filter((l) => l.startsWith('| QUIC |')).map(cells);
    expect(quic[0]).toEqual(['QUIC', 'v1 Initial, X25519 key share', '1', '1,200 B', '50,000 hellos/s (49,500–50,500)', '20.0 µs', 'forward 10.0.0.3:443']);
    expect(quic[1]?.slice(2)).toEqual(['2', '2,400 B', 'n/a: the mapper did not forward it: drop (unknown-name)', '—', '—']);
    expect(out).toContain('- Per second of &lt;one> thread.');
    expect(cells(tableRow(out, 'QUIC SNI (byProtocol)')).slice(1, 4)).toEqual(['XDP', '20,000', '9,000 flows/s (8,910–9,090)']);
    expect(cells(tableRow(out, 'DTLS SNI'))[3]).toBe('11,900 flows/s (11,800–12,000)');
  });

  it('leaves out scenarios that did not run and lists the ones that failed', () => {
    const partial: BenchRun = {
      ...sampleRun(),
      settings: { runs: 1, quick: true, only: ['kernel-cost', 'scale'] },
      forwarding: undefined,
      latency: undefined,
      newFlows: undefined,
      scale: undefined,
      errors: [{ scenario: 'scale', message: 'flow table full <ENOSPC> at 524,288 flows' }],
    };
    const out = renderMarkdown(partial, { chartFile: 'c.svg', resultsFile: 'r.json' });
    expect(out).toContain('**Quick run.**');
    expect(out).not.toContain('## Forwarding rate');
    expect(out).not.toContain('c.svg');
    expect(out).toContain('## Kernel cost per packet');
    expect(out).toContain('## Scenarios that failed\n\n- **scale**: flow table full &lt;ENOSPC> at 524,288 flows');
    expect(out).toContain('One scenario failed: scale');
  });
});

describe('writeReport', () => {
  let dir = '';
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function links(md: string): string[] {
    return [...md.matchAll(/\]\(([^)\s]+)\)/g)].map((x) => x[1] as string);
  }

  it('writes the JSON, the chart and BENCHMARKS.md, linked relatively', async () => {
    dir = await mkdtemp(join(tmpdir(), 'flowlb-report-'));
    const run = sampleRun();
    const paths = await writeReport(run, dir);
    expect(paths.json).toBe(join(dir, 'bench/results/2025-06-01T14-03-07-123Z.json'));
    expect(paths.chart).toBe(join(dir, 'bench/results/forwarding.svg'));
    expect(paths.markdown).toBe(join(dir, 'BENCHMARKS.md'));
    expect(JSON.parse(await readFile(paths.json, 'utf8'))).toEqual(JSON.parse(JSON.stringify(run)));
    parseXml(await readFile(paths.chart, 'utf8'));
    const md = await readFile(paths.markdown, 'utf8');
    const targets = links(md);
    expect(targets).toEqual(
      expect.arrayContaining(['bench/results/forwarding.svg', 'bench/results/2025-06-01T14-03-07-123Z.json']),
    );
    for (const t of targets) {
      expect(t.startsWith('/')).toBe(false);
      expect(existsSync(resolve(dirname(paths.markdown), t))).toBe(true);
    }
  });

  it('keeps an existing chart when the run has no forwarding results', async () => {
    dir = await mkdtemp(join(tmpdir(), 'flowlb-report-'));
    await mkdir(join(dir, 'bench/results'), { recursive: true });
    await writeFile(join(dir, 'bench/results/forwarding.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    const paths = await writeReport({ ...sampleRun(), forwarding: undefined }, dir);
    expect(await readFile(paths.chart, 'utf8')).toBe('<svg xmlns="http://www.w3.org/2000/svg"/>');
    const md = await readFile(paths.markdown, 'utf8');
    expect(md).not.toContain('forwarding.svg');
    for (const t of links(md)) expect(existsSync(resolve(dirname(paths.markdown), t))).toBe(true);
  });
});
