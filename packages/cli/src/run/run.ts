import { randomBytes } from 'node:crypto';
import { LoadBalancer, type LoadBalancerOptions } from '@flowlb/balancer';
import type { UdpEndpoint } from '@flowlb/mapper-api';
import { restorePinnedSysctls, type XdpForwarder } from '@flowlb/xdp-core';
import { CliError, EXIT } from '../cli/exit-codes.js';
import type { Io } from '../cli/io.js';
import { formatHostPort, instanceName, loadConfig, type FlowlbConfig } from '../config/index.js';
import { buildMapper, type BuiltMapper } from '../mapper/build.js';
import { VERSION } from '../version.js';
import { createdHere, prunePinnedLinks } from './attach.js';
import { mountBpffsForPins } from './bpffs.js';
import { planDatapath, type DatapathPlan } from './datapath-plan.js';
import { logBalancerEvent } from './event-log.js';
import { exitCodeFor } from './exit-for-error.js';
import { startMetricsServer } from './http-server.js';
import { sysctlWarnings } from './health.js';
import { Instance, readSysctl } from './instance.js';
import { createLogger } from './logger.js';
import { createMetricsRegistry } from './metrics.js';
import { findRunState, removeRunState, runDir, writeRunState } from './state-file.js';
import { watchFile } from './watch-file.js';
import { COOKIE_SECRET_ENV, WORKER_STATS_INTERVAL_MS, WorkerPool, type ParentMessage, type WorkerMessage } from './workers.js';

/** How long a flow of the SNI mappers may wait for its client to speak again. */
const DTLS_UNCONFIRMED_TTL_SEC = 10;

export interface RunOptions {
  config: string;
  mappings?: string;
  mapper?: string;
  detachOnExit?: boolean;
  /** Set by `flowlb run` for the workers it starts: `index/count`. */
  worker?: string;
  /** With `worker`: where worker 0 pinned the maps. */
  workerPinDir?: string;
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
  inst.workers?.signal('SIGHUP');
  const r = await inst.mapper.reload();
  if (r.ok) {
    inst.reloads.ok++;
    inst.log.info({ detail: r.detail }, 'mappings reloaded');
    refreshKernelHelloVerify(inst);
  } else {
    inst.reloads.failed++;
    inst.log.error({ error: r.detail }, 'reload failed; the previous mappings stay in force');
  }
}

/** After a reload: the XDP program answers ClientHellos for the mapper only while every route asks for a cookie. */
function refreshKernelHelloVerify(inst: Instance): void {
  if (!inst.lb || !inst.mapper.kernelHelloVerify) return;
  try {
    inst.lb.refreshHelloVerify();
    logKernelHelloVerify(inst.log, inst.mapper, inst.lb);
  } catch (error) {
    inst.log.error({ error: (error as Error).message }, "cannot update the XDP program's DTLS cookie keys");
  }
}

