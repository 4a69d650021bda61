import type { RemovedPins } from '@flowlb/xdp-core';
import { CliError, EXIT } from '../cli/exit-codes.js';
import type { Io } from '../cli/io.js';
import { resolvePinPath, type InstanceSelector } from '../maps/locate.js';
import { requireXdpCore } from '../maps/pinned.js';
import { findRunState, runDir } from './state-file.js';

export interface DetachOptions extends InstanceSelector {
  json?: boolean;
  /** Go ahead although a live `flowlb run` seems to use the pin path. */
  force?: boolean;
}

export function renderDetach(r: RemovedPins): string {
  if (r.removed.length === 0 && !r.folderRemoved) return `nothing is pinned at ${r.pinDir}: nothing to detach\n`;
  let out = '';
  for (const l of r.links) {
    out +=
      l.ifindex !== 0
        ? `detached XDP program ${l.progId} from ${l.iface} (link ${l.linkId})\n`
        : `removed the pinned link of ${l.iface} (its interface was already gone)\n`;
  }
  if (r.links.length === 0) out += 'no XDP link was pinned: no interface had the program attached through this pin path\n';
  out += `removed ${r.removed.length} pin${r.removed.length === 1 ? '' : 's'}`;
  out += r.folderRemoved ? ` and ${r.pinDir}\n` : ` from ${r.pinDir}\n`;
  if (r.leftover.length > 0) out += `left in ${r.pinDir}, not flowlb's: ${r.leftover.join(', ')}\n`;
  return out;
}

/**
 * `flowlb detach`: the clean stop of an instance whose `flowlb run` has ended without --detach-on-exit. Its pinned
 * links keep the XDP program attached after the process is gone; this detaches them and removes every pin (the
 * flows in the map are forgotten).
 */
export async function detachCommand(opts: DetachOptions, io: Io): Promise<number> {
  const pinPath = await resolvePinPath(opts, io.env);
  const live = findRunState(runDir(io.env), pinPath);
  if (live && !opts.force) {
    throw new CliError(
      `flowlb run (pid ${live.pid}, ${live.vip}) is running on ${pinPath}: stop it first (SIGTERM; or run it with ` +
        '--detach-on-exit, which leaves nothing behind), or pass --force to detach it under the running process',
      EXIT.FAILURE,
    );
  }
  const core = await requireXdpCore('detaching a pinned XDP program');
  let removed: RemovedPins;
  try {
    removed = core.XdpForwarder.removePins(pinPath);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EPERM' || code === 'EACCES') {
      throw new CliError(`cannot detach ${pinPath} (${code}): needs root, or CAP_BPF and CAP_NET_ADMIN`, EXIT.UNABLE, { cause: error });
    }
    throw new CliError(`cannot detach ${pinPath}: ${(error as Error).message}`, EXIT.FAILURE, { cause: error });
  }
  io.out(opts.json ? `${JSON.stringify(removed, null, 2)}\n` : renderDetach(removed));
  return EXIT.OK;
}
