import { loadMappings, MappingsError, type MappingTable } from '@flowlb/mapper-dtls-sni';
import { runChecks } from '../check/checks.js';
import { systemProbe, type SystemProbe } from '../check/probe.js';
import { renderCheckReport } from '../check/render.js';
import { CliError, EXIT } from '../cli/exit-codes.js';
import type { Io } from '../cli/io.js';
import { loadConfig } from '../config/index.js';

export interface CheckOptions {
  config?: string;
  mappings?: string;
  json?: boolean;
}

export async function checkCommand(opts: CheckOptions, io: Io, probe: SystemProbe = systemProbe): Promise<number> {
  const config = opts.config ? await loadConfig(opts.config) : undefined;
  let mappings: MappingTable | undefined;
  if (opts.mappings) {
    try {
      mappings = await loadMappings(opts.mappings);
    } catch (error) {
      if (error instanceof MappingsError) throw new CliError(error.message, EXIT.USAGE, { cause: error });
      throw error;
    }
  }
  const report = await runChecks(probe, config, mappings ? { mappings } : {});
  io.out(opts.json ? `${JSON.stringify(report, null, 2)}\n` : renderCheckReport(report));
  return report.ok ? EXIT.OK : EXIT.UNABLE;
}