function logKernelHelloVerify(log: Instance['log'], mapper: BuiltMapper, lb: LoadBalancer): void {
  if (lb.datapath !== 'xdp' || !mapper.kernelHelloVerify) return;
  if (mapper.kernelHelloVerify()) log.info('every route asks for a DTLS cookie: the XDP program answers ClientHellos without one');
  else log.info('ClientHellos go to the mapper, which asks for a cookie per name');
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
    // No later process ends those links, so none would put back the sysctls attaching set.
    if (fwd.pinDir) restorePinnedSysctls(fwd.pinDir);
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
  if (inst.workers) await attempt('the workers', () => inst.workers!.stop());
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

/**
 * What the LoadBalancer of every process of one `flowlb run` has in common. With workers, each gets its share of
 * flow_table_size, so that together they never outgrow the map.
 */
function sharedBalancerOptions(config: FlowlbConfig, opts: RunOptions, mapper: BuiltMapper, index: number): LoadBalancerOptions {
  return {
    vip: config.vip,
    snatAddress: config.snatAddr,
    snatPorts: config.snatPorts,
    reserveSnatPorts: config.reserveSnatPorts,
    mapper: mapper.mapper,
    connTtlSec: config.connTtlSec,
    // DTLS and QUIC clients always send more than their first datagram; a module's protocol may not.
    unconfirmedTtlSec: config.unconfirmedTtlSec ?? (opts.mappings ? DTLS_UNCONFIRMED_TTL_SEC : config.connTtlSec),
    limits: { ...config.pending, maxFlows: Math.ceil(config.flowTableSize / config.workers) },
    ...(config.workers > 1 ? { worker: { index, count: config.workers } } : {}),
    ...(mapper.health ? { replyTimeoutMs: (target: UdpEndpoint) => mapper.health!.replyTimeoutMs(target) } : {}),
  };
}

/** For `on_down: reset`: a target that goes down before the balancer runs has no flows here to remove. */
function resetFlowsOf(lb: LoadBalancer): (target: UdpEndpoint) => Promise<number> {
  return (target) => (lb.state === 'running' ? lb.resetFlowsTo(target) : Promise.resolve(0));
}

/** `flowlb run`: runs in the foreground until SIGINT or SIGTERM; SIGHUP or a change of the file reloads the mappings. */
export async function runCommand(opts: RunOptions, io: Io, deps: RunDeps = defaultDeps): Promise<number> {
  if (opts.worker !== undefined) return runWorker(opts, deps);
  const config = await loadConfig(opts.config);
  const log = createLogger({ debug: config.debug });
  const cookieSecret = randomBytes(32).toString('hex');
  // Worker 0 probes for every worker and tells them what it finds.
  let pool: WorkerPool | undefined;
  const mapper = await buildMapper(
    { mappings: opts.mappings, mapper: opts.mapper, cookieSecret, health: { role: 'leader', onShared: (states) => pool?.broadcast({ type: 'health', states }) } },
    config,
    log,
  );
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
        backends: () => i.backends(),
      });
      try {
        inst.metrics = await startMetricsServer(config.metricsAddr, {
          registry,
          health: () => i.health(),
          stats: () => ({ ...(i.stats() ?? {}), xdp: i.xdp() }),
          flows: (limit) => i.flows(limit),
          backends: () => i.backends(),
        });
      } catch (error) {
        throw new CliError(`metrics_addr ${formatHostPort(config.metricsAddr)}: ${(error as Error).message}`, EXIT.FAILURE, { cause: error });
      }
      log.info(
        { url: inst.metrics.url },
        'metrics, health, stats, flows and targets served at /metrics, /healthz, /stats, /flows, /backends',
      );
    }

    if (config.workers > 1 && plan.datapath !== 'xdp') {
      throw new CliError(`workers: ${config.workers} needs the XDP datapath, which is not used here: ${plan.reason}`, EXIT.FAILURE);
    }
    if (config.workers > 1 && !plan.pinDir) {
      throw new CliError(`workers: ${config.workers} needs pin_path on a bpffs, where the workers find the flow map: ${plan.reason}`, EXIT.FAILURE);
    }
    const lb = new LoadBalancer({
      ...sharedBalancerOptions(config, opts, mapper, 0),
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
              sysctls: config.sysctls,
              ...(config.newClientLimits ? { newClientLimits: config.newClientLimits } : {}),
              ...(mapper.kernelHelloVerify ? { helloVerify: mapper.kernelHelloVerify } : {}),
            },
          }
        : {}),
      // The balancer only knows it was handed a forwarder; the reason it was loaded is ours.
      onEvent: (e) => {
        if (e.type === 'xdp-attached') i.attachments = e.attachments;
        mapper.health?.observe(e);
        logBalancerEvent(log, e.type === 'datapath' && plan.forwarder ? { ...e, reason: plan.reason } : e);
      },
    });
    inst.lb = lb;
    if (mapper.health) mapper.health.resetFlows = resetFlowsOf(lb);
    if (plan.datapath === 'userspace') log.info({ reason: plan.reason }, 'XDP datapath not used');
    await lb.start();
    if (plan.forwarder) prunePinnedLinks(plan.forwarder, log);
    if (lb.datapath === 'xdp' && !config.sysctls) {
      // Left to the operator: say what loses packets now, once, rather than only on /healthz.
      for (const problem of sysctlWarnings(readSysctl, config.interfaces)) log.warn({ sysctls: false }, problem);
    }
    logKernelHelloVerify(log, mapper, lb);
    if (config.workers > 1) {
      inst.workers = new WorkerPool({
        count: config.workers,
        log,
        env: { [COOKIE_SECRET_ENV]: cookieSecret },
        onReady: () => (mapper.health ? { type: 'health', states: mapper.health.shared() } : undefined),
        onPassive: (failure) => mapper.health?.passive(failure),
        args: (index) => [
          'run',
          '--config',
          opts.config,
          ...(opts.mappings ? ['--mappings', opts.mappings] : []),
          ...(opts.mapper ? ['--mapper', opts.mapper] : []),
          '--worker',
          `${index}/${config.workers}`,
          '--worker-pin-dir',
          plan.pinDir!,
        ],
      });
      pool = inst.workers;
      inst.workers.start();
    }
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

