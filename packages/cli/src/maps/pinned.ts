import type { BpfMap } from '@flowlb/xdp-core';
import { CliError, EXIT } from '../cli/exit-codes.js';

type XdpCore = typeof import('@flowlb/xdp-core');

/** Imports the native package, or says why the command cannot work here. */
export async function importXdpCore(): Promise<XdpCore> {
  try {
    const core = await import('@flowlb/xdp-core');
    core.libbpfVersion();
    return core;
  } catch (error) {
    throw new CliError(
      `reading pinned maps needs @flowlb/xdp-core and its native addon: ${(error as Error).message}`,
      EXIT.UNABLE,
      { cause: error },
    );
  }
}

/** Opens `<pinPath>/<name>`, turning the kernel's refusals into messages that say what to do. */
export async function openPinnedMap(pinPath: string, name: 'flows' | 'stats'): Promise<BpfMap> {
  const core = await importXdpCore();
  const path = `${pinPath}/${name}`;
  try {
    return core.BpfMap.openPinned(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new CliError(
        `no ${name} map is pinned at ${path}: is \`flowlb run\` running with pin_path ${pinPath}? ` +
          '(inside `ip netns exec` mount bpffs first, or pass --pin-path)',
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
