import { LoadBalancer } from '@flowlb/balancer';
import type { XdpForwarder } from '@flowlb/xdp-core';
import { CliError, EXIT } from '../cli/exit-codes.js';
import type { Io } from '../cli/io.js';
import { formatHostPort, instanceName, loadConfig } from '../config/index.js';
import { buildMapper } from '../mapper/build.js';
import { VERSION } from '../version.js';
import { createdHere, prunePinnedLinks } from './attach.js';
import { mountBpffsForPins } from './bpffs.js';
import { planDatapath, type DatapathPlan } from './datapath-plan.js';
import { logBalancerEvent } from './event-log.js';
import { exitCodeFor } from './exit-for-error.js';
import { startMetricsServer } from './http-server.js';
import { Instance } from './instance.js';
import { createLogger } from './logger.js';
import { createMetricsRegistry } from './metrics.js';
import { findRunState, removeRunState, runDir, writeRunState } from './state-file.js';
import { watchFile } from './watch-file.js';

/** How long a flow of the SNI mappers may wait for its client to speak again. */
const DTLS_UNCONFIRMED_TTL_SEC = 10;

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

/** What a stop does with the XDP program: `--detach-on-exit` removes it; otherwise its pinned links keep it running. */
function releaseXdp(inst: Instance, fwd: XdpForwarder, how: StopHow): void {
  if (how.detachOnExit) {
    const r = fwd.destroy();
    if (!r) return;
    inst.log.info(
      { pinPath: r.pinDir, interfaces: r.links.map((l) => l.iface), removed: r.removed.length },
      'XDP program detached and every pin removed (--detach-on-exit)',
    );
    if (r.leftover.length > 0) inst.log.warn({ pinPath: r.pinDir, leftover: r.leftover }, 'pin folder left in place: it holds entries that are not flowlb\'s');
    return;
  }
  // A start that failed takes down what it attached itself; links taken over from a previous run keep forwarding.
  if (how.failed) fwd.detach(createdHere(inst.attachments));
  fwd.close();
  const kept = inst.attachments.filter((a) => a.pinPath && (!how.failed || a.how === 'updated')).map((a) => a.iface);
  if (kept.length > 0 && inst.pinsEndWithRun) {
    inst.log.warn(
      { pinPath: fwd.pinDir, interfaces: kept },
      'the XDP program is detached as this run ends: its pinned links are on a bpffs whose mount namespace ends with it',
    );
  } else if (kept.length > 0) {
    inst.log.info(
      { pinPath: fwd.pinDir, interfaces: kept },
      'the XDP program stays attached through its pinned links and keeps forwarding the established flows; ' +
        'the next `flowlb run` on this pin_path takes them over, `flowlb detach` removes them',
    );
  }
}

interface StopHow {
  detachOnExit: boolean;
  /** The start failed: nothing of this run was serving yet. */
  failed: boolean;
}

async function shutdown(inst: Instance, how: StopHow): Promise<unknown[]> {
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
  const fwd = inst.plan.forwarder;
  if (fwd) await attempt(how.detachOnExit ? 'removing the XDP program and its pins' : 'releasing the XDP program', () => releaseXdp(inst, fwd, how));
  await attempt('the mapper', () => inst.mapper.close());
  if (inst.metrics) await attempt('the metrics server', () => inst.metrics!.close());
  if (inst.stateFile) removeRunState(inst.stateFile);
  return errors;
}

/**
 * Two control planes on one pin_path would swap the program under each other and hand out the same SNAT ports; a
 * run killed without a chance to clean up leaves a state file whose process is gone, which does not count.
 */
function refuseSecondRun(pinPath: string, env: NodeJS.ProcessEnv): void {
  const other = findRunState(runDir(env), pinPath);
  if (other && other.pid !== process.pid) {
    throw new CliError(
      `another flowlb run (pid ${other.pid}, ${other.vip}) is running on pin_path ${pinPath}: stop it first, or choose another pin_path`,
      EXIT.FAILURE,
    );
  }
}

