import { mkdirSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';

const BPF_FS_MAGIC = 0xcafe4a11;

/** Creates `dir` on bpffs, or says how to get bpffs there. */
export function ensureBpffsDir(dir: string): void {
  let probe = dir;
  for (;;) {
    try {
      const st = statfsSync(probe);
      if (st.type !== BPF_FS_MAGIC) {
        const err = new Error(
          `${dir} is not on a bpffs mount (${probe} has filesystem type 0x${st.type.toString(16)}); ` +
            'mount one with `mount -t bpf bpf /sys/fs/bpf` (inside `ip netns exec` it is not mounted by default)',
        ) as NodeJS.ErrnoException;
        err.code = 'ERR_FLOWLB_NOT_BPFFS';
        throw err;
      }
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      const parent = dirname(probe);
      if (parent === probe) throw e;
      probe = parent;
    }
  }
  mkdirSync(dir, { recursive: true });
}
