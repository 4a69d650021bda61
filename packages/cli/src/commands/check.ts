import { runChecks } from '../check/checks.js';
import { systemProbe, type SystemProbe } from '../check/probe.js';
import { renderCheckReport } from '../check/render.js';
import { EXIT } from '../cli/exit-codes.js';
import type { Io } from '../cli/io.js';
import { loadConfig } from '../config/index.js';

export interface CheckOptions {
  config?: string;
  json?: boolean;
}

export async function checkCommand(opts: CheckOptions, io: Io, probe: SystemProbe = systemProbe): Promise<number> {
  const config = opts.config ? await loadConfig(opts.config) : undefined;
  const report = await runChecks(probe, config);
  io.out(opts.json ? `${JSON.stringify(report, null, 2)}\n` : renderCheckReport(report));
  return report.ok ? EXIT.OK : EXIT.UNABLE;
}