/** `flowlb run`: runs in the foreground until SIGINT or SIGTERM; SIGHUP or a change of the file reloads the mappings. */
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
  // A changed mappings file is picked up like SIGHUP.
  const unwatch = opts.mappings
    ? watchFile(opts.mappings, () => {
        if (!inst) return;
        const i = inst;
        log.info({ file: opts.mappings }, 'mappings file changed: reloading');
        reloading = reloading.then(() => reload(i));
      })
    : undefined;

  try {
    refuseSecondRun(config.pinPath, io.env);
    const bpffs = await mountBpffsForPins(config, log);
    const plan = await planDatapath(config, log);
    inst = new Instance(config, plan, mapper, log);
    inst.pinsEndWithRun = bpffs.endsWithRun && plan.pinDir !== undefined;
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
          flows: (limit) => i.flows(limit),
        });
      } catch (error) {
        throw new CliError(`metrics_addr ${formatHostPort(config.metricsAddr)}: ${(error as Error).message}`, EXIT.FAILURE, { cause: error });
      }
      log.info({ url: inst.metrics.url }, 'metrics, health, stats and flows served at /metrics, /healthz, /stats, /flows');
    }

    const lb = new LoadBalancer({
      vip: config.vip,
      snatAddress: config.snatAddr,
      snatPorts: config.snatPorts,
      reserveSnatPorts: config.reserveSnatPorts,
      mapper: mapper.mapper,
      datapath: plan.datapath,
      // The balancer attaches the forwarder as it starts, before it adopts the flows, so that a previous run's
      // pinned links are taken over at once; on stop the links stay (or go with --detach-on-exit), which is ours.
      ...(plan.forwarder
        ? {
            interfaces: config.interfaces,
            xdp: {
              mode: config.xdpMode,
              forwarder: plan.forwarder,
              detachOnStop: false,
              ...(config.newClientLimits ? { newClientLimits: config.newClientLimits } : {}),
            },
          }
        : {}),
      connTtlSec: config.connTtlSec,
      // DTLS and QUIC clients always send more than their first datagram; a module's protocol may not.
      unconfirmedTtlSec: config.unconfirmedTtlSec ?? (opts.mappings ? DTLS_UNCONFIRMED_TTL_SEC : config.connTtlSec),
      limits: { ...config.pending, maxFlows: config.flowTableSize },
      // The balancer only knows it was handed a forwarder; the reason it was loaded is ours.
      onEvent: (e) => {
        if (e.type === 'xdp-attached') i.attachments = e.attachments;
        logBalancerEvent(log, e.type === 'datapath' && plan.forwarder ? { ...e, reason: plan.reason } : e);
      },
    });
    inst.lb = lb;
    if (plan.datapath === 'userspace') log.info({ reason: plan.reason }, 'XDP datapath not used');
    await lb.start();
    if (plan.forwarder) prunePinnedLinks(plan.forwarder, log);
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
    const errors = await shutdown(inst, { detachOnExit: opts.detachOnExit === true, failed: false });
    log.info({ errors: errors.length }, 'stopped');
    return errors.length === 0 ? EXIT.OK : EXIT.FAILURE;
  } catch (error) {
    const code = exitCodeFor(error);
    log.error({ error: (error as Error).message, exitCode: code }, 'cannot run');
    if (inst) await shutdown(inst, { detachOnExit: opts.detachOnExit === true, failed: true });
    else await mapper.close().catch(() => undefined);
    if (error instanceof CliError) throw error;
    throw new CliError((error as Error).message, code, { cause: error });
  } finally {
    deps.signals.removeListener('SIGINT', handlers.SIGINT);
    deps.signals.removeListener('SIGTERM', handlers.SIGTERM);
    deps.signals.removeListener('SIGHUP', onHup);
    unwatch?.();
  }
}