/** `index/count` as `flowlb run` passes it to its workers. */
function parseWorker(text: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(text);
  const index = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (!m || !(index >= 1 && index < count)) throw new CliError(`--worker ${text}: expected index/count with 1 ≤ index < count`, EXIT.USAGE);
  return { index, count };
}

/**
 * A worker of `flowlb run`, started by worker 0: the same config and mapper, the flow map that worker 0 pinned, its
 * own slice of the SNAT ports and its own flows to expire. It attaches nothing and serves no metrics: it sends its
 * counters to worker 0, which serves them with its own. It stops with SIGTERM or when worker 0 goes away.
 */
async function runWorker(opts: RunOptions, deps: RunDeps): Promise<number> {
  const { index } = parseWorker(opts.worker!);
  if (!opts.workerPinDir) throw new CliError('--worker needs --worker-pin-dir', EXIT.USAGE);
  const config = await loadConfig(opts.config);
  if (config.workers <= index) throw new CliError(`--worker ${opts.worker}: the config now has workers: ${config.workers}`, EXIT.FAILURE);
  const log = createLogger({ debug: config.debug }).child({ worker: index });
  const send = (m: WorkerMessage): void => {
    if (process.connected) process.send?.(m);
  };
  const mapper = await buildMapper(
    {
      mappings: opts.mappings,
      mapper: opts.mapper,
      cookieSecret: process.env[COOKIE_SECRET_ENV],
      health: { role: 'follower', onPassive: (failure) => send({ type: 'passive', failure }) },
    },
    config,
    log,
  );
  const onParent = (m: ParentMessage): void => {
    if (m?.type === 'health') mapper.health?.applyShared(m.states);
  };
  process.on('message', onParent);
  let stop: (why: string) => void = () => undefined;
  const stopped = new Promise<string>((resolve) => (stop = resolve));
  const onTerm = (): void => stop('SIGTERM');
  const onInt = (): void => stop('SIGINT');
  const onHup = (): void => {
    mapper.reload().then(
      (r) => (r.ok ? log.info({ detail: r.detail }, 'mappings reloaded') : log.error({ error: r.detail }, 'reload failed; the previous mappings stay in force')),
      (error: unknown) => log.error({ error: (error as Error).message }, 'reload failed'),
    );
  };
  const onDisconnect = (): void => stop('worker 0 went away');
  deps.signals.on('SIGTERM', onTerm);
  deps.signals.on('SIGINT', onInt);
  deps.signals.on('SIGHUP', onHup);
  process.on('disconnect', onDisconnect);
  const lb = new LoadBalancer({
    ...sharedBalancerOptions(config, opts, mapper, index),
    datapath: 'xdp',
    interfaces: [],
    // The map worker 0 made: same size, found through its pins.
    xdp: { mode: config.xdpMode, pinDir: opts.workerPinDir, flowsMaxEntries: 2 * config.flowTableSize },
    onEvent: (e) => {
      mapper.health?.observe(e);
      logBalancerEvent(log, e);
    },
  });
  if (mapper.health) mapper.health.resetFlows = resetFlowsOf(lb);
  let timer: NodeJS.Timeout | undefined;
  try {
    await lb.start();
    send({ type: 'ready' });
    timer = setInterval(() => send({ type: 'stats', stats: lb.stats() }), WORKER_STATS_INTERVAL_MS);
    const why = await stopped;
    log.info({ why }, 'worker stopping');
    return EXIT.OK;
  } catch (error) {
    log.error({ error: (error as Error).message }, 'worker cannot run');
    return exitCodeFor(error);
  } finally {
    clearInterval(timer);
    await lb.stop().catch((error: unknown) => log.error({ error: (error as Error).message }, 'stopping the worker failed'));
    await mapper.close().catch(() => undefined);
    deps.signals.removeListener('SIGTERM', onTerm);
    deps.signals.removeListener('SIGINT', onInt);
    deps.signals.removeListener('SIGHUP', onHup);
    process.removeListener('disconnect', onDisconnect);
    process.removeListener('message', onParent);
  }
}
