export { main, buildProgram, type CommandRunners } from './cli/program.js';
export { EXIT, CliError, type ExitCode } from './cli/exit-codes.js';
export { processIo, memoryIo, type Io } from './cli/io.js';
export {
  loadConfig,
  parseConfig,
  ConfigError,
  formatIssue,
  KEY_DOCS,
  DEFAULTS,
  PIN_ROOT,
  defaultPinPath,
  instanceName,
  type ConfigIssue,
  type FlowlbConfig,
  type KeyDoc,
} from './config/index.js';
export { runChecks } from './check/checks.js';
export { systemProbe, type SystemProbe, type LinkDetails, type ProgramLoad } from './check/probe.js';
export { renderCheckReport } from './check/render.js';
export type { CheckReport, CheckResult, Verdict } from './check/types.js';
export { readFlows, type FlowRow } from './maps/flows.js';
export { readXdpStats } from './maps/stats.js';
export { loadMapperModule, type LoadedMapper, type MapperContext } from './mapper/load-module.js';
export { runCommand, type RunOptions, type RunDeps } from './run/run.js';
export { createMetricsRegistry, type MetricsSources } from './run/metrics.js';
export { healthReport, type HealthReport } from './run/health.js';
export { demoCommand, type DemoOptions } from './demo/demo.js';
export { VERSION } from './version.js';
