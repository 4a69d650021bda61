import { rmdirSync, rmSync } from 'node:fs';
import { LoadBalancer } from '@flowlb/balancer';
import { CliError, EXIT } from '../cli/exit-codes.js';
import type { Io } from '../cli/io.js';
import { formatHostPort, instanceName, loadConfig } from '../config/index.js';
import { buildMapper } from '../mapper/build.js';
import { VERSION } from '../version.js';
import { planDatapath, type DatapathPlan } from './datapath-plan.js';
import { logBalancerEvent } from './event-log.js';
import { exitCodeFor } from './exit-for-error.js';
import { startMetricsServer } from './http-server.js';
import { Instance } from './instance.js';
import { createLogger, type Logger } from './logger.js';
import { createMetricsRegistry } from './metrics.js';
import { removeRunState, runDir, writeRunState } from './state-file.js';

export interface RunOptions {
  config: string;
  mappings?: string;
  mapper?: string;
  detachOnExit?: boolean;
}

export interface RunDeps {
  /** Where SIGINT, SIGTERM and SIGHUP come from. */
  signals: NodeJS.EventEmitter;
  /** Ends the process at once (a second SIGINT/SIGTERM while stopping). */
  exit: (code: number) => void;
  /** Called once the balancer runs, with what tests and embedders may want to look at. */
  onReady?: (ready: { lb: LoadBalancer; metricsUrl: string | undefined; plan: DatapathPlan }) => void;
}

const defaultDeps: RunDeps = { signals: process, exit: (code) => process.exit(code) };

async function reload(inst: Instance): Promise<void> {
  const r = await inst.mapper.reload();
  if (r.ok) {
    inst.reloads.ok++;
    inst.log.info({ detail: r.detail }, 'mappings reloaded');
  } else {
    inst.reloads.failed++;
    inst.log.error({ error: r.detail }, 'reload failed; the previous mappings stay in force');
  }
}

/** Removes what this instance pinned, so that nothing of it is left on the machine. */
function unpin(pinDir: string, log: Logger): void {
  for (const name of ['flows', 'stats']) rmSync(`${pinDir}/${name}`, { force: true });
  try {
    rmdirSync(pinDir);
  } catch (error) {
    log.warn({ pinPath: pinDir, error: (error as Error).message }, 'pin folder left in place');
  }
  log.info({ pinPath: pinDir }, 'pinned maps removed (--detach-on-exit)');
}

async function shutdown(inst: Instance, detachOnExit: boolean): Promise<unknown[]> {
  const errors: unknown[] = [];
  const attempt = async (what: string, fn: () => unknown): Promise<void> => {
    try {
      await fn();
    } catch (error) {
      errors.push(error);
      inst.log.error({ error: (error as Error).message }, `stopping: ${what} failed`);
    }
  };
  // A balancer whose start failed has released everything already.
  if (inst.lb && inst.lb.state !== 'new' && inst.lb.state !== 'stopped') await attempt('the balancer', () => inst.lb!.stop());
  if (inst.plan.forwarder) await attempt('releasing the XDP program', () => inst.plan.forwarder!.close());
  await attempt('the mapper', () => inst.mapper.close());
  if (inst.metrics) await attempt('the metrics server', () => inst.metrics!.close());
  if (inst.stateFile) removeRunState(inst.stateFile);
  if (detachOnExit && inst.plan.pinDir) await attempt('removing the pinned maps', () => unpin(inst.plan.pinDir!, inst.log));
  return errors;
}

