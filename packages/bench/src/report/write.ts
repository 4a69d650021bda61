import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import type { BenchRun } from '../results.js';
import { renderForwardingChart } from './chart.js';
import { renderMarkdown } from './markdown.js';

/** Where results go, relative to the repository root. */
export const RESULTS_DIR = join('bench', 'results');
export const CHART_NAME = 'forwarding.svg';
export const MARKDOWN_NAME = 'BENCHMARKS.md';

/** A file name from the run's start time that sorts by date and is valid on every filesystem. */
export function resultsFileName(run: BenchRun): string {
  return `${run.startedAt.replace(/[:.]/g, '-')}.json`;
}

// Markdown links use forward slashes whatever the platform.
function link(from: string, to: string): string {
  return relative(dirname(from), to).split(sep).join('/');
}

// A reader (or a crashed run) never sees half a BENCHMARKS.md.
async function writeAtomically(path: string, content: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, content, 'utf8');
  await rename(tmp, path);
}

/**
 * Writes the run's raw JSON, the forwarding chart and BENCHMARKS.md under `repoRoot`.
 * Without forwarding results the chart is left as it is, so a partial run does not remove the last one.
 */
export async function writeReport(
  run: BenchRun,
  repoRoot: string,
): Promise<{ json: string; markdown: string; chart: string }> {
  const dir = join(repoRoot, RESULTS_DIR);
  const json = join(dir, resultsFileName(run));
  const chart = join(dir, CHART_NAME);
  const markdown = join(repoRoot, MARKDOWN_NAME);
  await mkdir(dir, { recursive: true });

  await writeAtomically(json, `${JSON.stringify(run, null, 2)}\n`);
  if (run.forwarding) await writeAtomically(chart, renderForwardingChart(run.forwarding, run.machine));
  await writeAtomically(
    markdown,
    renderMarkdown(run, { chartFile: link(markdown, chart), resultsFile: link(markdown, json) }),
  );
  return { json, markdown, chart };
}
