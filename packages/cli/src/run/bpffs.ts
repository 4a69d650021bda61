import { readdirSync, readlinkSync } from 'node:fs';
import { importXdpCore } from '@flowlb/balancer';
import { CliError, EXIT } from '../cli/exit-codes.js';
import type { FlowlbConfig } from '../config/index.js';
import type { Logger } from './logger.js';

/**
 * Whether another process is in this process's mount namespace, and so keeps it, and whatever is mounted in it,
 * alive after this process ends. Undefined when /proc cannot tell.
 */
export function mountNamespaceShared(): boolean | undefined {
  let mine: string;
  let pids: string[];
  try {
    mine = readlinkSync('/proc/self/ns/mnt');
    pids = readdirSync('/proc').filter((n) => /^\d+$/.test(n) && Number(n) !== process.pid);
  } catch {
    return undefined;
  }
  for (const pid of pids) {
    try {
      if (readlinkSync(`/proc/${pid}/ns/mnt`) === mine) return true;
    } catch {
      // gone meanwhile, or not ours to look at
    }
  }
  return false;
}

/**
 * Mounts bpffs for pin_path when the XDP datapath may be used and there is none, as bpftool and Cilium do: inside
 * `ip netns exec`, which remounts /sys, /sys/fs/bpf is a plain sysfs folder and nothing could be pinned. Whatever
 * else stands in the way of pinning is left to the datapath plan, which says so in its own terms. `endsWithRun`: the
 * mount is in a namespace no other process holds, so the pins go when this process does.
 */
export async function mountBpffsForPins(config: FlowlbConfig, log: Logger): Promise<{ endsWithRun: boolean }> {
  const kept = { endsWithRun: false };
  if (config.mode === 'userspace' || config.interfaces.length === 0) return kept;
  let core: typeof import('@flowlb/xdp-core');
  try {
    core = await importXdpCore<typeof import('@flowlb/xdp-core')>();
  } catch {
    return kept;
  }
  let mounted: string | undefined;
  try {
    mounted = core.ensureBpffsDir(config.pinPath, { mount: true }).mounted;
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    // Only a failed mount has something to add; the plan reports any other problem with pin_path itself.
    if (e.code !== 'ERR_FLOWLB_NOT_BPFFS' || e.cause === undefined) return kept;
    if (config.pinPathSet) throw new CliError(`pin_path ${config.pinPath}: ${e.message}`, EXIT.UNABLE, { cause: error });
    log.warn({ pinPath: config.pinPath, error: e.message }, 'cannot mount bpffs for the pins');
    return kept;
  }
  if (!mounted) return kept;
  log.info({ mountPoint: mounted, pinPath: config.pinPath }, 'mounted bpffs for the pins');
  if (mountNamespaceShared() === false) {
    log.warn(
      { mountPoint: mounted },
      'no other process is in this mount namespace (as when `ip netns exec` starts flowlb itself), so the bpffs ' +
        'mounted here ends with this run, and with it the pins, the flows and the attached XDP program; ' +
        '`flowlb flows`, `flowlb stats` and the next `flowlb run` find them only from within this namespace. ' +
        'To keep them across restarts, start flowlb from a shell in the namespace (ip netns exec NS bash), or ' +
        'mount bpffs in the host outside /sys (mkdir -p /run/flowlb/bpffs && mount -t bpf bpf /run/flowlb/bpffs) ' +
        'and set pin_path below it',
    );
    return { endsWithRun: true };
  }
  return kept;
}