/** `flowlb run`: runs in the foreground until SIGINT or SIGTERM; SIGHUP reloads the mappings. */
export async function runCommand(opts: RunOptions, io: Io, deps: RunDeps = defaultDeps): Promise<number> {
  const config = await loadConfig(opts.config);
  const log = createLogger({ debug: config.debug });
  const mapper = await buildMapper({ mappings: opts.mappings, mapper: opts.mapper }, config, log);
  log.info({ config: config.file, mapper: mapper.description, version: VERSION }, 'starting');

  let stopRequested: ((signal: string) => void) | undefined;
  const stopped = new Promise<string>((resolve) => (stopRequested = resolve));
  let stopping = false;
  const onStop = (signal: string) => (): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal while stopping: exiting now');
      deps.exit(EXIT.FAILURE);
      return;
    }
    stopping = true;
    stopRequested?.(signal);
  };
  const handlers = { SIGINT: onStop('SIGINT'), SIGTERM: onStop('SIGTERM') };
  // Signals are taken over before anything is attached, so an early Ctrl-C still goes through shutdown.
  deps.signals.on('SIGINT', handlers.SIGINT);
  deps.signals.on('SIGTERM', handlers.SIGTERM);

  let inst: Instance | undefined;
  let reloading: Promise<void> = Promise.resolve();
  const onHup = (): void => {
    if (!inst) return;
    const i = inst;
    log.info('SIGHUP: reloading the mappings');
    reloading = reloading.then(() => reload(i));
  };
  deps.signals.on('SIGHUP', onHup);

  try {
    const plan = await planDatapath(config, log);
    inst = new Instance(config, plan, mapper, log);
    await inst.loadCore();
    const i = inst;
    if (config.metricsAddr) {
      const registry = createMetricsRegistry({
        stats: () => i.stats(),
        xdp: () => i.xdp(),
        reloads: () => ({ ...i.reloads }),
        info: () => ({
          vip: `${config.vip.address}:${config.vip.port}`,
          datapath: i.lb?.datapath ?? plan.datapath,
          version: VERSION,
        }),
      });
      try {
        inst.metrics = await startMetricsServer(config.metricsAddr, {
          registry,
          health: () => i.health(),
          stats: () => ({ ...(i.stats() ?? {}), xdp: i.xdp() }),
        });
      } catch (error) {
        throw new CliError(`metrics_addr ${formatHostPort(config.metricsAddr)}: ${(error as Error).message}`, EXIT.FAILURE, { cause: error });
      }
      log.info({ url: inst.metrics.url }, 'metrics, health and stats served at /metrics, /healthz, /stats');
    }

    const lb = new LoadBalancer({
      vip: config.vip,
      snatAddress: config.snatAddr,
      snatPorts: config.snatPorts,
      reserveSnatPorts: config.reserveSnatPorts,
      mapper: mapper.mapper,
      datapath: plan.datapath,
      interfaces: plan.datapath === 'xdp' ? config.interfaces : [],
      ...(plan.forwarder ? { xdp: { mode: config.xdpMode, forwarder: plan.forwarder } } : {}),
      connTtlSec: config.connTtlSec,
      limits: {
        maxPendingClients: config.pending.maxClients,
        maxDatagramsPerClient: config.pending.maxDatagrams,
        maxBytesPerClient: config.pending.maxBytesPerClient,
        maxTotalBytes: config.pending.maxTotalBytes,
        classifyTimeoutMs: config.pending.timeoutMs,
        maxFlows: config.flowTableSize,
      },
      // The balancer only knows it was handed a forwarder; the reason it was loaded is ours.
      onEvent: (e) => logBalancerEvent(log, e.type === 'datapath' && plan.forwarder ? { ...e, reason: plan.reason } : e),
    });
    inst.lb = lb;
    if (plan.datapath === 'userspace') log.info({ reason: plan.reason }, 'XDP datapath not used');
    await lb.start();
    try {
      inst.stateFile = writeRunState(runDir(io.env), {
        pid: process.pid,
        instance: instanceName(config.vip),
        vip: `${config.vip.address}:${config.vip.port}`,
        pinPath: plan.pinDir ?? null,
        metricsUrl: inst.metrics?.url ?? null,
        datapath: lb.datapath ?? null,
        startedAt: new Date().toISOString(),
      });
    } catch (error) {
      // Only `flowlb stats` needs it, to find the metrics; not worth refusing to balance over.
      log.warn({ dir: runDir(io.env), error: (error as Error).message }, 'cannot write the run state file: `flowlb stats` will not show the balancer counters');
    }
    log.info(
      { pinPath: plan.pinDir ?? null, interfaces: plan.datapath === 'xdp' ? config.interfaces : [], xdpMode: config.xdpMode },
      'running; SIGINT or SIGTERM stops, SIGHUP reloads the mappings',
    );
    deps.onReady?.({ lb, metricsUrl: inst.metrics?.url, plan });

    const signal = await stopped;
    log.info({ signal }, 'stopping');
    await reloading;
    const errors = await shutdown(inst, opts.detachOnExit === true);
    log.info({ errors: errors.length }, 'stopped');
    return errors.length === 0 ? EXIT.OK : EXIT.FAILURE;
  } catch (error) {
    const code = exitCodeFor(error);
    log.error({ error: (error as Error).message, exitCode: code }, 'cannot run');
    if (inst) await shutdown(inst, opts.detachOnExit === true);
    else await mapper.close().catch(() => undefined);
    if (error instanceof CliError) throw error;
    throw new CliError((error as Error).message, code, { cause: error });
  } finally {
    deps.signals.removeListener('SIGINT', handlers.SIGINT);
    deps.signals.removeListener('SIGTERM', handlers.SIGTERM);
    deps.signals.removeListener('SIGHUP', onHup);
  }
}
