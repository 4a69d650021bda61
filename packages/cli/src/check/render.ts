import type { CheckReport, Verdict } from './types.js';

const LABEL: Record<Verdict, string> = { ok: 'ok', warn: 'WARN', fail: 'FAIL', skip: 'skip' };

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

export function renderCheckReport(report: CheckReport): string {
  const width = Math.max(...report.checks.map((c) => c.title.length));
  const lines = [`flowlb check${report.config ? ` (config ${report.config})` : ''}`];
  for (const c of report.checks) {
    lines.push(`  ${LABEL[c.verdict].padEnd(4)}  ${c.title.padEnd(width)}  ${c.detail}`);
    if (c.fix && (c.verdict === 'warn' || c.verdict === 'fail')) {
      lines.push(`  ${''.padEnd(4)}  ${''.padEnd(width)}  fix: ${c.fix}`);
      if (c.command) lines.push(`  ${''.padEnd(4)}  ${''.padEnd(width)}  run: ${c.command}`);
    }
  }
  const count = (v: Verdict): number => report.checks.filter((c) => c.verdict === v).length;
  const summary = `${plural(count('ok'), 'ok', 'ok')}, ${plural(count('warn'), 'warning', 'warnings')}, ${plural(count('fail'), 'failure', 'failures')}`;
  const datapath = report.datapath === 'userspace' ? 'the userspace datapath' : 'the XDP datapath';
  lines.push(
    report.ok
      ? `${summary}: this machine can run ${datapath}${count('warn') > 0 ? ' (see the warnings)' : ''}`
      : `${summary}: this machine cannot run ${datapath} as configured`,
  );
  return `${lines.join('\n')}\n`;
}
