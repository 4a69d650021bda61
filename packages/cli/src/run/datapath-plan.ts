import { chooseDatapath, importXdpCore, XdpUnavailableError, type DatapathDecision } from '@flowlb/balancer';
import type { XdpForwarder } from '@flowlb/xdp-core';
import { CliError, EXIT } from '../cli/exit-codes.js';
import type { FlowlbConfig } from '../config/index.js';
import { exitCodeFor } from './exit-for-error.js';
import type { Logger } from './logger.js';

export interface DatapathPlan {
  datapath: 'xdp' | 'userspace';
  reason: string;
  /**
   * Loaded here rather than by the balancer, with its maps and links pinned, so that health checks,
   * --detach-on-exit and the choice to leave the program attached on stop stay with the command.
   */
  forwarder?: XdpForwarder;
  /** Where the maps, the links and the program are pinned; absent when pin_path is not usable. */
  pinDir?: string;
}

function message(error: unknown): string {
  return (error as Error).message?.split('\n')[0] ?? String(error);
}

/**
 * Decides the datapath with the balancer's own {@link chooseDatapath} and, for XDP, loads the program with its maps
 * pinned under pin_path. In `auto` mode any reason XDP cannot run here falls back to the userspace datapath (and is
 * logged); in `xdp` mode it is an error. A pin_path that cannot be used is an error in both when it was set.
 */
export async function planDatapath(config: FlowlbConfig, log: Logger): Promise<DatapathPlan> {
  // Said in the config's own words; the balancer's reason would name its option instead.
  if (config.mode === 'userspace') return { datapath: 'userspace', reason: 'mode: userspace' };
  let pinDir: string | undefined;
  const load = async (): Promise<{ forwarder: XdpForwarder; detail: string }> => {
    const core = await importXdpCore<typeof import('@flowlb/xdp-core')>();
    pinDir = config.pinPath;
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
    try {
      const forwarder = await core.XdpForwarder.load({
        flowsMaxEntries: 2 * config.flowTableSize,
        // Pinned links keep the program forwarding while no control plane runs, and let the next run take over.
        ...(pinDir ? { pinDir, pinLinks: true } : {}),
      });
      return { forwarder, detail: `the XDP program loads (libbpf ${core.libbpfVersion()})` };
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
      throw error;
    }
  };

  let decision: DatapathDecision<XdpForwarder>;
  try {
    decision = await chooseDatapath({
      mode: config.mode,
      interfaces: config.interfaces,
      load,
      // The user's configuration is wrong: falling back would hide it.
      isFatal: (error) => error instanceof CliError,
    });
  } catch (error) {
    if (!(error instanceof XdpUnavailableError)) throw error;
    // Without an underlying error the machine or the process's rights are what is missing.
    const code = error.cause === undefined ? EXIT.UNABLE : exitCodeFor(error.cause);
    throw new CliError(`mode: xdp, but ${error.reason}`, code, { cause: error.cause ?? error });
  }
  if (decision.kind === 'userspace') return { datapath: 'userspace', reason: decision.reason };
  const plan: DatapathPlan = { datapath: 'xdp', reason: decision.reason, forwarder: decision.forwarder };
  if (pinDir) plan.pinDir = pinDir;
  return plan;
}
