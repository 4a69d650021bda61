import { importXdpCore } from '@flowlb/balancer';
import type { BpfMap } from '@flowlb/xdp-core';
import { CliError, EXIT } from '../cli/exit-codes.js';

export type XdpCore = typeof import('@flowlb/xdp-core');

/** The native package for a command that cannot work without it, or a CliError that says why it is missing. */
export async function requireXdpCore(purpose: string): Promise<XdpCore> {
  try {
    return await importXdpCore<XdpCore>();
  } catch (error) {
    throw new CliError(`${purpose} needs @flowlb/xdp-core and its native addon: ${(error as Error).message}`, EXIT.UNABLE, {
      cause: error,
    });
  }
}

/** Opens `<pinPath>/<name>`, turning the kernel's refusals into messages that say what to do. */
export async function openPinnedMap(pinPath: string, name: 'flows' | 'stats'): Promise<BpfMap> {
  const core = await requireXdpCore('reading pinned maps');
  const path = `${pinPath}/${name}`;
  try {
    return core.BpfMap.openPinned(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new CliError(
        `no ${name} map is pinned at ${path}: is \`flowlb run\` running with pin_path ${pinPath}? ` +
          '(it mounts bpffs where there is none, in its own mount namespace: inside `ip netns exec` run this from the same one, or pass --pin-path)',
        EXIT.FAILURE,
        { cause: error },
      );
    }
    if (code === 'EPERM' || code === 'EACCES') {
      throw new CliError(`cannot open ${path} (${code}): reading pinned maps needs root or CAP_BPF`, EXIT.UNABLE, { cause: error });
    }
    throw new CliError(`cannot open ${path}: ${(error as Error).message}`, EXIT.FAILURE, { cause: error });
  }
}
