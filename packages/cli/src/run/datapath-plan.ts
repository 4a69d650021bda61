import type { XdpForwarder } from '@flowlb/xdp-core';
import { CliError, EXIT } from '../cli/exit-codes.js';
import type { FlowlbConfig } from '../config/index.js';
import type { Logger } from './logger.js';

export interface DatapathPlan {
  datapath: 'xdp' | 'userspace';
  reason: string;
  /**
   * Loaded and attached here rather than by the balancer, so that health checks, --detach-on-exit and the choice
   * to leave the program attached on stop stay with the command.
   */
  forwarder?: XdpForwarder;
  /** Where the maps, the links and the program are pinned; absent when pin_path is not usable. */
  pinDir?: string;
}

function message(error: unknown): string {
  return (error as Error).message?.split('\n')[0] ?? String(error);
}

/**
 * Decides the datapath and, for XDP, loads the program with its maps pinned under pin_path. In `auto` mode any
 * reason XDP cannot run here falls back to the userspace datapath (and is logged); in `xdp` mode it is an error.
 */
export async function planDatapath(config: FlowlbConfig, log: Logger): Promise<DatapathPlan> {
  if (config.mode === 'userspace') return { datapath: 'userspace', reason: 'mode: userspace' };
  if (config.interfaces.length === 0) return { datapath: 'userspace', reason: 'auto: no interface is configured' };
  const strict = config.mode === 'xdp';
  const unable = (why: string, exitCode: 1 | 3, cause?: unknown): DatapathPlan => {
    if (strict) throw new CliError(`mode: xdp, but ${why}`, exitCode, { cause });
    return { datapath: 'userspace', reason: `auto: ${why}` };
  };

  let core: typeof import('@flowlb/xdp-core');
  try {
    core = await import('@flowlb/xdp-core');
    core.libbpfVersion();
  } catch (error) {
    return unable(`@flowlb/xdp-core cannot be used: ${message(error)}`, EXIT.UNABLE, error);
  }

  let pinDir: string | undefined = config.pinPath;
  try {
    core.ensureBpffsDir(pinDir);
  } catch (error) {
    const why = message(error);
    if (config.pinPathSet) {
      throw new CliError(`pin_path ${config.pinPath}: ${why}`, EXIT.UNABLE, { cause: error });
    }
    log.warn(
      { pinPath: config.pinPath, reason: why },
      'nothing is pinned: `flowlb flows` and `flowlb stats` cannot read this instance, and its flows do not survive a restart',
    );
    pinDir = undefined;
  }

  let forwarder: XdpForwarder;
  try {
    forwarder = await core.XdpForwarder.load({
      flowsMaxEntries: 2 * config.flowTableSize,
      // Pinned links keep the program forwarding while no control plane runs, and let the next run take over.
      ...(pinDir ? { pinDir, pinLinks: true } : {}),
    });
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { log?: string };
    if (pinDir && /reuse|pinned map/i.test(e.log ?? '')) {
      throw new CliError(
        `the maps pinned at ${pinDir} do not fit this configuration (was flow_table_size changed?): ` +
          `remove them with \`flowlb detach --pin-path ${pinDir}\` (which also detaches the program a previous run left ` +
          'attached, and forgets its flows), or choose another pin_path',
        EXIT.FAILURE,
        { cause: error },
      );
    }
    return unable(`the XDP program cannot be loaded: ${message(error)}`, e.code === 'EPERM' || e.code === 'EACCES' ? EXIT.UNABLE : EXIT.FAILURE, error);
  }
  const plan: DatapathPlan = {
    datapath: 'xdp',
    reason: `${config.mode}: the XDP program loads (libbpf ${core.libbpfVersion()}) and interface${config.interfaces.length > 1 ? 's' : ''} ${config.interfaces.join(', ')} ${config.interfaces.length > 1 ? 'are' : 'is'} configured`,
    forwarder,
  };
  if (pinDir) plan.pinDir = pinDir;
  return plan;
}
